"""The page of ``report.html``, the report of ``bone-oligomet train``: self-contained (inline
CSS, figures as inline base64 PNG, nothing fetched), its sections in reading order — run
settings and notes, the cohort, the study's Tables 2–4 beside this run, all models ×
classifiers, the DeLong tests, the figures and the selected features. The tables are in
:mod:`.tables`, the figures in :mod:`.figures`; :mod:`.outputs` writes the page and the CSVs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Optional

from BoneOligoMetLib.models.classifiers import classifier_key
from BoneOligoMetLib.models.groups import BASELINE, classifier_name, group_name
from BoneOligoMetLib.models.study_grid import GridResult, ModelRun
from BoneOligoMetLib.report.figures import (
    SET_TITLES,
    _auc_grid_figure,
    _calibration_figure,
    _coefficients_figure,
    _confusion_figure,
    _distribution_figure,
    _figure,
    _pr_figure,
    _roc_figure,
)
from BoneOligoMetLib.report.format import _esc
from BoneOligoMetLib.report.study import reported_results
from BoneOligoMetLib.report.tables import (
    characteristics,
    characteristics_table,
    cohort_table,
    delong_table,
    grid_table,
    selection_tables,
    settings_table,
    study_tables,
)


def default_data_label(result: GridResult) -> str:
    """How the page names the data: "synthetic data" for the phantom's ids (BOM0001…), else
    "your data"."""
    if all(re.fullmatch(r"BOM\d{4}", str(p)) for p in result.table.patients):
        return "synthetic data"
    return "your data"


def chosen_classifier(result: GridResult, classifier: Optional[str] = None) -> str:
    """The classifier the figures show: the one asked for, else RF when it was run, else the
    first."""
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


def _introduction(result: GridResult, classifier: str, data_label: str) -> list[str]:
    """The title, the banner that sets this run's numbers apart from the published ones, the
    run settings and the notes."""
    sections = [
        "<h1>BoneOligoMet — models and evaluation</h1>",
        f'<div class="banner">Numbers labelled <b>this run</b> come from {_esc(data_label)} '
        f"({len(result.table)} lesions, {result.table.n_patients} patients) and a patient-level "
        "split. Numbers labelled <b>published study</b> are the study's Tables 2–4 as printed "
        "(312 real lesions, a lesion-level 7:3 split; some printed intervals do not contain their "
        "estimate). They stand side by side for orientation only, never as targets.</div>",
        "<h2>Run settings</h2>",
        settings_table(result, classifier),
    ]
    notes = list(result.notes) + [
        f"{group_name(g)} / {classifier_name(c)} not fitted: {m}" for g, c, m in result.failed
    ]
    if notes:
        sections.append(
            "<h3>Notes</h3><ul id=notes>" + "".join(f"<li>{_esc(n)}</li>" for n in notes) + "</ul>"
        )
    return sections


def _cohort(result: GridResult, characteristics_tables: dict[str, Any]) -> list[str]:
    """The cohort per set and its characteristics by label (and training vs test)."""
    sections = [
        "<h2>Cohort</h2>",
        cohort_table(result),
        "<h3>Characteristics by label (Table 1 layout)</h3>",
        characteristics_table(characteristics_tables.get("label"), "characteristics-label"),
    ]
    if characteristics_tables.get("set") is not None:
        sections += [
            "<h3>Characteristics, training vs test</h3>",
            characteristics_table(characteristics_tables["set"], "characteristics-set"),
        ]
    return sections


def _comparisons(
    result: GridResult, classifier: str, data_label: str, reported: Sequence[dict[str, Any]]
) -> list[str]:
    """The study's Tables 2–4 beside this run, all models × classifiers, the DeLong tests."""
    primary = SET_TITLES[result.primary]
    return [
        f"<h2>The study's Tables 2–4 beside this run ({_esc(primary)})</h2>",
        "<p class=note>For each published row this run shows the same classifier when it was run, "
        f"else {_esc(classifier_name(classifier))}; metrics at the threshold chosen on the "
        "training data; sensitivity, specificity and accuracy with Wilson 95% CIs; AUC with its "
        "DeLong 95% CI.</p>",
        study_tables(result, classifier, data_label, reported),
        f"<h2>All models × classifiers ({_esc(primary)})</h2>",
        grid_table(result),
        "<h2>Paired DeLong tests against the reference</h2>",
        delong_table(result),
    ]


def _figures(result: GridResult, classifier: str) -> list[str]:
    """ROC curves and the AUC grid of every model; PR curve, confusion matrix, probability
    distributions, calibration and LASSO coefficients of the focus model."""
    primary = SET_TITLES[result.primary]
    focus = _focus(result, classifier)
    sections = ["<h2>Figures</h2>"]
    if result.runs:
        sections.append(
            _figure(
                "fig-roc",
                _roc_figure(result, classifier),
                f"ROC curves per model, {classifier_name(classifier)}: training lesions "
                "(out-of-fold predictions) and held-out lesions; dashed: SUVmax > liver.",
            )
        )
        sections.append(
            _figure(
                "fig-auc-grid", _auc_grid_figure(result), f"AUC per model × classifier ({primary})."
            )
        )
    if focus is not None:
        title = f"{group_name(focus.group)} / {classifier_name(focus.classifier)}"
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
                f"Calibration (reliability) curves, {classifier_name(classifier)} ({primary}).",
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
    return sections


def _selection(result: GridResult) -> list[str]:
    """The selected features and their LASSO coefficients, per group."""
    return [
        "<h2>Selected features and LASSO coefficients</h2>",
        "<p class=note>Selection is fitted on the training lesions only and does not depend on "
        "the classifier. Coefficients are per standard deviation of the feature.</p>",
        selection_tables(result),
    ]


def _page(body: str) -> str:
    """The HTML document around the sections."""
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        "<title>BoneOligoMet run report</title>"
        f"<style>{CSS}</style></head><body>\n{body}\n</body></html>\n"
    )


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
    sections = [
        *_introduction(result, classifier, data_label),
        *_cohort(result, characteristics_tables),
        *_comparisons(result, classifier, data_label, reported),
        *_figures(result, classifier),
        *_selection(result),
    ]
    if files:
        sections.append(
            "<h2>Files</h2><ul>" + "".join(f"<li>{_esc(f)}</li>" for f in files) + "</ul>"
        )
    return _page("\n".join(sections))
