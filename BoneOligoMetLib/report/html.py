"""The run report of ``bone-oligomet train``: ``report.html`` (self-contained: inline CSS, figures
as inline base64 PNG, nothing fetched) and the CSVs beside it.

``write_outputs(result, out_dir)`` writes, for a :class:`~.models.study_grid.GridResult`:

- ``metrics.csv``: one row per model × classifier × set (train = resubstitution, train_oof =
  out-of-fold on the training patients, test / cv / external = held out), AUC with DeLong CI,
  the metrics at the training threshold with CIs, AP, Brier, DeLong p against the reference;
- ``delong.csv``: each paired DeLong test on the held-out lesions;
- ``selected_features.csv``: per model and fit, the LASSO-selected features, coefficients, λ;
- ``predictions.csv``: patient_id, lesion_label, label, set, model, classifier, probability,
  threshold, fold;
- ``characteristics.csv`` (by label; Table-1-like) and, for a split, ``characteristics_by_set.csv``
  (training vs test, the layout of the study's Table 1);
- ``report.html``: all of the above as tables, the study's Tables 2–4 with the published numbers
  beside ours, ROC curves (training and held-out), the AUC grid, PR curve with the operating
  point, confusion matrix, probability distributions, calibration and LASSO coefficients.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np

from BoneOligoMetLib.errors import ClassifierError
from BoneOligoMetLib.models.characteristics import cohort_characteristics
from BoneOligoMetLib.models.classifiers import classifier_key
from BoneOligoMetLib.models.groups import BASELINE, GROUPS, group_name
from BoneOligoMetLib.models.study_grid import GridResult, ModelRun
from BoneOligoMetLib.report.figures import (
    SET_TITLES,
    _auc_grid_figure,
    _calibration_figure,
    _classifier_label,
    _coefficients_figure,
    _confusion_figure,
    _distribution_figure,
    _figure,
    _pr_figure,
    _roc_figure,
)
from BoneOligoMetLib.report.format import _ci, _esc, _num, _p, _table
from BoneOligoMetLib.report.study import STUDY_TABLES, reported_results

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# CSV outputs


# ---------------------------------------------------------------------------------------------
# Formatting


def default_data_label(result: GridResult) -> str:
    if all(re.fullmatch(r"BOM\d{4}", str(p)) for p in result.table.patients):
        return "synthetic data"
    return "your data"


def chosen_classifier(result: GridResult, classifier: Optional[str] = None) -> str:
    if classifier:
        return classifier_key(classifier)
    return "rf" if "rf" in result.classifiers else result.classifiers[0]


def _focus(result: GridResult, classifier: str) -> Optional[ModelRun]:
    """The model the single-model figures show: the reference group, else the first fitted."""
    for group in [result.reference, *result.groups]:
        run = result.run(group, classifier) if group else None
        if run is not None:
            return run
    return None


# ---------------------------------------------------------------------------------------------
# Figures (matplotlib, Agg, inline PNG)


# ---------------------------------------------------------------------------------------------
# HTML

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1200px;color:#222;line-height:1.4;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.85em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:right}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}
.published{background:#fff7e6}.ours{background:#eaf4ff}
.banner{background:#fff3cd;border:1px solid #e0c068;padding:.6em 1em;margin:1em 0}
figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top}
figcaption{font-size:.8em;color:#555;max-width:560px}img{max-width:100%}
.note{font-size:.85em;color:#444}
"""


def _study_tables(
    result: GridResult, classifier: str, data_label: str, reported: Sequence[dict[str, Any]]
) -> str:

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
            _classifier_label(run.classifier),
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


def _grid_table(result: GridResult) -> str:
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
                _classifier_label(run.classifier),
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


def _delong_table(result: GridResult) -> str:
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


def _selection_tables(result: GridResult) -> str:
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


def _cohort_summary(result: GridResult) -> str:
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


def _characteristics_html(table: Any, table_id: str) -> str:
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


def _settings(result: GridResult, classifier: str) -> str:
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
        ("classifiers", ", ".join(_classifier_label(c) for c in result.classifiers)),
        ("figures show", _classifier_label(classifier)),
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


def render_html(
    result: GridResult,
    *,
    classifier: Optional[str] = None,
    data_label: Optional[str] = None,
    reported: Optional[Sequence[dict[str, Any]]] = None,
    characteristics_tables: Optional[dict[str, Any]] = None,
    files: Sequence[str] = (),
) -> str:
    """The report as one self-contained HTML string."""
    classifier = chosen_classifier(result, classifier)
    data_label = data_label or default_data_label(result)
    reported = list(reported) if reported is not None else reported_results()
    if characteristics_tables is None:
        characteristics_tables = {by: characteristics(result, by) for by in ("label", "set")}
    primary = SET_TITLES[result.primary]
    focus = _focus(result, classifier)
    sections = [
        "<h1>BoneOligoMet — models and evaluation</h1>",
        f'<div class="banner">Numbers labelled <b>this run</b> come from {_esc(data_label)} '
        f"({len(result.table)} lesions, {result.table.n_patients} patients) and a patient-level "
        "split. Numbers labelled <b>published study</b> are the study's Tables 2–4 as printed "
        "(312 real lesions, a lesion-level 7:3 split; some printed intervals do not contain their "
        "estimate). They stand side by side for orientation only, never as targets.</div>",
        "<h2>Run settings</h2>",
        _settings(result, classifier),
    ]
    notes = list(result.notes) + [
        f"{group_name(g)} / {_classifier_label(c)} not fitted: {m}" for g, c, m in result.failed
    ]
    if notes:
        sections.append(
            "<h3>Notes</h3><ul id=notes>" + "".join(f"<li>{_esc(n)}</li>" for n in notes) + "</ul>"
        )
    sections += [
        "<h2>Cohort</h2>",
        _cohort_summary(result),
        "<h3>Characteristics by label (Table 1 layout)</h3>",
        _characteristics_html(characteristics_tables.get("label"), "characteristics-label"),
    ]
    if characteristics_tables.get("set") is not None:
        sections += [
            "<h3>Characteristics, training vs test</h3>",
            _characteristics_html(characteristics_tables["set"], "characteristics-set"),
        ]
    sections += [
        f"<h2>The study's Tables 2–4 beside this run ({_esc(primary)})</h2>",
        "<p class=note>For each published row this run shows the same classifier when it was run, "
        f"else {_esc(_classifier_label(classifier))}; metrics at the threshold chosen on the "
        "training data; sensitivity, specificity and accuracy with Wilson 95% CIs; AUC with its "
        "DeLong 95% CI.</p>",
        _study_tables(result, classifier, data_label, reported),
        f"<h2>All models × classifiers ({_esc(primary)})</h2>",
        _grid_table(result),
        "<h2>Paired DeLong tests against the reference</h2>",
        _delong_table(result),
        "<h2>Figures</h2>",
    ]
    if result.runs:
        sections.append(
            _figure(
                "fig-roc",
                _roc_figure(result, classifier),
                f"ROC curves per model, {_classifier_label(classifier)}: training lesions "
                "(out-of-fold predictions) and held-out lesions; dashed: SUVmax > liver.",
            )
        )
        sections.append(
            _figure(
                "fig-auc-grid", _auc_grid_figure(result), f"AUC per model × classifier ({primary})."
            )
        )
    if focus is not None:
        title = f"{group_name(focus.group)} / {_classifier_label(focus.classifier)}"
        sections += [
            _figure(
                "fig-pr",
                _pr_figure(result, focus),
                f"Precision–recall curve, {title} ({primary}); dot: the training threshold.",
            ),
            _figure(
                "fig-confusion",
                _confusion_figure(result, focus),
                f"Confusion matrix, {title}, at the training threshold ({primary}).",
            ),
            _figure(
                "fig-distribution",
                _distribution_figure(result, focus),
                f"Predicted probabilities by true class, {title} ({primary}).",
            ),
            _figure(
                "fig-calibration",
                _calibration_figure(result, classifier),
                f"Calibration (reliability) curves, {_classifier_label(classifier)} ({primary}).",
            ),
        ]
        if focus.group != BASELINE and focus.fitted[0].selected:
            sections.append(
                _figure(
                    "fig-coefficients",
                    _coefficients_figure(focus),
                    f"LASSO coefficients of the features selected for {group_name(focus.group)}.",
                )
            )
    sections += [
        "<h2>Selected features and LASSO coefficients</h2>",
        "<p class=note>Selection is fitted on the training lesions only and does not depend on "
        "the classifier. Coefficients are per standard deviation of the feature.</p>",
        _selection_tables(result),
    ]
    if files:
        sections.append(
            "<h2>Files</h2><ul>" + "".join(f"<li>{_esc(f)}</li>" for f in files) + "</ul>"
        )
    body = "\n".join(sections)
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        "<title>BoneOligoMet run report</title>"
        f"<style>{CSS}</style></head><body>\n{body}\n</body></html>\n"
    )


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
