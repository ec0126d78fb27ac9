"""Statistics for evaluating the models: ROC AUC with confidence intervals, the paired DeLong test,
threshold metrics with 95% CIs, calibration, and the cohort-characteristics table (Table 1).

Conventions (those of pROC, Robin et al. 2011, so its published numbers can be reproduced):

- Labels: the positive class (a "case": malignant, 1) against the negative ("control": benign, 0).
  Labels 0/1 or booleans need no ``pos_label``; other labels (e.g. "Poor"/"Good") name it.
- ``direction="<"`` (the default): controls score lower than cases, so higher scores mean
  positive. ``">"`` is the reverse. ``"auto"`` is pROC's default rule, chosen per score:
  ``"<"`` when median(controls) ≤ median(cases), else ``">"``. Model comparisons should keep the
  fixed ``"<"``: "auto" would turn a worse-than-chance model into a better one.
- AUC counts tied case/control pairs as 1/2 (the Mann–Whitney statistic).
- A threshold ``t`` calls a lesion positive when ``score >= t``.

Statistical errors raised here are :class:`StatsError` (a ``ValueError``), one line each.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Optional

import numpy as np
from scipy import stats as sps

from BoneOligoMetLib.errors import BoneOligoMetError

log = logging.getLogger(__name__)

DIRECTIONS = ("<", ">", "auto")
# pROC's default number of bootstrap replicates (ci.auc, boot.n = 2000).
DEFAULT_BOOTSTRAPS = 2000


class StatsError(BoneOligoMetError):
    """Input that a statistic cannot be computed on (one class only, NaN scores, lengths)."""


# ---------------------------------------------------------------------------------------------
# Input checks


def binary_labels(y_true: Any, pos_label: Any = None) -> np.ndarray:
    """``y_true`` as a boolean array (True = positive). Both classes must be present.

    Without ``pos_label`` the labels must be 0/1 or booleans (1/True positive).
    """
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise StatsError(f"labels must be one-dimensional, found shape {y.shape}")
    if y.size == 0:
        raise StatsError("no labels given")
    if pos_label is None:
        values = set(np.unique(y).tolist())
        if not values <= {0, 1}:
            shown = sorted(map(str, values))[:5]
            raise StatsError(f"labels must be 0/1 or booleans (or give pos_label), found {shown}")
        positive = y.astype(bool)
    else:
        if not np.any(y == pos_label):
            raise StatsError(f"pos_label {pos_label!r} does not occur in the labels")
        positive = y == pos_label
    n_pos = int(positive.sum())
    if n_pos == 0 or n_pos == y.size:
        only = "positive" if n_pos else "negative"
        raise StatsError(f"labels hold one class only ({y.size} {only}); need cases and controls")
    return positive


def _scores(score: Any, n: int, name: str = "score") -> np.ndarray:
    values = np.asarray(score, dtype=float)
    if values.ndim != 1:
        raise StatsError(f"{name} must be one-dimensional, found shape {values.shape}")
    if values.size != n:
        raise StatsError(f"{name} has {values.size} values but there are {n} labels")
    bad = ~np.isfinite(values)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise StatsError(
            f"{name} is NaN or infinite at {rows.size} rows (first: row {int(rows[0])})"
        )
    return values


def _oriented(positive: np.ndarray, score: np.ndarray, direction: str) -> np.ndarray:
    """The score turned so that higher means positive (pROC's ``direction``)."""
    if direction not in DIRECTIONS:
        raise StatsError(f"direction must be one of {DIRECTIONS}, found {direction!r}")
    if direction == "auto":
        direction = "<" if np.median(score[~positive]) <= np.median(score[positive]) else ">"
    return score if direction == "<" else -score


# ---------------------------------------------------------------------------------------------
# AUC and DeLong (DeLong, DeLong & Clarke-Pearson 1988; fast algorithm of Sun & Xu 2014)


def _delong_components(positive: np.ndarray, scores: np.ndarray):
    """AUCs and DeLong covariance of ``k`` score rows (k × N, higher = positive).

    Sun & Xu (2014), IEEE Signal Process. Lett. 21:1389, with midranks: the structural
    components are V10_i = (Z-rank − X-rank of case i)/n and V01_j = 1 − (Z-rank − Y-rank of
    control j)/m; S = cov(V10)/m + cov(V01)/n with sample (n−1) covariances, as pROC.
    """
    cases, controls = scores[:, positive], scores[:, ~positive]
    m, n = cases.shape[1], controls.shape[1]
    rank_x = sps.rankdata(cases, axis=1)
    rank_y = sps.rankdata(controls, axis=1)
    rank_z = sps.rankdata(np.concatenate([cases, controls], axis=1), axis=1)
    aucs = (rank_z[:, :m].sum(axis=1) - m * (m + 1) / 2.0) / (m * n)
    v10 = (rank_z[:, :m] - rank_x) / n
    v01 = 1.0 - (rank_z[:, m:] - rank_y) / m
    s10 = np.atleast_2d(np.cov(v10)) if m > 1 else np.zeros((len(scores), len(scores)))
    s01 = np.atleast_2d(np.cov(v01)) if n > 1 else np.zeros((len(scores), len(scores)))
    return aucs, s10 / m + s01 / n


def roc_auc(y_true: Any, score: Any, *, direction: str = "<", pos_label: Any = None) -> float:
    """Area under the ROC curve (ties count 1/2), in the orientation ``direction``."""
    positive = binary_labels(y_true, pos_label)
    values = _oriented(positive, _scores(score, positive.size), direction)
    aucs, _ = _delong_components(positive, values[None, :])
    return float(aucs[0])


@dataclass(frozen=True)
class AucCI:
    """An AUC and its confidence interval."""

    auc: float
    low: float
    high: float
    level: float
    method: str  # "delong" or "bootstrap (stratified, n=2000)" etc.
    variance: Optional[float] = None  # DeLong variance of the AUC (delong only)


def auc_ci_delong(
    y_true: Any,
    score: Any,
    level: float = 0.95,
    *,
    direction: str = "<",
    pos_label: Any = None,
) -> AucCI:
    """AUC with its DeLong confidence interval: AUC ± z·√var, clipped to [0, 1] (pROC
    ``ci.auc(method="delong")``)."""
    _check_level(level)
    positive = binary_labels(y_true, pos_label)
    values = _oriented(positive, _scores(score, positive.size), direction)
    aucs, cov = _delong_components(positive, values[None, :])
    auc, variance = float(aucs[0]), float(cov[0, 0])
    half = _z(level) * math.sqrt(max(variance, 0.0))
    return AucCI(auc, max(auc - half, 0.0), min(auc + half, 1.0), level, "delong", variance)


def auc_ci_bootstrap(
    y_true: Any,
    score: Any,
    level: float = 0.95,
    *,
    n_boot: int = DEFAULT_BOOTSTRAPS,
    stratified: bool = True,
    random_state: Optional[int] = 0,
    direction: str = "<",
    pos_label: Any = None,
) -> AucCI:
    """AUC with a percentile bootstrap CI (pROC ``ci.auc(method="bootstrap")``).

    Stratified (the default, as pROC): each replicate resamples cases and controls separately,
    keeping their counts. Unstratified replicates holding one class only are skipped.
    """
    _check_level(level)
    if n_boot < 1:
        raise StatsError(f"n_boot must be at least 1, found {n_boot}")
    positive = binary_labels(y_true, pos_label)
    values = _oriented(positive, _scores(score, positive.size), direction)
    auc = float(_delong_components(positive, values[None, :])[0][0])
    boots = _bootstrap_aucs(positive, values, n_boot, stratified, random_state)
    low, high = np.quantile(boots, [(1 - level) / 2, 1 - (1 - level) / 2])
    kind = "stratified" if stratified else "unstratified"
    return AucCI(auc, float(low), float(high), level, f"bootstrap ({kind}, n={n_boot})")


def _bootstrap_aucs(
    positive: np.ndarray, values: np.ndarray, n_boot: int, stratified: bool, seed: Optional[int]
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cases, controls = values[positive], values[~positive]
    m, n = cases.size, controls.size
    if stratified:
        labels = np.r_[np.ones(m, bool), np.zeros(n, bool)][None, :].repeat(n_boot, axis=0)
        sample = np.concatenate(
            [cases[rng.integers(0, m, (n_boot, m))], controls[rng.integers(0, n, (n_boot, n))]],
            axis=1,
        )
    else:
        index = rng.integers(0, m + n, (n_boot, m + n))
        labels, sample = positive[index], values[index]
    ranks = sps.rankdata(sample, axis=1)
    n_pos = labels.sum(axis=1)
    n_neg = labels.shape[1] - n_pos
    usable = (n_pos > 0) & (n_neg > 0)
    rank_sum = np.where(labels, ranks, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        aucs = (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    if not usable.any():
        raise StatsError("no bootstrap replicate held both classes; use stratified=True")
    return aucs[usable]


@dataclass(frozen=True)
class DelongResult:
    """Paired DeLong test of two correlated ROC curves (same cases, two scores)."""

    auc_a: float
    auc_b: float
    var_a: float
    var_b: float
    covariance: float
    z: float  # (auc_a − auc_b) / √(var_a + var_b − 2·cov)
    p_value: float  # two-sided
    n_cases: int
    n_controls: int

    @property
    def difference(self) -> float:
        return self.auc_a - self.auc_b

    def difference_ci(self, level: float = 0.95) -> tuple[float, float]:
        """Normal-approximation CI of ``auc_a − auc_b`` from the same variance as ``z``."""
        _check_level(level)
        sd = math.sqrt(max(self.var_a + self.var_b - 2 * self.covariance, 0.0))
        half = _z(level) * sd
        return self.difference - half, self.difference + half


def delong_test(
    y_true: Any,
    score_a: Any,
    score_b: Any,
    *,
    direction: str = "<",
    pos_label: Any = None,
) -> DelongResult:
    """Paired DeLong test: are the AUCs of two scores on the same lesions different?

    DeLong, DeLong & Clarke-Pearson, Biometrics 1988;44:837–845, computed with Sun & Xu's fast
    midrank algorithm (2014). Reproduces pROC's ``roc.test(method="delong", paired=TRUE)``:
    z = (AUC_a − AUC_b)/√(var_a + var_b − 2·cov), p = 2·Φ(−|z|). When that variance is 0 (e.g.
    identical scores) z is 0 with p = 1 if the AUCs are equal, else ±inf with p = 0.
    ``direction`` applies to each score ("auto": each chosen on its own, as pROC does).
    """
    positive = binary_labels(y_true, pos_label)
    a = _oriented(positive, _scores(score_a, positive.size, "score_a"), direction)
    b = _oriented(positive, _scores(score_b, positive.size, "score_b"), direction)
    aucs, cov = _delong_components(positive, np.vstack([a, b]))
    difference = float(aucs[0] - aucs[1])
    variance = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    if variance > 1e-15:
        z = difference / math.sqrt(variance)
        p = float(2 * sps.norm.sf(abs(z)))
    elif abs(difference) < 1e-15:
        z, p = 0.0, 1.0
    else:
        z, p = math.copysign(math.inf, difference), 0.0
    return DelongResult(
        float(aucs[0]),
        float(aucs[1]),
        float(cov[0, 0]),
        float(cov[1, 1]),
        float(cov[0, 1]),
        float(z),
        p,
        int(positive.sum()),
        int((~positive).sum()),
    )


# ---------------------------------------------------------------------------------------------
# Threshold metrics


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise StatsError(f"confidence level must lie in (0, 1), found {level}")


def _z(level: float) -> float:
    return float(sps.norm.ppf(1 - (1 - level) / 2))


def wilson_ci(successes: int, total: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (Wilson 1927; Newcombe 1998 method 3).

    ``(nan, nan)`` when ``total`` is 0.
    """
    _check_level(level)
    if not 0 <= successes <= total:
        raise StatsError(f"successes must lie in 0..total, found {successes} of {total}")
    if total == 0:
        return math.nan, math.nan
    z = _z(level)
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z / (1 + z * z / total) * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    low = 0.0 if successes == 0 else max(centre - half, 0.0)
    high = 1.0 if successes == total else min(centre + half, 1.0)
    return low, high


def youden_threshold(y_true: Any, score: Any, *, pos_label: Any = None) -> float:
    """The score threshold maximising Youden's J = sensitivity + specificity − 1.

    Choose it on the TRAINING data and apply it unchanged to the test set. Candidates are, as
    in pROC, the midpoints between consecutive distinct scores (plus the lowest score, "all
    positive"); a lesion is positive when ``score >= threshold``. Among equal J the highest
    threshold (the more specific operating point) wins.
    """
    positive = binary_labels(y_true, pos_label)
    values = _scores(score, positive.size)
    distinct = np.unique(values)
    candidates = np.r_[distinct[:1], (distinct[:-1] + distinct[1:]) / 2.0]
    calls = values[None, :] >= candidates[:, None]
    sensitivity = calls[:, positive].mean(axis=1)
    specificity = 1.0 - calls[:, ~positive].mean(axis=1)
    j = sensitivity + specificity - 1.0
    best = np.flatnonzero(j >= j.max() - 1e-12)
    return float(candidates[best[-1]])


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its confidence interval."""

    value: float
    low: float
    high: float
    method: str  # "wilson", "bootstrap (stratified, n=2000)"


@dataclass(frozen=True)
class BinaryMetrics:
    """Metrics of scores dichotomised at a fixed threshold (``score >= threshold`` positive).

    Proportions carry Wilson 95% CIs; F1 a stratified percentile bootstrap CI (the threshold is
    kept fixed). Precision is NaN when nothing is called positive. ``brier`` is NaN for scores
    outside [0, 1] (not probabilities). ``average_precision`` is sklearn's step-wise AP.
    """

    threshold: float
    tp: int
    fp: int
    tn: int
    fn: int
    sensitivity: Estimate
    specificity: Estimate
    accuracy: Estimate
    precision: Estimate
    f1: Estimate
    average_precision: float
    brier: float

    def as_row(self, prefix: str = "") -> dict[str, Any]:
        """A flat dict: counts, then ``name``, ``name_low``, ``name_high`` per estimate."""
        row: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if isinstance(value, dict):
                row[f"{prefix}{key}"] = value["value"]
                row[f"{prefix}{key}_low"] = value["low"]
                row[f"{prefix}{key}_high"] = value["high"]
            else:
                row[f"{prefix}{key}"] = value
        return row


def binary_metrics(
    y_true: Any,
    score: Any,
    threshold: float,
    *,
    level: float = 0.95,
    n_boot: int = DEFAULT_BOOTSTRAPS,
    random_state: Optional[int] = 0,
    pos_label: Any = None,
) -> BinaryMetrics:
    """Sensitivity, specificity, accuracy, precision (Wilson CIs), F1 (bootstrap CI), average
    precision and Brier score of ``score`` at ``threshold`` (see :class:`BinaryMetrics`)."""
    from sklearn.metrics import average_precision_score

    _check_level(level)
    positive = binary_labels(y_true, pos_label)
    values = _scores(score, positive.size)
    if not math.isfinite(threshold):
        raise StatsError(f"threshold must be a finite number, found {threshold}")
    called = values >= threshold
    tp, fn = int((called & positive).sum()), int((~called & positive).sum())
    fp, tn = int((called & ~positive).sum()), int((~called & ~positive).sum())

    def proportion(k: int, total: int) -> Estimate:
        low, high = wilson_ci(k, total, level)
        return Estimate(k / total if total else math.nan, low, high, "wilson")

    f1 = 2 * tp / (2 * tp + fp + fn)
    f1_boot = _bootstrap_f1(positive, called, n_boot, random_state)
    f1_low, f1_high = np.quantile(f1_boot, [(1 - level) / 2, 1 - (1 - level) / 2])
    in_unit = values.min() >= 0.0 and values.max() <= 1.0
    return BinaryMetrics(
        threshold=float(threshold),
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
        sensitivity=proportion(tp, tp + fn),
        specificity=proportion(tn, tn + fp),
        accuracy=proportion(tp + tn, positive.size),
        precision=proportion(tp, tp + fp),
        f1=Estimate(f1, float(f1_low), float(f1_high), f"bootstrap (stratified, n={n_boot})"),
        average_precision=float(average_precision_score(positive, values)),
        brier=float(np.mean((values - positive) ** 2)) if in_unit else math.nan,
    )


def _bootstrap_f1(
    positive: np.ndarray, called: np.ndarray, n_boot: int, seed: Optional[int]
) -> np.ndarray:
    """F1 of stratified bootstrap replicates of (label, call) pairs."""
    if n_boot < 1:
        raise StatsError(f"n_boot must be at least 1, found {n_boot}")
    rng = np.random.default_rng(seed)
    hits, misses = called[positive], called[~positive]  # calls of cases, of controls
    tp = hits[rng.integers(0, hits.size, (n_boot, hits.size))].sum(axis=1)
    fp = misses[rng.integers(0, misses.size, (n_boot, misses.size))].sum(axis=1)
    fn = hits.size - tp
    return 2 * tp / (2 * tp + fp + fn)


@dataclass(frozen=True)
class Calibration:
    """Reliability diagram data: per non-empty bin the mean predicted probability, the observed
    fraction of positives and the number of lesions."""

    prob_pred: np.ndarray
    prob_true: np.ndarray
    counts: np.ndarray
    bin_edges: np.ndarray


def calibration(
    y_true: Any,
    probability: Any,
    n_bins: int = 10,
    *,
    strategy: str = "uniform",
    pos_label: Any = None,
) -> Calibration:
    """Calibration curve, as sklearn's ``calibration_curve`` (same bins, empty bins dropped)
    plus the count per bin. ``strategy``: "uniform" (equal-width bins on [0, 1]) or "quantile"
    (equal-count bins)."""
    positive = binary_labels(y_true, pos_label)
    prob = _scores(probability, positive.size, "probability")
    if prob.min() < 0.0 or prob.max() > 1.0:
        raise StatsError(
            f"probabilities must lie in [0, 1], found {prob.min():.3g}..{prob.max():.3g}"
        )
    if n_bins < 1:
        raise StatsError(f"n_bins must be at least 1, found {n_bins}")
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    elif strategy == "quantile":
        edges = np.quantile(prob, np.linspace(0.0, 1.0, n_bins + 1))
    else:
        raise StatsError(f"strategy must be 'uniform' or 'quantile', found {strategy!r}")
    bins = np.searchsorted(edges[1:-1], prob)  # right-closed bins, as sklearn
    counts = np.bincount(bins, minlength=n_bins)
    sums = np.bincount(bins, weights=prob, minlength=n_bins)
    hits = np.bincount(bins, weights=positive.astype(float), minlength=n_bins)
    keep = counts > 0
    return Calibration(
        sums[keep] / counts[keep], hits[keep] / counts[keep], counts[keep], np.asarray(edges)
    )


# ---------------------------------------------------------------------------------------------
# Cohort characteristics (the study's Table 1)

VARIABLE_KINDS = ("auto", "normal", "nonnormal", "categorical")
# Shapiro–Wilk p below which a group's values count as not normal.
NORMALITY_ALPHA = 0.05
# Monte-Carlo replicates of the Fisher–Freeman–Halton test for tables larger than 2×2.
FISHER_REPLICATES = 20000


@dataclass(frozen=True)
class CohortTable:
    """A Table-1-like table. ``rows`` are dicts with the keys in ``columns``: ``variable``,
    ``level`` (categories; "" on a variable's own row), one column per group (summary text),
    ``test``, ``statistic``, ``p``, ``missing`` (None where not applicable: the level rows, a
    statistic that the test does not have). ``group_sizes`` maps group column → n."""

    columns: list[str]
    rows: list[dict[str, Any]]
    group_sizes: dict[str, int]

    def to_csv(self, path: Any) -> None:
        import csv

        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(self.rows)

    def to_pandas(self) -> Any:
        """The table as a pandas DataFrame (pandas is optional and imported here)."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=self.columns)


def _column(table: Any, name: str) -> list[Any]:
    if isinstance(table, Sequence) and not isinstance(table, (str, bytes)):
        if table and name not in table[0]:
            raise StatsError(f"column {name!r} is not in the table")
        return [row.get(name) for row in table]
    try:
        values = table[name]
    except (KeyError, IndexError) as error:
        raise StatsError(f"column {name!r} is not in the table") from error
    # pyarrow columns hold arrow scalars; pandas/numpy ones give Python or numpy scalars
    return values.to_pylist() if hasattr(values, "to_pylist") else list(values)


def _missing(value: Any) -> bool:
    if value is None or (isinstance(value, str) and value == ""):
        return True
    return isinstance(value, (float, np.floating)) and math.isnan(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def cohort_characteristics(
    table: Any,
    group_col: str,
    variables: Sequence[str],
    *,
    kinds: Optional[dict[str, str]] = None,
    groups: Optional[Sequence[Any]] = None,
    digits: int = 2,
) -> CohortTable:
    """Compare variables between groups (e.g. training vs test, benign vs malignant).

    ``table``: rows (a sequence of dicts), columns (a dict of sequences) or a DataFrame.
    ``kinds`` per variable: "normal" (mean ± SD; Welch's t-test, one-way ANOVA for > 2 groups),
    "nonnormal" (median [IQR]; Mann–Whitney U, Kruskal–Wallis for > 2 groups), "categorical"
    (n (%) of the group per level; Pearson χ² without continuity correction, or Fisher's exact
    test when an expected count is < 5: exact for 2×2, Monte-Carlo Fisher–Freeman–Halton with
    a fixed seed otherwise), or "auto" (default): categorical for non-numeric values, else
    normal when Shapiro–Wilk p ≥ 0.05 in every group (3 ≤ n ≤ 5000), otherwise nonnormal.
    Missing values (None, NaN, "") are left out and counted in ``missing``.
    """
    kinds = dict(kinds or {})
    unknown = sorted(set(kinds) - set(variables))
    if unknown:
        raise StatsError(f"kinds given for variables not listed: {unknown}")
    labels = _column(table, group_col)
    present = [g for g in labels if not _missing(g)]
    if groups is None:
        groups = sorted(set(present), key=str)
    if len(groups) < 2:
        raise StatsError(f"column {group_col!r} needs at least 2 groups, found {list(groups)}")
    names = [str(g) for g in groups]
    members = [[i for i, g in enumerate(labels) if g == group] for group in groups]
    for name, rows in zip(names, members):
        if not rows:
            raise StatsError(f"group {name!r} of column {group_col!r} has no rows")
    columns = ["variable", "level", *names, "test", "statistic", "p", "missing"]
    out = CohortTable(columns, [], {n: len(r) for n, r in zip(names, members)})
    for variable in variables:
        kind = kinds.get(variable, "auto")
        if kind not in VARIABLE_KINDS:
            raise StatsError(f"{variable}: kind must be one of {VARIABLE_KINDS}, found {kind!r}")
        values = _column(table, variable)
        kept = [[values[i] for i in rows if not _missing(values[i])] for rows in members]
        missing = sum(len(rows) for rows in members) - sum(len(k) for k in kept)
        numeric = all(_is_number(v) for group in kept for v in group)
        if kind == "categorical" or (kind == "auto" and not numeric):
            out.rows.extend(_categorical_rows(variable, names, kept, missing))
            continue
        if not numeric:
            raise StatsError(f"{variable}: kind {kind!r} needs numbers, found non-numeric values")
        arrays = [np.asarray(group, dtype=float) for group in kept]
        if any(a.size < 2 for a in arrays):
            raise StatsError(f"{variable}: each group needs at least 2 values")
        if kind == "auto":
            kind = "normal" if _all_normal(arrays) else "nonnormal"
        out.rows.append(_continuous_row(variable, names, arrays, kind, digits, missing))
    out.rows[:] = [{column: row.get(column) for column in columns} for row in out.rows]
    return out


def _all_normal(arrays: list[np.ndarray]) -> bool:
    for values in arrays:
        if values.size < 3 or np.ptp(values) == 0:
            return False
        if values.size <= 5000 and sps.shapiro(values).pvalue < NORMALITY_ALPHA:
            return False
    return True


def _continuous_row(
    variable: str, names: list[str], arrays: list[np.ndarray], kind: str, digits: int, missing: int
) -> dict[str, Any]:
    row: dict[str, Any] = {"variable": variable, "level": "", "missing": missing}
    for name, values in zip(names, arrays):
        if kind == "normal":
            row[name] = f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"
        else:
            q1, median, q3 = np.percentile(values, [25, 50, 75])
            row[name] = f"{median:.{digits}f} [{q1:.{digits}f}, {q3:.{digits}f}]"
    if kind == "normal" and len(arrays) == 2:
        result = sps.ttest_ind(arrays[0], arrays[1], equal_var=False)
        row["test"] = "Welch t-test"
    elif kind == "normal":
        result = sps.f_oneway(*arrays)
        row["test"] = "one-way ANOVA"
    elif len(arrays) == 2:
        result = sps.mannwhitneyu(arrays[0], arrays[1], alternative="two-sided")
        row["test"] = "Mann–Whitney U"
    else:
        result = sps.kruskal(*arrays)
        row["test"] = "Kruskal–Wallis"
    row["statistic"], row["p"] = float(result.statistic), float(result.pvalue)
    return row


def _categorical_rows(
    variable: str, names: list[str], kept: list[list[Any]], missing: int
) -> list[dict[str, Any]]:
    levels = sorted({v for group in kept for v in group}, key=str)
    counts = np.array([[sum(1 for v in group if v == level) for level in levels] for group in kept])
    head: dict[str, Any] = {"variable": variable, "level": "", "missing": missing}
    head.update({name: "" for name in names})
    if len(levels) < 2:
        head.update(test="", statistic=None, p=None)
    else:
        expected = sps.contingency.expected_freq(counts)
        if expected.min() >= 5:
            chi2, p, _, _ = sps.chi2_contingency(counts, correction=False)
            head.update(test="χ²", statistic=float(chi2), p=float(p))
        elif counts.shape == (2, 2):
            odds, p = sps.fisher_exact(counts)
            head.update(test="Fisher exact", statistic=float(odds), p=float(p))
        else:
            head.update(test="Fisher–Freeman–Halton (Monte Carlo)", statistic=None)
            head["p"] = _fisher_monte_carlo(counts)
    rows = [head]
    totals = counts.sum(axis=1)
    for j, level in enumerate(levels):
        row: dict[str, Any] = {"variable": variable, "level": str(level)}
        for i, name in enumerate(names):
            share = 100.0 * counts[i, j] / totals[i] if totals[i] else math.nan
            row[name] = f"{counts[i, j]} ({share:.1f}%)"
        row.update(test="", statistic=None, p=None, missing=None)
        rows.append(row)
    return rows


def _fisher_monte_carlo(counts: np.ndarray, seed: int = 0) -> float:
    """Monte-Carlo p of the Fisher–Freeman–Halton test (R's ``fisher.test(simulate.p.value=
    TRUE)``): tables with the same margins, drawn by permuting one variable, that are no more
    probable than the observed one (probability ∝ 1/∏ n_ij!)."""
    from scipy.special import gammaln

    groups = np.repeat(np.arange(counts.shape[0]), counts.sum(axis=1))
    levels = np.concatenate([np.repeat(np.arange(counts.shape[1]), row) for row in counts])
    rng = np.random.default_rng(seed)
    size = counts.size
    observed = -gammaln(counts + 1).sum()
    exceed = 0
    for start in range(0, FISHER_REPLICATES, 2000):
        block = min(2000, FISHER_REPLICATES - start)
        shuffled = rng.permuted(np.tile(levels, (block, 1)), axis=1)
        cells = groups[None, :] * counts.shape[1] + shuffled
        offsets = (np.arange(block) * size)[:, None]
        tables = np.bincount((cells + offsets).ravel(), minlength=block * size).reshape(block, -1)
        log_prob = -gammaln(tables + 1).sum(axis=1)
        exceed += int((log_prob <= observed + 1e-7).sum())
    return (exceed + 1) / (FISHER_REPLICATES + 1)
