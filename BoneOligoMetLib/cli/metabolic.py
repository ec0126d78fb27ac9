"""``bone-oligomet metabolic``: SUVmax/mean/peak, MTV, TLG, liver ratio and HU per lesion."""

from __future__ import annotations

import argparse
import sys
from typing import Any

HELP = "metabolic parameters per lesion (SUVmax/mean/peak, MTV, TLG, liver ratio, HU)"

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


def _point(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected X,Y,Z in mm (e.g. 12.5,-80,40), got {text!r}")
    return values  # type: ignore[return-value]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pet", required=True, help="SUV PET image (NIfTI/NRRD or DICOM folder)")
    parser.add_argument(
        "--lesions", required=True, help="lesion label image (one label per lesion, any grid)"
    )
    parser.add_argument("--ct", help="CT in HU (adds HU mean/std per lesion)")
    parser.add_argument(
        "--liver-seed",
        type=_point,
        metavar="X,Y,Z",
        help="centre of the 3 cm liver reference sphere, mm (LPS unless --ras); "
        "write --liver-seed=-12,80,40 when it starts with a minus sign",
    )
    parser.add_argument(
        "--ras", action="store_true", help="--liver-seed is in Slicer RAS, not ITK LPS"
    )
    parser.add_argument(
        "--liver-diameter", type=float, default=30.0, help="liver sphere diameter, mm (30)"
    )
    parser.add_argument(
        "--threshold", type=float, default=2.2, help="MTV/TLG SUV threshold (2.2, §2.3)"
    )
    parser.add_argument(
        "--weighting",
        choices=("partial", "centre"),
        default="partial",
        help="SUVpeak sphere voxel weights: partial volumes (default) or centre-in-sphere (IBSI)",
    )
    parser.add_argument("-o", "--output", help="write the table as CSV to this file")


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return format(value, fmt)


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows (``LesionMetabolics.as_row()``) as an aligned text table."""
    cells = [[title for title, _, _ in COLUMNS]]
    cells += [[_cell(row[key], fmt) for _, key, fmt in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in cells)


def write_csv(rows: list[dict[str, Any]], path: str) -> None:
    import csv
    from pathlib import Path

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})


def _progress(fraction: float, message: str) -> None:
    if sys.stderr.isatty():
        print(f"\r[{fraction:4.0%}] {message:<30}", end="", file=sys.stderr, flush=True)
        if fraction >= 1.0:
            print(file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    import SimpleITK as sitk

    from BoneOligoMetLib.coords import ras_to_lps
    from BoneOligoMetLib.image_io import read_image
    from BoneOligoMetLib.metabolic import metabolic_table

    suv = read_image(args.pet, pixel_type=sitk.sitkFloat32)
    lesions = read_image(args.lesions)
    ct = read_image(args.ct, pixel_type=sitk.sitkFloat32) if args.ct else None
    seed = args.liver_seed
    if seed is not None and args.ras:
        seed = ras_to_lps(seed)
    results = metabolic_table(
        suv,
        lesions,
        ct=ct,
        liver_seed_lps=seed,
        liver_diameter_mm=args.liver_diameter,
        threshold_suv=args.threshold,
        weighting=args.weighting,
        progress=_progress,
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
