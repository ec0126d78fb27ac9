"""``bone-oligomet suv``: a DICOM PET series to an SUVbw image, with every tag value it used."""

from __future__ import annotations

import argparse

HELP = "convert a DICOM PET series to SUVbw (QIBA) and write it as NIfTI/NRRD"
OUTPUTS = {"output": "image"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pet_dicom_dir", metavar="PET_DICOM_DIR", help="folder with the PET series")
    parser.add_argument(
        "-o", "--output", required=True, metavar="SUV_IMAGE", help="output .nii.gz, .nrrd, .mha"
    )
    parser.add_argument("--series-uid", metavar="UID", help="SeriesInstanceUID if several series")
    parser.add_argument("--weight", type=float, metavar="KG", help="patient weight (kg) override")
    parser.add_argument("--dose", type=float, metavar="MBQ", help="injected dose (MBq) override")
    parser.add_argument(
        "--injection-time",
        metavar="HH:MM[:SS]|ISO",
        help="injection time override: a clock time on the scan date or an ISO datetime",
    )
    parser.add_argument(
        "--max-uptake-h",
        type=float,
        metavar="H",
        help="longest plausible time from injection to scan, hours (default 6); a longer or "
        "negative uptake is an error",
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from BoneOligoMetLib.io.images import write_image
    from BoneOligoMetLib.io.suv import pet_dicom_to_suv

    image, parameters = pet_dicom_to_suv(
        Path(args.pet_dicom_dir),
        series_uid=args.series_uid,
        weight_kg=args.weight,
        injected_dose_mbq=args.dose,
        injection_time=args.injection_time,
        max_uptake_h=args.max_uptake_h,
    )
    path = write_image(image, args.output)
    print(parameters.report())
    print(f"wrote {path} (SUVbw, float32)")
    return 0
