"""Statistics for evaluating the models: ROC AUC with confidence intervals, the paired DeLong test,
threshold metrics with 95% CIs and calibration (the cohort-characteristics table, Table 1, is in
:mod:`~BoneOligoMetLib.models.characteristics`).

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
from dataclasses import asdict, dataclass
from typing import Any, Optional

import numpy as np
from scipy import stats as sps

from BoneOligoMetLib.errors import StatsError

log = logging.getLogger(__name__)

DIRECTIONS = ("<", ">", "auto")
# pROC's default number of bootstrap replicates (ci.auc, boot.n = 2000).
DEFAULT_BOOTSTRAPS = 2000


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
    """Wilson score interval of a proportion (Wilson 1927; Newcombe 1998 method 3), by
    scipy's ``binomtest(...).proportion_ci(method="wilson")``.

    ``(nan, nan)`` when ``total`` is 0.
    """
    from scipy.stats import binomtest

    _check_level(level)
    if not 0 <= successes <= total:
        raise StatsError(f"successes must lie in 0..total, found {successes} of {total}")
    if total == 0:
        return math.nan, math.nan
    interval = binomtest(int(successes), int(total)).proportion_ci(level, method="wilson")
    return float(interval.low), float(interval.high)


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
    if strategy not in ("uniform", "quantile"):
        raise StatsError(f"strategy must be 'uniform' or 'quantile', found {strategy!r}")
    from sklearn.calibration import calibration_curve

    observed, predicted = calibration_curve(positive, prob, n_bins=n_bins, strategy=strategy)
    # The count per bin, with calibration_curve's own bins (right-closed, as searchsorted).
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    else:
        edges = np.quantile(prob, np.linspace(0.0, 1.0, n_bins + 1))
    counts = np.bincount(np.searchsorted(edges[1:-1], prob), minlength=n_bins)
    keep = counts > 0
    return Calibration(predicted, observed, counts[keep], np.asarray(edges))
