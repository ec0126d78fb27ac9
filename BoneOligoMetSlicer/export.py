"""The case written to a folder: images as .nii.gz, the panel's tables as CSV, the model used;
on request the lesions as DICOM (a Segmentation and a TID 1500 measurement report)."""

import json
import logging
import os

import slicer

from BoneOligoMetSlicer import mrml

# What the results table says about the model that ran (classification.json), kept as JSON in
# one attribute so that numbers stay numbers and flags stay flags.
SUMMARY_KEYS = ("bundle_name", "threshold", "device", "synthetic", "warning")
SUMMARY_ATTRIBUTE = "BoneOligoMet.classification"
# Where Slicer's DICOM plugins record the instances a volume was loaded from.
INSTANCE_UIDS_ATTRIBUTE = "DICOM.instanceUIDs"
DICOM_FOLDER = "dicom"


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


def sourceDicomFiles(volumeNode):
    """The files of the DICOM series ``volumeNode`` was loaded from, by its instance UIDs in
    Slicer's DICOM database; a ValueError naming the volume when there are none."""
    name = volumeNode.GetName()
    uids = (volumeNode.GetAttribute(INSTANCE_UIDS_ATTRIBUTE) or "").split()
    database = getattr(slicer, "dicomDatabase", None)
    if not uids or database is None:
        raise ValueError(
            f"DICOM export: volume '{name}' was not loaded from Slicer's DICOM database; the "
            "DICOM Segmentation must reference the CT series it was drawn on (load the CT "
            "with the DICOM module)"
        )
    files = [database.fileForInstance(uid) for uid in uids]
    missing = [uid for uid, path in zip(uids, files) if not path or not os.path.isfile(path)]
    if missing:
        raise ValueError(
            f"DICOM export: {len(missing)} of the {len(uids)} files of volume '{name}' are no "
            f"longer in the DICOM database (first: instance {missing[0]})"
        )
    return files


def resultsForDicom(resultsTable):
    """The results table as the DICOM export reads results (model, warning, a row per lesion
    label with its probability, verdict and metabolic values); None when nothing was classified."""
    from BoneOligoMetLib.report.dicom_export import ClassifierResults

    if resultsTable is None or not resultsTable.GetNumberOfRows():
        return None
    summary = json.loads(resultsTable.GetAttribute(SUMMARY_ATTRIBUTE) or "{}")
    rows = {}
    for row in mrml.readTable(resultsTable):
        values = {"verdict": row.get("label", "")}
        for key, text in row.items():
            if key == "probability" or key.startswith("met_"):
                values[key] = float(text) if text not in ("", None) else None
        rows[int(row["lesion"])] = values
    return ClassifierResults(
        str(summary.get("bundle_name", "")), str(summary.get("warning") or ""), rows
    )


def requireHighdicom():
    """A ValueError saying why DICOM export cannot run in this Slicer, when highdicom is absent."""
    import importlib.util
    from importlib import metadata

    if importlib.util.find_spec("highdicom") is not None:
        return
    try:
        pydicomVersion = metadata.version("pydicom")
    except metadata.PackageNotFoundError:
        pydicomVersion = "none"
    raise ValueError(
        "DICOM export needs highdicom, which needs pydicom 3 (this Slicer has pydicom "
        f"{pydicomVersion}, which its DICOM module uses: it is not replaced here); export "
        "without DICOM and run `bone-oligomet export-dicom` on lesions.nii.gz, or install "
        "highdicom in a Slicer that ships pydicom 3"
    )


def exportDicom(folder, ctVolume, petVolume, segmentation, resultsTable, seedGrown):
    """``dicom/seg.dcm`` and ``dicom/sr.dcm`` in ``folder``; (paths written, notes).

    The Segmentation has one segment per lesion on the CT series' frames and references that
    series; the SR holds each lesion's volume, SUVmax, SUVmean, SUVpeak, MTV and TLG (measured
    on ``petVolume``) and the probability of ``resultsTable``. ``seedGrown``: the lesions were
    grown from seed points (SEMIAUTOMATIC) rather than drawn (MANUAL).
    """
    from BoneOligoMetLib.report.dicom_export import export_dicom

    requireHighdicom()
    if segmentation is None or not segmentation.GetSegmentation().GetNumberOfSegments():
        raise ValueError("DICOM export: the segmentation has no lesion")
    files = sourceDicomFiles(ctVolume)
    lesions, _segmentIds = mrml.lesionImage(segmentation, ctVolume)
    suv = mrml.imageFromVolumeNode(petVolume) if petVolume is not None else None
    done = export_dicom(
        files,
        lesions,
        os.path.join(folder, DICOM_FOLDER),
        suv=suv,
        results=resultsForDicom(resultsTable),
        algorithm_type="SEMIAUTOMATIC" if seedGrown else "MANUAL",
        lesions_name=f"segmentation '{segmentation.GetName()}'",
    )
    for note in done.notes:
        logging.info(f"BoneOligoMet: DICOM export: {note}")
    return [str(done.seg_path), str(done.sr_path)], list(done.notes)
