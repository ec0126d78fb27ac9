"""``bone-oligomet check``: the study's ROI rules (§2.3) checked on a lesion label image."""

from __future__ import annotations

import argparse

from BoneOligoMetLib.cli._common import align, cell, parse_point, progress_bar, to_lps

HELP = "check lesion ROIs against the study's rules (holes, bone, necrosis, calcification, ...)"
OUTPUTS = {"output": "file"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ct", required=True, help="CT in HU (NIfTI/NRRD or DICOM folder)")
    parser.add_argument(
        "--pet", required=True, help="PET: an SUV image, or a PET DICOM folder (converted to SUVbw)"
    )
    parser.add_argument(
        "--lesions", required=True, help="lesion label image on the CT grid (labels 1..n)"
    )
    parser.add_argument(
        "--liver-seed",
        type=parse_point,
        metavar="X,Y,Z",
        help="centre of the 3 cm liver sphere, mm (LPS unless --ras): adds the FDG-avid check",
    )
    parser.add_argument("--ras", action="store_true", help="--liver-seed is Slicer RAS, not LPS")
    parser.add_argument(
        "--fill-holes", metavar="OUT", help="write the lesions with their holes filled here"
    )
    parser.add_argument(
        "--include-parts",
        metavar="OUT",
        help="write the lesions with necrotic/calcified parts over 10%% added here",
    )
    parser.add_argument("-o", "--output", help="write the rule table as CSV to this file")


def format_checks(checks) -> str:
    """Rule checks as an aligned table: lesion, rule, value, threshold, status, message."""
    lines = [["lesion", "rule", "value", "threshold", "status", "message"]]
    for check in checks:
        number = ".2f" if check.unit in ("mL", "SUV") else ".3g"
        if check.unit == "" and check.rule in ("necrotic", "calcified", "outside_bone"):
            value, limit = cell(check.value, ".1%"), cell(check.threshold, ".0%")
        else:
            value = cell(check.value, number) + (f" {check.unit}" if check.unit else "")
            limit = cell(check.threshold, number)
        lesion = "patient" if check.lesion is None else str(check.lesion)
        lines.append([lesion, check.rule, value, limit, check.status, check.message])
    return align(lines, left=(1, 4, 5))


def run(args: argparse.Namespace) -> int:
    import dataclasses

    import SimpleITK as sitk

    from BoneOligoMetLib.io.images import read_image, write_image
    from BoneOligoMetLib.io.suv import read_suv_image
    from BoneOligoMetLib.io.tables import write_csv
    from BoneOligoMetLib.lesions.parts import include_parts
    from BoneOligoMetLib.lesions.rules import assess_lesions, fill_holes

    ct = read_image(args.ct, pixel_type=sitk.sitkFloat32)
    suv = read_suv_image(args.pet)
    lesions = read_image(args.lesions)
    with progress_bar("check") as progress:
        report = assess_lesions(
            ct,
            suv,
            lesions,
            liver_seed_lps=to_lps(args.liver_seed, args.ras),
            progress=progress,
        )
    print(format_checks(report.checks))
    counts = {s: sum(c.status == s for c in report.checks) for s in ("pass", "warn", "fail")}
    print(", ".join(f"{n} {s}" for s, n in counts.items()))
    if args.output:
        write_csv([dataclasses.asdict(c) for c in report.checks], args.output)
        print(f"wrote {len(report.checks)} checks to {args.output}")
    if args.fill_holes:
        print(f"wrote {write_image(fill_holes(lesions), args.fill_holes)} (holes filled)")
    if args.include_parts:
        added = include_parts(lesions, list(report.parts.values()))
        print(f"wrote {write_image(added, args.include_parts)} (parts over 10% included)")
    return 0
