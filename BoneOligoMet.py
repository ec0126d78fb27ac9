"""BoneOligoMet 3D Slicer module: a thin layer over BoneOligoMetLib.

The Widget only maps the panel to one Logic call; the Logic converts MRML nodes to and from
SimpleITK images (RAS/LPS through ``BoneOligoMetLib.coords``, the one tested conversion) and calls
the library. Nothing numerical lives here. The full reading panel (fused display, rule-guided
delineation, one-click classification) is built up by later releases; this version computes the
per-lesion PET metabolic parameters of a lesion label map on an SUV volume.
"""

import logging
import os

import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)

# The library folder sits beside this file (repository root = module folder).
_MODULE_DIR = os.path.dirname(os.path.abspath(__file__))

# Libraries BoneOligoMetLib needs; all ship with Slicer >= 5.8 (numpy, scipy, SimpleITK, pydicom).
REQUIRED_PACKAGES = ("numpy", "scipy", "SimpleITK", "pydicom")


def missingPackages():
    """Names of required Python packages that cannot be imported in this Slicer."""
    import importlib.util

    return [name for name in REQUIRED_PACKAGES if importlib.util.find_spec(name) is None]


class BoneOligoMet(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "BoneOligoMet"
        self.parent.categories = ["Nuclear Medicine"]
        self.parent.dependencies = []
        self.parent.contributors = ["BoneOligoMet developers"]
        self.parent.helpText = (
            "Benign vs malignant bone lesions on 18F-FDG PET/CT in breast-cancer bone "
            "oligometastases. This version computes per-lesion PET metabolic parameters (SUVmax, "
            "SUVmean, SUVpeak, MTV, TLG, liver ratio) of a lesion label map on an SUV volume. "
            "Research software: the bundled model is trained on synthetic data and is not for "
            "clinical use."
        )
        self.parent.acknowledgementText = (
            "Reproduces the protocol of a published PET/CT radiomics and deep-learning study of "
            "breast-cancer bone oligometastases; built on pyradiomics, SimpleITK and PyTorch."
        )


class BoneOligoMetWidget(ScriptedLoadableModuleWidget):
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        import ctk
        import qt

        self.logic = BoneOligoMetLogic()
        section = ctk.ctkCollapsibleButton()
        section.text = "Metabolic parameters"
        self.layout.addWidget(section)
        form = qt.QFormLayout(section)

        self.suvSelector = slicer.qMRMLNodeComboBox()
        self.suvSelector.nodeTypes = ["vtkMRMLScalarVolumeNode"]
        self.suvSelector.addAttribute("vtkMRMLScalarVolumeNode", "LabelMap", 0)
        self.suvSelector.noneEnabled = True
        self.suvSelector.setMRMLScene(slicer.mrmlScene)
        self.suvSelector.toolTip = "PET volume in SUV (body weight)."
        form.addRow("PET (SUV):", self.suvSelector)

        self.lesionSelector = slicer.qMRMLNodeComboBox()
        self.lesionSelector.nodeTypes = ["vtkMRMLLabelMapVolumeNode"]
        self.lesionSelector.noneEnabled = True
        self.lesionSelector.setMRMLScene(slicer.mrmlScene)
        self.lesionSelector.toolTip = "Lesion label map: one label value per lesion."
        form.addRow("Lesions:", self.lesionSelector)

        self.computeButton = qt.QPushButton("Compute")
        form.addRow(self.computeButton)
        self.computeButton.connect("clicked(bool)", self.onCompute)

        missing = missingPackages()
        if missing:
            self.computeButton.enabled = False
            self.computeButton.toolTip = (
                f"Missing Python packages: {', '.join(missing)}. Install them from the Python "
                f"console with slicer.util.pip_install('{' '.join(missing)}')."
            )
        self.layout.addStretch(1)

    def onCompute(self):
        with slicer.util.tryWithErrorDisplay(
            "Failed to compute metabolic parameters.", waitCursor=True
        ):
            table = self.logic.computeMetabolics(
                self.suvSelector.currentNode(), self.lesionSelector.currentNode()
            )
            slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(table.GetID())
            slicer.app.applicationLogic().PropagateTableSelection()


class BoneOligoMetLogic(ScriptedLoadableModuleLogic):
    """MRML <-> SimpleITK conversion and calls into BoneOligoMetLib; usable without the GUI."""

    @staticmethod
    def imageFromVolumeNode(volumeNode):
        """A SimpleITK image (LPS geometry) holding a copy of the volume node's voxels."""
        from BoneOligoMetLib.coords import image_from_array

        matrix = vtkMatrixToArray(volumeNode.GetIJKToRASMatrix)
        return image_from_array(slicer.util.arrayFromVolume(volumeNode), matrix)

    @staticmethod
    def volumeNodeFromImage(image, name, labelMap=False):
        """A new volume node in the scene holding ``image`` at its physical place."""
        from BoneOligoMetLib.coords import array_from_image

        array, ijkToRAS = array_from_image(image)
        nodeClass = "vtkMRMLLabelMapVolumeNode" if labelMap else "vtkMRMLScalarVolumeNode"
        return slicer.util.addVolumeFromArray(array, ijkToRAS, name, nodeClass)

    def computeMetabolics(self, suvVolumeNode, lesionLabelMapNode, tableNode=None):
        """Per-lesion metabolic parameters into a table node (one row per lesion label)."""
        if suvVolumeNode is None or lesionLabelMapNode is None:
            raise ValueError("Select a PET (SUV) volume and a lesion label map.")
        from BoneOligoMetLib.metabolic import metabolic_table

        suv = self.imageFromVolumeNode(suvVolumeNode)
        lesions = self.imageFromVolumeNode(lesionLabelMapNode)
        rows = [lesion.as_row() for lesion in metabolic_table(suv, lesions)]
        if tableNode is None:
            tableNode = slicer.mrmlScene.AddNewNodeByClass(
                "vtkMRMLTableNode", f"{lesionLabelMapNode.GetName()} metabolic"
            )
        columns = list(rows[0])
        import numpy as np

        arrays = [
            np.array([np.nan if row[c] is None else row[c] for row in rows], float) for c in columns
        ]
        slicer.util.updateTableFromArray(tableNode, arrays, columns)
        logging.info(f"BoneOligoMet: metabolic parameters of {len(rows)} lesion(s)")
        return tableNode


def vtkMatrixToArray(getter):
    """Call a VTK getter that fills a vtkMatrix4x4 and return it as a numpy array."""
    import vtk

    matrix = vtk.vtkMatrix4x4()
    getter(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


class BoneOligoMetTest(ScriptedLoadableModuleTest):
    """Runs the Logic on a volume pair built in the scene, where the right answer is known."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_GeometryRoundTrip()
        self.setUp()
        self.test_MetabolicsOfKnownLesion()

    def _makeSuvAndLesion(self):
        import numpy as np

        suv = np.full((20, 30, 30), 1.0, dtype=np.float32)
        suv[8:12, 12:18, 12:18] = 6.0  # a 6×6×4-voxel lesion of SUV 6
        suv[10, 15, 15] = 9.0  # its hottest voxel
        lesion = np.zeros(suv.shape, dtype=np.uint8)
        lesion[8:12, 12:18, 12:18] = 1
        ijkToRAS = np.diag([-4.0, -4.0, 4.0, 1.0])  # LPS-aligned axes, as from a DICOM PET
        ijkToRAS[:3, 3] = (100.0, 80.0, -300.0)
        suvNode = slicer.util.addVolumeFromArray(suv, ijkToRAS, "SUV")
        lesionNode = slicer.util.addVolumeFromArray(
            lesion, ijkToRAS, "Lesions", "vtkMRMLLabelMapVolumeNode"
        )
        return suvNode, lesionNode

    def test_GeometryRoundTrip(self):
        import numpy as np

        suvNode, _ = self._makeSuvAndLesion()
        logic = BoneOligoMetLogic()
        image = logic.imageFromVolumeNode(suvNode)
        # Voxel (i=15, j=15, k=10) at RAS = origin + diag * index, i.e. LPS with x, y negated.
        ras = np.array([100.0 - 4.0 * 15, 80.0 - 4.0 * 15, -300.0 + 4.0 * 10])
        lps = image.TransformIndexToPhysicalPoint((15, 15, 10))
        np.testing.assert_allclose(lps, [-ras[0], -ras[1], ras[2]], atol=1e-6)
        back = logic.volumeNodeFromImage(image, "roundtrip")
        np.testing.assert_array_equal(
            slicer.util.arrayFromVolume(back), slicer.util.arrayFromVolume(suvNode)
        )
        np.testing.assert_allclose(
            vtkMatrixToArray(back.GetIJKToRASMatrix), vtkMatrixToArray(suvNode.GetIJKToRASMatrix)
        )
        self.delayDisplay("RAS/LPS round trip passed")

    def test_MetabolicsOfKnownLesion(self):
        suvNode, lesionNode = self._makeSuvAndLesion()
        table = BoneOligoMetLogic().computeMetabolics(suvNode, lesionNode)
        self.assertEqual(table.GetNumberOfRows(), 1)
        suvMax = slicer.util.arrayFromTableColumn(table, "met_suv_max")[0]
        suvMean = slicer.util.arrayFromTableColumn(table, "met_suv_mean")[0]
        volume = slicer.util.arrayFromTableColumn(table, "met_volume_ml")[0]
        self.assertAlmostEqual(suvMax, 9.0, places=4)
        self.assertAlmostEqual(suvMean, (143 * 6.0 + 9.0) / 144, places=4)
        self.assertAlmostEqual(volume, 144 * 64 / 1000.0, places=4)  # 144 voxels of 64 mm³
        self.delayDisplay("Metabolic parameters passed")
