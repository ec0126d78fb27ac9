"""The panel's Qt Designer file, checked without Slicer.

``Resources/UI/BoneOligoMet.ui`` must load (PySide6's QUiLoader builds Slicer's and CTK's classes
as the base class each ``<customwidget>`` declares), hold every widget ``BoneOligoMet.py`` looks
up as ``self.ui.<name>``, and bind each ``SlicerParameterName`` to a parameter-node field through
a widget that Slicer's parameterNodeWrapper can connect to that field's type (the connectors of
``Base/Python/slicer/parameterNodeWrapper/guiConnectors.py``, as in Slicer 5.8).
"""

from __future__ import annotations

import ast
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "BoneOligoMet.py"
UI = ROOT / "Resources" / "UI" / "BoneOligoMet.ui"
PARAMETER_NODE = "BoneOligoMetParameterNode"
# Fields shown by code rather than bound to a widget (tables go to qMRMLTableView, the overlay
# to the slice views).
UNBOUND = {"lesionClinicalTable", "ruleTable", "resultsTable", "probabilityVolume"}
# parameterNodeWrapper's connectors (Slicer 5.8): value type -> widget classes.
CONNECTABLE = {
    "bool": {"QCheckBox", "ctkCheckBox"},
    "int": {"QSpinBox", "QSlider"},
    "float": {"QDoubleSpinBox", "ctkSliderWidget", "qMRMLSliderWidget", "ctkDoubleSpinBox"},
    "choice": {"QComboBox", "ctkComboBox"},
    "str": {"QLineEdit", "QLabel", "QTextEdit"},
    "node": {"qMRMLNodeComboBox"},
}


def _ui() -> ET.Element:
    return ET.parse(UI).getroot()


def _widgets() -> dict[str, ET.Element]:
    return {w.get("name"): w for w in _ui().iter("widget")}


def _ui_names_used() -> set[str]:
    return set(re.findall(r"self\.ui\.(\w+)", MODULE.read_text(encoding="utf-8")))


def _fields() -> dict[str, str]:
    """Parameter-node field -> "bool" / "int" / "float" / "choice" / "str" / "node:<class>"."""
    tree = ast.parse(MODULE.read_text(encoding="utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == PARAMETER_NODE)
    fields = {}
    for item in cls.body:
        if not isinstance(item, ast.AnnAssign):
            continue
        text = ast.unparse(item.annotation)
        base = re.sub(r"^Annotated\[(\w+),.*$", r"\1", text)
        if "Choice(" in text:
            fields[item.target.id] = "choice"
        elif base.startswith("vtkMRML"):
            fields[item.target.id] = f"node:{base}"
        else:
            fields[item.target.id] = base
    return fields


def _property(widget: ET.Element, name: str):
    for prop in widget.findall("property"):
        if prop.get("name") == name:
            return prop
    return None


def test_ui_is_a_slicer_module_panel():
    ui = _ui()
    top = ui.find("widget")
    assert top.get("class") == "qMRMLWidget"
    assert top.get("name") == "BoneOligoMet"
    names = [w.get("name") for w in ui.iter("widget")]
    assert len(names) == len(set(names)), "widget names must be unique"


def test_every_widget_the_module_uses_is_in_the_ui():
    used = _ui_names_used()
    assert len(used) > 15
    missing = used - set(_widgets())
    assert not missing, f"BoneOligoMet.py uses widgets the .ui lacks: {sorted(missing)}"


def test_parameter_names_bind_to_fields_with_a_fitting_widget():
    fields = _fields()
    bound = {}
    for name, widget in _widgets().items():
        prop = _property(widget, "SlicerParameterName")
        if prop is None:
            continue
        assert prop.get("stdset") == "0", f"{name}: SlicerParameterName must be a dynamic property"
        parameter = prop.findtext("string")
        assert parameter in fields, f"{name} binds to unknown parameter {parameter!r}"
        assert parameter not in bound, f"{parameter} is bound twice: {bound.get(parameter)}, {name}"
        bound[parameter] = name
        kind = fields[parameter]
        cls = widget.get("class")
        if kind.startswith("node:"):
            assert cls in CONNECTABLE["node"], f"{name}: {cls} cannot show a node"
            types = [s.text for s in _property(widget, "nodeTypes").iter("string")]
            assert types == [kind[5:]], f"{name}: nodeTypes {types}, parameter {kind[5:]}"
        else:
            assert cls in CONNECTABLE[kind], f"{name}: {cls} cannot hold a {kind} parameter"
    assert set(fields) - set(bound) == UNBOUND


def test_custom_widgets_are_declared_and_get_the_scene():
    ui = _ui()
    declared = {c.findtext("class"): c.findtext("extends") for c in ui.iter("customwidget")}
    used = {w.get("class") for w in ui.iter("widget")}
    custom = {cls for cls in used if not cls.startswith("Q")}
    assert custom <= set(declared), f"undeclared custom widgets: {custom - set(declared)}"
    for cls, base in declared.items():
        assert base.startswith("Q") or base in declared, f"{cls} extends unknown {base}"
    receivers = {
        c.findtext("receiver")
        for c in ui.iter("connection")
        if c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"
        and c.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"
        and c.findtext("sender") == "BoneOligoMet"
    }
    mrml = {
        w.get("name")
        for w in ui.iter("widget")
        if w.get("class").startswith(("qMRML", "qSlicer")) and w.get("name") != "BoneOligoMet"
    }
    assert mrml == receivers, f"MRML widgets without the scene: {mrml - receivers}"


@pytest.fixture(scope="module")
def loaded_ui():
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    pytest.importorskip("PySide6.QtUiTools", reason="PySide6 checks the .ui")
    from PySide6.QtUiTools import QUiLoader
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    loader = QUiLoader()
    widget = loader.load(str(UI))
    assert widget is not None, loader.errorString()
    yield widget
    widget.deleteLater()
    app.processEvents()


def test_ui_loads_with_quiloader_and_has_every_widget(loaded_ui):
    from PySide6.QtWidgets import QTableView, QWidget

    for name in _ui_names_used():
        assert loaded_ui.findChild(QWidget, name) is not None, f"{name} not built by QUiLoader"
    # Slicer's classes come up as their declared bases, so Qt's own properties were applied.
    assert isinstance(loaded_ui.findChild(QWidget, "resultsTableView"), QTableView)
    assert loaded_ui.findChild(QWidget, "classifyButton").text() == "Classify lesions"
    bound = [
        w.property("SlicerParameterName")
        for w in loaded_ui.findChildren(QWidget)
        if w.property("SlicerParameterName")
    ]
    assert set(bound) == set(_fields()) - UNBOUND


def test_no_custom_styling():
    """Extensions Index review: the panel follows Slicer's look (no style sheets, no colours)."""
    styled = [w.get("name") for w in _widgets().values() if _property(w, "styleSheet") is not None]
    assert not styled, f"style sheets on {styled}"
