"""The module's Logic run end to end outside Slicer, on a small in-memory stand-in for MRML.

Slicer cannot run here, so ``BoneOligoMetTest`` (the real self-test) runs only in Slicer. This
file runs the same steps through ``BoneOligoMetLogic`` with fakes of the few Slicer objects it
touches: volume nodes (voxel array + IJK-to-RAS matrix), point lists, a segmentation (one mask per
segment on the CT grid), table nodes, the Segmentations module's export/import, ``slicer.util``'s
array helpers and ``launchConsoleProcess`` (a real subprocess). What it proves is that the Logic
hands the library the right arguments and turns its answers into the right nodes, tables and
files; that the fakes behave like Slicer is what the Slicer API check and the self-test are for.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


class _Recorder:
    """Any method call is accepted and remembered (display nodes, legends, colour functions)."""

    def __init__(self, **values: Any) -> None:
        self.__dict__["calls"] = []
        self.__dict__.update(values)

    def __getattr__(self, name: str):
        def record(*args):
            self.calls.append((name, args))
            if name.startswith("Get"):
                return self.__dict__.get(name[3:])
            if name.startswith("Set") and len(args) == 1:
                self.__dict__[name.removeprefix("SetAndObserve").removeprefix("Set")] = args[0]
            return None

        return record


class _Array:
    """vtkStringArray / vtkIntArray / vtkDoubleArray."""

    def __init__(self) -> None:
        self.values: list = []
        self.name = ""

    def SetName(self, name):
        self.name = name

    def InsertNextValue(self, value):
        self.values.append(value)

    def GetValue(self, index):
        return self.values[index]

    def GetNumberOfValues(self):
        return len(self.values)


class _Matrix:
    def __init__(self, array=None) -> None:
        self.array = np.eye(4) if array is None else np.array(array, float)


class _Node:
    _count = 0

    def __init__(self, cls: str, name: str = "") -> None:
        _Node._count += 1
        self.cls, self.name, self.id = cls, name, f"{cls}{_Node._count}"
        self.attributes: dict[str, str] = {}
        self.display = None

    def GetID(self):
        return self.id

    def GetName(self):
        return self.name

    def IsA(self, cls):
        return self.cls == cls

    def SetAttribute(self, key, value):
        self.attributes[key] = value

    def GetAttribute(self, key):
        return self.attributes.get(key)

    def CreateDefaultDisplayNodes(self):
        self.display = self.display or _Recorder()

    def GetDisplayNode(self):
        return self.display

    def Modified(self):
        pass


class _Volume(_Node):
    def __init__(self, cls, name="", array=None, ijk_to_ras=None):
        super().__init__(cls, name)
        self.array = array
        self.ijk_to_ras = np.eye(4) if ijk_to_ras is None else np.array(ijk_to_ras, float)

    def GetIJKToRASMatrix(self, matrix):
        matrix.array = self.ijk_to_ras.copy()

    def SetIJKToRASMatrix(self, matrix):
        self.ijk_to_ras = matrix.array.copy()


class _Points(_Node):
    def __init__(self, cls, name=""):
        super().__init__(cls, name)
        self.points: list[tuple[np.ndarray, str]] = []

    def AddControlPoint(self, x, y, z, label=""):
        self.points.append((np.array([x, y, z], float), label))

    def GetNumberOfControlPoints(self):
        return len(self.points)

    def GetNthControlPointLabel(self, index):
        return self.points[index][1]


class _Segment:
    def __init__(self, name):
        self.name, self.tags, self.mask = name, {}, None

    def GetName(self):
        return self.name

    def SetTag(self, key, value):
        self.tags[key] = value

    def HasTag(self, key):
        return key in self.tags


class _Segments:
    def __init__(self):
        self.segments: dict[str, _Segment] = {}
        self.made = 0

    def GetNumberOfSegments(self):
        return len(self.segments)

    def GetNthSegmentID(self, index):
        return list(self.segments)[index]

    def GetSegment(self, segment_id):
        return self.segments.get(segment_id)

    def RemoveSegment(self, segment_id):
        del self.segments[segment_id]

    def AddEmptySegment(self, segment_id="", name=""):
        self.made += 1
        segment_id = segment_id or f"Segment_{self.made}"
        self.segments[segment_id] = _Segment(name or segment_id)
        return segment_id

    def GetSegmentIDs(self, array):
        for segment_id in self.segments:
            array.InsertNextValue(segment_id)

    def GetSegmentIdBySegmentName(self, name):
        return next((i for i, s in self.segments.items() if s.name == name), "")


class _Segmentation(_Node):
    def __init__(self, cls, name=""):
        super().__init__(cls, name)
        self.segmentation = _Segments()
        self.reference = None

    def GetSegmentation(self):
        return self.segmentation

    def SetReferenceImageGeometryParameterFromVolumeNode(self, volume):
        self.reference = volume

    def GetSegmentCenterRAS(self, segment_id):
        mask = self.segmentation.segments[segment_id].mask
        if mask is None or not mask.any():
            return None
        kji = np.argwhere(mask).mean(axis=0)
        return tuple((self.reference.ijk_to_ras @ [*kji[::-1], 1.0])[:3])


class _Table(_Node):
    def __init__(self, cls, name=""):
        super().__init__(cls, name)
        self.columns: list[_Array] = []

    def RemoveAllColumns(self):
        self.columns = []

    def AddColumn(self, array):
        self.columns.append(array)

    def GetNumberOfColumns(self):
        return len(self.columns)

    def GetNumberOfRows(self):
        return len(self.columns[0].values) if self.columns else 0

    def GetColumnName(self, index):
        return self.columns[index].name

    def GetCellText(self, row, column):
        value = self.columns[column].values[row]
        return format(value, "g") if isinstance(value, float) else str(value)


class _Scene:
    def __init__(self):
        self.nodes: list[_Node] = []

    def AddNewNodeByClass(self, cls, name=""):
        kinds = {
            "vtkMRMLScalarVolumeNode": _Volume,
            "vtkMRMLLabelMapVolumeNode": _Volume,
            "vtkMRMLMarkupsFiducialNode": _Points,
            "vtkMRMLSegmentationNode": _Segmentation,
            "vtkMRMLTableNode": _Table,
        }
        node = kinds.get(cls, _Node)(cls, name)
        if cls == "vtkMRMLProceduralColorNode":
            transfer = _Recorder()
            node.GetColorTransferFunction = lambda: transfer
        self.nodes.append(node)
        return node

    def RemoveNode(self, node):
        self.nodes.remove(node)

    def GetFirstNodeByName(self, name):
        return next((n for n in self.nodes if n.name == name), None)


def _segmentations_logic(scene: _Scene):
    def export(segmentation, ids, labelmap, reference, mode):
        labels = np.zeros(reference.array.shape, np.uint8)
        for index, segment_id in enumerate(ids.values, 1):
            mask = segmentation.segmentation.segments[segment_id].mask
            if mask is not None:
                labels[mask] = index  # Slicer: segment i -> label i+1, later segments win
        labelmap.array, labelmap.ijk_to_ras = labels, reference.ijk_to_ras.copy()
        return True

    def import_(labelmap, segmentation, ids):
        reference = segmentation.reference
        assert np.allclose(labelmap.ijk_to_ras, reference.ijk_to_ras), "not on the CT grid"
        for index, segment_id in enumerate(ids.values, 1):
            segmentation.segmentation.segments[segment_id].mask = labelmap.array == index
        return True

    return types.SimpleNamespace(
        ExportSegmentsToLabelmapNode=export, ImportLabelmapToSegmentationNode=import_
    )


def _colors_logic():
    def add(volume):
        volume.legend = _Recorder(Visibility=False)
        return volume.legend

    return types.SimpleNamespace(
        GetColorLegendDisplayNode=lambda volume: getattr(volume, "legend", None),
        AddDefaultColorLegendDisplayNode=add,
    )


def _stub_module(name: str, **attributes) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    return module


@pytest.fixture
def fake_slicer(monkeypatch, tmp_path):
    """BoneOligoMet imported against the fakes; yields (module, scene, calls)."""
    scene = _Scene()
    calls: dict[str, list] = {"layers": [], "jumps": [], "pip": []}

    def add_volume(array, ijk_to_ras=None, name=None, node_class=None):
        node = scene.AddNewNodeByClass(node_class or "vtkMRMLScalarVolumeNode", name or "")
        node.array, node.ijk_to_ras = np.array(array), np.array(ijk_to_ras, float)
        return node

    def update_volume(node, array):
        node.array = np.array(array)

    def points(node, world=False):
        return np.array([p for p, _ in node.points], float).reshape(-1, 3)

    def launch(args, updateEnvironment=None):
        return subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True
        )

    util = _stub_module(
        "slicer.util",
        VTKObservationMixin=type("VTKObservationMixin", (), {}),
        arrayFromVolume=lambda node: node.array,
        addVolumeFromArray=add_volume,
        updateVolumeFromArray=update_volume,
        vtkMatrixFromArray=_Matrix,
        arrayFromVTKMatrix=lambda matrix: matrix.array.copy(),
        arrayFromMarkupsControlPoints=points,
        launchConsoleProcess=launch,
        tempDirectory=lambda key="": tempfile.mkdtemp(prefix=key, dir=tmp_path),
        setSliceViewerLayers=lambda **kw: calls["layers"].append(kw),
        getNodesByClass=lambda cls: [],
        pip_install=lambda args: calls["pip"].append(args),
    )

    def wrapper(cls):
        annotations = cls.__annotations__

        def init(self, node=None):
            for field in annotations:
                setattr(self, field, cls.__dict__.get(field))

        return type(cls.__name__, (), {"__init__": init, "__annotations__": annotations})

    class Logic:
        def __init__(self, parent=None):
            self._node = None

        def getParameterNode(self):
            return self._node

    slicer = _stub_module(
        "slicer",
        mrmlScene=scene,
        app=types.SimpleNamespace(processEvents=lambda: None, connect=lambda *a: None),
        util=util,
        modules=types.SimpleNamespace(
            segmentations=types.SimpleNamespace(logic=lambda: _segmentations_logic(scene)),
            colors=types.SimpleNamespace(logic=_colors_logic),
        ),
        vtkMRMLColorLogic=types.SimpleNamespace(
            GetPETColorNodeID=lambda kind: "vtkMRMLPETProceduralColorNodePET-Heat"
        ),
        vtkMRMLPETProceduralColorNode=types.SimpleNamespace(PETheat=0),
        vtkSegmentation=types.SimpleNamespace(EXTENT_REFERENCE_GEOMETRY=1),
        vtkMRMLSliceNode=types.SimpleNamespace(
            JumpAllSlices=lambda *args: calls["jumps"].append(args), CenteredJumpSlice=0
        ),
        **{
            name: type(name, (), {})
            for name in (
                "vtkMRMLMarkupsFiducialNode",
                "vtkMRMLScalarVolumeNode",
                "vtkMRMLSegmentationNode",
                "vtkMRMLTableNode",
            )
        },
    )
    modules = {
        "slicer": slicer,
        "slicer.util": util,
        "slicer.i18n": _stub_module("slicer.i18n", tr=lambda text: text),
        "slicer.parameterNodeWrapper": _stub_module(
            "slicer.parameterNodeWrapper",
            parameterNodeWrapper=wrapper,
            Choice=lambda *a: None,
            WithinRange=lambda *a: None,
        ),
        "slicer.ScriptedLoadableModule": _stub_module(
            "slicer.ScriptedLoadableModule",
            ScriptedLoadableModule=type("ScriptedLoadableModule", (), {}),
            ScriptedLoadableModuleWidget=type("ScriptedLoadableModuleWidget", (), {}),
            ScriptedLoadableModuleLogic=Logic,
            ScriptedLoadableModuleTest=type("ScriptedLoadableModuleTest", (), {}),
        ),
        "qt": _stub_module(
            "qt",
            QTimer=lambda: _Recorder(),
            Qt=types.SimpleNamespace(WindowModal=1),
        ),
        "vtk": _stub_module(
            "vtk",
            vtkMatrix4x4=_Matrix,
            vtkStringArray=_Array,
            vtkIntArray=_Array,
            vtkDoubleArray=_Array,
            vtkCommand=types.SimpleNamespace(ModifiedEvent=33),
        ),
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.syspath_prepend(str(ROOT))
    # The module and its helpers hold `slicer`: import them afresh against this test's fakes.
    ours = ("BoneOligoMet", "BoneOligoMetSlicer")
    for name in [name for name in sys.modules if name.split(".")[0] in ours]:
        monkeypatch.delitem(sys.modules, name)
    module = importlib.import_module("BoneOligoMet")
    yield module, scene, calls
    for name in [name for name in sys.modules if name.split(".")[0] in ours]:
        sys.modules.pop(name)


@pytest.fixture
def loaded(fake_slicer):
    module, _scene, calls = fake_slicer
    logic = module.BoneOligoMetLogic()
    node = module.BoneOligoMetParameterNode()
    logic.loadSyntheticPatient(node)
    return module, logic, node, calls


def test_synthetic_patient_becomes_ct_suv_points_and_clinical_values(loaded):
    module, _logic, node, calls = loaded
    assert node.ctVolume.array.dtype == np.int16
    assert node.petVolume.array.dtype == np.float32
    assert node.seedPoints.GetNumberOfControlPoints() == len(module.SAMPLE_LESIONS)
    assert node.liverPoint.GetNumberOfControlPoints() == 1
    assert node.subtype in module.SUBTYPES
    assert node.age > 0
    clinical = module.mrml.readTable(node.lesionClinicalTable)
    assert [row["segment"] for row in clinical] == ["Lesion 1", "Lesion 2", "Lesion 3"]
    assert all(row["site"] for row in clinical)
    layers = calls["layers"][-1]
    assert (layers["background"], layers["foreground"]) == (node.ctVolume, node.petVolume)
    assert node.petVolume.display.ColorNodeID == "vtkMRMLPETProceduralColorNodePET-Heat"


def test_ct_round_trips_through_the_library_grid(loaded):
    module, logic, node, _ = loaded
    from BoneOligoMetLib.phantom import generate_patient

    patient = generate_patient(
        module.SAMPLE_SEED, "small", lesion_types=list(module.SAMPLE_LESIONS)
    )
    image = logic.imageFromVolumeNode(node.ctVolume)
    assert image.GetSize() == patient.ct.GetSize()
    np.testing.assert_allclose(image.GetOrigin(), patient.ct.GetOrigin(), atol=1e-9)
    np.testing.assert_allclose(image.GetDirection(), patient.ct.GetDirection(), atol=1e-12)


def test_seeds_rules_parts_and_jump(loaded):
    module, logic, node, calls = loaded
    problems = logic.segmentFromSeeds(node)
    segments = node.segmentation.GetSegmentation()
    assert problems == []
    assert [segments.GetSegment(segments.GetNthSegmentID(i)).GetName() for i in range(3)] == [
        "Lesion 1",
        "Lesion 2",
        "Lesion 3",
    ]
    first = [segments.GetSegment(segments.GetNthSegmentID(i)).mask.sum() for i in range(3)]
    assert all(count > 0 for count in first)
    logic.segmentFromSeeds(node)  # again: replaces the seed-grown segments
    assert segments.GetNumberOfSegments() == 3

    report = logic.checkRules(node)
    rows = module.mrml.readTable(node.ruleTable)
    assert len(rows) == len(report.checks)
    assert rows[0]["segment"] == module.PATIENT_ROW
    assert {row["segment"] for row in rows[1:]} == {"Lesion 1", "Lesion 2", "Lesion 3"}
    before = logic.lesionImage(node)[0]
    logic.includeParts(node, "Lesion 1")
    logic.includeParts(node, module.PATIENT_ROW)  # the patient row means every lesion
    after = logic.lesionImage(node)[0]
    old, new = module._arrayOf(before), module._arrayOf(after)
    assert np.all(new[old != 0] == old[old != 0])
    assert logic.jumpToLesion(node, "Lesion 2")
    assert calls["jumps"][-1][-1] == 0  # centred
    assert not logic.jumpToLesion(node, "no such lesion")

    values = logic.clinicalValues(node)
    assert set(values["site"]) == {1, 2, 3}
    assert values["subtype"] == node.subtype


def test_a_new_lesion_gets_its_bone_change_from_the_ct(loaded):
    module, logic, node, _ = loaded
    logic.segmentFromSeeds(node)
    node.lesionClinicalTable.RemoveAllColumns()  # forget the sample's values
    logic.updateLesionClinicalTable(node)
    rows = module.mrml.readTable(node.lesionClinicalTable)
    assert {row["bone_change"] for row in rows} <= {"osteolytic", "mixed", "osteogenic"}
    assert all(row["site"] == "" for row in rows)


def test_results_table_overlay_and_legend(loaded):
    module, logic, node, _ = loaded
    from BoneOligoMetLib.classify import probability_overlay

    logic.segmentFromSeeds(node)
    lesions, segment_ids = logic.lesionImage(node)
    ct = logic.imageFromVolumeNode(node.ctVolume)
    overlay = probability_overlay(lesions, ct, {1: 0.9, 2: 0.2, 3: 0.6})
    rule = {"rule_holes": "pass", "rule_outside_bone": "warn"}
    summary = {
        "rows": [
            {"lesion_label": label, "probability": p, "malignant": p >= 0.5, "met_suv_max": 4.0}
            | {"verdict": "malignant" if p >= 0.5 else "benign"}
            | rule
            for label, p in ((1, 0.9), (2, 0.2), (3, 0.6))
        ],
        "threshold": 0.5,
        "device": "cpu",
        "synthetic": True,
        "warning": "synthetic demo model — not for clinical use",
        "bundle_name": "demo",
    }
    logic._showClassification(node, summary, overlay, segment_ids)
    rows = module.mrml.readTable(node.resultsTable)
    assert [row["segment"] for row in rows] == ["Lesion 1", "Lesion 2", "Lesion 3"]
    assert [row["label"] for row in rows] == ["malignant", "benign", "malignant"]
    assert list(rows[0])[:4] == list(module.RESULT_COLUMNS)
    assert rows[0]["rule_outside_bone"] == "warn"
    assert "not for clinical use" in node.modelStatus
    assert node.deviceStatus == "Ran on cpu"
    volume = node.probabilityVolume
    assert volume.array.max() == pytest.approx(0.9)
    assert volume.display.ColorNodeID == module.display.probabilityColorNode().GetID()
    assert volume.legend.Visibility is True
    assert volume.legend.TitleText == "Malignancy probability"


def test_a_failing_classification_names_its_reason(loaded, tmp_path):
    _module, logic, node, _ = loaded
    logic.segmentFromSeeds(node)
    node.modelFolder = str(tmp_path / "no-bundle-here")
    job = logic.startClassification(node)
    job.wait(timeoutSeconds=120)
    with pytest.raises(RuntimeError, match=r"no-bundle-here|classifier"):
        logic.finishClassification(node, job)
    assert node.deviceStatus == "Failed."
    assert not Path(job.folder).exists()  # the job folder is cleaned up


def test_export_writes_the_ct_grid_labels_and_tables(loaded, tmp_path):
    module, logic, node, _ = loaded
    from BoneOligoMetLib.image_io import read_image

    logic.segmentFromSeeds(node)
    logic.checkRules(node)
    node.exportFolder = str(tmp_path / "out")
    node.exportPerLesion = True
    written = logic.exportCase(node)
    names = sorted(Path(path).name for path in written)
    assert names == [
        "clinical.csv",
        "ct.nii.gz",
        "lesion_01.nii.gz",
        "lesion_02.nii.gz",
        "lesion_03.nii.gz",
        "lesions.nii.gz",
        "rules.csv",
        "suv.nii.gz",
    ]
    ct = logic.imageFromVolumeNode(node.ctVolume)
    lesions = read_image(tmp_path / "out" / "lesions.nii.gz")
    assert lesions.GetSize() == ct.GetSize()
    np.testing.assert_allclose(lesions.GetOrigin(), ct.GetOrigin(), atol=1e-4)
    assert set(np.unique(module._arrayOf(lesions)).tolist()) == {0, 1, 2, 3}
    single = read_image(tmp_path / "out" / "lesion_02.nii.gz")
    assert set(np.unique(module._arrayOf(single)).tolist()) == {0, 1}
    header = (tmp_path / "out" / "rules.csv").read_text().splitlines()[0]
    assert header == ",".join(module.RULE_COLUMNS)


def test_dependency_plan_and_install_keep_slicer_packages(fake_slicer, monkeypatch):
    module, _, calls = fake_slicer
    plan = module.dependencies.installPlan(["torch>=2.2", "pyradiomics>=3.0.1", "skops>=0.10"])
    assert "PyTorch extension" in plan[0]
    assert "SlicerRadiomics" in plan[1]
    assert plan[2].endswith("pip")
    with pytest.raises(RuntimeError, match="SlicerRadiomics") as error:
        module.dependencies.installPackages(["pyradiomics>=3.0.1", "torch>=2.2", "skops>=0.10"])
    assert "PyTorch extension" in str(error.value)  # no PyTorchUtils here: named, not pip'ed
    (arguments,) = calls["pip"]
    assert arguments[0] == "skops>=0.10"
    assert arguments[1] == "-c"
    pins = Path(arguments[2]).read_text().split()
    assert any(pin.startswith("numpy==") for pin in pins)
    assert any(pin.startswith("SimpleITK==") for pin in pins)
    assert all(p.split("==")[0] in module.dependencies.PROTECTED_PACKAGES for p in pins)


def test_installing_asks_first_and_never_without_a_yes(fake_slicer, monkeypatch, tmp_path):
    """The panel's question before classifying (BoneOligoMetSlicer.dependencies)."""
    module, _, calls = fake_slicer
    asked = []

    def confirm(text, windowTitle=None):
        asked.append(text)
        return False  # the user says no

    monkeypatch.setattr(
        sys.modules["slicer"].util, "confirmOkCancelDisplay", confirm, raising=False
    )
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("pytest>=1  # installed here\n")
    assert module.dependencies.confirmAndInstall(str(requirements))
    assert asked == []  # nothing missing, nothing asked
    requirements.write_text("pytest>=1\nno-such-package-bom>=1.0\n")
    assert not module.dependencies.confirmAndInstall(str(requirements))
    assert "  no-such-package-bom>=1.0: pip" in asked[0]
    assert "pytest" not in asked[0]
    assert calls["pip"] == []


@pytest.mark.large
def test_classification_through_the_background_worker(loaded):
    """The panel's route with the packaged demo model: job folder, worker, results, overlay."""
    module, logic, node, _ = loaded
    from BoneOligoMetLib.classify import default_bundle_path

    if not (default_bundle_path() / "manifest.json").is_file():
        pytest.skip("the packaged demo bundle is not built yet")
    logic.segmentFromSeeds(node)
    progress = []
    job = logic.startClassification(node, lambda f, m: progress.append(f))
    job.wait(timeoutSeconds=900)
    summary = logic.finishClassification(node, job)
    assert summary is not None, job.errorMessage
    assert progress
    assert progress[-1] == 1.0
    rows = module.mrml.readTable(node.resultsTable)
    assert [row["segment"] for row in rows] == ["Lesion 1", "Lesion 2", "Lesion 3"]
    assert all(0.0 <= float(row["probability"]) <= 1.0 for row in rows)
    assert summary["synthetic"] is True
    assert "not for clinical use" in node.modelStatus
    assert node.deviceStatus.startswith("Ran on ")
    assert node.probabilityVolume.array.shape == node.ctVolume.array.shape
