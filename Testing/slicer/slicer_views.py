"""Slicer's slice views rendered offscreen: what a reader sees, drawn by Slicer's own code.

A slice view as Slicer's ``qMRMLSliceWidget`` (and ``trame-slicer``'s ``SliceView``) builds it,
without Qt: a render window (offscreen; VTK's wheel renders through EGL, no X server), the slice
logic's blended layers (background, foreground, label) as a 2D image actor, and Slicer's slice-view
displayable managers for what is drawn on top: segmentations (fill and outline), colour legends,
markups. ``python Testing/slicer/slicer_views.py [FOLDER]`` runs the panel's steps on the synthetic
patient (classification with the packaged demo model) and writes the README's figures.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

if not os.environ.get("DISPLAY"):  # no X server: VTK's EGL window directly (no X warning first)
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

# Slicer's slice-view displayable managers that draw the module's display (qMRMLSliceWidget
# registers these among others; trame-slicer's SliceView too).
DISPLAYABLE_MANAGERS = (
    "vtkMRMLSegmentationsDisplayableManager2D",
    "vtkMRMLColorLegendDisplayableManager",
    "vtkMRMLMarkupsDisplayableManager",
)


class SliceView:
    """One slice view (Red, Yellow or Green) of a ``slicer_shims.SlicerCore`` session."""

    def __init__(self, core, name="Red", size=(560, 560)):
        import slicer
        from vtkmodules.vtkInteractionStyle import vtkInteractorStyleUser
        from vtkmodules.vtkRenderingCore import (
            vtkActor2D,
            vtkImageMapper,
            vtkRenderer,
            vtkRenderWindow,
            vtkRenderWindowInteractor,
        )

        self.logic = core.sliceLogics[name]
        self.window = vtkRenderWindow()
        self.window.SetOffScreenRendering(1)
        self.window.SetSize(*size)
        self.renderer = vtkRenderer()
        self.renderer.GetActiveCamera().ParallelProjectionOn()
        self.window.AddRenderer(self.renderer)
        self.interactor = vtkRenderWindowInteractor()
        self.interactor.SetRenderWindow(self.window)
        self.interactor.SetInteractorStyle(vtkInteractorStyleUser())
        # The blended slice (RGBA 0-255) as a background image, as CTK's light-box manager does.
        self.mapper = vtkImageMapper()
        self.mapper.SetColorWindow(255)
        self.mapper.SetColorLevel(127.5)
        self.actor = vtkActor2D()
        self.actor.SetMapper(self.mapper)
        self.actor.GetProperty().SetDisplayLocationToBackground()
        self.renderer.AddViewProp(self.actor)
        factory = slicer.vtkMRMLSliceViewDisplayableManagerFactory.GetInstance()
        factory.SetMRMLApplicationLogic(core.appLogic)
        for manager in DISPLAYABLE_MANAGERS:
            if not factory.IsDisplayableManagerRegistered(manager):
                factory.RegisterDisplayableManager(manager)
        self.managers = slicer.vtkMRMLDisplayableManagerGroup()
        self.managers.Initialize(factory, self.renderer)
        self.managers.SetMRMLDisplayableNode(self.logic.GetSliceNode())
        self.logic.ResizeSliceNode(*size)

    def fit(self):
        """Fits the view to its background volume in plane (Slicer's "reset field of view"),
        staying on the current slice."""
        offset = self.logic.GetSliceOffset()
        self.logic.FitSliceToBackground()
        self.logic.SetSliceOffset(offset)

    def zoom(self, factor):
        """Magnifies the view ``factor`` times about its centre."""
        sliceNode = self.logic.GetSliceNode()
        width, height, depth = sliceNode.GetFieldOfView()
        sliceNode.SetFieldOfView(width / factor, height / factor, depth)

    def pixelOf(self, ras):
        """(row, column) in ``render()``'s image of a RAS point on the current slice."""
        import slicer

        xyToRas = slicer.util.arrayFromVTKMatrix(self.logic.GetSliceNode().GetXYToRAS())
        x, y, _z, _w = np.linalg.solve(xyToRas, [*ras, 1.0])
        height = self.window.GetSize()[1]
        return round(height - 1 - y), round(x)

    def render(self):
        """The view as an (rows, columns, 3) uint8 array, top row first."""
        from vtkmodules.util.numpy_support import vtk_to_numpy
        from vtkmodules.vtkRenderingCore import vtkWindowToImageFilter

        self.logic.GetImageDataConnection()  # update the blend
        self.mapper.SetInputConnection(self.logic.GetImageDataConnection())
        self.managers.RequestRender()
        self.window.Render()
        grab = vtkWindowToImageFilter()
        grab.SetInput(self.window)
        grab.SetInputBufferTypeToRGB()
        grab.ReadFrontBufferOff()
        grab.Update()
        image = grab.GetOutput()
        width, height, _depth = image.GetDimensions()
        pixels = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, 3)
        return pixels[::-1].copy()  # VTK's first row is the bottom one

    def close(self):
        self.managers.SetMRMLDisplayableNode(None)
        self.window.Finalize()


def writePng(pixels, path):
    """An (rows, columns, 3) uint8 array as a PNG (VTK's writer)."""
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkCommonDataModel import vtkImageData
    from vtkmodules.vtkIOImage import vtkPNGWriter

    rows, columns, _ = pixels.shape
    image = vtkImageData()
    image.SetDimensions(columns, rows, 1)
    scalars = numpy_to_vtk(np.ascontiguousarray(pixels[::-1]).reshape(-1, 3), deep=True)
    image.GetPointData().SetScalars(scalars)
    writer = vtkPNGWriter()
    writer.SetFileName(str(path))
    writer.SetInputData(image)
    writer.Write()
    return Path(path)


# The sample's lesion 2 (a mixed metastasis; the demo model's probability 0.91). Lesion 1 is
# judged outside bone by the library's domain check and gets no probability, so no overlay.
LESION = "Lesion 2"


def renderReading(folder):
    """The panel's steps on the synthetic patient, rendered in the axial (Red) view at lesion 2:
    the fused PET/CT with the grown lesions' outlines, then the classification's probability
    overlay with its legend. Writes fused_petct.png, probability_overlay.png and
    slicer_views.png (the two side by side); returns their paths."""
    import pytest

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from slicer_shims import SlicerCore

    folder = Path(folder)
    core = SlicerCore()
    with pytest.MonkeyPatch.context() as monkeypatch:
        core.install(monkeypatch)
        import BoneOligoMet

        logic = BoneOligoMet.BoneOligoMetLogic()
        node = logic.getParameterNode()
        logic.loadSyntheticPatient(node)
        logic.segmentFromSeeds(node)
        view = SliceView(core)
        logic.jumpToLesion(node, LESION)
        view.fit()
        view.zoom(2.2)
        logic.jumpToLesion(node, LESION)  # centred on it
        fused = view.render()
        job = logic.startClassification(node)
        job.wait(timeoutSeconds=900)
        if logic.finishClassification(node, job) is None:
            raise RuntimeError(job.errorMessage or "\n".join(job.log[-10:]))
        logic.jumpToLesion(node, LESION)
        overlay = view.render()
        view.close()
    core.close()
    gap = np.full((fused.shape[0], 8, 3), 255, np.uint8)
    return [
        writePng(fused, folder / "fused_petct.png"),
        writePng(overlay, folder / "probability_overlay.png"),
        writePng(np.hstack([fused, gap, overlay]), folder / "slicer_views.png"),
    ]


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("Resources/Screenshots")
    for written in renderReading(target):
        print(written)
