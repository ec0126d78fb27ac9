"""The case written to a folder: images as .nii.gz, the panel's tables as CSV, the model used."""

import json
import logging
import os

from BoneOligoMetSlicer import mrml

# What the results table says about the model that ran (classification.json), kept as JSON in
# one attribute so that numbers stay numbers and flags stay flags.
SUMMARY_KEYS = ("bundle_name", "threshold", "device", "synthetic", "warning")
SUMMARY_ATTRIBUTE = "BoneOligoMet.classification"


def exportCase(folder, volumes, segmentation, referenceVolume, perLesion, tables):
    """Writes the case to ``folder``; returns the paths written.

    ``volumes``: name -> volume node (None = skipped), each as NAME.nii.gz; the segmentation as
    lesions.nii.gz (segment i = label i+1 on ``referenceVolume``'s grid) and, with
    ``perLesion``, lesion_NN.nii.gz per segment; ``tables``: name -> table node, each as
    NAME.csv, and classification.json from the "results" table's attributes.
    """
    from BoneOligoMetLib.io.images import write_image

    os.makedirs(folder, exist_ok=True)
    written = []
    for name, node in volumes.items():
        if node is not None:
            path = os.path.join(folder, f"{name}.nii.gz")
            written.append(write_image(mrml.imageFromVolumeNode(node), path))
    if segmentation is not None and segmentation.GetSegmentation().GetNumberOfSegments():
        lesions, segmentIds = mrml.lesionImage(segmentation, referenceVolume)
        written.append(write_image(lesions, os.path.join(folder, "lesions.nii.gz")))
        for label, segmentId in enumerate(segmentIds, 1):
            if not perLesion:
                break
            labelmap = mrml.exportLabelmap(segmentation, [segmentId], referenceVolume)
            try:
                path = os.path.join(folder, f"lesion_{label:02d}.nii.gz")
                written.append(write_image(mrml.imageFromVolumeNode(labelmap), path))
            finally:
                mrml.removeTemporary(labelmap)
    for name, table in tables.items():
        if table is not None and table.GetNumberOfRows():
            written.append(mrml.writeCsv(table, os.path.join(folder, f"{name}.csv")))
    results = tables.get("results")
    if results is not None and results.GetNumberOfRows():
        summary = json.loads(results.GetAttribute(SUMMARY_ATTRIBUTE) or "{}")
        path = os.path.join(folder, "classification.json")
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(summary, handle, indent=1)
        written.append(path)
    logging.info(f"BoneOligoMet: exported {len(written)} files to {folder}")
    return [str(path) for path in written]
