"""``bone-oligomet metabolic``: SUVmax/mean/peak, MTV, TLG, liver ratio and HU per lesion."""

from __future__ import annotations

import argparse
from typing import Any

from BoneOligoMetLib.cli._common import align, cell, parse_point, progress_bar, to_lps
from BoneOligoMetLib.protocol import LIVER_SPHERE_DIAMETER_MM, SUV_THRESHOLD

HELP = "metabolic parameters per lesion (SUVmax/mean/peak, MTV, TLG, liver ratio, HU)"
OUTPUTS = {"output": "file"}

# (column title, as_row key, format) of the printed table.
COLUMNS = (
    ("label", "lesion_label", "d"),
    ("SUVmax", "met_suv_max", ".2f"),
    ("SUVmean", "met_suv_mean", ".2f"),
    ("SUVmin", "met_suv_min", ".2f"),
    ("SUVsd", "met_suv_std", ".2f"),
    ("SUVpeak", "met_suv_peak", ".2f"),
    ("peakLoc", "met_suv_peak_local", ".2f"),
    ("MTV_mL", "met_mtv_ml", ".2f"),
    ("TLG", "met_tlg", ".2f"),
    ("vol_mL", "met_volume_ml", ".2f"),
    ("HUmean", "met_hu_mean", ".0f"),
    ("HUsd", "met_hu_std", ".0f"),
    ("max/liver", "met_suv_max_liver_ratio", ".2f"),
    ("avid", "met_fdg_avid", ""),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pet", required=True, help="PET: an SUV image, or a PET DICOM folder (converted to SUVbw)"
    )
    parser.add_argument(
        "--lesions", required=True, help="lesion label image (one label per lesion, any grid)"
    )
    parser.add_argument("--ct", help="CT in HU (adds HU mean/std per lesion)")
    parser.add_argument(
        "--liver-seed",
        type=parse_point,
        metavar="X,Y,Z",
        help="centre of the 3 cm liver reference sphere, mm (LPS unless --ras), e.g. -50,-10,245",
    )
    parser.add_argument(
        "--ras", action="store_true", help="--liver-seed is in Slicer RAS, not ITK LPS"
    )
    parser.add_argument(
        "--liver-diameter",
        type=float,
        default=LIVER_SPHERE_DIAMETER_MM,
        help="liver sphere diameter, mm (30, §2.3)",
    )
    parser.add_argument(
        "--threshold", type=float, default=SUV_THRESHOLD, help="MTV/TLG SUV threshold (2.2, §2.3)"
    )
    parser.add_argument(
        "--weighting",
        choices=("partial", "centre"),
        default="partial",
        help="SUVpeak sphere voxel weights: partial volumes (default) or centre-in-sphere (IBSI)",
    )
    parser.add_argument("-o", "--output", help="write the table as CSV to this file")


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows (``LesionMetabolics.as_row()``) as an aligned text table."""
    cells = [[title for title, _, _ in COLUMNS]]
    cells += [[cell(row[key], fmt) for _, key, fmt in COLUMNS] for row in rows]
    return align(cells)


def run(args: argparse.Namespace) -> int:
    import SimpleITK as sitk

    from BoneOligoMetLib.io.images import read_image
    from BoneOligoMetLib.io.suv import read_suv_image
    from BoneOligoMetLib.io.tables import write_csv
    from BoneOligoMetLib.lesions.metabolic import metabolic_table

    suv = read_suv_image(args.pet)
    lesions = read_image(args.lesions)
    ct = read_image(args.ct, pixel_type=sitk.sitkFloat32) if args.ct else None
    seed = to_lps(args.liver_seed, args.ras)
    with progress_bar("metabolic") as progress:
        results = metabolic_table(
            suv,
            lesions,
            ct=ct,
            liver_seed_lps=seed,
            liver_diameter_mm=args.liver_diameter,
            threshold_suv=args.threshold,
            weighting=args.weighting,
            progress=progress,
        )
    rows = [result.as_row() for result in results]
    if seed is not None:
        point = ", ".join(f"{c:.1f}" for c in seed)
        print(
            f"liver reference: SUVmean {results[0].liver_suv_mean:.2f} in a "
            f"{args.liver_diameter:g} mm sphere at ({point}) mm LPS"
        )
    print(format_table(rows))
    if args.output:
        write_csv(rows, args.output)
        print(f"wrote {len(rows)} lesion(s) to {args.output}")
    return 0
