"""Static checks of the Slicer module (Slicer itself cannot run here; its self-test runs in Slicer).

The module must stay importable by Slicer's Python and must only call library functions that
exist, so an API change in BoneOligoMetLib cannot silently break the Slicer panel.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULE = ROOT / "BoneOligoMet.py"


def _tree() -> ast.Module:
    return ast.parse(MODULE.read_text(encoding="utf-8"), filename=str(MODULE))


def test_module_defines_slicer_classes():
    names = {node.name for node in _tree().body if isinstance(node, ast.ClassDef)}
    assert {
        "BoneOligoMet",
        "BoneOligoMetWidget",
        "BoneOligoMetLogic",
        "BoneOligoMetTest",
    } <= names


def test_library_names_used_by_the_module_exist():
    imported = [
        (node.module, alias.name)
        for node in ast.walk(_tree())
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("BoneOligoMetLib")
        for alias in node.names
    ]
    assert imported, "the module should call into BoneOligoMetLib"
    for module_name, name in imported:
        module = importlib.import_module(module_name)
        assert hasattr(module, name), f"BoneOligoMet.py imports missing {module_name}.{name}"


def test_module_does_no_numerics_of_its_own():
    """Nothing clinical or numerical in the module: no scipy/SimpleITK filters, no SUV maths."""
    source = MODULE.read_text(encoding="utf-8")
    for forbidden in (
        "import SimpleITK",
        "import scipy",
        "from scipy",
        "RescaleSlope",
        "PatientWeight",
    ):
        assert forbidden not in source


def test_library_never_imports_slicer():
    for path in (ROOT / "BoneOligoMetLib").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top not in {"slicer", "qt", "ctk", "vtk", "mrml"}, f"{path} imports {name}"
