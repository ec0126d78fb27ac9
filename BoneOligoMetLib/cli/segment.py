"""``bone-oligomet segment``: lesions grown from seed points (SUV ≥ 2.2 within bone, §2.3)."""

from __future__ import annotations

import argparse
import sys

from BoneOligoMetLib.cli._common import align, cell, parse_point, progress_bar, to_lps
from BoneOligoMetLib.protocol import SUV_THRESHOLD

HELP = "segment bone lesions from seed points: SUV ≥ 2.2 region within bone (§2.3)"
OUTPUTS = {"output": "image"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ct", required=True, help="CT in HU (NIfTI/NRRD or DICOM folder)")
    parser.add_argument(
        "--pet", required=True, help="PET: an SUV image, or a PET DICOM folder (converted to SUVbw)"
    )
    parser.add_argument(
        "--seed",
        required=True,
        action="append",
        type=parse_point,
        metavar="X,Y,Z",
        help="a point on the lesion, mm (LPS unless --ras), e.g. -12,80,40; repeat for several",
    )
    parser.add_argument("--ras", action="store_true", help="seeds are Slicer RAS, not ITK LPS")
    parser.add_argument(
        "--radius", type=float, default=30.0, help="search radius around each seed, mm (30)"
    )
    threshold = parser.add_mutually_exclusive_group()
    threshold.add_argument(
        "--threshold", type=float, default=SUV_THRESHOLD, help="absolute SUV threshold (2.2, §2.3)"
    )
    threshold.add_argument(
        "--relative",
        type=float,
        metavar="FRACTION",
        help="relative threshold instead: this fraction of the local SUVmax (e.g. 0.41)",
    )
    parser.add_argument(
        "--background",
        action="store_true",
        help="with --relative: a fraction of the contrast over the marrow SUV, not of SUVmax",
    )
    parser.add_argument(
        "--floor",
        type=float,
        metavar="SUV",
        help="with --relative: never threshold below this SUV (e.g. 2.2)",
    )
    parser.add_argument(
        "--method",
        choices=("petct", "pet"),
        default="petct",
        help="petct (default): SUV ≥ --threshold defines the search region grown from the "
        "seed, the CT (departure from the patient's marrow) and the lesion's own PET contrast "
        "draw the border within 12 mm of it (§2.3: PET and CT where borders are unclear); "
        "pet: the plain SUV ≥ --threshold (or --relative) region",
    )
    parser.add_argument(
        "--mapping",
        choices=("linear", "nearest"),
        default="linear",
        help="SUV onto the CT grid: trilinear (default) or PET-voxel membership",
    )
    parser.add_argument(
        "-o", "--output", required=True, help="label image to write (CT grid, labels 1..n)"
    )


def run(args: argparse.Namespace) -> int:
    import SimpleITK as sitk

    from BoneOligoMetLib.errors import BoneOligoMetError
    from BoneOligoMetLib.io.images import read_image, write_image
    from BoneOligoMetLib.io.suv import read_suv_image
    from BoneOligoMetLib.lesions.segment import segment_lesions

    if args.relative is not None and args.method == "petct":
        raise BoneOligoMetError("--relative goes with --method pet")
    if args.relative is None and (args.background or args.floor is not None):
        raise BoneOligoMetError("--background and --floor go with --relative")
    ct = read_image(args.ct, pixel_type=sitk.sitkFloat32)
    suv = read_suv_image(args.pet)
    seeds = [to_lps(seed, args.ras) for seed in args.seed]
    with progress_bar("segment") as progress:
        result = segment_lesions(
            ct,
            suv,
            seeds,
            skip_failed=True,
            progress=progress,
            radius_mm=args.radius,
            threshold_suv=args.threshold,
            relative=args.relative,
            background=args.background,
            floor_suv=args.floor,
            mapping=args.mapping,
            method=args.method,
        )
    lines = [
        ["seed", "X,Y,Z (LPS mm)", "label", "vol_mL", "SUVmax", "thresh", "voxels", "ms", "note"]
    ]
    failed = []
    for number, outcome in enumerate(result.seeds, start=1):
        point = ",".join(f"{c:.1f}" for c in outcome.seed_lps_mm)
        lesion = outcome.lesion
        if lesion is None:
            lines.append([str(number), point, "-", "-", "-", "-", "-", "-", "failed (below)"])
            failed.append(f"seed {number}: {outcome.error}")
            continue
        notes = []
        if outcome.merged:
            notes.append(f"same lesion as label {outcome.label}: merged")
        if lesion.seed_distance_mm > 0:
            notes.append(f"region {lesion.seed_distance_mm:.0f} mm from seed")
        if lesion.reaches_radius:
            notes.append("reaches the search radius: increase --radius")
        lines.append(
            [
                str(number),
                point,
                cell(outcome.label),
                cell(lesion.volume_ml, ".2f"),
                cell(lesion.suv_max, ".2f"),
                cell(lesion.threshold_suv, ".2f"),
                cell(lesion.voxel_count),
                cell(1000 * lesion.seconds, ".0f"),
                "; ".join(notes),
            ]
        )
    print(align(lines, left=(1, 8)))
    for message in failed:
        print(message, file=sys.stderr)
    labels = sorted({o.label for o in result.seeds if o.label is not None})
    if not labels:
        raise BoneOligoMetError(f"no lesion segmented from {len(seeds)} seed(s); nothing written")
    path = write_image(result.labels, args.output)
    print(f"wrote {len(labels)} lesion(s) to {path}")
    return 0
