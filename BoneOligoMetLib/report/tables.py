"""The HTML tables of the training report (``report.html``): run settings, the cohort and its
Table-1 characteristics, the study's Tables 2–4 with this run's numbers beside the published
ones, the grid of models × classifiers, the DeLong tests and the selected features. Each takes
a :class:`~BoneOligoMetLib.models.study_grid.GridResult` and returns an HTML fragment for
:mod:`.html` to place on the page; :func:`characteristics` also feeds the CSVs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np

from BoneOligoMetLib.errors import ClassifierError
from BoneOligoMetLib.models.characteristics import cohort_characteristics
from BoneOligoMetLib.models.classifiers import classifier_key
from BoneOligoMetLib.models.groups import BASELINE, GROUPS, group_name
from BoneOligoMetLib.models.study_grid import GridResult, ModelRun
from BoneOligoMetLib.report.figures import SET_TITLES, classifier_name
from BoneOligoMetLib.report.format import _ci, _esc, _num, _p, _table
from BoneOligoMetLib.report.study import STUDY_TABLES

log = logging.getLogger(__name__)


def settings_table(result: GridResult, classifier: str) -> str:
    """How the run was set up: evaluation mode, models, classifiers, thresholds, settings."""
    config = result.config
    if result.mode == "split":
        mode = (
            f"7:3-type patient split: test fraction {result.test_fraction:g}, seed {result.seed}, "
            "stratified by label, grouped by patient"
        )
    elif result.mode == "cv":
        mode = f"{result.folds}-fold patient-grouped CV (seed {result.seed}), pooled predictions"
    else:
        mode = (
            f"fitted on all of {result.table.source}, tested on "
            f"{result.external.source if result.external else ''}"
        )
    thresholds = sorted(
        {f.threshold_method for r in result.runs.values() for f in r.fitted if r.group != BASELINE}
    )
    items = [
        ("feature table", result.table.source),
        ("evaluation", mode),
        ("models", ", ".join(group_name(g) for g in result.groups)),
        ("classifiers", ", ".join(classifier_name(c) for c in result.classifiers)),
        ("figures show", classifier_name(classifier)),
        ("reference for DeLong", group_name(result.reference) if result.reference else "none"),
        ("threshold", "; ".join(thresholds) or "–"),
        ("AUC CI", "DeLong" + (" and percentile bootstrap" if config.bootstrap else "")),
        ("LASSO λ path", str(config.lasso_alphas or "default (100 linear / 50 logistic)")),
        (
            "classifier settings",
            "; ".join(f"{k}: {dict(v)}" for k, v in config.classifier_params.items()) or "defaults",
        ),
    ]
    return _table(["setting", "value"], items, "settings-table")


def cohort_table(result: GridResult) -> str:
    """Patients, lesions, benign and malignant per set."""
    rows = []
    sets = {"all": np.arange(len(result.table))}
    if result.mode == "split":
        sets.update(training=result.split["train"], test=result.split["test"])
    for name, index in sets.items():
        y = result.table.y[index]
        patients = len(np.unique(result.table.patients[index]))
        rows.append([name, patients, y.size, int((y == 0).sum()), int(y.sum())])
    if result.external is not None:
        ext = result.external
        rows.append(
            ["external", ext.n_patients, len(ext), int((ext.y == 0).sum()), int(ext.y.sum())]
        )
    return _table(["set", "patients", "lesions", "benign", "malignant"], rows, "cohort-table")


# Table-1 variables besides the clin_* columns (those present are used).
METABOLIC_CHARACTERISTICS = (
    "met_suv_max",
    "met_suv_mean",
    "met_suv_peak",
    "met_mtv_ml",
    "met_tlg",
    "met_suv_max_liver_ratio",
)


def characteristics(result: GridResult, by: str = "label") -> Any:
    """Table-1-like characteristics (characteristics.CohortTable) of the lesions, by "label"
    (benign vs malignant) or by "set" (training vs test of a split). None when nothing can be
    compared."""

    table = result.table
    variables = [c for c in table.columns if c.startswith("clin_")]
    variables += [c for c in METABOLIC_CHARACTERISTICS if c in table.columns]
    if not variables:
        return None
    if by == "label":
        groups = ["benign", "malignant"]
        group_of = ["malignant" if y else "benign" for y in table.y]
    elif by == "set" and "test" in result.split:
        groups = ["training set", "test set"]  # not "test": CohortTable has a "test" column
        test = set(result.split["test"].tolist())
        group_of = ["test set" if i in test else "training set" for i in range(len(table))]
    else:
        return None
    rows = [
        {"group": g, **{v: row.get(v) for v in variables}} for g, row in zip(group_of, table.rows)
    ]
    if by == "set":
        for row, y in zip(rows, table.y):
            row["label"] = "malignant" if y else "benign"
        variables = [*variables, "label"]
    try:
        return cohort_characteristics(rows, "group", variables, groups=groups)
    except ValueError as error:
        log.warning("characteristics by %s not computed: %s", by, error)
        return None


def characteristics_table(table: Any, table_id: str) -> str:
    """A :func:`characteristics` table as HTML, or a note when there is none."""
    if table is None:
        return "<p class=note>No clinical or metabolic columns to compare.</p>"

    def shown(column: str, value: Any) -> Any:
        if column == "p":
            return _p(value) if value is not None else ""
        if isinstance(value, float):
            return _num(value, 2)
        return "" if value is None else value

    rows = [[shown(c, row.get(c)) for c in table.columns] for row in table.rows]
    return _table(table.columns, rows, table_id)


def study_tables(
    result: GridResult, classifier: str, data_label: str, reported: Sequence[dict[str, Any]]
) -> str:
    """The study's Tables 2–4: each published row beside this run's model of that row."""
    by_study = {(g.table, g.study_row): key for key, g in GROUPS.items()}
    primary = SET_TITLES[result.primary]
    parts = []
    for number, title in STUDY_TABLES.items():
        rows = [r for r in reported if r["table"] == number]
        header = (
            "<tr><th rowspan=2>model</th>"
            "<th class=published colspan=5>published study (94 test lesions, lesion split)</th>"
            f"<th class=ours colspan=6>this run, {_esc(data_label)} ({_esc(primary)}, "
            "patient split)</th></tr><tr>"
            + "".join(
                f"<th class=published>{h}</th>"
                for h in ("classifier", "AUC", "sensitivity", "specificity", "accuracy")
            )
            + "".join(
                f"<th class=ours>{h}</th>"
                for h in (
                    "classifier",
                    "AUC [95% CI]",
                    "sensitivity",
                    "specificity",
                    "accuracy",
                    f"DeLong p vs {group_name(result.reference) if result.reference else '–'}",
                )
            )
            + "</tr>"
        )
        body = []
        for row in rows:
            key = by_study.get((number, row["modality_or_backbone"]))
            published = [
                row["classifier"],
                _num(row["auc"]),
                _ci(row["sensitivity"], row["sens_ci_low"], row["sens_ci_high"]),
                _ci(row["specificity"], row["spec_ci_low"], row["spec_ci_high"]),
                _ci(row["accuracy"], row["acc_ci_low"], row["acc_ci_high"]),
            ]
            try:
                study_classifier = classifier_key(str(row["classifier"]))
            except ClassifierError:
                study_classifier = ""
            ours_classifier = study_classifier if study_classifier in result.classifiers else ""
            run = None
            if key is not None:
                run = result.run(key, ours_classifier or classifier)
            label = group_name(key) if key else f"{row['modality_or_backbone']} (backbone)"
            body.append(_study_row(result, label, published, run))
        if number == 4:
            baseline = result.baseline()
            if baseline is not None:
                body.append(_study_row(result, "SUVmax > liver (reader)", ["–"] * 5, baseline))
        parts.append(
            f'<h3>{_esc(title)}</h3><table id="study-table-{number}"><thead>{header}</thead>'
            f"<tbody>{''.join(body)}</tbody></table>"
        )
    return "".join(parts)


def _study_row(
    result: GridResult, label: str, published: list[str], run: Optional[ModelRun]
) -> str:
    cells = [f"<td>{_esc(label)}</td>"]
    cells += [f"<td class=published>{_esc(c)}</td>" for c in published]
    if run is None:
        ours = ["not in this run", "", "", "", "", ""]
    else:
        ev = run.evaluations[result.primary]
        m = ev.metrics
        ours = [
            classifier_name(run.classifier),
            _ci(ev.auc.auc, ev.auc.low, ev.auc.high),
            _ci(m.sensitivity.value, m.sensitivity.low, m.sensitivity.high),
            _ci(m.specificity.value, m.specificity.low, m.specificity.high),
            _ci(m.accuracy.value, m.accuracy.low, m.accuracy.high),
            _delong_cell(result, run),
        ]
    cells += [f"<td class=ours>{_esc(c)}</td>" for c in ours]
    return "<tr>" + "".join(cells) + "</tr>"


def _delong_cell(result: GridResult, run: ModelRun) -> str:
    if run.group == result.reference:
        return "reference"
    first = result.classifiers[0] if run.group == BASELINE else run.classifier
    for row in result.delong:
        if (
            row["set"] == result.primary
            and row["model"] == run.group
            and row["classifier"] == run.classifier
            and row["reference_classifier"] == first
        ):
            return _p(row["p_value"]) + (f" (vs {first.upper()})" if run.group == BASELINE else "")
    return "–"


def grid_table(result: GridResult) -> str:
    """Every model × classifier on the held-out set: AUC, metrics at the threshold, DeLong p."""
    header = [
        "model",
        "classifier",
        "AUC [95% CI]",
        "training AUC (OOF)",
        "threshold",
        "sensitivity",
        "specificity",
        "accuracy",
        "precision",
        "F1",
        "AP",
        "Brier",
        "DeLong p vs reference",
    ]
    rows = []
    for run in result.runs.values():
        ev = run.evaluations[result.primary]
        m = ev.metrics
        oof = run.evaluations.get("train_oof")
        rows.append(
            [
                group_name(run.group),
                classifier_name(run.classifier),
                _ci(ev.auc.auc, ev.auc.low, ev.auc.high),
                _num(oof.auc.auc) if oof else "–",
                "SUVmax/liver > 1" if run.group == BASELINE else _num(m.threshold),
                _ci(m.sensitivity.value, m.sensitivity.low, m.sensitivity.high),
                _ci(m.specificity.value, m.specificity.low, m.specificity.high),
                _ci(m.accuracy.value, m.accuracy.low, m.accuracy.high),
                _ci(m.precision.value, m.precision.low, m.precision.high),
                _ci(m.f1.value, m.f1.low, m.f1.high),
                _num(m.average_precision),
                _num(m.brier),
                _delong_cell(result, run),
            ]
        )
    return _table(header, rows, "grid-table")


def delong_table(result: GridResult) -> str:
    """Each paired DeLong test against the reference."""
    header = ["model", "classifier", "AUC", "reference AUC", "difference [95% CI]", "z", "p"]
    rows = [
        [
            d["model_name"],
            d["classifier_name"]
            + (f" (vs {d['reference_classifier']})" if d["model"] == BASELINE else ""),
            _num(d["auc_model"]),
            _num(d["auc_reference"]),
            _ci(d["difference"], d["difference_low"], d["difference_high"]),
            _num(d["z"], 2),
            _p(d["p_value"]),
        ]
        for d in result.delong
    ]
    return _table(header, rows, "delong-table")


def selection_tables(result: GridResult) -> str:
    """Per group, the features its selection kept (first fit) with their LASSO coefficients."""
    parts = []
    seen = set()
    for run in result.runs.values():
        if run.group == BASELINE or run.group in seen:
            continue
        seen.add(run.group)
        fitted = run.fitted[0]
        counts = ", ".join(f"{k} {v}" for k, v in fitted.selection_counts.items())
        ranked = sorted(fitted.selected, key=lambda item: -abs(item[1]))
        fit = "training set" if len(run.fitted) == 1 else f"fold 1 of {len(run.fitted)}"
        parts.append(
            f"<h3>{_esc(group_name(run.group))}</h3><p class=note>Stage "
            f"{_esc(GROUPS[run.group].stage)}; fitted on the {fit}; λ = "
            f"{fitted.lasso_lambda:.4g}; features after each step: {_esc(counts)}.</p>"
        )
        rows = [[i, name, f"{c:+.4f}"] for i, (name, c) in enumerate(ranked, start=1)]
        parts.append(_table(["rank", "feature", "LASSO coefficient (per SD)"], rows))
    return f'<div id="selected-features">{"".join(parts)}</div>'
