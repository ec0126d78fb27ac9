"""MRML nodes to and from what the library takes: images, lesion labels, tables.

Volume nodes <-> SimpleITK images (RAS <-> LPS only through ``BoneOligoMetLib.coords``), the
segmentation <-> a label image on the CT grid (segment i = label i+1), and table nodes <-> rows
of dicts. No numerics: voxels are copied, never computed.
"""

import csv
import numbers

import slicer
import vtk


def ijkToRas(volumeNode):
    """The volume's IJK-to-RAS matrix as a 4x4 numpy array."""
    matrix = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


def imageFromVolumeNode(volumeNode):
    """A SimpleITK image (LPS geometry) holding a copy of the volume node's voxels."""
    from BoneOligoMetLib.coords import image_from_array

    return image_from_array(slicer.util.arrayFromVolume(volumeNode), ijkToRas(volumeNode))


def volumeNodeFromImage(image, name, labelMap=False, node=None):
    """``image`` at its physical place in a new volume node, or replacing ``node``'s voxels."""
    from BoneOligoMetLib.coords import array_from_image

    array, matrix = array_from_image(image)
    if node is None:
        nodeClass = "vtkMRMLLabelMapVolumeNode" if labelMap else "vtkMRMLScalarVolumeNode"
        return slicer.util.addVolumeFromArray(array, matrix, name, nodeClass)
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(matrix))
    slicer.util.updateVolumeFromArray(node, array)
    return node


# --- segments ------------------------------------------------------------------------------------


def segmentIds(segmentation):
    """The segmentation's segment IDs, in order."""
    segments = segmentation.GetSegmentation()
    return [segments.GetNthSegmentID(index) for index in range(segments.GetNumberOfSegments())]


def segmentName(segmentation, segmentId) -> str:
    segment = segmentation.GetSegmentation().GetSegment(segmentId)
    return segment.GetName() if segment is not None else segmentId


def exportLabelmap(segmentation, ids, referenceVolume):
    """A temporary labelmap node of segments ``ids`` on ``referenceVolume``'s grid."""
    labelmap = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    idArray = vtk.vtkStringArray()
    for segmentId in ids:
        idArray.InsertNextValue(segmentId)
    if not slicer.modules.segmentations.logic().ExportSegmentsToLabelmapNode(
        segmentation,
        idArray,
        labelmap,
        referenceVolume,
        slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY,
    ):
        slicer.mrmlScene.RemoveNode(labelmap)
        raise RuntimeError("Could not export the segmentation on the CT grid.")
    return labelmap


def lesionImage(segmentation, referenceVolume):
    """The segmentation as a label image on the reference grid: segment i (in order) = label i+1.

    Returns (SimpleITK image, segment IDs in label order).
    """
    if segmentation is None or segmentation.GetSegmentation().GetNumberOfSegments() == 0:
        raise ValueError("The lesion segmentation has no segments.")
    ids = segmentIds(segmentation)
    labelmap = exportLabelmap(segmentation, ids, referenceVolume)
    try:
        image = imageFromVolumeNode(labelmap)
    finally:
        slicer.mrmlScene.RemoveNode(labelmap)
    return image, ids


def importLabels(image, segmentation, ids) -> None:
    """Label i+1 of ``image`` becomes the content of segment ``ids[i]``."""
    labelmap = volumeNodeFromImage(image, "BoneOligoMet labels", labelMap=True)
    idArray = vtk.vtkStringArray()
    for segmentId in ids:
        idArray.InsertNextValue(segmentId)
    try:
        if not slicer.modules.segmentations.logic().ImportLabelmapToSegmentationNode(
            labelmap, segmentation, idArray
        ):
            raise RuntimeError("Could not update the segmentation from the label image.")
    finally:
        slicer.mrmlScene.RemoveNode(labelmap)


# --- tables --------------------------------------------------------------------------------------


def fillTable(tableNode, rows, firstColumns=()):
    """Replaces a table node's content by ``rows`` (dicts); ``firstColumns`` come first.

    A column of whole numbers is an integer column, of other numbers a double column (empty =
    NaN), anything else text.
    """
    columns = list(firstColumns)
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    tableNode.RemoveAllColumns()
    for name in columns:
        values = [row.get(name) for row in rows]
        given = [value for value in values if value is not None]
        numeric = all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in given)
        if numeric and given and all(isinstance(v, numbers.Integral) for v in given):
            array = vtk.vtkIntArray()
            convert = int
        elif numeric and given:
            array = vtk.vtkDoubleArray()
            convert = float
        else:
            array = vtk.vtkStringArray()
            convert = str
        array.SetName(name)
        for value in values:
            if value is None:
                array.InsertNextValue(
                    "" if convert is str else (0 if convert is int else float("nan"))
                )
            else:
                array.InsertNextValue(convert(value))
        tableNode.AddColumn(array)
    tableNode.Modified()


def readTable(tableNode):
    """A table node's rows as dicts of cell text."""
    names = [tableNode.GetColumnName(c) for c in range(tableNode.GetNumberOfColumns())]
    return [
        {name: tableNode.GetCellText(r, c) for c, name in enumerate(names)}
        for r in range(tableNode.GetNumberOfRows())
    ]


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
