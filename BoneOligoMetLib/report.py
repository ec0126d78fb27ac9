"""The run report of ``bone-oligomet train``: ``report.html`` (self-contained: inline CSS, figures
as inline base64 PNG, nothing fetched) and the CSVs beside it.

``write_outputs(result, out_dir)`` writes, for a :class:`~BoneOligoMetLib.grid.GridResult`:

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

import base64
import csv
import html
import io
import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from BoneOligoMetLib.feature_groups import BASELINE, GROUPS, classifier_name, group_name
from BoneOligoMetLib.grid import GridResult, ModelRun

log = logging.getLogger(__name__)

# Tables 2–4 of the published study as printed (test cohort of 94 lesions); the same rows as
# ../shared/data/study/reported_results.csv, kept here so an installed package can show them.
# Some printed intervals do not contain their estimate: they are shown as printed, never tuned to.
REPORTED_COLUMNS = (
    "table",
    "model",
    "modality_or_backbone",
    "auc",
    "sensitivity",
    "sens_ci_low",
    "sens_ci_high",
    "specificity",
    "spec_ci_low",
    "spec_ci_high",
    "accuracy",
    "acc_ci_low",
    "acc_ci_high",
    "classifier",
)
REPORTED_MODELS = {2: "radiomics", 3: "deep (transfer learning)", 4: "fusion"}
# (table, modality_or_backbone, "AUC sens low high spec low high acc low high", classifier)
REPORTED_ROWS = (
    (2, "CT", "0.970 0.868 0.793 0.897 0.882 0.893 0.929 0.939 0.875 0.979", "SVM"),
    (2, "PET", "0.970 0.926 0.875 0.978 0.947 0.812 0.973 0.978 0.817 0.983", "RF"),
    (2, "PET/CT", "0.980 0.934 0.803 0.975 0.963 0.862 0.983 0.981 0.892 0.996", "XGBoost"),
    (2, "Complex", "0.987 0.961 0.757 0.994 0.982 0.881 0.996 0.989 0.896 0.995", "LightGBM"),
    (3, "CT", "0.960 0.833 0.784 0.881 0.880 0.781 0.946 0.956 0.812 0.976", "SVM"),
    (3, "PET", "0.980 0.904 0.860 0.984 0.959 0.863 0.985 0.947 0.881 0.982", "ExtraTrees"),
    (3, "PET/CT", "0.979 0.975 0.857 0.987 0.903 0.819 0.925 0.963 0.916 0.972", "RF"),
    (3, "Complex", "0.986 0.932 0.884 0.965 0.916 0.835 0.967 0.970 0.832 0.979", "SVM+KNN"),
    (4, "BasicNet", "0.985 0.985 0.818 0.993 0.965 0.894 0.985 0.970 0.884 0.996", "SVM"),
    (4, "ResNet-101", "0.786 0.768 0.660 0.842 0.718 0.631 0.775 0.774 0.619 0.795", "KNN"),
    (4, "DCU-Net", "0.814 0.895 0.754 0.908 0.712 0.683 0.772 0.794 0.730 0.837", "Mamba"),
    (4, "S-Net", "0.807 0.871 0.716 0.912 0.642 0.584 0.716 0.743 0.695 0.810", "ExtraTrees"),
    (4, "DLR", "0.954 0.937 0.861 0.992 0.925 0.868 0.969 0.957 0.892 0.979", "RF"),
    (4, "DLR+Complex", "0.990 0.986 0.896 1.000 0.998 0.905 1.000 0.997 0.917 0.999", "RF"),
)
STUDY_TABLES = {
    2: "Table 2 — radiomics models",
    3: "Table 3 — deep-learning models",
    4: "Table 4 — fusion models",
}
# Table-1 variables besides the clin_* columns (those present are used).
METABOLIC_CHARACTERISTICS = (
    "met_suv_max",
    "met_suv_mean",
    "met_suv_peak",
    "met_mtv_ml",
    "met_tlg",
    "met_suv_max_liver_ratio",
)
SET_TITLES = {
    "train": "training (resubstitution)",
    "train_oof": "training (out-of-fold)",
    "test": "test",
    "cv": "held out (pooled k-fold CV)",
    "external": "external test",
}
FIGURES = (
    "fig-roc",
    "fig-auc-grid",
    "fig-pr",
    "fig-confusion",
    "fig-distribution",
    "fig-calibration",
    "fig-coefficients",
)


def reported_results(path: Union[str, Path, None] = None) -> list[dict[str, Any]]:
    """The study's reported rows (from ``path``, else the packaged copy), numbers as floats."""
    if path is None:
        return [
            dict(
                zip(
                    REPORTED_COLUMNS,
                    (table, REPORTED_MODELS[table], row, *map(float, numbers.split()), name),
                )
            )
            for table, row, numbers, name in REPORTED_ROWS
        ]
    rows = []
    for row in csv.DictReader(io.StringIO(Path(path).read_text())):
        parsed: dict[str, Any] = {}
        for key, value in row.items():
            try:
                parsed[key] = int(value) if key == "table" else float(value)
            except ValueError:
                parsed[key] = value
        rows.append(parsed)
    return rows


# ---------------------------------------------------------------------------------------------
# CSV outputs


def _write_csv(rows: Sequence[dict[str, Any]], path: Path, columns: Sequence[str] = ()) -> None:
    fieldnames = list(columns) or (list(rows[0]) if rows else [])
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in fieldnames})


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


def characteristics(result: GridResult, by: str = "label") -> Any:
    """Table-1-like characteristics (characteristics.CohortTable) of the lesions, by "label"
    (benign vs malignant) or by "set" (training vs test of a split). None when nothing can be
    compared."""
    from BoneOligoMetLib.characteristics import cohort_characteristics

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
    _write_csv(result.metrics_rows(), paths["metrics"])
    _write_csv(result.delong, paths["delong"], DELONG_COLUMNS)
    selected = result.selected_rows()
    _write_csv(
        selected,
        paths["selected_features"],
        list(selected[0]) if selected else ("model", "fit", "lambda", "rank", "feature"),
    )
    _write_csv(result.prediction_rows(), paths["predictions"], PREDICTION_COLUMNS)
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


# ---------------------------------------------------------------------------------------------
# Formatting


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def _ci(value: Any, low: Any, high: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    separator = ", " if low is not None and low < 0 else "–"  # "-0.59–-0.01" reads badly
    return f"{value:.{digits}f} [{_num(low, digits)}{separator}{_num(high, digits)}]"


def _p(value: Any) -> str:
    if value is None or value == "":
        return "–"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], table_id: str = "") -> str:
    ident = f' id="{table_id}"' if table_id else ""
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def default_data_label(result: GridResult) -> str:
    if all(re.fullmatch(r"BOM\d{4}", str(p)) for p in result.table.patients):
        return "synthetic data"
    return "your data"


def chosen_classifier(result: GridResult, classifier: Optional[str] = None) -> str:
    if classifier:
        from BoneOligoMetLib.classifiers import classifier_key

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


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(fig_id: str, fig: Any, caption: str) -> str:
    data = _png(fig)
    return (
        f'<figure><img id="{fig_id}" alt="{_esc(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_esc(caption)}</figcaption></figure>"
    )


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _set_data(result: GridResult, run: ModelRun, set_name: str):
    index, probability, thresholds, _ = run.predictions[set_name]
    return result.set_table(set_name).y[index], probability, thresholds


def _roc_figure(result: GridResult, classifier: str) -> Any:
    from sklearn.metrics import roc_curve

    plt = _pyplot()
    panels = [s for s in ("train_oof", result.primary) if s != "train_oof" or result.mode != "cv"]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.8), squeeze=False)
    runs = [result.run(g, classifier) for g in result.groups]
    runs = [r for r in runs if r is not None]
    baseline = result.baseline()
    for ax, set_name in zip(axes[0], panels):
        for run in [*runs, baseline]:
            if run is None or set_name not in run.predictions:
                continue
            y, p, _ = _set_data(result, run, set_name)
            fpr, tpr, _ = roc_curve(y, p)
            auc = run.evaluations[set_name].auc.auc
            style = "--" if run.group == BASELINE else "-"
            width = 2.4 if run.group == result.reference else 1.3
            label = f"{group_name(run.group)} ({auc:.3f})"
            ax.plot(fpr, tpr, style, lw=width, label=label, drawstyle="steps-post")
        ax.plot([0, 1], [0, 1], ":", color="grey", lw=0.8)
        ax.set(xlabel="1 − specificity", ylabel="sensitivity", title=SET_TITLES[set_name])
        ax.set_aspect("equal")
        ax.legend(fontsize=7, loc="lower right", title="model (AUC)", title_fontsize=7)
    return fig


def _auc_grid_figure(result: GridResult) -> Any:
    plt = _pyplot()
    groups = result.groups
    names = result.classifiers
    grid = np.full((len(groups), len(names)), np.nan)
    for i, g in enumerate(groups):
        for j, c in enumerate(names):
            run = result.run(g, c)
            if run is not None:
                grid[i, j] = run.evaluations[result.primary].auc.auc
    fig, ax = plt.subplots(figsize=(1.1 * len(names) + 2.5, 0.45 * len(groups) + 1.5))
    image = ax.imshow(grid, vmin=0.5, vmax=1.0, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(names)), [_classifier_label(c) for c in names], rotation=30)
    ax.set_yticks(range(len(groups)), [group_name(g) for g in groups])
    for i in range(len(groups)):
        for j in range(len(names)):
            text = "–" if np.isnan(grid[i, j]) else f"{grid[i, j]:.2f}"
            ax.text(j, i, text, ha="center", va="center", color="w", fontsize=8)
    fig.colorbar(image, ax=ax, label=f"AUC ({SET_TITLES[result.primary]})")
    return fig


def _classifier_label(key: str) -> str:
    return classifier_name(key)


def _pr_figure(result: GridResult, run: ModelRun) -> Any:
    from sklearn.metrics import precision_recall_curve

    plt = _pyplot()
    y, p, thresholds = _set_data(result, run, result.primary)
    precision, recall, _ = precision_recall_curve(y, p)
    metrics = run.evaluations[result.primary].metrics
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.step(recall, precision, where="post", label=f"AP = {metrics.average_precision:.3f}")
    called = p >= thresholds
    tp = int((called & (y == 1)).sum())
    op_recall = tp / max(int(y.sum()), 1)
    op_precision = tp / max(int(called.sum()), 1)
    ax.plot(
        [op_recall],
        [op_precision],
        "o",
        ms=9,
        color="C3",
        label=f"training threshold {metrics.threshold:.3f}",
    )
    ax.axhline(y.mean(), ls=":", color="grey", lw=0.8, label=f"prevalence {y.mean():.2f}")
    ax.set(xlabel="recall (sensitivity)", ylabel="precision", ylim=(0, 1.02), xlim=(0, 1.02))
    ax.set_title(f"{group_name(run.group)} / {_classifier_label(run.classifier)}")
    ax.legend(fontsize=8, loc="lower left")
    return fig


def _confusion_figure(result: GridResult, run: ModelRun) -> Any:
    plt = _pyplot()
    m = run.evaluations[result.primary].metrics
    matrix = np.array([[m.tn, m.fp], [m.fn, m.tp]])
    fig, ax = plt.subplots(figsize=(4, 3.6))
    ax.imshow(matrix, cmap="Blues")
    for i in range(2):
        for j in range(2):
            colour = "w" if matrix[i, j] > matrix.max() / 2 else "k"
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=14, color=colour)
    ax.set_xticks([0, 1], ["benign", "malignant"])
    ax.set_yticks([0, 1], ["benign", "malignant"])
    ax.set(xlabel="predicted", ylabel="true")
    ax.set_title(f"{group_name(run.group)} / {_classifier_label(run.classifier)}", fontsize=9)
    return fig


def _distribution_figure(result: GridResult, run: ModelRun) -> Any:
    plt = _pyplot()
    y, p, thresholds = _set_data(result, run, result.primary)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    bins = np.linspace(0, 1, 21)
    ax.hist(p[y == 0], bins=bins, alpha=0.6, label=f"benign (n={int((y == 0).sum())})")
    ax.hist(p[y == 1], bins=bins, alpha=0.6, label=f"malignant (n={int(y.sum())})")
    ax.axvline(float(np.median(thresholds)), color="C3", ls="--", label="training threshold")
    ax.set(xlabel="predicted probability of malignancy", ylabel="lesions")
    ax.legend(fontsize=8)
    return fig


def _calibration_figure(result: GridResult, classifier: str) -> Any:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.6))
    ax.plot([0, 1], [0, 1], ":", color="grey", lw=0.8)
    for group in result.groups:
        run = result.run(group, classifier)
        if run is None:
            continue
        curve = run.evaluations[result.primary].calibration
        if curve is None:
            continue
        brier = run.evaluations[result.primary].metrics.brier
        width = 2.4 if group == result.reference else 1.0
        ax.plot(
            curve.prob_pred,
            curve.prob_true,
            "o-",
            lw=width,
            ms=3,
            label=f"{group_name(group)} (Brier {brier:.3f})",
        )
    ax.set(
        xlabel="mean predicted probability",
        ylabel="observed fraction malignant",
        xlim=(0, 1),
        ylim=(-0.02, 1.02),
    )
    ax.legend(fontsize=7, loc="upper left")
    return fig


def _coefficients_figure(run: ModelRun) -> Any:
    plt = _pyplot()
    fitted = run.fitted[0]
    ranked = sorted(fitted.selected, key=lambda item: abs(item[1]))[-25:]
    fig, ax = plt.subplots(figsize=(6.5, 0.28 * len(ranked) + 1.2))
    names = [n for n, _ in ranked]
    values = [c for _, c in ranked]
    ax.barh(range(len(ranked)), values, color=["C3" if v > 0 else "C0" for v in values])
    ax.set_yticks(range(len(ranked)), names, fontsize=7)
    ax.axvline(0, color="k", lw=0.6)
    ax.set_xlabel(f"LASSO coefficient per SD (λ = {fitted.lasso_lambda:.4g})")
    ax.set_title(group_name(run.group), fontsize=9)
    return fig


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
    from BoneOligoMetLib.classifiers import ClassifierError, classifier_key

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
