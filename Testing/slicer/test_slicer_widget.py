"""The panel (``BoneOligoMetWidget``) on real MRML, with fakes only for its Qt widgets.

The scene, nodes, the Logic and the background processes are real (``slicer-core``, see
``slicer_shims.py``); what Qt would draw is a recorder: the .ui's widgets (only names the .ui
holds), the progress dialog and the status bar.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from slicer_shims import unavailableReason
from test_slicer_logic import OURS, core, importModule  # noqa: F401 - the shared session fixture

ROOT = Path(__file__).resolve().parents[2]
UI_NAMES = {w.get("name") for w in ET.parse(ROOT / "Resources/UI/BoneOligoMet.ui").iter("widget")}
pytestmark = pytest.mark.skipif(unavailableReason() is not None, reason=str(unavailableReason()))


class FakeWidget:
    """A widget of the .ui: connections and the state the panel sets."""

    def __init__(self, name):
        self.name = name
        self.connections = []
        self.enabled = True
        self.table = None

    def connect(self, signal, slot):
        self.connections.append((signal, slot))

    def setMRMLScene(self, scene):
        pass

    def setCurrentNode(self, node):
        pass

    def mrmlTableNode(self):
        return self.table

    def setMRMLTableNode(self, table):
        self.table = table


class FakeUi:
    """``slicer.util.childWidgetVariables``: one FakeWidget per widget name of the .ui."""

    def __getattr__(self, name):
        if name not in UI_NAMES:
            raise AttributeError(f"the .ui has no widget {name!r}")
        widget = FakeWidget(name)
        setattr(self, name, widget)
        return widget


class FakeDialog:
    def __init__(self, **options):
        self.options = options
        self.labelText = options.get("labelText", "")
        self.value = 0
        self.closed = False
        self.slots = {}

    def connect(self, signal, slot):
        self.slots[signal] = slot

    def close(self):
        self.closed = True


@pytest.fixture
def panel(core, monkeypatch):  # noqa: F811 - the fixture imported above
    """The module's Widget after setup(), on a real scene; yields (module, widget, dialogs,
    status messages)."""
    module, slicer = importModule(core, monkeypatch)
    dialogs, messages = [], []
    monkeypatch.setattr(slicer.util, "loadUI", lambda path: FakeWidget("BoneOligoMet"))
    monkeypatch.setattr(slicer.util, "childWidgetVariables", lambda widget: FakeUi())
    monkeypatch.setattr(
        slicer.util,
        "createProgressDialog",
        lambda **options: dialogs.append(FakeDialog(**options)) or dialogs[-1],
    )
    monkeypatch.setattr(
        slicer.util, "showStatusMessage", lambda text, msec=0: messages.append(text)
    )
    widget = module.BoneOligoMetWidget()
    widget.setup()
    yield module, widget, dialogs, messages
    widget.cleanup()
    for job in [widget._job] if widget._job is not None else []:
        job.wait(timeoutSeconds=30)


def test_setup_wires_the_panel_to_the_parameter_node(panel):
    module, widget, _dialogs, _messages = panel
    assert widget._parameterNode is not None
    clicked = {
        w.name
        for w in vars(widget.ui).values()
        if any(c[0] == "clicked(bool)" for c in w.connections)
    }
    assert "classifyButton" in clicked
    assert widget.ui.classifyButton.enabled is False  # no CT, PET or segmentation yet
    widget.logic.loadSyntheticPatient(widget._parameterNode)
    assert widget.ui.segmentFromSeedsButton.enabled is True  # the parameter node's observer ran
    assert widget.ui.lesionClinicalTableView.mrmlTableNode() is not None
    assert widget._parameterNode.modelStatus == module.DEMO_MODEL_STATUS


def test_a_failing_start_leaves_no_progress_dialog_open(panel, monkeypatch):
    """Before: the dialog opened before startClassification, which raised (no CT, no
    segments): the dialog stayed open with no job behind it."""
    module, widget, dialogs, _messages = panel
    monkeypatch.setattr(module.dependencies, "missingPackages", lambda: [])
    with pytest.raises(ValueError, match="CT volume"):
        widget.onClassify()
    assert all(dialog.closed for dialog in dialogs)
    assert widget._progressDialog is None
    assert widget._job is None


def test_closing_the_scene_during_a_classification_cancels_it(panel, monkeypatch):
    """Before: the job ran on and its end raised AttributeError ('NoneType' ...) in a popup."""
    import slicer

    module, widget, dialogs, messages = panel
    monkeypatch.setattr(module.dependencies, "missingPackages", lambda: [])
    widget.logic.loadSyntheticPatient(widget._parameterNode)
    widget.logic.segmentFromSeeds(widget._parameterNode)
    widget.onClassify()
    job = widget._job
    assert job is not None
    assert dialogs[-1].slots["canceled()"] == job.cancel
    slicer.mrmlScene.Clear(0)  # File > Close Scene
    assert job.cancelled
    job.wait(timeoutSeconds=60)  # runs the panel's completion: must not raise
    assert widget._job is None
    assert dialogs[-1].closed
    assert messages[-1] == "Classification cancelled."


def test_a_missing_package_is_installed_in_the_background_after_a_yes(panel, monkeypatch):
    """pip runs as a background process whose lines reach the dialog (before: it blocked the
    GUI with no progress); then the classification starts."""
    module, widget, dialogs, _messages = panel
    missing = [["pytest>=1"]]  # installed here already: pip is quick and needs no network
    monkeypatch.setattr(module.dependencies, "missingPackages", lambda: missing[-1])
    asked = []
    monkeypatch.setattr(
        module.slicer.util,
        "confirmOkCancelDisplay",
        lambda text, windowTitle=None: asked.append(text) or True,
        raising=False,
    )
    widget.logic.loadSyntheticPatient(widget._parameterNode)
    widget.logic.segmentFromSeeds(widget._parameterNode)
    widget.onClassify()
    install = widget._job
    assert "  pytest>=1: pip" in asked[0]
    assert install is not None
    assert not install.finished  # onClassify returned while pip runs
    assert install.command[1:4] == ["-m", "pip", "install"]
    missing.append([])
    install.wait(timeoutSeconds=120)
    assert install.returnCode == 0, install.log
    assert any("pytest" in line for line in install.log)
    assert dialogs[0].closed
    assert dialogs[0].labelText.strip()  # pip's last line was shown
    classification = widget._job  # started once the install was done
    assert classification is not None
    assert classification is not install
    classification.cancel()
    classification.wait(timeoutSeconds=60)
    assert widget._job is None


def test_an_older_slicer_gets_one_line_instead_of_a_broken_panel(core, monkeypatch):  # noqa: F811
    module, slicer = importModule(core, monkeypatch, version=(5, 6))

    def noUi(path):
        raise AssertionError("the panel must not be built on Slicer 5.6")

    monkeypatch.setattr(slicer.util, "loadUI", noUi)
    widget = module.BoneOligoMetWidget()
    widget.setup()
    (label,) = widget.layout.widgets
    assert label.text == "BoneOligoMet needs Slicer 5.8 or later; this is Slicer 5.6."
    widget.enter()  # the module panel is shown: nothing to connect, no error
    assert "5.8 or later" in module.BoneOligoMet(module.slicer.app).parent.helpText


# --- the installer -------------------------------------------------------------------------------


@pytest.fixture
def dependencies(core, monkeypatch):  # noqa: F811
    module, _slicer = importModule(core, monkeypatch)
    return module.dependencies


def test_constraints_pin_slicers_packages_and_the_installed_torch(dependencies):
    """Before: numpy, scipy, SimpleITK and VTK were pinned, not torch: installing monai could
    replace the PyTorch extension's torch with a PyPI build."""
    from importlib import metadata

    pins = Path(dependencies.writeConstraints()).read_text().split()
    assert f"torch=={metadata.version('torch')}" in pins
    assert f"numpy=={metadata.version('numpy')}" in pins
    assert all(pin.split("==")[0] in dependencies.PROTECTED_PACKAGES for pin in pins)


def test_without_torch_monai_is_not_pip_installed(dependencies, monkeypatch):
    """Without torch (and without the PyTorch extension), pip would bring a PyPI torch with
    monai: monai waits, and the message says why."""
    real = dependencies._installed
    monkeypatch.setattr(dependencies, "_installed", lambda name: name != "torch" and real(name))
    plan = dependencies.installPlan(["torch>=2.2", "pyradiomics>=3.0.1", "skops>=0.10"])
    assert "PyTorch extension" in plan[0]
    assert "SlicerRadiomics" in plan[1]
    assert plan[2].endswith("pip")
    job = dependencies.startInstall(["torch>=2.2", "monai>=1.3", "pytest>=1"])
    assert "monai" not in " ".join(job.command)
    job.wait(timeoutSeconds=120)
    with pytest.raises(RuntimeError, match=r"monai>=1.3 \(needs torch.*PyTorch extension") as err:
        dependencies.finishInstall(job)
    assert "PyTorch extension from the Extensions Manager" in str(err.value)


def test_nothing_is_installed_without_a_yes(panel, monkeypatch):
    module, widget, dialogs, _messages = panel
    monkeypatch.setattr(module.dependencies, "missingPackages", lambda: ["no-such-package-bom"])
    monkeypatch.setattr(
        module.slicer.util,
        "confirmOkCancelDisplay",
        lambda text, windowTitle=None: False,
        raising=False,
    )
    widget.onClassify()
    assert widget._job is None
    assert dialogs == []
