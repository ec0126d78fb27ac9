"""``bone-oligomet train``: fit and evaluate the study's model grid on a feature table."""

from __future__ import annotations

import argparse
from typing import Any

from BoneOligoMetLib.protocol import TEST_FRACTION

HELP = "fit and evaluate the study's models (groups × classifiers) on a feature table"
OUTPUTS = {"out": "folder"}


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--features", required=True, metavar="TABLE", help="feature table (.parquet/.csv)"
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="run folder (report, CSVs)")
    parser.add_argument(
        "--models",
        type=_names,
        metavar="LIST",
        help="comma-separated groups: ct, pet, petct, complex, dl_ct, dl_pet, dl_petct, "
        "dl_complex, dlr, dlr_complex (default: every group the table's columns allow)",
    )
    parser.add_argument(
        "--classifiers",
        type=_names,
        metavar="LIST",
        help="comma-separated: rf, svm, et, knn, lr, dt, xgboost, lightgbm, svm+knn "
        "(default: the study's eight; rf,lr with --small)",
    )
    parser.add_argument(
        "--test-fraction",
        type=float,
        default=TEST_FRACTION,
        metavar="F",
        help="share of lesions in the test set, split by patient (default 0.3: the study's 7:3)",
    )
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="split/model seed")
    parser.add_argument(
        "--cv",
        type=int,
        default=0,
        metavar="K",
        help="patient-grouped K-fold CV instead of one split (pooled held-out predictions)",
    )
    parser.add_argument(
        "--external",
        metavar="TABLE",
        help="a second feature table as the test set; models are fitted on all of --features",
    )
    parser.add_argument(
        "--small",
        action="store_true",
        help="fast config for CI: RF (100 trees) + LR, 20 LASSO λ, 3 threshold folds",
    )
    parser.add_argument(
        "--bootstrap", action="store_true", help="also bootstrap AUC CIs (2000 replicates)"
    )
    parser.add_argument("--reader", metavar="R", help="reader whose delineations to use")
    parser.add_argument(
        "--plot-classifier",
        metavar="NAME",
        help="classifier the report's figures show (default rf when run)",
    )
    parser.add_argument(
        "--data-label",
        metavar="TEXT",
        help='how the report names the data (default "synthetic data" for phantom ids)',
    )


def _format_row(row: dict[str, Any], reference: bool) -> list[str]:
    from BoneOligoMetLib.cli._common import cell

    def ci(name: str) -> str:
        return f"{cell(row[name], '.3f')} [{cell(row[f'{name}_low'], '.2f')}–" + (
            f"{cell(row[f'{name}_high'], '.2f')}]"
        )

    p = row.get("delong_p_vs_reference")
    return [
        row["model_name"],
        row["classifier_name"],
        ci("auc"),
        cell(row["sensitivity"], ".3f"),
        cell(row["specificity"], ".3f"),
        "ref" if reference else "-" if p is None else ("<0.001" if p < 0.001 else f"{p:.3f}"),
    ]


def run(args: argparse.Namespace) -> int:
    import logging
    import warnings
    from pathlib import Path

    from BoneOligoMetLib.cli._common import align, progress_bar
    from BoneOligoMetLib.models.fit import ModelConfig
    from BoneOligoMetLib.models.groups import group_name
    from BoneOligoMetLib.models.study_grid import run_grid
    from BoneOligoMetLib.models.table import FeatureTable
    from BoneOligoMetLib.report.outputs import write_outputs

    table = FeatureTable.read(args.features, reader=args.reader)
    external = FeatureTable.read(args.external, reader=args.reader) if args.external else None
    config = ModelConfig.small() if args.small else ModelConfig()
    if args.bootstrap:
        from dataclasses import replace

        config = replace(config, bootstrap=True)

    # Fitting warnings (LASSO convergence, selection keeping its best feature in a small
    # out-of-fold training set) are counted; -v shows them.
    library = logging.getLogger("BoneOligoMetLib")
    counted: list[logging.LogRecord] = []

    class _Count(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            counted.append(record)

    handler = _Count(logging.WARNING)
    quiet = not args.verbose
    if quiet:
        library.addHandler(handler)
        library.propagate = False
    try:
        with warnings.catch_warnings(record=quiet) as caught:
            if not quiet:
                warnings.simplefilter("default")
            with progress_bar("train") as progress:
                result = run_grid(
                    table,
                    args.models,
                    args.classifiers,
                    config=config,
                    test_fraction=args.test_fraction,
                    seed=args.seed,
                    cv=args.cv,
                    external=external,
                    progress=progress,
                )
            paths = write_outputs(
                result, args.out, classifier=args.plot_classifier, data_label=args.data_label
            )
    finally:
        if quiet:
            library.removeHandler(handler)
            library.propagate = True

    rows = [r for r in result.metrics_rows() if r["set"] == result.primary]
    reference = group_name(result.reference) if result.reference else "reference"
    header = ["model", "classifier", f"{result.primary} AUC [95% CI]", "sens", "spec"]
    header.append(f"DeLong p vs {reference}")
    lines = [_format_row(r, r["model"] == result.reference) for r in rows]
    print(align([header, *lines], left=(0, 1)))
    for note in result.notes:
        print(f"note: {note}")
    for group, classifier, message in result.failed:
        print(f"not fitted: {group_name(group)} / {classifier}: {message}")
    n_warnings = len(counted) + len(caught or [])
    if n_warnings:
        print(f"{n_warnings} fitting warning(s) (LASSO convergence, small folds); -v shows them")
    print(f"report: {Path(paths['report']).resolve()}")
    return 0
