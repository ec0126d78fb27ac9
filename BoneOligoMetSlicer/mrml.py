"""MRML nodes to and from what the library takes: images, lesion labels, tables.

Volume nodes <-> SimpleITK images (RAS <-> LPS only through ``BoneOligoMetLib.io.coords``), the
segmentation <-> a label image on the CT grid (segment i = label i+1), and table nodes <-> rows
of dicts. No numerics: voxels are copied, never computed.

Geometry is world geometry: a volume under a linear parent transform is read where Slicer shows
it (the transform hardened into its IJK-to-RAS matrix, voxels untouched); a non-linear transform
would need resampling and is refused with a message. Temporary labelmap nodes leave nothing
behind (no display node, no colour table).
"""

import csv
import math
import numbers

import slicer
import vtk


class SegmentOverlapError(ValueError):
    """Segments share voxels, so no single lesion label image can hold them."""


def ijkToRas(volumeNode):
    """The volume's IJK-to-world (RAS) matrix as a 4x4 numpy array, parent transforms included."""
    matrix = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(matrix)
    transform = volumeNode.GetParentTransformNode()
    if transform is not None:
        if not transform.IsTransformToWorldLinear():
            raise ValueError(
                f"'{volumeNode.GetName()}' is under the non-linear transform "
                f"'{transform.GetName()}': harden it first (Data module: right-click the volume, "
                "Harden transform), which resamples it on its own grid."
            )
        toWorld = vtk.vtkMatrix4x4()
        transform.GetMatrixTransformToWorld(toWorld)
        vtk.vtkMatrix4x4.Multiply4x4(toWorld, matrix, matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


def imageFromVolumeNode(volumeNode):
    """A SimpleITK image (LPS, world geometry) holding a copy of the volume node's voxels."""
    from BoneOligoMetLib.io.coords import image_from_array

    return image_from_array(slicer.util.arrayFromVolume(volumeNode), ijkToRas(volumeNode))


def volumeNodeFromImage(image, name, labelMap=False, node=None):
    """``image`` at its physical place in a new volume node, or replacing ``node``'s voxels.

    A replaced node leaves its parent transform: the image's geometry is already world geometry.
    """
    from BoneOligoMetLib.io.coords import array_from_image

    array, matrix = array_from_image(image)
    if node is None:
        nodeClass = "vtkMRMLLabelMapVolumeNode" if labelMap else "vtkMRMLScalarVolumeNode"
        return slicer.util.addVolumeFromArray(array, matrix, name, nodeClass)
    node.SetAndObserveTransformNodeID(None)
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(matrix))
    slicer.util.updateVolumeFromArray(node, array)
    return node


def _temporaryLabelmap(image=None):
    """A labelmap node for one conversion, with no display node (removeTemporary removes it)."""
    node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "BoneOligoMet labels")
    node.HideFromEditorsOn()
    if image is not None:
        volumeNodeFromImage(image, "", node=node)
    return node


def removeTemporary(labelmap) -> None:
    """Removes a temporary labelmap node with its display nodes and the colour table that
    ``ExportSegmentsToLabelmapNode`` made for it (a new "<segmentation>_ColorTable" each call)."""
    scene = slicer.mrmlScene
    for index in reversed(range(labelmap.GetNumberOfDisplayNodes())):
        displayNode = labelmap.GetNthDisplayNode(index)
        if displayNode is None:
            continue
        color = displayNode.GetColorNode()
        scene.RemoveNode(displayNode)
        if color is not None and color.GetAttribute("BoneOligoMet.temporary") == "1":
            scene.RemoveNode(color)
    scene.RemoveNode(labelmap)


# --- segments ------------------------------------------------------------------------------------


def segmentIds(segmentation):
    """The segmentation's segment IDs, in order."""
    segments = segmentation.GetSegmentation()
    return [segments.GetNthSegmentID(index) for index in range(segments.GetNumberOfSegments())]


def segmentName(segmentation, segmentId) -> str:
    segment = segmentation.GetSegmentation().GetSegment(segmentId)
    return segment.GetName() if segment is not None else segmentId


def exportLabelmap(segmentation, ids, referenceVolume):
    """A temporary labelmap node of segments ``ids`` (label i+1 = ids[i]) on the reference grid.

    Remove it with ``removeTemporary``.
    """
    labelmap = _temporaryLabelmap()
    idArray = vtk.vtkStringArray()
    for segmentId in ids:
        idArray.InsertNextValue(segmentId)
    exported = slicer.modules.segmentations.logic().ExportSegmentsToLabelmapNode(
        segmentation,
        idArray,
        labelmap,
        referenceVolume,
        slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY,
    )
    displayNode = labelmap.GetDisplayNode()
    if displayNode is not None and displayNode.GetColorNode() is not None:
        displayNode.GetColorNode().SetAttribute("BoneOligoMet.temporary", "1")
    if not exported:
        removeTemporary(labelmap)
        raise RuntimeError("Could not export the segmentation on the CT grid.")
    return labelmap


def _exportedArray(segmentation, ids, referenceVolume):
    """Voxels (k, j, i) of segments ``ids`` exported together; with the labelmap's image."""
    labelmap = exportLabelmap(segmentation, ids, referenceVolume)
    try:
        return slicer.util.arrayFromVolume(labelmap).copy(), imageFromVolumeNode(labelmap)
    finally:
        removeTemporary(labelmap)


def lesionImage(segmentation, referenceVolume):
    """The segmentation as a label image on the reference grid: segment i (in order) = label i+1.

    Returns (SimpleITK image, segment IDs in label order). Segments that share voxels (Slicer
    keeps them on separate layers) are refused with SegmentOverlapError: a label image would
    give the shared voxels to one of them and silently shrink or erase the other.
    """
    if segmentation is None or segmentation.GetSegmentation().GetNumberOfSegments() == 0:
        raise ValueError("The lesion segmentation has no segments.")
    ids = segmentIds(segmentation)
    layers = {}
    for segmentId in ids:
        layer = segmentation.GetSegmentation().GetLayerIndex(segmentId)
        layers.setdefault(layer, []).append(segmentId)
    if len(layers) == 1:  # one shared labelmap: its segments cannot overlap
        return _exportedArray(segmentation, ids, referenceVolume)[1], ids
    import numpy as np

    from BoneOligoMetLib.io.coords import image_from_array

    owner = None  # the label image so far: each voxel's segment (label), 0 = none
    for layerIds in layers.values():
        exported, _image = _exportedArray(segmentation, layerIds, referenceVolume)
        lookup = np.array([0] + [ids.index(i) + 1 for i in layerIds], dtype=np.uint16)
        layerLabels = lookup[exported]  # this layer's values 1..k -> the segments' labels
        if owner is None:
            owner = layerLabels
            continue
        shared = (owner != 0) & (layerLabels != 0)
        if shared.any():
            pairs = sorted({(int(a), int(b)) for a, b in zip(owner[shared], layerLabels[shared])})
            names = "; ".join(
                f"'{segmentName(segmentation, ids[a - 1])}' and "
                f"'{segmentName(segmentation, ids[b - 1])}'"
                for a, b in pairs
            )
            raise SegmentOverlapError(
                f"Segments overlap ({names}; {int(shared.sum())} voxels): each voxel can belong "
                "to one lesion only. Remove the overlap (Segment Editor: Logical operators) or "
                "move segments that are not lesions to another segmentation."
            )
        owner = np.where(layerLabels != 0, layerLabels, owner)
    return image_from_array(owner, ijkToRas(referenceVolume)), ids


def replaceTaggedSegments(segmentation, tag, labels, segments) -> None:
    """Removes the segments tagged ``tag`` and adds ``segments`` ((tag value, name) each, tagged)
    with label i+1 of the image ``labels`` as the i-th one's content; other segments stay."""
    content = segmentation.GetSegmentation()
    for segmentId in segmentIds(segmentation):
        if content.GetSegment(segmentId).HasTag(tag):
            content.RemoveSegment(segmentId)
    ids = []
    for value, name in segments:
        ids.append(content.AddEmptySegment("", name))
        content.GetSegment(ids[-1]).SetTag(tag, value)
    if ids:
        importLabels(labels, segmentation, ids)


def importLabels(image, segmentation, ids) -> None:
    """Label i+1 of ``image`` becomes the content of segment ``ids[i]``; an empty ID ("") leaves
    that label's segment as it is."""
    labelmap = _temporaryLabelmap(image)
    idArray = vtk.vtkStringArray()
    for segmentId in ids:
        idArray.InsertNextValue(segmentId)
    try:
        if not slicer.modules.segmentations.logic().ImportLabelmapToSegmentationNode(
            labelmap, segmentation, idArray
        ):
            raise RuntimeError("Could not update the segmentation from the label image.")
    finally:
        removeTemporary(labelmap)


# --- tables --------------------------------------------------------------------------------------


def fillTable(tableNode, rows, firstColumns=()):
    """Replaces a table node's content by ``rows`` (dicts); ``firstColumns`` come first.

    A column of whole numbers is an integer column, of other numbers a double column, anything
    else text. A missing value (None) is an empty text cell, or NaN in a numeric column (so an
    integer column with a missing value is a double column: 0 would be a value).
    """
    columns = list(firstColumns)
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    tableNode.RemoveAllColumns()
    for name in columns:
        values = [row.get(name) for row in rows]
        given = [value for value in values if value is not None]
        numeric = bool(given) and all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) for v in given
        )
        if (
            numeric
            and len(given) == len(values)
            and all(isinstance(v, numbers.Integral) for v in given)
        ):
            array, convert = vtk.vtkIntArray(), int
        elif numeric:
            array, convert = vtk.vtkDoubleArray(), float
        else:
            array, convert = vtk.vtkStringArray(), str
        array.SetName(name)
        missing = "" if convert is str else float("nan")
        for value in values:
            array.InsertNextValue(missing if value is None else convert(value))
        tableNode.AddColumn(array)
    tableNode.Modified()


def readTable(tableNode):
    """A table node's rows as dicts of cell text; a missing value (NaN) is ""."""
    names = [tableNode.GetColumnName(c) for c in range(tableNode.GetNumberOfColumns())]
    table = tableNode.GetTable()
    rows = []
    for r in range(tableNode.GetNumberOfRows()):
        row = {}
        for c, name in enumerate(names):
            value = table.GetValue(r, c)
            missing = value.IsNumeric() and math.isnan(value.ToDouble())
            row[name] = "" if missing else tableNode.GetCellText(r, c)
        rows.append(row)
    return rows


def writeCsv(tableNode, path):
    rows = readTable(tableNode)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)
    return path


def ensureTable(parameterNode, attribute, title):
    """The parameter node's table ``attribute``, created when missing."""
    table = getattr(parameterNode, attribute)
    if table is None:
        table = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", f"BoneOligoMet {title}")
        setattr(parameterNode, attribute, table)
    return table
