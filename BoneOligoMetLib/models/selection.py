"""Feature selection of the study (§2.6) as scikit-learn transformers, fitted on training data only.

Radiomics stage: z-score → Mann–Whitney U (two-sided p < 0.05) → Pearson |r| > 0.85 (of a
correlated pair the feature more correlated with the label stays) → LASSO, 5-fold CV over a λ
path (the study's λ ≈ 0.015). DLR fusion stage (§3.6): z-score → Spearman |ρ| > 0.9 → LASSO
logistic regression, 10-fold CV. :func:`study_selector` builds either as a ``Pipeline``.

Each selector is a ``SelectorMixin`` transformer: ``fit`` learns ``support_`` (boolean mask over
the input columns), ``get_support``/``get_feature_names_out`` name what is kept (column names come
from a DataFrame's columns, else ``x0``, ``x1``, …; give ``feature_names`` to
``pipeline.get_feature_names_out(feature_names)`` for plain arrays). Labels are binary, the
larger label (1 = malignant) positive. A step that keeps no feature raises :class:`SelectionError`
naming the step, or with ``on_empty="keep_best"`` keeps the single best feature (documented per
step) and logs a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Optional, Union

import numpy as np
from scipy import stats as sps
from sklearn.base import BaseEstimator
from sklearn.feature_selection import SelectorMixin
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.fixes import parse_version
from sklearn.utils.validation import check_is_fitted

from BoneOligoMetLib.errors import SelectionError

log = logging.getLogger(__name__)

ON_EMPTY = ("raise", "keep_best")
CORRELATION_METHODS = ("pearson", "spearman")
LASSO_KINDS = ("linear", "logistic")

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _sk_validate
except ImportError:  # pragma: no cover - older scikit-learn
    _sk_validate = None

_SKLEARN = parse_version(__import__("sklearn").__version__)


def _validate(estimator: BaseEstimator, X: Any) -> np.ndarray:
    """``X`` as a float array (feature names recorded); NaN/inf is a one-line error."""
    if _sk_validate is not None:
        array = _sk_validate(estimator, X, dtype=np.float64, ensure_all_finite=False)
    else:  # pragma: no cover - scikit-learn < 1.6
        array = estimator._validate_data(X, dtype=np.float64, force_all_finite=False)
    bad = ~np.isfinite(array)
    if bad.any():
        rows, cols = np.nonzero(bad)
        names = _names(estimator)
        raise SelectionError(
            f"{type(estimator).__name__}: {bad.sum()} NaN/inf values in the training features "
            f"(first: feature {names[cols[0]]!r}, row {rows[0]}); impute or drop them first"
        )
    return array


def _names(estimator: BaseEstimator) -> list[str]:
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        return [str(n) for n in names]
    return [f"x{i}" for i in range(estimator.n_features_in_)]


def _target(y: Any, n_rows: int, step: str) -> np.ndarray:
    """Binary labels as booleans (True = the larger label, e.g. 1 = malignant)."""
    if y is None:
        raise SelectionError(f"{step} needs the labels y to fit")
    labels = np.asarray(y)
    if labels.ndim != 1 or labels.size != n_rows:
        raise SelectionError(f"{step}: {labels.size} labels for {n_rows} rows of features")
    classes = np.unique(labels)
    if classes.size != 2:
        raise SelectionError(
            f"{step} needs two classes in the training labels, found {classes.size} "
            f"({classes[:3].tolist()})"
        )
    return labels == classes[1]


def _check_option(name: str, value: Any, allowed: Sequence[Any]) -> None:
    if value not in allowed:
        raise SelectionError(f"{name} must be one of {tuple(allowed)}, found {value!r}")


class MannWhitneyFilter(SelectorMixin, BaseEstimator):
    """Keep features whose two-sided Mann–Whitney U test between the classes has p < ``p``.

    Per feature, SciPy's ``mannwhitneyu`` (method "auto": exact for small samples without ties,
    else the normal approximation with tie and continuity corrections). Constant features get
    p = 1. ``on_empty="keep_best"`` keeps the feature with the smallest p.

    Attributes: ``pvalues_``, ``statistics_`` (U of the positive class), ``auc_`` (U/(m·n):
    the feature's AUC for the positive class), ``support_``.
    """

    def __init__(self, p: float = 0.05, on_empty: str = "raise") -> None:
        self.p = p
        self.on_empty = on_empty

    def fit(self, X: Any, y: Any) -> MannWhitneyFilter:
        _check_option("on_empty", self.on_empty, ON_EMPTY)
        if not 0.0 < self.p <= 1.0:
            raise SelectionError(f"Mann–Whitney p threshold must lie in (0, 1], found {self.p}")
        array = _validate(self, X)
        positive = _target(y, array.shape[0], "Mann–Whitney U filter")
        cases, controls = array[positive], array[~positive]
        with np.errstate(invalid="ignore", divide="ignore"):
            result = sps.mannwhitneyu(cases, controls, alternative="two-sided", axis=0)
        pvalues = np.nan_to_num(np.asarray(result.pvalue, dtype=float), nan=1.0)
        self.pvalues_ = pvalues
        self.statistics_ = np.asarray(result.statistic, dtype=float)
        self.auc_ = self.statistics_ / (cases.shape[0] * controls.shape[0])
        self.support_ = pvalues < self.p
        if not self.support_.any():
            best = int(np.argmin(pvalues))
            message = (
                f"no feature passed the Mann–Whitney U filter (p < {self.p:g}) on "
                f"{array.shape[0]} training rows; smallest p {pvalues[best]:.3g} "
                f"({_names(self)[best]})"
            )
            if self.on_empty == "raise":
                raise SelectionError(message)
            log.warning("%s: keeping that one feature", message)
            self.support_[best] = True
        return self

    def _get_support_mask(self) -> np.ndarray:
        check_is_fitted(self, "support_")
        return self.support_


def _standardise(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Columns z-scored (population SD); constant columns come back as zeros, flagged False."""
    centred = array - array.mean(axis=0)
    sd = centred.std(axis=0)
    varying = sd > 1e-12 * np.maximum(np.abs(array).max(axis=0), 1.0)
    return np.where(varying, centred / np.where(varying, sd, 1.0), 0.0), varying


class CorrelationFilter(SelectorMixin, BaseEstimator):
    """Drop redundant features: of every pair with |correlation| > ``threshold`` keep one.

    ``method`` "pearson" (the radiomics stage) or "spearman" (Pearson on midranks; the DLR
    stage). Which feature of a pair stays: the one more correlated with the label, measured
    with the same method (|point-biserial r| for Pearson, |ρ| with the 0/1 label for Spearman),
    as the study keeps "those showing a stronger correlation with the target". Greedy and
    deterministic: features are visited from most to least label-correlated (ties by column
    order) and one is kept unless it correlates above the threshold with a feature already kept.
    No pair of kept features then exceeds the threshold. Constant features are dropped.

    Attributes: ``association_`` (|correlation| of each input feature with the label),
    ``replaced_by_`` (for a dropped feature the index of the kept feature it correlates with,
    −1 for kept or constant features), ``support_``.
    """

    def __init__(self, threshold: float = 0.85, method: str = "pearson") -> None:
        self.threshold = threshold
        self.method = method

    def fit(self, X: Any, y: Any) -> CorrelationFilter:
        _check_option("method", self.method, CORRELATION_METHODS)
        if not 0.0 < self.threshold <= 1.0:
            raise SelectionError(
                f"correlation threshold must lie in (0, 1], found {self.threshold}"
            )
        array = _validate(self, X)
        positive = _target(y, array.shape[0], "correlation filter")
        if self.method == "spearman":
            array = sps.rankdata(array, axis=0)
            label = sps.rankdata(positive)
        else:
            label = positive.astype(float)
        z, varying = _standardise(array)
        label_z = (label - label.mean()) / label.std()
        n_rows = z.shape[0]
        association = np.abs(z.T @ label_z) / n_rows
        association[~varying] = 0.0
        self.association_ = association
        order = np.argsort(-association, kind="stable")
        order = order[varying[order]]
        replaced_by = np.full(array.shape[1], -1, dtype=np.int64)
        kept: list[int] = []
        block = 256  # candidates compared against the kept set in matrix products
        for start in range(0, order.size, block):
            chunk = order[start : start + block]
            against_kept = np.abs(z[:, chunk].T @ z[:, kept]) / n_rows if kept else None
            within = np.abs(z[:, chunk].T @ z[:, chunk]) / n_rows
            chosen: list[int] = []  # positions in chunk kept so far
            for i, feature in enumerate(chunk):
                partner = -1
                if against_kept is not None:
                    hits = np.flatnonzero(against_kept[i] > self.threshold)
                    if hits.size:
                        partner = kept[hits[0]]
                if partner < 0 and chosen:
                    hits = np.flatnonzero(within[i, chosen] > self.threshold)
                    if hits.size:
                        partner = int(chunk[chosen[hits[0]]])
                if partner >= 0:
                    replaced_by[feature] = partner
                else:
                    chosen.append(i)
            kept.extend(int(chunk[i]) for i in chosen)
        self.replaced_by_ = replaced_by
        self.support_ = np.zeros(array.shape[1], dtype=bool)
        self.support_[kept] = True
        if not kept:
            raise SelectionError(
                f"correlation filter: all {array.shape[1]} features are constant on the "
                f"{n_rows} training rows"
            )
        return self

    def _get_support_mask(self) -> np.ndarray:
        check_is_fitted(self, "support_")
        return self.support_


def _l1_logistic(C: float, random_state: Optional[int]) -> Any:
    from sklearn.linear_model import LogisticRegression

    # liblinear penalises the intercept; a large intercept_scaling makes that penalty negligible.
    options = dict(C=C, solver="liblinear", intercept_scaling=100.0, random_state=random_state)
    if parse_version("1.8") <= _SKLEARN:
        return LogisticRegression(l1_ratio=1.0, **options)
    return LogisticRegression(penalty="l1", **options)  # pragma: no cover - older scikit-learn


class LassoSelector(SelectorMixin, BaseEstimator):
    """Keep the features with non-zero LASSO coefficients at the cross-validated λ.

    The features are z-scored on the fitting data (a no-op after the pipeline's z-score step),
    so coefficients are per standard deviation. ``kind``:

    - "linear" (default; the usual radiomics practice): scikit-learn ``LassoCV`` on the 0/1
      label, minimising (1/2n)·‖y − Xw‖² + λ‖w‖₁ with λ chosen by mean squared error over
      ``cv`` stratified shuffled folds. The study reports λ ≈ 0.015 on this scale.
    - "logistic" (the study's DLR stage, "LASSO logistic regression"): L1 logistic regression,
      λ = 1/(C·n), chosen by mean held-out log-loss over the folds, then refitted on all rows.

    ``alphas``: None (an automatic path of 100 λ for "linear", 50 for "logistic", from the
    smallest λ that zeroes every coefficient down to 1/1000 of it), a number of λ on that
    path, or the λ values themselves. ``on_empty="keep_best"`` keeps the feature most
    correlated with the label (the first to enter the LASSO path), with coefficient 0.

    Attributes: ``alpha_`` (the chosen λ), ``alphas_`` and ``cv_error_`` (the path and its mean
    CV error), ``coef_`` (coefficients of the kept features, in their order), ``coef_full_``
    (one per input feature), ``support_``.
    """

    def __init__(
        self,
        cv: int = 5,
        alphas: Union[int, Sequence[float], None] = None,
        kind: str = "linear",
        random_state: Optional[int] = 0,
        max_iter: int = 10000,
        on_empty: str = "raise",
        n_jobs: Optional[int] = None,
    ) -> None:
        self.cv = cv
        self.alphas = alphas
        self.kind = kind
        self.random_state = random_state
        self.max_iter = max_iter
        self.on_empty = on_empty
        self.n_jobs = n_jobs

    def fit(self, X: Any, y: Any) -> LassoSelector:
        _check_option("kind", self.kind, LASSO_KINDS)
        _check_option("on_empty", self.on_empty, ON_EMPTY)
        array = _validate(self, X)
        positive = _target(y, array.shape[0], "LASSO")
        minority = int(min(positive.sum(), (~positive).sum()))
        if not 2 <= self.cv <= minority:
            raise SelectionError(
                f"LASSO: {self.cv}-fold CV needs 2 ≤ folds ≤ {minority} (the smaller class)"
            )
        z, _ = _standardise(array)
        target = positive.astype(float)
        folds = StratifiedKFold(self.cv, shuffle=True, random_state=self.random_state)
        if self.kind == "linear":
            coef = self._fit_linear(z, target, folds)
        else:
            coef = self._fit_logistic(z, positive, folds)
        self.coef_full_ = coef
        self.support_ = coef != 0.0
        if not self.support_.any():
            best = int(np.argmax(np.abs(z.T @ (target - target.mean()))))
            message = (
                f"LASSO ({self.kind}, {self.cv}-fold CV) kept no feature: every coefficient is "
                f"0 at λ = {self.alpha_:.4g} ({array.shape[1]} features, {array.shape[0]} rows)"
            )
            if self.on_empty == "raise":
                raise SelectionError(message)
            log.warning("%s: keeping %s", message, _names(self)[best])
            self.support_[best] = True
        self.coef_ = coef[self.support_]
        return self

    def _path(self, z: np.ndarray, target: np.ndarray, default: int) -> np.ndarray:
        if self.alphas is not None and not isinstance(self.alphas, (int, np.integer)):
            path = np.sort(np.asarray(self.alphas, dtype=float))[::-1]
            if path.size == 0 or (path <= 0).any():
                raise SelectionError("LASSO alphas must be positive numbers")
            return path
        count = int(self.alphas) if self.alphas is not None else default
        top = max(np.abs(z.T @ (target - target.mean())).max() / z.shape[0], 1e-12)
        return top * np.logspace(0.0, -3.0, count)

    def _fit_linear(self, z: np.ndarray, target: np.ndarray, folds: StratifiedKFold) -> np.ndarray:
        from sklearn.linear_model import LassoCV

        model = LassoCV(
            alphas=self._path(z, target, 100),
            cv=list(folds.split(z, target)),
            max_iter=self.max_iter,
            n_jobs=self.n_jobs,
        ).fit(z, target)
        self.alpha_ = float(model.alpha_)
        self.alphas_ = np.asarray(model.alphas_, dtype=float)
        errors = np.asarray(model.mse_path_, dtype=float)
        self.cv_error_ = errors.reshape(self.alphas_.size, -1).mean(axis=1)
        return np.asarray(model.coef_, dtype=float)

    def _fit_logistic(
        self, z: np.ndarray, positive: np.ndarray, folds: StratifiedKFold
    ) -> np.ndarray:
        from sklearn.metrics import log_loss

        path = self._path(z, positive.astype(float), 50)
        losses = np.zeros((path.size, self.cv))
        for k, (train, test) in enumerate(folds.split(z, positive)):
            for i, lam in enumerate(path):
                model = _l1_logistic(1.0 / (lam * train.size), self.random_state)
                model.fit(z[train], positive[train])
                prob = model.predict_proba(z[test])[:, 1]
                losses[i, k] = log_loss(positive[test], prob, labels=[False, True])
        self.alphas_ = path
        self.cv_error_ = losses.mean(axis=1)
        self.alpha_ = float(path[int(np.argmin(self.cv_error_))])
        model = _l1_logistic(1.0 / (self.alpha_ * z.shape[0]), self.random_state)
        return np.asarray(model.fit(z, positive).coef_[0], dtype=float)

    def _get_support_mask(self) -> np.ndarray:
        check_is_fitted(self, "support_")
        return self.support_


# The study's two selection stages (§2.6 radiomics, §3.6 DLR fusion).
STAGES: dict[str, dict[str, Any]] = {
    "radiomics": {
        "mannwhitney": True,
        "mannwhitney_p": 0.05,
        "correlation": "pearson",
        "correlation_threshold": 0.85,
        "cv": 5,
        "lasso": "linear",
    },
    "dlr": {
        "mannwhitney": False,
        "mannwhitney_p": 0.05,
        "correlation": "spearman",
        "correlation_threshold": 0.9,
        "cv": 10,
        "lasso": "logistic",
    },
}


def study_selector(
    stage: str = "radiomics",
    *,
    mannwhitney: Optional[bool] = None,
    mannwhitney_p: Optional[float] = None,
    correlation: Optional[str] = None,
    correlation_threshold: Optional[float] = None,
    cv: Optional[int] = None,
    lasso: Optional[str] = None,
    alphas: Union[int, Sequence[float], None] = None,
    random_state: Optional[int] = 0,
    on_empty: str = "raise",
) -> Any:
    """The study's selection as a ``Pipeline``: ``zscore`` → [``mannwhitney``] → ``correlation``
    → ``lasso``.

    ``stage`` "radiomics": Mann–Whitney p < 0.05, Pearson |r| > 0.85, linear LASSO 5-fold;
    "dlr": no Mann–Whitney step, Spearman |ρ| > 0.9, logistic LASSO 10-fold. Arguments left at
    None take the stage's value (``mannwhitney``: whether the Mann–Whitney step is present).
    """
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if stage not in STAGES:
        raise SelectionError(f"stage must be one of {tuple(STAGES)}, found {stage!r}")
    preset = STAGES[stage]

    def pick(value: Any, key: str) -> Any:
        return preset[key] if value is None else value

    steps: list[tuple[str, Any]] = [("zscore", StandardScaler())]
    if pick(mannwhitney, "mannwhitney"):
        p = pick(mannwhitney_p, "mannwhitney_p")
        steps.append(("mannwhitney", MannWhitneyFilter(p=p, on_empty=on_empty)))
    threshold = pick(correlation_threshold, "correlation_threshold")
    method = pick(correlation, "correlation")
    steps.append(("correlation", CorrelationFilter(threshold=threshold, method=method)))
    selector = LassoSelector(
        cv=pick(cv, "cv"),
        alphas=alphas,
        kind=pick(lasso, "lasso"),
        random_state=random_state,
        on_empty=on_empty,
    )
    steps.append(("lasso", selector))
    return Pipeline(steps)


def lasso_coefficients(
    selector: Any, feature_names: Optional[Sequence[str]] = None
) -> list[tuple[str, float]]:
    """(name, LASSO coefficient) of each selected feature of a fitted :func:`study_selector`
    pipeline (or a fitted :class:`LassoSelector`). ``feature_names``: the columns of the
    array the pipeline was fitted on, when they were not given as a DataFrame."""
    lasso = selector.steps[-1][1] if hasattr(selector, "steps") else selector
    if not isinstance(lasso, LassoSelector):
        raise SelectionError(f"expected a LassoSelector as the last step, found {type(lasso)}")
    check_is_fitted(lasso, "support_")
    names = selector.get_feature_names_out(feature_names)
    return [(str(name), float(c)) for name, c in zip(names, lasso.coef_)]
