"""``bone-oligomet candidates``: candidate bone lesions over the whole body, ranked, for a reader
to accept or delete (automatic proposals; the ranking is trained on synthetic patients)."""

from __future__ import annotations

import argparse

HELP = "propose candidate bone lesions over the whole body, ranked (a reader must confirm them)"
OUTPUTS = {"output": "file", "labels": "image"}
COLUMNS = ("rank", "x", "y", "z", "suvmax", "volume_ml", "site", "score", "why", "source")


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 0, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ct", required=True, help="CT in HU (NIfTI/NRRD or DICOM folder)")
    parser.add_argument(
        "--pet", required=True, help="PET as SUV image, or a PET DICOM folder (converted to SUV)"
    )
    parser.add_argument(
        "-o", "--output", required=True, help="candidates table to write (.csv; LPS mm)"
    )
    parser.add_argument(
        "--max", type=_count, metavar="N", help="at most N candidates (the best ranked)"
    )
    parser.add_argument(
        "--labels", metavar="IMAGE", help="also write the candidates' grown ROIs (label = rank)"
    )
    parser.add_argument(
        "--model", metavar="JSON", help="ranking model (default: the packaged synthetic one)"
    )


def write_table(rows, path: str) -> None:
    """The candidates' rows as CSV (a header alone when there is none)."""
    from BoneOligoMetLib.io.tables import write_csv

    write_csv(rows, path, COLUMNS)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from BoneOligoMetLib.cli._common import align, progress_bar
    from BoneOligoMetLib.errors import BoneOligoMetError
    from BoneOligoMetLib.io.images import read_image, write_image
    from BoneOligoMetLib.io.suv import read_suv_image
    from BoneOligoMetLib.lesions.candidate_ranking import load_ranking
    from BoneOligoMetLib.lesions.candidates import PROPOSAL_NOTE, candidate_rois, find_candidates

    if not args.output.lower().endswith(".csv"):  # before reading the images
        raise BoneOligoMetError(f"--output {args.output}: give a .csv file name")
    model = load_ranking(args.model)  # a bad model file fails before the images are read
    ct = read_image(args.ct, modality="CT" if Path(args.ct).is_dir() else None)
    suv = read_suv_image(args.pet)
    with progress_bar("candidates") as progress:
        found = find_candidates(ct, suv, max_candidates=args.max, model=model, progress=progress)
    rows = [candidate.row() for candidate in found.candidates]
    labels = None
    if args.labels:
        with progress_bar("ROIs") as progress:
            labels = candidate_rois(ct, suv, found, progress=progress)
    write_table(rows, args.output)
    if labels is not None:
        write_image(labels, args.labels)
    if rows:
        lines = [["rank", "X,Y,Z (LPS mm)", "SUVmax", "mL", "site", "score", "why"]]
        for row in rows:
            point = f"{row['x']:.1f},{row['y']:.1f},{row['z']:.1f}"
            lines.append([
                str(row["rank"]), point, f"{row['suvmax']:.2f}", f"{row['volume_ml']:.2f}",
                row["site"], f"{row['score']:.3f}", row["why"],
            ])  # fmt: skip
        print(align(lines, left=(1, 4, 6)))
    print(
        f"{len(rows)} candidate(s) of {len(found.scored)} foci scored "
        f"(score > {found.threshold:.3f}; marrow SUV {found.marrow_suv:.2f}; "
        f"{found.seconds:.1f} s): {args.output}"
    )
    if labels is not None:
        print(f"ROIs (label = rank): {args.labels}")
    print(f"note: {PROPOSAL_NOTE}; the ranking is trained on synthetic patients")
    return 0
