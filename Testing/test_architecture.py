"""The library's structure: its layers point down, nothing imports in a loop, and it runs without
Slicer. Imports inside functions count (an import hidden in a function is still an arrow)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "tools"))
import import_graph


@pytest.fixture(scope="module")
def edges():
    return import_graph.graph()


def test_every_module_sits_in_a_layer(edges):
    for module in edges:
        if module != import_graph.PACKAGE:
            import_graph.layer(module)  # KeyError names a module in no layer


def test_no_import_cycle(edges):
    assert import_graph.cycles(edges) == []


def test_no_layer_imports_a_higher_one(edges):
    assert import_graph.upward(edges) == []


def test_the_checks_see_what_they_guard(tmp_path):
    """A planted cycle and a planted upward import (inside a function) are both found."""
    root = tmp_path / import_graph.PACKAGE
    for folder in ("io", "models"):
        (root / folder).mkdir(parents=True)
        (root / folder / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "io" / "a.py").write_text(
        "def f():\n    from BoneOligoMetLib.models.b import g\n    return g\n"
    )
    (root / "models" / "b.py").write_text("from BoneOligoMetLib.io import a\n\ndef g(): pass\n")
    edges = import_graph.graph(root)
    assert import_graph.cycles(edges) == [["BoneOligoMetLib.io.a", "BoneOligoMetLib.models.b"]]
    assert import_graph.upward(edges) == [("BoneOligoMetLib.io.a", "BoneOligoMetLib.models.b")]


def test_the_library_never_imports_slicer_qt_or_vtk(edges):
    third_party = set()
    for path in import_graph.modules().values():
        for line in path.read_text(encoding="utf-8").splitlines():
            words = line.split()
            if words[:1] in (["import"], ["from"]) and len(words) > 1:
                third_party.add(words[1].split(".")[0])
    assert not third_party & {"slicer", "qt", "ctk", "vtk", "BoneOligoMetSlicer", "mrml"}
