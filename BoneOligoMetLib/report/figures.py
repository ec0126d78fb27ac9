"""The training report's figures (matplotlib, Agg), as inline PNGs."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

from BoneOligoMetLib.models.groups import BASELINE, classifier_name, group_name
from BoneOligoMetLib.models.study_grid import GridResult, ModelRun
from BoneOligoMetLib.report.format import _esc

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
    ax.set_xticks(range(len(names)), [classifier_name(c) for c in names], rotation=30)
    ax.set_yticks(range(len(groups)), [group_name(g) for g in groups])
    for i in range(len(groups)):
        for j in range(len(names)):
            text = "–" if np.isnan(grid[i, j]) else f"{grid[i, j]:.2f}"
            ax.text(j, i, text, ha="center", va="center", color="w", fontsize=8)
    fig.colorbar(image, ax=ax, label=f"AUC ({SET_TITLES[result.primary]})")
    return fig


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
    ax.set_title(f"{group_name(run.group)} / {classifier_name(run.classifier)}")
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
    ax.set_title(f"{group_name(run.group)} / {classifier_name(run.classifier)}", fontsize=9)
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
