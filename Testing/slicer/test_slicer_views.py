"""What the reader sees, rendered by Slicer's own slice-view code (``slicer_views.SliceView``).

The module's display (CT background, PET heat foreground, segment outlines, the probability
overlay and its legend) drawn offscreen by the slice logic and Slicer's displayable managers; the
checks read the rendered pixels.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from slicer_shims import unavailableReason
from test_slicer_logic import core, importModule  # noqa: F401 - the shared session fixture

pytestmark = pytest.mark.skipif(unavailableReason() is not None, reason=str(unavailableReason()))

_PROBE = """
import os
if not os.environ.get("DISPLAY"):
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
from vtkmodules.vtkRenderingCore import vtkRenderWindow, vtkRenderer
import vtkmodules.vtkRenderingOpenGL2
window = vtkRenderWindow()
window.SetOffScreenRendering(1)
window.AddRenderer(vtkRenderer())
window.Render()
print("rendered", window.GetClassName())
"""


@pytest.fixture(scope="module")
def offscreen():
    """Skips (with VTK's own words) where no offscreen OpenGL context can be made."""
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0 or "rendered" not in result.stdout:
        pytest.skip(
            "VTK cannot render offscreen here (needs EGL, e.g. Debian's libegl1 and "
            f"libgl1-mesa-dri): {(result.stderr or result.stdout).strip()[-300:]}"
        )
    return result.stdout.split()[-1]


def _lut(module, probability):
    """The overlay colour table at ``probability`` (0-255), by its control points."""
    points = np.array(module.display.PROBABILITY_COLORS)
    return 255 * np.array([np.interp(probability, points[:, 0], points[:, i]) for i in (1, 2, 3)])


def _centre(node, name):
    segmentation = node.segmentation
    return segmentation.GetSegmentCenterRAS(
        segmentation.GetSegmentation().GetSegmentIdBySegmentName(name)
    )


def test_the_overlay_and_its_legend_are_drawn_at_the_lesions(core, monkeypatch, offscreen):  # noqa: F811
    import slicer
    from slicer_views import SliceView

    from BoneOligoMetLib.classify import probability_overlay

    module, _slicer = importModule(core, monkeypatch)
    logic = module.BoneOligoMetLogic()
    node = logic.getParameterNode()
    logic.loadSyntheticPatient(node)
    logic.segmentFromSeeds(node)
    for points in (node.seedPoints, node.liverPoint):  # what is drawn on the lesion's centre
        points.GetDisplayNode().SetVisibility(False)
    node.segmentation.GetDisplayNode().SetVisibility(False)
    view = SliceView(core)
    logic.jumpToLesion(node, "Lesion 2")
    view.fit()
    fused = view.render()
    assert fused.std() > 20, "a blank view"
    assert len(np.unique(fused.reshape(-1, 3), axis=0)) > 200
    row, column = view.pixelOf(_centre(node, "Lesion 2"))
    red, _green, blue = fused[row, column].astype(int)
    assert red > blue + 60, f"no PET heat at the avid lesion: {fused[row, column]}"

    lesions, segmentIds = logic.lesionImage(node)
    ct = module.mrml.imageFromVolumeNode(node.ctVolume)
    probabilities = {1: 0.1, 2: 0.95, 3: 0.5}
    summary = {
        "rows": [
            {"lesion_label": label, "probability": p, "verdict": "benign"}
            for label, p in probabilities.items()
        ],
        "threshold": 0.639,
        "device": "cpu",
        "synthetic": True,
        "warning": "",
        "bundle_name": "test",
    }
    overlay = probability_overlay(lesions, ct, probabilities)
    logic._showClassification(node, summary, overlay, segmentIds)
    composite = core.sliceLogics["Red"].GetSliceCompositeNode()
    for name, label in (("Lesion 2", 2), ("Lesion 1", 1)):
        logic.jumpToLesion(node, name)
        shown = view.render()
        composite.SetForegroundOpacity(0.0)
        ctOnly = view.render()
        composite.SetForegroundOpacity(module.display.PROBABILITY_OPACITY)
        row, column = view.pixelOf(_centre(node, name))
        opacity = module.display.PROBABILITY_OPACITY
        expected = (
            opacity * _lut(module, probabilities[label]) + (1 - opacity) * ctOnly[row, column]
        )
        np.testing.assert_allclose(shown[row, column], expected, atol=12, err_msg=name)

    # The legend: the colour bar's ends (green 0, red 1) on the right of the view, gone when
    # the legend is hidden.
    legend = slicer.modules.colors.logic().GetColorLegendDisplayNode(node.probabilityVolume)
    right = shown[:, shown.shape[1] * 3 // 4 :].reshape(-1, 3).astype(int)

    def near(pixels, colour):
        return int((np.abs(pixels - colour).max(axis=1) < 25).sum())

    assert near(right, _lut(module, 1.0)) > 50
    assert near(right, _lut(module, 0.0)) > 50
    legend.SetVisibility(False)
    hidden = view.render()[:, shown.shape[1] * 3 // 4 :].reshape(-1, 3).astype(int)
    assert near(hidden, _lut(module, 1.0)) == 0
    legend.SetVisibility(True)
    # Back to the fused PET/CT (the legend goes with its volume), then the results again:
    # the legend that exists must come back with the overlay.
    logic.showFusedPetCt(node)
    right = view.render()[:, shown.shape[1] * 3 // 4 :].reshape(-1, 3).astype(int)
    assert near(right, _lut(module, 1.0)) == 0
    logic._showClassification(node, summary, overlay, segmentIds)
    right = view.render()[:, shown.shape[1] * 3 // 4 :].reshape(-1, 3).astype(int)
    assert near(right, _lut(module, 1.0)) > 50
    view.close()


def test_the_segment_outline_is_drawn_around_the_lesion(core, monkeypatch, offscreen):  # noqa: F811
    from slicer_views import SliceView

    module, _slicer = importModule(core, monkeypatch)
    logic = module.BoneOligoMetLogic()
    node = logic.getParameterNode()
    logic.loadSyntheticPatient(node)
    logic.segmentFromSeeds(node)
    view = SliceView(core)
    logic.jumpToLesion(node, "Lesion 3")
    view.fit()
    view.zoom(3.0)
    logic.jumpToLesion(node, "Lesion 3")
    segmentation = node.segmentation
    segmentId = segmentation.GetSegmentation().GetSegmentIdBySegmentName("Lesion 3")
    segmentation.GetSegmentation().GetSegment(segmentId).SetColor(0.0, 0.0, 1.0)  # pure blue
    display = segmentation.GetDisplayNode()
    display.SetAllSegmentsOpacity2DFill(0.0)  # outline only
    for other in segmentation.GetSegmentation().GetSegmentIDs():  # lesion 3's outline alone
        display.SetSegmentVisibility(other, other == segmentId)
    withOutline = view.render()
    display.SetVisibility(False)
    without = view.render()
    changed = np.abs(withOutline.astype(int) - without.astype(int)).max(axis=2) > 30
    blue = withOutline[changed]
    assert changed.sum() > 20
    # Every changed pixel turns bluer; all but the few where the line is blended with the PET
    # underneath (anti-aliasing at its ends) are the segment's blue.
    assert np.all(blue[:, 2].astype(int) > without[changed][:, 2]), "outline pixels not bluer"
    assert np.mean(blue[:, 2] > blue[:, 0] + 100) > 0.95, "outline not the segment's blue"
    rows, columns = np.nonzero(changed)
    row, column = view.pixelOf(_centre(node, "Lesion 3"))
    assert rows.min() < row < rows.max()  # around the lesion's centre
    assert columns.min() < column < columns.max()
    view.close()
