"""``bone-oligomet labels``: an RTSTRUCT's contours or a SEG's segments as a lesion label image
on a reference image's grid."""

from __future__ import annotations

import argparse

HELP = "RTSTRUCT contours or DICOM SEG segments -> lesion label image on a reference grid"
OUTPUTS = {"output": "image"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from", dest="source", required=True, metavar="RTSTRUCT_OR_SEG",
        help="DICOM RT Structure Set or Segmentation file",
    )  # fmt: skip
    parser.add_argument(
        "--reference", required=True, metavar="IMAGE_OR_DICOM_DIR",
        help="image whose grid the labels take (e.g. the CT the contours were drawn on)",
    )  # fmt: skip
    parser.add_argument("--series-uid", metavar="UID", help="SeriesInstanceUID if several series")
    parser.add_argument(
        "--roi", action="extend", nargs="+", metavar="NAME",
        help="ROI / segment names, labelled 1, 2, ... in this order (default: all)",
    )  # fmt: skip
    parser.add_argument(
        "-o", "--output", required=True, metavar="LABELS", help="label image .nii.gz/.nrrd/.mha"
    )


def run(args: argparse.Namespace) -> int:
    from BoneOligoMetLib.cli._common import align
    from BoneOligoMetLib.io.images import write_image
    from BoneOligoMetLib.lesions.dicom_labels import labels_from_dicom, read_reference

    reference, frame_uid = read_reference(args.reference, args.series_uid)
    labels, rois = labels_from_dicom(
        args.source, reference, args.roi, frame_of_reference_uid=frame_uid
    )
    lines = [["label", "ROI", "voxels", "mL"]]
    for roi in rois:
        lines.append([str(roi.label), roi.name, str(roi.voxels), f"{roi.volume_ml:.2f}"])
    print(align(lines, left=(1,)))
    path = write_image(labels, args.output)
    print(f"wrote {len(rois)} lesion(s) to {path}")
    return 0
