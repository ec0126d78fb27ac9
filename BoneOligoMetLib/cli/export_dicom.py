"""``bone-oligomet export-dicom``: lesions as a DICOM SEG on the CT series and a TID 1500
measurement report (SR), for PACS and Slicer's DICOM module."""

from __future__ import annotations

import argparse

HELP = "write the lesions as DICOM SEG on the CT series and their measurements as a DICOM SR"
OUTPUTS = {"out": "folder"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ct", required=True, metavar="CT_DICOM_DIR", help="the CT DICOM series")
    parser.add_argument("--series-uid", metavar="UID", help="SeriesInstanceUID if several CTs")
    parser.add_argument(
        "--lesions", required=True, help="lesion label image (one label per lesion)"
    )
    parser.add_argument(
        "--results", metavar="JSON", help="results.json of bone-oligomet classify (probabilities)"
    )
    parser.add_argument(
        "--pet",
        metavar="SUV",
        help="SUV image or PET DICOM folder: SUVmax/mean/peak, MTV and TLG are measured on it "
        "(without it, the values in --results are written and SUVmean/SUVpeak left out)",
    )
    parser.add_argument(
        "--semiautomatic",
        action="store_true",
        help="the lesions were grown by bone-oligomet segment (SEG algorithm type "
        "SEMIAUTOMATIC; default MANUAL)",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for seg.dcm, sr.dcm")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import SimpleITK as sitk

    from BoneOligoMetLib.cli._common import align, cell, progress_bar
    from BoneOligoMetLib.io.dicom_seg import require_highdicom
    from BoneOligoMetLib.io.images import read_image
    from BoneOligoMetLib.report.dicom_export import export_dicom, results_from_json

    require_highdicom()
    results = results_from_json(args.results) if args.results else None
    lesions = read_image(args.lesions)
    suv, evidence = None, []
    if args.pet:
        if Path(args.pet).is_dir():
            import pydicom

            from BoneOligoMetLib.io.dicom_series import select_dicom_series
            from BoneOligoMetLib.io.suv import pet_dicom_to_suv

            files = list(select_dicom_series(args.pet, "PT").usable_files())
            suv, _ = pet_dicom_to_suv(files)
            evidence = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
        else:
            suv = read_image(args.pet, pixel_type=sitk.sitkFloat32)
    with progress_bar("export-dicom") as progress:
        exported = export_dicom(
            args.ct,
            lesions,
            args.out,
            suv=suv,
            results=results,
            series_uid=args.series_uid,
            algorithm_type="SEMIAUTOMATIC" if args.semiautomatic else "MANUAL",
            evidence=evidence,
            lesions_name=Path(args.lesions).name,
            progress=progress,
        )
    lines = [["lesion", "segment", "vol_mL", "SUVmax", "SUVmean", "SUVpeak", "MTV_mL", "TLG", "P"]]
    for number, lesion in enumerate(exported.lesions, start=1):
        lines.append([
            str(lesion.label), str(number), cell(lesion.volume_ml, ".2f"),
            cell(lesion.suv_max, ".2f"), cell(lesion.suv_mean, ".2f"),
            cell(lesion.suv_peak, ".2f"), cell(lesion.mtv_ml, ".2f"), cell(lesion.tlg, ".1f"),
            cell(lesion.probability, ".3f"),
        ])  # fmt: skip
    print(align(lines))
    for note in exported.notes:
        print(f"note: {note}")
    if results is not None:
        print(f"model: {results.model}")
        if results.warning:
            print(f"WARNING: {results.warning}")
    print(f"wrote {exported.seg_path} (SEG, series {exported.seg_series_uid})")
    print(f"wrote {exported.sr_path} (SR TID 1500, series {exported.sr_series_uid})")
    return 0
