"""``bone-oligomet extract``: every lesion of a cohort manifest into one feature table."""

from __future__ import annotations

import argparse
import sys

HELP = "features of every lesion of a cohort manifest into one table (resumable, parallel, Dask)"


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--manifest", required=True, help="cohort CSV, one row per lesion (docs/cohort_manifest.md)"
    )
    parser.add_argument(
        "--out", required=True, help="table: .parquet (default) or .csv; parts go to OUT.parts/"
    )
    parser.add_argument(
        "--workers", type=_workers, default=1, metavar="N", help="local processes (1: this process)"
    )
    parser.add_argument(
        "--scheduler", metavar="ADDRESS", help="Dask distributed scheduler, e.g. tcp://host:8786"
    )
    parser.add_argument(
        "--images", type=_names, default=("ct", "pet", "petct"), metavar="LIST",
        help="radiomics images (default ct,pet,petct)",
    )  # fmt: skip
    for image in ("ct", "pet", "petct"):
        parser.add_argument(
            f"--{image}-params", default=image, metavar="P",
            help=f"{image} params: YAML path or packaged name (default {image})",
        )  # fmt: skip
    parser.add_argument(
        "--filters", type=_names, default=(), metavar="LIST",
        help="extra image types for every image: LoG (sigma 1,3,5 mm), Wavelet",
    )  # fmt: skip
    parser.add_argument(
        "--fusion-alpha", type=float, metavar="A", help="CT weight of the fused image (0.5)"
    )
    parser.add_argument("--no-metabolic", action="store_true", help="no met_* columns")
    parser.add_argument(
        "--deep", metavar="DIR", help="deep-feature networks (train-deep's folder): dl_* columns"
    )
    parser.add_argument(
        "--margin", type=float, default=0.0, metavar="MM", help="least crop margin, mm"
    )
    parser.add_argument(
        "--from-dicom", action="store_true", help="read ct_dicom/pet_dicom where both are given"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except KeyboardInterrupt as stop:  # Ctrl-C: the pool has stopped; one line, exit 130
        from BoneOligoMetLib.errors import ExtractionInterrupted
        from BoneOligoMetLib.features.cohort import output_paths

        parts = output_paths(args.out)["parts"]
        if isinstance(stop, ExtractionInterrupted):
            kept = f"{stop.kept} of {stop.total} lesion(s) kept in {parts}/"
        else:
            kept = f"finished lesions are kept in {parts}/"
        print(
            f"bone-oligomet extract: interrupted: {kept}; the same command again resumes",
            file=sys.stderr,
        )
        return 130


def _run(args: argparse.Namespace) -> int:
    import os

    # Parallelism comes from workers; an all-core BLAS pool per process only spins (set before
    # numpy loads; the user's own setting wins).
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    from BoneOligoMetLib.cli._common import progress_bar
    from BoneOligoMetLib.features.cohort import extract_cohort
    from BoneOligoMetLib.features.config import ExtractionConfig
    from BoneOligoMetLib.image.fusion import FusionConfig
    from BoneOligoMetLib.io.manifest import read_manifest

    config = ExtractionConfig(
        images=args.images,
        ct_params=args.ct_params,
        pet_params=args.pet_params,
        petct_params=args.petct_params,
        filters=args.filters,
        fusion=None if args.fusion_alpha is None else FusionConfig(alpha=args.fusion_alpha),
        margin_mm=args.margin,
        metabolic=not args.no_metabolic,
        deep_model=args.deep,
    )
    for image in config.images:  # a bad params file fails now, not in every worker
        config.params(image)
    manifest = read_manifest(args.manifest, prefer_dicom=args.from_dicom)
    bar = progress_bar("extract", manifest.n_lesions, "lesion", enabled=not args.no_progress)
    with bar as progress:
        summary = extract_cohort(
            manifest,
            args.out,
            config=config,
            workers=args.workers,
            scheduler=args.scheduler,
            progress=progress,
        )
    print(
        f"{summary.n_lesions} lesion(s): {summary.n_computed} computed, {summary.n_reused} "
        f"reused, {summary.n_failed} failed, in {summary.seconds:.1f} s"
    )
    if summary.table:
        print(f"table: {summary.table} ({summary.n_ok} rows × {summary.n_columns} columns)")
    if summary.errors:
        print(f"errors: {summary.errors}")
    if summary.icc:
        print(f"reader agreement (ICC per feature): {summary.icc}")
    return 1 if summary.n_failed else 0
