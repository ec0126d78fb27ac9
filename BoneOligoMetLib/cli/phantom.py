"""``bone-oligomet phantom``: synthetic PET/CT patients with bone lesions and a cohort manifest."""

from __future__ import annotations

import argparse

HELP = "generate synthetic PET/CT patients with bone lesions (NIfTI, optional DICOM) and a manifest"
OUTPUTS = {"out": "folder"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--patients", type=int, default=1, metavar="N", help="number of patients")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    parser.add_argument(
        "--preset",
        choices=("small", "full"),
        default="small",
        help="small: 2 mm CT / 4 mm PET over the pelvis–lower chest (tests); "
        "full: GE Discovery 512×512 CT, 192×192 PET, mid-femur to vertex",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--dicom", action="store_true", help="also write DICOM CT and PET series")
    parser.add_argument(
        "--workers", type=int, default=None, metavar="W", help="processes (default min(2, CPUs))"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--png", action="store_true", help="also save a fused PET/CT slice per patient (fused.png)"
    )


def run(args: argparse.Namespace) -> int:
    import csv
    from pathlib import Path

    from BoneOligoMetLib.errors import BoneOligoMetError
    from BoneOligoMetLib.synthetic.phantom import generate_cohort

    if args.patients < 1:
        raise BoneOligoMetError(f"--patients {args.patients}: give at least 1")
    manifest = generate_cohort(
        args.patients,
        args.seed,
        args.out,
        preset=args.preset,
        dicom=args.dicom,
        workers=args.workers,
        progress=not args.no_progress,
    )
    with open(manifest, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if args.png:
        _write_pngs(Path(args.out), rows)
    n_malignant = sum(int(row["label"]) for row in rows)
    print(
        f"{args.patients} patient(s), {len(rows)} lesion(s) ({n_malignant} malignant, "
        f"{len(rows) - n_malignant} benign) in {args.out}; manifest: {manifest}"
    )
    return 0


def _write_pngs(out_dir, rows) -> None:
    from BoneOligoMetLib.io.images import read_image
    from BoneOligoMetLib.synthetic.phantom import fused_slice_png

    first = {}
    for row in rows:
        first.setdefault(row["patient_id"], row)
    for row in first.values():
        folder = (out_dir / row["ct"]).parent
        fused_slice_png(
            read_image(out_dir / row["ct"]),
            read_image(out_dir / row["suv"]),
            read_image(out_dir / row["lesions"]),
            folder / "fused.png",
            label=int(row["lesion_label"]),
            title=f"{row['patient_id']} lesion {row['lesion_label']}: {row['lesion_type']}",
        )
