"""Check that every Slicer API the module's Python files and .ui use exists in Slicer's source.

Slicer cannot run in CI, so a renamed or removed Slicer function would only show in a user's
Slicer. This script reads the module (``BoneOligoMet.py`` and its helper package
``BoneOligoMetSlicer/``) and the .ui with ``ast`` / XML and looks every name up in a Slicer
source checkout (and CTK's, for ctk widgets):

- ``slicer.util.f(...)``, ``slicer.packaging...``, ``from slicer.X import name``: a Python
  definition in ``Base/Python/slicer``; keyword arguments against the function's parameters;
- ``slicer.vtkMRML*`` / ``slicer.q*`` classes and their members, node classes named in strings
  (``AddNewNodeByClass``, ``nodeTypes``), ``slicer.modules.<name>`` and its logic's methods;
- every capitalised (VTK-style) method call: declared in some Slicer header, or in the short list
  of VTK names below (VTK itself is not in Slicer's tree);
- ``self.ui.<widget>.<member>`` and ``.connect("signal(...)")``: the widget's class (from the .ui)
  or a base class declares it; Qt's own members are listed below;
- ``self.<name>`` in the Module/Widget/Logic/Test classes: defined here or in Slicer's base
  classes (``ScriptedLoadableModule.py``, ``VTKObservationMixin``, ``unittest.TestCase``);
- the .ui: custom widget classes and their Designer plugins (what ``slicer.util.loadUI`` needs
  to build them), their properties (``Q_PROPERTY``), enum values and the
  ``mrmlSceneChanged`` -> ``setMRMLScene`` connections;
- Sample Data's ``registerCustomSampleDataSource`` and the source attributes used.

Usage::

    python Testing/check_slicer_api.py SLICER_SOURCE_DIR [--ctk CTK_SOURCE_DIR]

Exit status 0 when every name was found, 1 otherwise (the missing ones are listed). pytest runs
it when ``SLICER_SOURCE_DIR`` (and optionally ``CTK_SOURCE_DIR``) is set.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
import unittest
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "BoneOligoMet.py"
# The module's helpers (background job, dependency installer): checked the same way.
HELPERS = tuple(sorted((ROOT / "BoneOligoMetSlicer").glob("*.py")))
UI = ROOT / "Resources" / "UI" / "BoneOligoMet.ui"

# VTK names the module calls (VTK's source is not part of Slicer's tree).
VTK_NAMES = {
    "vtkMatrix4x4", "vtkStringArray", "vtkIntArray", "vtkDoubleArray", "vtkCommand",
    "ModifiedEvent", "InsertNextValue", "GetValue", "GetNumberOfValues", "SetName",
    "RemoveAllPoints", "AddRGBPoint", "Modified", "IsA", "Multiply4x4", "AddObserver",
    "RemoveObserver", "IsNumeric", "ToDouble",
}  # fmt: skip
# Qt members used on Qt-derived widgets and objects (Qt is not in Slicer's tree either).
QT_NAMES = {
    "connect", "enabled", "toolTip", "currentIndex", "model", "index", "data", "isValid", "row",
    "value", "labelText", "close", "setInterval", "start", "stop", "clicked", "canceled",
    "timeout", "getExistingDirectory", "WindowModal", "QFileDialog", "QTimer", "Qt",
    "autoClose", "autoReset", "windowModality", "processEvents",
}  # fmt: skip
# SimpleITK image methods the self-test calls (SimpleITK is not Slicer's either).
SIMPLEITK_NAMES = {"TransformIndexToPhysicalPoint"}
# Objects of other extensions the module uses when they are installed (checked by hand).
EXTERNAL = {"PyTorchUtils": "PyTorch extension (SlicerPyTorch: PyTorchUtilsLogic.installTorch)"}
# Python-level objects whose members are checked against a Python file of Slicer.
SCRIPTED_BASES = ("ScriptedLoadableModule", "ScriptedLoadableModuleWidget")


@dataclass
class Report:
    found: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def check(self, ok: bool, what: str) -> None:
        (self.found if ok else self.missing).append(what)


class Headers:
    """C++ classes of Slicer (and CTK): header by class name, members along the base classes."""

    MACRO = re.compile(r"vtk(Set|Get)\w*Macro\s*\(\s*(\w+)")
    BOOL_MACRO = re.compile(r"vtkBooleanMacro\s*\(\s*(\w+)")
    CALLABLE = re.compile(r"\b(\w+)\s*\(")
    PROPERTY = re.compile(r"Q_PROPERTY\s*\(\s*[\w:<>*, ]+?\s+(\w+)\s+READ")
    ENUM = re.compile(r"enum\s*(?:class\s+)?\w*\s*(?::\s*\w+\s*)?\{([^}]*)\}", re.S)

    def __init__(self, roots: list[Path]) -> None:
        self.paths: dict[str, Path] = {}
        for root in roots:
            for path in root.rglob("*.h"):
                self.paths.setdefault(path.stem, path)
        self._members: dict[str, set[str]] = {}
        self._all: set[str] | None = None

    def text(self, cls: str) -> str:
        return self.paths[cls].read_text(errors="replace") if cls in self.paths else ""

    def bases(self, cls: str) -> list[str]:
        match = re.search(rf"class\s+(?:\w+_EXPORT\s+)?{cls}\s*:\s*public\s+(\w+)", self.text(cls))
        return [match.group(1)] if match else []

    def chain(self, cls: str) -> list[str]:
        chain = [cls]
        while chain[-1] in self.paths and len(chain) < 20:
            bases = self.bases(chain[-1])
            if not bases:
                break
            chain.append(bases[0])
        return chain

    @classmethod
    def declared(cls, text: str) -> set[str]:
        names = set(cls.CALLABLE.findall(text)) | set(cls.PROPERTY.findall(text))
        for kind, name in cls.MACRO.findall(text):
            names.add(kind + name)
        for name in cls.BOOL_MACRO.findall(text):
            names.update((name + "On", name + "Off"))
        for body in cls.ENUM.findall(text):
            names.update(re.findall(r"^\s*(\w+)", body, re.M))
            names.update(re.findall(r",\s*(\w+)", body))
        return names

    def members(self, cls: str) -> set[str]:
        if cls not in self._members:
            names: set[str] = set()
            for name in self.chain(cls):
                names |= self.declared(self.text(name))
            self._members[cls] = names
        return self._members[cls]

    def anywhere(self, name: str) -> bool:
        if self._all is None:
            self._all = set()
            for path in self.paths.values():
                self._all |= self.declared(path.read_text(errors="replace"))
        return name in self._all


class PythonSource:
    """Definitions of Slicer's Python files: top-level names, class members, function params."""

    def __init__(self, path: Path) -> None:
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.exists() else []
        self.names: set[str] = set()
        self.params: dict[str, tuple[set[str], bool]] = {}
        self.classes: dict[str, set[str]] = {}
        for file in files:
            tree = ast.parse(file.read_text(encoding="utf-8", errors="replace"))
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    self.names.add(node.name)
                    args = node.args
                    names = {a.arg for a in args.args + args.kwonlyargs + args.posonlyargs}
                    self.params.setdefault(node.name, (names, args.kwarg is not None))
                elif isinstance(node, ast.ClassDef):
                    self.names.add(node.name)
                    self.classes[node.name] = _class_members(node)
                elif isinstance(node, ast.Assign):
                    self.names.update(_targets(node))

    def accepts(self, function: str, keywords: list[str]) -> list[str]:
        names, anything = self.params.get(function, (set(), True))
        return [] if anything else [k for k in keywords if k not in names]


def _targets(node: ast.Assign) -> set[str]:
    names = set()
    for target in node.targets:
        if isinstance(target, ast.Name):
            names.add(target.id)
        elif isinstance(target, ast.Attribute):
            names.add(target.attr)
    return names


def _class_members(node: ast.ClassDef) -> set[str]:
    members = set()
    for item in ast.walk(node):
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
            members.add(item.name)
        elif isinstance(item, ast.Assign):
            members.update(_targets(item))
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            members.add(item.target.id)
    return members


def _chain(node: ast.AST) -> list[str]:
    """``a.b.c`` -> ["a", "b", "c"]; [] when the expression does not start at a name."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id, *reversed(parts)]
    return []


def _ui_widgets(ui: ET.Element) -> dict[str, str]:
    return {w.get("name"): w.get("class") for w in ui.iter("widget")}


def check(
    slicer: Path,
    ctk: Path | None = None,
    module: Path = MODULE,
    ui: Path = UI,
    helpers: tuple[Path, ...] = HELPERS,
) -> Report:
    """Every Slicer name ``module``, its ``helpers`` and its .ui use; ctk widgets only when
    ``ctk`` is given."""
    report = Report()
    headers = Headers([slicer] + ([ctk] if ctk else []))
    python = slicer / "Base" / "Python" / "slicer"
    util = PythonSource(python / "util.py")
    scripted = PythonSource(python / "ScriptedLoadableModule.py")
    wrapper = PythonSource(python / "parameterNodeWrapper")
    sample_data = PythonSource(slicer / "Modules" / "Scripted" / "SampleData" / "SampleData.py")
    segment_editor = PythonSource(slicer / "Modules" / "Scripted" / "SegmentEditor")
    modules = {p.name.lower(): p for p in (slicer / "Modules").glob("*/*") if p.is_dir()}
    ui = ET.parse(ui).getroot()
    widgets = _ui_widgets(ui)
    for source in (module, *helpers):  # each file on its own: its imports, its classes
        tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
        python_modules = {  # standard-library modules imported by name (csv, queue, ...)
            (alias.asname or alias.name).split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {"metadata"}
        python_modules |= {  # the module's helpers (mrml, display, ...): checked on their own
            alias.asname or alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module == "BoneOligoMetSlicer"
            for alias in node.names
        }

        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "slicer":
                for alias in node.names:
                    if node.module == "slicer":
                        ok = alias.name in headers.paths or alias.name in util.names
                    else:
                        path = python.joinpath(*node.module.split(".")[1:])
                        path = path if path.is_dir() else path.with_suffix(".py")
                        ok = path.exists() and alias.name in PythonSource(path).names
                    report.check(ok, f"from {node.module} import {alias.name}")

        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                _check_call(node, report, headers, util, sample_data, widgets)
            if not isinstance(node, ast.Attribute):
                continue
            chain = _chain(node)
            if len(chain) < 2 or isinstance(getattr(node, "ctx", None), ast.Store):
                continue
            head = chain[0]
            if head == "slicer":
                _check_slicer_chain(chain, report, headers, util, python, modules, sample_data)
            elif head == "vtk":
                report.check(chain[1] in VTK_NAMES, "vtk." + chain[1] + " (VTK)")
            elif head == "SampleData":
                members = sample_data.classes.get(chain[1], set())
                ok = chain[1] in sample_data.names and (len(chain) < 3 or chain[2] in members)
                report.check(ok, ".".join(chain[:3]))
            elif head == "self" and chain[1] == "ui" and len(chain) >= 3:
                cls = widgets.get(chain[2])
                report.check(cls is not None, f"self.ui.{chain[2]} in the .ui")
                if cls and len(chain) >= 4:
                    _check_widget_member(cls, chain[3], report, headers)
            elif node.attr[:1].isupper() and head not in {"self", *EXTERNAL, *python_modules}:
                ok = headers.anywhere(node.attr) or node.attr in VTK_NAMES | SIMPLEITK_NAMES
                report.check(ok, f"{'.'.join(chain[1:]) or node.attr} (a Slicer or VTK method)")
            elif head in EXTERNAL:
                report.found.append(f"{'.'.join(chain)}: {EXTERNAL[head]}")
        _check_editor(tree, report, headers, segment_editor)
        _check_self_members(tree, report, scripted, util, wrapper)
    _check_ui(ui, report, headers, with_ctk=ctk is not None)
    return report


def _check_call(node, report, headers, util, sample_data, widgets) -> None:
    chain = _chain(node.func)
    keywords = [k.arg for k in node.keywords if k.arg]
    if chain[:2] == ["slicer", "util"] and len(chain) == 3:
        bad = util.accepts(chain[2], keywords)
        report.check(not bad, f"slicer.util.{chain[2]} keywords {keywords}")
    if chain[-1:] == ["registerCustomSampleDataSource"]:
        bad = sample_data.accepts("registerCustomSampleDataSource", keywords)
        report.check(not bad, f"registerCustomSampleDataSource keywords {sorted(keywords)}")
    literal = [a.value for a in node.args if isinstance(a, ast.Constant)]
    if chain[-1:] in (["AddNewNodeByClass"], ["getNodesByClass"], ["GetFirstNodeByClass"]):
        for text in literal[:1]:
            report.check(text in headers.paths, f"node class {text}")
    if chain[-1:] == ["SetAndObserveColorNodeID"] and literal:
        name = literal[0]
        kind = name.removeprefix("vtkMRMLColorTableNode")
        text = headers.paths.get("vtkMRMLColorTableNode")
        source = text.with_suffix(".cxx").read_text(errors="replace") if text else ""
        report.check(f'"{kind}"' in source, f"colour node ID {name}")
    if chain[-1:] == ["connect"] and literal and "(" in str(literal[0]):
        signal = str(literal[0]).split("(")[0]
        if chain[:2] == ["self", "ui"] and len(chain) == 4:
            cls = widgets.get(chain[2], "")
            ok = signal in headers.members(cls) or signal in QT_NAMES
            report.check(ok, f"signal {cls}.{literal[0]}")
        elif chain[:2] == ["slicer", "app"]:
            ok = signal in headers.members("qSlicerApplication")
            report.check(ok, f"signal qSlicerApplication.{literal[0]}")
        else:
            report.check(signal in QT_NAMES, f"Qt signal {literal[0]}")


def _check_slicer_chain(chain, report, headers, util, python, modules, sample_data) -> None:
    second = chain[1]
    if len(chain) == 2 and second in ("app", "mrmlScene", "util", "modules"):
        report.found.append(f"slicer.{second}")
    elif len(chain) == 2 and not (second[:3] == "vtk" or second[:1] == "q"):
        report.check((python / f"{second}.py").is_file(), f"slicer.{second}")
    elif second == "util":
        report.check(chain[2] in util.names, f"slicer.util.{chain[2]}")
    elif second == "modules":
        if chain[2] == "sampleDataSources":
            ok = "sampleDataSources" in sample_data.names
            report.check(ok, "slicer.modules.sampleDataSources")
        else:
            report.check(chain[2] in modules, f"slicer.modules.{chain[2]}")
    elif second == "app":
        ok = chain[2] in headers.members("qSlicerApplication") or chain[2] in QT_NAMES
        report.check(ok, f"slicer.app.{chain[2]}")
    elif second == "mrmlScene":
        ok = chain[2] in headers.members("vtkMRMLScene")
        report.check(ok, f"slicer.mrmlScene.{chain[2]}")
    elif second[:3] == "vtk" or second[:1] == "q":
        report.check(second in headers.paths, f"slicer.{second}")
        if len(chain) >= 3:
            report.check(chain[2] in headers.members(second), f"slicer.{second}.{chain[2]}")
    elif (python / f"{second}.py").is_file():
        ok = chain[2] in PythonSource(python / f"{second}.py").names if len(chain) > 2 else True
        report.check(ok, f"slicer.{'.'.join(chain[1:3])}")
    else:
        report.check(False, f"slicer.{second}")


def _check_widget_member(cls: str, member: str, report: Report, headers: Headers) -> None:
    if cls.startswith(("q", "ctk")) and cls in headers.paths:
        ok = member in headers.members(cls) or member in QT_NAMES
    else:
        ok = member in QT_NAMES
    report.check(ok, f"{cls}.{member}")


def _check_editor(tree, report, headers, segment_editor) -> None:
    """``slicer.modules.segmenteditor.widgetRepresentation().self().editor.<method>``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "editor":
            report.check("editor" in segment_editor.names, "SegmentEditor widget .editor")
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _chain(node.func)[:1] == ["editor"]:
            method = _chain(node.func)[1]
            ok = method in headers.members("qMRMLSegmentEditorWidget")
            report.check(ok, f"qMRMLSegmentEditorWidget.{method}")
        if isinstance(node, ast.Call) and _chain(node.func)[-1:] == ["widgetRepresentation"]:
            ok = "widgetRepresentation" in headers.members("qSlicerAbstractCoreModule")
            report.check(ok, "qSlicerAbstractCoreModule.widgetRepresentation")


def _check_self_members(tree, report, scripted, util, wrapper) -> None:
    """``self.x`` in our Slicer classes: defined by us or by Slicer's (or unittest's) bases."""
    ours = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    test_case = set(dir(unittest.TestCase))
    for cls in ours.values():
        bases = [b.id for b in cls.bases if isinstance(b, ast.Name)]
        slicer_bases = [b for b in bases if b.startswith("ScriptedLoadable")]
        if not slicer_bases:
            continue
        provided = _class_members(cls)
        for base in slicer_bases:
            provided |= scripted.classes.get(base, set())
        if "VTKObservationMixin" in bases:
            provided |= util.classes.get("VTKObservationMixin", set())
        if "ScriptedLoadableModuleTest" in bases:
            provided |= test_case
        used = {
            node.attr
            for node in ast.walk(cls)
            if isinstance(node, ast.Attribute) and _chain(node)[:1] == ["self"]
            if len(_chain(node)) == 2
        }
        for name in sorted(used):
            report.check(name in provided, f"{cls.name}: self.{name}")
    for name in ("connectGui", "disconnectGui"):  # set on the class by parameterNodeWrapper
        report.check(f"_{name}" in wrapper.names, f"parameter node wrapper .{name}")


def _check_ui(ui: ET.Element, report: Report, headers: Headers, with_ctk: bool) -> None:
    declared = {c.findtext("class"): c.findtext("extends") for c in ui.iter("customwidget")}
    for widget in ui.iter("widget"):
        cls = widget.get("class")
        if not cls.startswith(("q", "ctk")) or (cls.startswith("ctk") and not with_ctk):
            continue
        report.check(cls in headers.paths, f".ui class {cls}")
        # slicer.util.loadUI builds a class through its Qt Designer plugin
        report.check(f"{cls}Plugin" in headers.paths, f".ui designer plugin {cls}Plugin")
        report.check(cls in declared, f".ui <customwidget> {cls}")
        members = headers.members(cls)
        for prop in widget.findall("property"):
            name = prop.get("name")
            if prop.get("stdset") == "0" or name in ("text", "title", "toolTip", "geometry"):
                continue
            report.check(name in members, f".ui property {cls}.{name}")
            enum = prop.findtext("enum")
            if enum and "::" in enum:
                report.check(enum.split("::")[-1] in members, f".ui enum {enum}")
        for types in widget.iter("stringlist"):
            for node_class in types.iter("string"):
                report.check(node_class.text in headers.paths, f".ui nodeTypes {node_class.text}")
    for connection in ui.iter("connection"):
        receiver = _ui_widgets(ui).get(connection.findtext("receiver"), "")
        slot = connection.findtext("slot").split("(")[0]
        signal = connection.findtext("signal").split("(")[0]
        report.check(slot in headers.members(receiver), f".ui slot {receiver}.{slot}")
        report.check(signal in headers.members("qMRMLWidget"), f".ui signal qMRMLWidget.{signal}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("slicer", type=Path, help="Slicer source checkout")
    parser.add_argument("--ctk", type=Path, help="CTK source checkout (checks ctk widgets too)")
    parser.add_argument("-v", "--verbose", action="store_true", help="list what was found too")
    args = parser.parse_args(argv)
    report = check(args.slicer, args.ctk)
    if args.verbose:
        for item in sorted(set(report.found)):
            print(f"ok       {item}")
    for item in sorted(set(report.missing)):
        print(f"MISSING  {item}")
    print(f"{len(set(report.found))} Slicer names found, {len(set(report.missing))} missing")
    return 1 if report.missing else 0


if __name__ == "__main__":
    sys.exit(main())
