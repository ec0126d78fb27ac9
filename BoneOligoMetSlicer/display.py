"""What the reader sees: the fused PET/CT, the probability overlay with its legend, lesion jumps.

Display settings only (windows, colour maps, opacities); nothing here changes a voxel.
"""

import slicer

# CT bone window (width, level, HU); PET SUV 0-8 shows marrow (1-2) and liver (2-2.5) in the
# lower colours and saturates on avid lesions.
CT_WINDOW_HU = (1800.0, 400.0)
PET_WINDOW_SUV = (0.0, 8.0)
PET_OPACITY = 0.5
PROBABILITY_OPACITY = 0.6
PROBABILITY_COLOR_NODE = "BoneOligoMet probability"
# Green (0, benign) - yellow (0.5) - red (1, malignant): (probability, r, g, b).
PROBABILITY_COLORS = ((0.0, 0.1, 0.7, 0.2), (0.5, 1.0, 0.9, 0.1), (1.0, 0.9, 0.1, 0.1))


def displayNode(volumeNode):
    if volumeNode.GetDisplayNode() is None:
        volumeNode.CreateDefaultDisplayNodes()
    return volumeNode.GetDisplayNode()


def setLayers(**layers) -> None:
    """``slicer.util.setSliceViewerLayers(**layers)``, and the colour legends told.

    A legend's displayable manager re-decides whether a slice view shows it when the legend node
    changes, not when a script changes the view's layers: without this a legend stays on after
    its volume left the views, or stays hidden when it comes back.
    """
    slicer.util.setSliceViewerLayers(**layers)
    for legend in slicer.util.getNodesByClass("vtkMRMLColorLegendDisplayNode"):
        legend.Modified()


def showFusedPetCt(ct, pet) -> None:
    """CT grey background (bone window), PET foreground (PET heat, SUV window), linked views."""
    ctDisplay = displayNode(ct)
    ctDisplay.SetAndObserveColorNodeID("vtkMRMLColorTableNodeGrey")
    ctDisplay.AutoWindowLevelOff()
    ctDisplay.SetWindowLevel(*CT_WINDOW_HU)
    petDisplay = displayNode(pet)
    petColor = slicer.vtkMRMLColorLogic.GetPETColorNodeID(
        slicer.vtkMRMLPETProceduralColorNode.PETheat
    )
    petDisplay.SetAndObserveColorNodeID(petColor)
    petDisplay.AutoWindowLevelOff()
    petDisplay.SetWindowLevelMinMax(*PET_WINDOW_SUV)
    setLayers(background=ct, foreground=pet, foregroundOpacity=PET_OPACITY, fit=True)
    for composite in slicer.util.getNodesByClass("vtkMRMLSliceCompositeNode"):
        composite.SetLinkedControl(True)


def probabilityColorNode():
    """The overlay's colour table (one per scene, made on first use)."""
    node = slicer.mrmlScene.GetFirstNodeByName(PROBABILITY_COLOR_NODE)
    if node is not None and node.IsA("vtkMRMLProceduralColorNode"):
        return node
    node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLProceduralColorNode", PROBABILITY_COLOR_NODE)
    node.SetAttribute("Category", "BoneOligoMet")
    transfer = node.GetColorTransferFunction()
    transfer.RemoveAllPoints()
    for point in PROBABILITY_COLORS:
        transfer.AddRGBPoint(*point)
    return node


def showProbability(volume, ctVolume) -> None:
    """The probability overlay over the CT, lesions only, with its colour legend."""
    display = displayNode(volume)
    display.SetAndObserveColorNodeID(probabilityColorNode().GetID())
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(0.0, 1.0)
    display.SetLowerThreshold(1e-6)  # voxels outside every lesion (0) stay transparent
    display.SetUpperThreshold(1.0)
    display.ApplyThresholdOn()
    colors = slicer.modules.colors.logic()
    legend = colors.GetColorLegendDisplayNode(volume)
    if legend is None:
        legend = colors.AddDefaultColorLegendDisplayNode(volume)
    legend.SetTitleText("Malignancy probability")
    legend.SetLabelFormat("%.2f")
    legend.SetVisibility(True)
    setLayers(background=ctVolume, foreground=volume, foregroundOpacity=PROBABILITY_OPACITY)


def jumpToSegment(segmentation, segmentName) -> bool:
    """Centres the slice views on a segment (by name); False when there is none."""
    if not segmentName or segmentation is None:
        return False
    segmentId = segmentation.GetSegmentation().GetSegmentIdBySegmentName(segmentName)
    if not segmentId:
        return False
    centre = segmentation.GetSegmentCenterRAS(segmentId)
    if centre is None:
        return False
    jumpToPoint(centre)
    return True


def jumpToPoint(ras) -> None:
    """Centres the slice views on a point (RAS mm)."""
    slicer.vtkMRMLSliceNode.JumpAllSlices(
        slicer.mrmlScene, *ras, slicer.vtkMRMLSliceNode.CenteredJumpSlice
    )
