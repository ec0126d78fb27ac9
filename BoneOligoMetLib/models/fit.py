"""Fitting the study's models (§2.6, §3.3–3.6, Tables 2–4): one ``Pipeline([encode, select,
classify])`` per feature group × classifier, fitted on the training patients only, with its
Youden threshold chosen on out-of-fold predictions of those patients (a resubstitution
threshold says nothing about new lesions: a random forest scores its own training lesions near
0 and 1), and the reader's SUVmax > liver baseline. Encoding is :class:`TableEncoder` (no
imputation: a non-finite value is an error), selection :func:`.selection.study_selector`
(radiomics or DLR stage), the classifier :func:`.classifiers.make_classifier`; the grid over
held-out patients is :mod:`.study_grid`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import numpy as np

from BoneOligoMetLib.errors import ModelingError, SelectionError
from BoneOligoMetLib.models.classifiers import (
    LIVER_COLUMN,
    STUDY_CLASSIFIERS,
    SUV_MAX_COLUMN,
    SuvmaxLiverBaseline,
    classifier_key,
    display_name,
    make_classifier,
)
from BoneOligoMetLib.models.groups import (
    BASELINE,
    BASELINE_CLASSIFIER,
    GROUPS,
    group_key,
    group_name,
)
from BoneOligoMetLib.models.selection import STAGES, lasso_coefficients, study_selector
from BoneOligoMetLib.models.splits import patient_folds
from BoneOligoMetLib.models.stats import roc_auc, youden_threshold

# Keep TableEncoder importable from here: skops reloads a pipeline by class path, and the
# committed demo bundle (data/demo_bundle/model.skops) was saved when TableEncoder lived in this
# module, as ``BoneOligoMetLib.modeling.TableEncoder``.
from BoneOligoMetLib.models.table import FeatureTable, TableEncoder

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class ModelConfig:
    """Settings of the grid. ``classifier_params``: overrides per classifier registry name
    (e.g. fewer trees); ``lasso_alphas``: the number of λ on the LASSO path (None: the
    selection's default, 100 linear / 50 logistic); ``threshold_folds``: patient-grouped folds
    of the training set for the out-of-fold Youden threshold (< 2: resubstitution)."""

    classifiers: tuple[str, ...] = STUDY_CLASSIFIERS
    classifier_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    lasso_alphas: Optional[int] = None
    threshold_folds: int = 5
    bootstrap: bool = False
    n_boot: int = 2000
    level: float = 0.95

    @classmethod
    def small(cls) -> ModelConfig:
        """A fast grid for CI: RF (100 trees) and LR, 20 λ on the LASSO paths, 3 threshold
        folds, fewer bootstrap replicates for the F1 CI."""
        trees = {"n_estimators": 100}
        return cls(
            classifiers=("rf", "lr"),
            classifier_params={"rf": trees, "et": trees, "xgboost": trees, "lightgbm": trees},
            lasso_alphas=20,
            threshold_folds=3,
            n_boot=500,
        )

    def params(self, classifier: str) -> dict[str, Any]:
        return dict(self.classifier_params.get(classifier_key(classifier), {}))


# ---------------------------------------------------------------------------------------------
# One fitted model


@dataclass
class FittedModel:
    """A fitted model and what it learned from its training lesions.

    ``pipeline``: ``encode`` → ``select`` → ``classify``; ``pipeline.predict_proba(X)[:, 1]``
    is the malignancy probability, ``X`` the rows × ``features`` (in this order; an object
    array when ``categorical`` is not empty — see :meth:`FeatureTable.matrix`). ``threshold``:
    Youden's J on the training lesions (``threshold_method`` says how); a lesion is called
    malignant when probability ≥ threshold. ``selected``: (encoded feature, LASSO coefficient
    per SD) in the selection's order; ``lasso_lambda``: the cross-validated λ.
    ``selection_counts``: features left after each step. ``training``: AUCs on the training
    lesions (resubstitution ``auc``, out-of-fold ``auc_oof``).
    """

    group: str
    classifier: str
    pipeline: Any
    features: list[str]
    categorical: list[str]
    threshold: float
    threshold_method: str
    selected: list[tuple[str, float]]
    lasso_lambda: float
    selection_counts: dict[str, int]
    train_index: np.ndarray
    train_probability: np.ndarray
    oof_probability: Optional[np.ndarray]
    training: dict[str, float]
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return group_name(self.group)

    def predict_proba(
        self, table: Union[FeatureTable, np.ndarray], index: Optional[Sequence[int]] = None
    ) -> np.ndarray:
        """Malignancy probability per lesion (rows of ``table`` at ``index``, or an array)."""
        if isinstance(table, FeatureTable):
            X = table.matrix(self.features, index, categorical=bool(self.categorical))
        else:
            X = table
        return np.asarray(self.pipeline.predict_proba(X)[:, 1], dtype=float)


@dataclass
class _Prepared:
    """Encode + select fitted on one set of training rows (shared by every classifier)."""

    encoder: TableEncoder
    selector: Any
    selected_train: np.ndarray
    notes: list[str]


def _index_key(index: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(index, dtype=np.int64).tobytes()).hexdigest()


def _prepare(
    table: FeatureTable,
    columns: Sequence[str],
    group: str,
    index: np.ndarray,
    config: ModelConfig,
    seed: int,
    on_empty: str,
    cache: Optional[dict],
) -> _Prepared:

    key = (group, tuple(columns), _index_key(index), on_empty, seed)
    if cache is not None and key in cache:
        return cache[key]
    categorical = table.categorical(columns)
    encoder = TableEncoder(list(columns), categorical)
    encoded = encoder.fit_transform(table.matrix(columns, index, categorical=bool(categorical)))
    y = table.y[index]
    stage = GROUPS[group].stage if group in GROUPS else "radiomics"
    folds = STAGES[stage]["cv"]
    minority = int(min(np.bincount(y, minlength=2)))
    notes = []
    if minority < folds:
        notes.append(
            f"LASSO CV reduced from {folds} to {max(minority, 2)} folds (smaller class: "
            f"{minority} training lesions)"
        )
        folds = max(minority, 2)
    selector = study_selector(
        stage, cv=folds, alphas=config.lasso_alphas, random_state=seed, on_empty=on_empty
    )
    try:
        selected = selector.fit_transform(encoded, y)
    except SelectionError as error:
        message = str(error)
        if "Mann–Whitney" in message:  # its "(xN)" indexes the encoded columns: name it
            names = encoder.get_feature_names_out()
            message = re.sub(r"\(x(\d+)\)", lambda m: f"({names[int(m.group(1))]})", message)
        raise SelectionError(f"{group_name(group)}: {message}") from error
    prepared = _Prepared(encoder, selector, selected, notes)
    if cache is not None:
        cache[key] = prepared
    return prepared


def _fit_classifier(name: str, X: np.ndarray, y: np.ndarray, config: ModelConfig, seed: int):

    model = make_classifier(name, random_state=seed, **config.params(name))
    return model.fit(X, y)


def _positive(model: Any, X: np.ndarray) -> np.ndarray:
    classes = list(getattr(model, "classes_", [0, 1]))
    return np.asarray(model.predict_proba(X)[:, classes.index(1)], dtype=float)


def _out_of_fold(
    table: FeatureTable,
    columns: Sequence[str],
    group: str,
    name: str,
    train: np.ndarray,
    k: int,
    config: ModelConfig,
    seed: int,
    cache: Optional[dict],
) -> Optional[np.ndarray]:
    """Out-of-fold probabilities of the training lesions (patient-grouped ``k``-fold, the
    whole pipeline refitted per fold), or None when a fold cannot be fitted."""

    y = table.y[train]
    categorical = bool(table.categorical(columns))
    oof = np.full(train.size, np.nan)
    for inner_train, inner_test in patient_folds(y, table.patients[train], k, seed):
        rows = train[inner_train]
        if len(np.unique(table.y[rows])) < 2:
            return None
        try:
            inner = _prepare(table, columns, group, rows, config, seed, "keep_best", cache)
        except SelectionError as error:
            log.info("out-of-fold threshold not possible: %s", error)
            return None
        model = _fit_classifier(name, inner.selected_train, table.y[rows], config, seed)
        encoded = inner.encoder.transform(
            table.matrix(columns, train[inner_test], categorical=categorical)
        )
        oof[inner_test] = _positive(model, inner.selector.transform(encoded))
    return oof


def _training_threshold(
    table: FeatureTable,
    columns: Sequence[str],
    group: str,
    name: str,
    train: np.ndarray,
    train_probability: np.ndarray,
    config: ModelConfig,
    seed: int,
    cache: Optional[dict],
) -> tuple[float, str, Optional[np.ndarray]]:
    """(threshold, how it was chosen, out-of-fold probabilities or None): Youden's J on
    out-of-fold predictions of the training lesions, else on resubstitution."""
    y = table.y[train]
    oof: Optional[np.ndarray] = None
    k = min(
        config.threshold_folds,
        len(np.unique(table.patients[train])),
        int(np.bincount(y, minlength=2).min()),
    )
    if k >= 2:
        oof = _out_of_fold(table, columns, group, name, train, k, config, seed, cache)
    if oof is not None and np.isfinite(oof).all() and len(np.unique(y)) == 2:
        threshold = youden_threshold(y, oof)
        method = f"Youden on out-of-fold training predictions ({k}-fold, patient-grouped)"
        return threshold, method, oof
    threshold = youden_threshold(y, train_probability)
    method = "Youden on resubstitution training predictions (too few patients for CV)"
    return threshold, method, None


def _selection_summary(
    prepared: _Prepared, columns: Sequence[str]
) -> tuple[list[tuple[str, float]], float, dict[str, int]]:
    """(selected features with their LASSO coefficients, the LASSO's λ, features left after
    each selection step)."""
    encoded_names = list(prepared.encoder.get_feature_names_out())
    selected = lasso_coefficients(prepared.selector, encoded_names)
    steps = prepared.selector.named_steps
    counts = {"input": len(columns), "encoded": len(encoded_names)}
    for step in ("mannwhitney", "correlation", "lasso"):
        if step in steps:
            counts[step] = int(steps[step].support_.sum())
    return selected, float(steps["lasso"].alpha_), counts


def fit_model(
    table: FeatureTable,
    columns: Optional[Sequence[str]],
    group: str,
    classifier: str,
    train_index: Sequence[int],
    *,
    config: Optional[ModelConfig] = None,
    seed: int = 0,
    cache: Optional[dict] = None,
) -> FittedModel:
    """Fit one model on the lesions at ``train_index`` (training patients only).

    ``columns``: the input features (None: the table's columns of ``group``). ``group`` picks
    the selection stage and names the model. The threshold is Youden's J on out-of-fold
    predictions of the training lesions (``config.threshold_folds`` patient-grouped folds; the
    whole pipeline refitted per fold, with the selection keeping its best feature rather than
    failing on a small fold); with too few training patients, on resubstitution (noted).
    ``cache``: a dict shared between calls so that classifiers of one group reuse its fitted
    encode/select steps. Raises :class:`SelectionError` when selection leaves no feature.
    """
    from sklearn.pipeline import Pipeline

    config = config or ModelConfig()
    group = group_key(group) if group not in GROUPS else group
    name = classifier_key(classifier)
    columns = list(table.group_columns(group) if columns is None else columns)
    if not columns:
        raise ModelingError(f"{group_name(group)}: no feature columns")
    train = np.sort(np.asarray(train_index, dtype=int))
    y = table.y[train]
    if len(np.unique(y)) < 2:
        raise ModelingError(f"{group_name(group)}: the training lesions hold one class only")
    prepared = _prepare(table, columns, group, train, config, seed, "raise", cache)
    model = _fit_classifier(name, prepared.selected_train, y, config, seed)
    pipeline = Pipeline(
        [("encode", prepared.encoder), ("select", prepared.selector), ("classify", model)]
    )
    train_probability = _positive(model, prepared.selected_train)
    threshold, method, oof = _training_threshold(
        table, columns, group, name, train, train_probability, config, seed, cache
    )
    notes = list(prepared.notes)
    if oof is None:
        notes.append(f"{group_name(group)} / {display_name(name)}: {method}")
    selected, lasso_lambda, counts = _selection_summary(prepared, columns)
    training = {"auc": roc_auc(y, train_probability)}
    if oof is not None:
        training["auc_oof"] = roc_auc(y, oof)
    return FittedModel(
        group=group,
        classifier=name,
        pipeline=pipeline,
        features=columns,
        categorical=list(prepared.encoder.categorical),
        threshold=float(threshold),
        threshold_method=method,
        selected=selected,
        lasso_lambda=lasso_lambda,
        selection_counts=counts,
        train_index=train,
        train_probability=train_probability,
        oof_probability=oof,
        training=training,
        notes=notes,
    )


def fit_baseline(table: FeatureTable, train_index: Sequence[int]) -> FittedModel:
    """The reader's rule (§2.3): malignant when SUVmax > liver SUVmean. Learns nothing; its
    score is r/(1 + r) of the ratio r, its threshold r > 1 (score > 0.5), fixed in advance."""
    from sklearn.pipeline import Pipeline

    columns = [SUV_MAX_COLUMN, LIVER_COLUMN]
    absent = [c for c in columns if c not in table.columns]
    if absent:
        raise ModelingError(f"{table.source}: the SUVmax baseline needs column(s) {absent}")
    train = np.sort(np.asarray(train_index, dtype=int))
    X = table.matrix(columns, train, categorical=False)
    model = SuvmaxLiverBaseline(feature_names=columns).fit(X, table.y[train])
    pipeline = Pipeline([("classify", model)])
    probability = np.asarray(pipeline.predict_proba(X)[:, 1], dtype=float)
    return FittedModel(
        group=BASELINE,
        classifier=BASELINE_CLASSIFIER,
        pipeline=pipeline,
        features=columns,
        categorical=[],
        threshold=float(np.nextafter(0.5, 1.0)),  # r > 1 exactly, as the reader's rule
        threshold_method="fixed: SUVmax / liver SUVmean > 1",
        selected=[],
        lasso_lambda=math.nan,
        selection_counts={},
        train_index=train,
        train_probability=probability,
        oof_probability=None,
        training={"auc": roc_auc(table.y[train], probability)},
    )
