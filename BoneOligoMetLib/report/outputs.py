"""A training run's outputs: the CSVs and report.html in one folder."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union

from BoneOligoMetLib.io.tables import write_csv
from BoneOligoMetLib.models.study_grid import GridResult
from BoneOligoMetLib.report.html import render_html
from BoneOligoMetLib.report.tables import characteristics

log = logging.getLogger(__name__)

PREDICTION_COLUMNS = (
    "patient_id",
    "lesion_label",
    "label",
    "set",
    "model",
    "classifier",
    "probability",
    "threshold",
    "fold",
)


DELONG_COLUMNS = (
    "set",
    "model",
    "model_name",
    "classifier",
    "classifier_name",
    "reference_model",
    "reference_classifier",
    "auc_model",
    "auc_reference",
    "difference",
    "difference_low",
    "difference_high",
    "z",
    "p_value",
    "n_cases",
    "n_controls",
)


def write_outputs(
    result: GridResult,
    out_dir: Union[str, Path],
    *,
    classifier: Optional[str] = None,
    data_label: Optional[str] = None,
    reported: Optional[Sequence[dict[str, Any]]] = None,
) -> dict[str, Path]:
    """Write the CSVs and ``report.html`` into ``out_dir``; their paths by name.

    ``classifier``: the one whose curves the figures show (default RF when it was run).
    ``data_label``: how the report names our data (default "synthetic data" for the phantom's
    patient ids BOM0001…, else "your data").
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / f"{name}.csv" for name in ("metrics", "delong", "selected_features")}
    paths["predictions"] = out / "predictions.csv"
    write_csv(result.metrics_rows(), paths["metrics"])
    write_csv(result.delong, paths["delong"], DELONG_COLUMNS)
    selected = result.selected_rows()
    write_csv(
        selected,
        paths["selected_features"],
        list(selected[0]) if selected else ("model", "fit", "lambda", "rank", "feature"),
    )
    write_csv(result.prediction_rows(), paths["predictions"], PREDICTION_COLUMNS)
    tables = {by: characteristics(result, by) for by in ("label", "set")}
    if tables["label"] is not None:
        paths["characteristics"] = out / "characteristics.csv"
        tables["label"].to_csv(paths["characteristics"])
    if tables["set"] is not None:
        paths["characteristics_by_set"] = out / "characteristics_by_set.csv"
        tables["set"].to_csv(paths["characteristics_by_set"])
    text = render_html(
        result,
        classifier=classifier,
        data_label=data_label,
        reported=reported,
        characteristics_tables=tables,
        files=sorted(p.name for p in paths.values()),
    )
    paths["report"] = out / "report.html"
    paths["report"].write_text(text, encoding="utf-8")
    return paths
