"""The study's models end to end (§2.6, §3.3–3.6, Tables 2–4): feature groups by column prefix,
one fitted ``Pipeline`` per group × classifier, thresholds from the training data only, and
evaluation on held-out patients (a 7:3 patient split, patient-grouped k-fold CV, or an external
cohort).

A model is ``Pipeline([encode, select, classify])``:

- ``encode`` (:class:`TableEncoder`): numeric columns as floats, text ``clin_*`` columns one-hot
  (categories learned from the training rows; an unseen or missing category is all zeros). No
  imputation: a NaN, infinite or missing numeric value is an error naming the column and the
  lesion (:meth:`FeatureTable.check_finite`), never a silent fill.
- ``select``: :func:`~BoneOligoMetLib.selection.study_selector`, the radiomics stage (z-score →
  Mann–Whitney → Pearson → 5-fold linear LASSO) for groups without deep features, the DLR stage
  (z-score → Spearman → 10-fold logistic LASSO) for groups with ``dl_*`` columns. The LASSO's
  folds are capped at the smaller class's training count (reported as a note).
- ``classify``: :func:`~BoneOligoMetLib.classifiers.make_classifier`.

Threshold: Youden's J on OUT-OF-FOLD predictions of the training lesions (patient-grouped
k-fold inside the training set, 5 folds by default, the whole pipeline refitted per fold), not
on the resubstitution predictions: a random forest scores its own training lesions near 0 and 1,
so a resubstitution threshold says nothing about new lesions. The test set never touches it.

Selection does not depend on the classifier, so the encode and select steps fitted on one set of
training rows are shared by every classifier of a group (``cache``); the result is the same as
fitting each pipeline from scratch.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from BoneOligoMetLib.classifiers import (
    LIVER_COLUMN,
    STUDY_CLASSIFIERS,
    SUV_MAX_COLUMN,
    classifier_key,
    display_name,
)
from BoneOligoMetLib.errors import BoneOligoMetError
from BoneOligoMetLib.selection import STAGES, SelectionError

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]

LABEL_COLUMN = "label"
PATIENT_COLUMN = "patient_id"
LESION_COLUMN = "lesion_label"
# Fewest patients for a 7:3 split whose training side still holds patient-grouped CV folds.
MIN_PATIENTS = 10
BASELINE = "suvmax_liver"
BASELINE_NAME = "SUVmax > liver"
BASELINE_CLASSIFIER = "rule"
_TEXT_LABELS = {"benign": 0, "malignant": 1, "0": 0, "1": 1, "false": 0, "true": 1}


class ModelingError(BoneOligoMetError):
    """A feature table or a model request that cannot be used (one line, names what is wrong)."""


# ---------------------------------------------------------------------------------------------
# Feature groups (the study's model variants are column selections)


@dataclass(frozen=True)
class FeatureGroup:
    """A model variant: the columns whose names start with one of ``prefixes``.

    ``table`` and ``study_row`` locate the study's reported row (reported_results.csv:
    ``table``, ``modality_or_backbone``). ``clin_`` is optional: a table without clinical
    columns still has the Complex groups (radiomics/deep + metabolic), with a note.
    """

    key: str
    name: str
    prefixes: tuple[str, ...]
    table: int
    study_row: str

    @property
    def deep(self) -> bool:
        return any(p.startswith("dl_") for p in self.prefixes)

    @property
    def stage(self) -> str:
        """The selection stage: "dlr" (§3.6) when deep features are in, else "radiomics"."""
        return "dlr" if self.deep else "radiomics"


_RAD = ("ct_", "pet_", "petct_")
_DL = ("dl_ct_", "dl_pet_")
_CLINICAL = ("met_", "clin_")
GROUPS: dict[str, FeatureGroup] = {
    g.key: g
    for g in (
        FeatureGroup("ct", "Radiomics CT", ("ct_",), 2, "CT"),
        FeatureGroup("pet", "Radiomics PET", ("pet_",), 2, "PET"),
        FeatureGroup("petct", "Radiomics PET-CT", ("petct_",), 2, "PET/CT"),
        FeatureGroup("complex", "Complex", _RAD + _CLINICAL, 2, "Complex"),
        FeatureGroup("dl_ct", "DL CT", ("dl_ct_",), 3, "CT"),
        FeatureGroup("dl_pet", "DL PET", ("dl_pet_",), 3, "PET"),
        FeatureGroup("dl_petct", "DL PET-CT", _DL, 3, "PET/CT"),
        FeatureGroup("dl_complex", "DL Complex", _DL + _CLINICAL, 3, "Complex"),
        FeatureGroup("dlr", "DLR", _RAD + _DL, 4, "DLR"),
        FeatureGroup("dlr_complex", "DLR+Complex", _RAD + _DL + _CLINICAL, 4, "DLR+Complex"),
    )
}
# DeLong comparisons are against the most complete model the table allows, in this order.
REFERENCE_ORDER = ("dlr_complex", "complex")


def _normalise(name: str) -> str:
    return re.sub(r"[\s\-_/]+", "", name.strip().lower())


def group_key(name: str) -> str:
    """The group key for a key or display name ("DLR+Complex", "radiomics pet-ct", "dl_ct")."""
    wanted = _normalise(name)
    for key, group in GROUPS.items():
        aliases = {_normalise(key), _normalise(group.name)}
        if group.name.startswith("Radiomics "):
            aliases.add(_normalise(group.name.replace("Radiomics ", "radiomics_")))
        if wanted in aliases:
            return key
    known = [*GROUPS, *(g.name for g in GROUPS.values())]
    close = difflib.get_close_matches(name.strip(), known, n=1, cutoff=0.5)
    close = close or difflib.get_close_matches(name.strip().lower(), list(GROUPS), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ModelingError(f"unknown model {name!r}{hint} (known: {', '.join(GROUPS)})")


def group_name(key: str) -> str:
    """Display name of a group key, or of the baseline."""
    return BASELINE_NAME if key == BASELINE else GROUPS[key].name


# ---------------------------------------------------------------------------------------------
# The feature table


def _missing(value: Any) -> bool:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return True
    return isinstance(value, (float, np.floating)) and math.isnan(value)


def _label_value(value: Any, where: str) -> int:
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)) and int(value) in (0, 1):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value) in (0.0, 1.0):
        return int(value)
    if isinstance(value, str) and value.strip().lower() in _TEXT_LABELS:
        return _TEXT_LABELS[value.strip().lower()]
    raise ModelingError(f"{where}: label {value!r} is not 0/1 or benign/malignant (1 = malignant)")


class FeatureTable:
    """A feature table as ``bone-oligomet extract`` writes it: one row per lesion with
    ``patient_id``, ``lesion_label``, ``label`` (0 benign / 1 malignant, or the words) and the
    feature columns. With a ``reader`` column holding several readers, the rows of ``reader``
    (default: the first in sorted order) are used.

    ``y``: labels (int, 1 = malignant); ``patients``: patient ids (str), one per row.
    """

    def __init__(
        self,
        columns: Sequence[str],
        rows: Sequence[Mapping[str, Any]],
        source: str = "feature table",
        reader: Optional[str] = None,
    ) -> None:
        self.source = str(source)
        self.columns = [str(c) for c in columns]
        self.notes: list[str] = []
        for needed in (PATIENT_COLUMN, LABEL_COLUMN):
            if needed not in self.columns:
                hint = " (the manifest needs a label column: 0 benign, 1 malignant)"
                raise ModelingError(
                    f"{self.source}: no {needed!r} column"
                    + (hint if needed == LABEL_COLUMN else "")
                )
        rows = list(rows)
        if "reader" in self.columns:
            readers = sorted({str(r.get("reader")) for r in rows})
            if reader is None and len(readers) > 1:
                reader = readers[0]
                self.notes.append(
                    f"{len(readers)} readers in the table; the models use reader {reader!r}'s "
                    "delineations"
                )
            if reader is not None:
                if reader not in readers:
                    raise ModelingError(f"{self.source}: no reader {reader!r} (found {readers})")
                rows = [r for r in rows if str(r.get("reader")) == reader]
        if not rows:
            raise ModelingError(f"{self.source}: the table has no rows")
        self.rows = rows
        self.y = np.array(
            [_label_value(r.get(LABEL_COLUMN), self.describe(i)) for i, r in enumerate(rows)],
            dtype=int,
        )
        self.patients = np.array([str(r.get(PATIENT_COLUMN)) for r in rows])
        seen: set[tuple[str, str]] = set()
        for i, row in enumerate(rows):
            key = (str(row.get(PATIENT_COLUMN)), str(row.get(LESION_COLUMN, i)))
            if key in seen:
                raise ModelingError(f"{self.source}: {self.describe(i)} appears twice")
            seen.add(key)
        self._categorical = {c for c in self.columns if c.startswith("clin_") and self._is_text(c)}

    @classmethod
    def read(cls, path: Union[str, Path], reader: Optional[str] = None) -> FeatureTable:
        """A ``.parquet`` or ``.csv`` table written by ``bone-oligomet extract``."""
        from BoneOligoMetLib.store import read_table

        path = Path(path)
        if not path.is_file():
            raise ModelingError(f"{path}: no such feature table")
        try:
            columns, rows = read_table(path)
        except (OSError, ValueError) as error:
            if isinstance(error, BoneOligoMetError):
                raise
            raise ModelingError(f"{path}: cannot read the feature table ({error})") from error
        return cls(columns, rows, source=str(path), reader=reader)

    def __len__(self) -> int:
        return len(self.rows)

    def describe(self, row: int) -> str:
        """ "patient P lesion L" of a row, for messages."""
        values = self.rows[row]
        return (
            f"patient {values.get(PATIENT_COLUMN)} lesion {values.get(LESION_COLUMN, '?')}"
            f" (row {row})"
        )

    def _is_text(self, column: str) -> bool:
        return any(
            isinstance(r.get(column), str) and not _missing(r.get(column)) for r in self.rows
        )

    def column(self, name: str) -> list[Any]:
        if name not in self.columns:
            raise ModelingError(f"{self.source}: no column {name!r}")
        return [r.get(name) for r in self.rows]

    @property
    def n_patients(self) -> int:
        return len(np.unique(self.patients))

    def prefix_columns(self, prefix: str) -> list[str]:
        return [c for c in self.columns if c.startswith(prefix)]

    def group_columns(self, group: str) -> list[str]:
        """The table's columns of a group, in table order."""
        prefixes = GROUPS[group].prefixes
        return [c for c in self.columns if c.startswith(prefixes)]

    def group_available(self, group: str) -> tuple[bool, str]:
        """(usable, note): a group needs a column of every prefix but ``clin_``."""
        spec = GROUPS[group]
        absent = [p for p in spec.prefixes if not self.prefix_columns(p)]
        needed = [p for p in absent if p != "clin_"]
        if needed:
            stars = ", ".join(f"{p}*" for p in needed)
            return False, f"{spec.name}: skipped, no {stars} columns in the table"
        if absent:
            return True, f"{spec.name}: no clin_* columns in the table; clinical values left out"
        return True, ""

    def categorical(self, columns: Sequence[str]) -> list[str]:
        """The text (one-hot encoded) columns among ``columns``."""
        return [c for c in columns if c in self._categorical]

    def check_numeric(self, columns: Sequence[str]) -> None:
        """Text in a non-clinical column is an error naming it (clin_* text is categorical)."""
        for column in columns:
            if column in self._categorical:
                continue
            for i, row in enumerate(self.rows):
                value = row.get(column)
                if isinstance(value, str) and not _missing(value):
                    try:
                        float(value)
                    except ValueError:
                        raise ModelingError(
                            f"{self.source}: column {column!r} holds text {value!r} at "
                            f"{self.describe(i)}; only clin_* columns may be categories"
                        ) from None

    def check_finite(self, columns: Sequence[str], index: Optional[Sequence[int]] = None) -> None:
        """Missing, NaN or infinite numeric values are an error naming column and lesion."""
        numeric = [c for c in columns if c not in self._categorical]
        if not numeric:
            return
        rows = range(len(self.rows)) if index is None else index
        matrix = self.matrix(numeric, rows, categorical=False)
        bad = ~np.isfinite(matrix)
        if bad.any():
            where_rows, where_cols = np.nonzero(bad)
            first = list(rows)[int(where_rows[0])]
            columns_hit = sorted({numeric[j] for j in where_cols})
            raise ModelingError(
                f"{self.source}: {int(bad.sum())} missing/NaN/infinite feature values in "
                f"{len(columns_hit)} column(s) (first: {numeric[int(where_cols[0])]!r} at "
                f"{self.describe(first)}); the models do not impute: fix the extraction or "
                "drop the column"
            )

    def matrix(
        self,
        columns: Sequence[str],
        index: Optional[Sequence[int]] = None,
        categorical: Optional[bool] = None,
    ) -> np.ndarray:
        """Rows × ``columns`` as the pipelines take them: float, or object when a categorical
        (text) column is among them. Missing numbers come out NaN."""
        missing = [c for c in columns if c not in self.columns]
        if missing:
            shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
            raise ModelingError(
                f"{self.source}: {len(missing)} feature column(s) the model needs are missing: "
                f"{shown}"
            )
        rows = self.rows if index is None else [self.rows[int(i)] for i in index]
        if categorical is None:
            categorical = bool(self.categorical(columns))
        if categorical:
            out = np.empty((len(rows), len(columns)), dtype=object)
            for i, row in enumerate(rows):
                out[i] = [row.get(c) for c in columns]
            return out
        try:
            return np.array([[row.get(c) for c in columns] for row in rows], dtype=float).reshape(
                len(rows), len(columns)
            )
        except (TypeError, ValueError) as error:
            self.check_numeric(columns)
            raise ModelingError(f"{self.source}: non-numeric feature values ({error})") from error


# ---------------------------------------------------------------------------------------------
# Encoding: numbers pass through, clinical text categories one-hot


class TableEncoder(TransformerMixin, BaseEstimator):
    """Feature rows (columns ``feature_names``) to a float matrix: numeric columns as floats,
    ``categorical`` columns one-hot with the categories seen in fit (sorted; output columns
    ``name=category``, in place of the text column). An unseen or missing category is all
    zeros; a missing/NaN/infinite number is an error naming the column and the row.
    """

    def __init__(self, feature_names: Sequence[str] = (), categorical: Sequence[str] = ()) -> None:
        self.feature_names = feature_names
        self.categorical = categorical

    def _columns(self, X: Any) -> np.ndarray:
        array = np.asarray(X, dtype=object if self.categorical else float)
        if array.ndim != 2 or array.shape[1] != len(self.feature_names):
            raise ModelingError(
                f"expected {len(self.feature_names)} feature columns "
                f"({', '.join(list(self.feature_names)[:3])} …), found shape {array.shape}"
            )
        return array

    def fit(self, X: Any, y: Any = None) -> TableEncoder:
        names = [str(n) for n in self.feature_names]
        unknown = sorted(set(self.categorical) - set(names))
        if unknown:
            raise ModelingError(f"categorical columns not among the features: {unknown}")
        array = self._columns(X)
        self.n_features_in_ = len(names)
        self.categories_: dict[str, list[str]] = {}
        for j, name in enumerate(names):
            if name in self.categorical:
                levels = {str(v).strip() for v in array[:, j] if not _missing(v)}
                self.categories_[name] = sorted(levels)
        out: list[str] = []
        for name in names:
            if name in self.categories_:
                out.extend(f"{name}={level}" for level in self.categories_[name])
            else:
                out.append(name)
        self.feature_names_out_ = out
        self.transform(array)  # validates the numbers of the training rows
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        array = self._columns(X)
        blocks: list[np.ndarray] = []
        for j, name in enumerate(self.feature_names):
            values = array[:, j]
            if name in self.categories_:
                text = np.array(["" if _missing(v) else str(v).strip() for v in values])
                levels = self.categories_[name]
                blocks.append((text[:, None] == np.array(levels)[None, :]).astype(float))
                continue
            try:
                numbers = np.array([np.nan if v is None else v for v in values], dtype=float)
            except (TypeError, ValueError):
                raise ModelingError(f"feature {name!r} holds non-numeric values") from None
            bad = ~np.isfinite(numbers)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise ModelingError(
                    f"feature {name!r} is {values[row]!r} at row {row} ({int(bad.sum())} rows); "
                    "the models do not impute missing values"
                )
            blocks.append(numbers[:, None])
        if not blocks:
            return np.zeros((array.shape[0], 0))
        return np.hstack(blocks)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        return np.asarray(self.feature_names_out_, dtype=object)


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
    from BoneOligoMetLib.selection import study_selector

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
    from BoneOligoMetLib.classifiers import make_classifier

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
    from BoneOligoMetLib.splits import patient_folds

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

    from BoneOligoMetLib.stats import roc_auc, youden_threshold

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
    notes = list(prepared.notes)

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
    else:
        oof = None
        threshold = youden_threshold(y, train_probability)
        method = "Youden on resubstitution training predictions (too few patients for CV)"
        notes.append(f"{group_name(group)} / {display_name(name)}: {method}")

    from BoneOligoMetLib.selection import lasso_coefficients

    encoded_names = list(prepared.encoder.get_feature_names_out())
    selected = lasso_coefficients(prepared.selector, encoded_names)
    steps = prepared.selector.named_steps
    counts = {"input": len(columns), "encoded": len(encoded_names)}
    for step in ("mannwhitney", "correlation", "lasso"):
        if step in steps:
            counts[step] = int(steps[step].support_.sum())
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
        lasso_lambda=float(steps["lasso"].alpha_),
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

    from BoneOligoMetLib.classifiers import SuvmaxLiverBaseline
    from BoneOligoMetLib.stats import roc_auc

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


# ---------------------------------------------------------------------------------------------
# Evaluation


@dataclass(frozen=True)
class Evaluation:
    """One model × classifier on one set of lesions ("train", "train_oof", "test", "cv",
    "external"): AUC with its DeLong CI (and bootstrap CI when asked), metrics at the training
    threshold with CIs, calibration."""

    model: str
    classifier: str
    set: str
    n_lesions: int
    n_patients: int
    n_malignant: int
    auc: Any  # stats.AucCI (DeLong)
    auc_bootstrap: Any  # stats.AucCI or None
    metrics: Any  # stats.BinaryMetrics at the training threshold
    calibration: Any  # stats.Calibration or None
    threshold_note: str = ""

    def as_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "model": self.model,
            "model_name": group_name(self.model),
            "classifier": self.classifier,
            "classifier_name": classifier_name(self.classifier),
            "set": self.set,
            "n_lesions": self.n_lesions,
            "n_patients": self.n_patients,
            "n_malignant": self.n_malignant,
            "auc": self.auc.auc,
            "auc_low": self.auc.low,
            "auc_high": self.auc.high,
            "auc_ci": self.auc.method,
        }
        if self.auc_bootstrap is not None:
            row["auc_boot_low"] = self.auc_bootstrap.low
            row["auc_boot_high"] = self.auc_bootstrap.high
        row.update(self.metrics.as_row())
        row["threshold_note"] = self.threshold_note
        return row


def classifier_name(key: str) -> str:
    return "reader rule" if key == BASELINE_CLASSIFIER else display_name(key)


def evaluate(
    y: Sequence[int],
    probability: Sequence[float],
    threshold: Union[float, Sequence[float]],
    *,
    model: str,
    classifier: str,
    set_name: str,
    patients: Optional[Sequence[str]] = None,
    config: Optional[ModelConfig] = None,
    seed: int = 0,
) -> Evaluation:
    """AUC (DeLong CI; bootstrap too when ``config.bootstrap``), sensitivity, specificity,
    accuracy, precision, F1 with CIs, AP and Brier at ``threshold`` — chosen on training data.
    ``threshold`` per lesion (k-fold CV: each lesion its fold's threshold) is allowed; the
    metrics then count each lesion's own call, ``metrics.threshold`` is their median."""
    from BoneOligoMetLib.stats import (
        auc_ci_bootstrap,
        auc_ci_delong,
        binary_metrics,
        calibration,
    )

    config = config or ModelConfig()
    y = np.asarray(y, dtype=int)
    p = np.asarray(probability, dtype=float)
    thresholds = np.broadcast_to(np.asarray(threshold, dtype=float), p.shape)
    auc = auc_ci_delong(y, p, config.level)
    boot = None
    if config.bootstrap:
        boot = auc_ci_bootstrap(y, p, config.level, n_boot=config.n_boot, random_state=seed)
    note = ""
    if np.ptp(thresholds) == 0:
        metrics = binary_metrics(
            y, p, float(thresholds[0]), level=config.level, n_boot=config.n_boot, random_state=seed
        )
    else:  # per-lesion thresholds: dichotomise p − t at 0, then AP and Brier on p itself
        shifted = binary_metrics(
            y, p - thresholds, 0.0, level=config.level, n_boot=config.n_boot, random_state=seed
        )
        on_p = binary_metrics(y, p, 0.5, level=config.level, n_boot=1, random_state=seed)
        metrics = replace(
            shifted,
            threshold=float(np.median(thresholds)),
            average_precision=on_p.average_precision,
            brier=on_p.brier,
        )
        note = "per-fold training thresholds (median shown)"
    curve = None
    if p.min() >= 0.0 and p.max() <= 1.0:
        curve = calibration(y, p, n_bins=5 if y.size < 100 else 10)
    return Evaluation(
        model=model,
        classifier=classifier,
        set=set_name,
        n_lesions=int(y.size),
        n_patients=len(set(patients)) if patients is not None else int(y.size),
        n_malignant=int(y.sum()),
        auc=auc,
        auc_bootstrap=boot,
        metrics=metrics,
        calibration=curve,
        threshold_note=note,
    )


# ---------------------------------------------------------------------------------------------
# The grid: every group × classifier, one split (or CV, or an external cohort)


@dataclass
class ModelRun:
    """One group × classifier: its fitted model(s) and predictions per set. ``predictions``
    maps a set name to (row index into its table, probability, per-lesion threshold, fold)."""

    group: str
    classifier: str
    fitted: list[FittedModel]
    predictions: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    evaluations: dict[str, Evaluation] = field(default_factory=dict)


@dataclass
class GridResult:
    """What :func:`run_grid` produced. ``primary``: the held-out set ("test", "cv" or
    "external"); ``reference``: the group every model is DeLong-compared with."""

    mode: str
    primary: str
    table: FeatureTable
    external: Optional[FeatureTable]
    groups: list[str]
    classifiers: list[str]
    reference: Optional[str]
    config: ModelConfig
    seed: int
    test_fraction: float
    folds: int
    split: dict[str, np.ndarray]
    runs: dict[tuple[str, str], ModelRun]
    delong: list[dict[str, Any]]
    notes: list[str]
    failed: list[tuple[str, str, str]]  # (group, classifier, message)

    def set_table(self, set_name: str) -> FeatureTable:
        return self.external if set_name == "external" and self.external else self.table

    def run(self, group: str, classifier: str) -> Optional[ModelRun]:
        return self.runs.get((group, classifier))

    def baseline(self) -> Optional[ModelRun]:
        return self.runs.get((BASELINE, BASELINE_CLASSIFIER))

    def metrics_rows(self) -> list[dict[str, Any]]:
        """One row per model × classifier × set, with the DeLong p against the reference."""
        first = self.classifiers[0] if self.classifiers else ""
        p_values = {
            (d["set"], d["model"], d["classifier"]): d["p_value"]
            for d in self.delong
            if d["classifier"] != BASELINE_CLASSIFIER or d["reference_classifier"] == first
        }
        rows = []
        for run in self.runs.values():
            for set_name, evaluation in run.evaluations.items():
                row = evaluation.as_row()
                row["delong_p_vs_reference"] = p_values.get((set_name, run.group, run.classifier))
                row["reference_model"] = group_name(self.reference) if self.reference else ""
                rows.append(row)
        keys: dict[str, None] = {}
        for row in rows:
            keys.update(dict.fromkeys(row))
        return [{k: row.get(k) for k in keys} for row in rows]

    def prediction_rows(self) -> list[dict[str, Any]]:
        rows = []
        for run in self.runs.values():
            for set_name, (index, prob, thresholds, folds) in run.predictions.items():
                table = self.set_table(set_name)
                for i, p, t, k in zip(index, prob, thresholds, folds):
                    source = table.rows[int(i)]
                    rows.append(
                        {
                            "patient_id": source.get(PATIENT_COLUMN),
                            "lesion_label": source.get(LESION_COLUMN),
                            "label": int(table.y[int(i)]),
                            "set": set_name,
                            "model": run.group,
                            "classifier": run.classifier,
                            "probability": float(p),
                            "threshold": float(t),
                            "fold": "" if k < 0 else int(k),
                        }
                    )
        return rows

    def selected_rows(self) -> list[dict[str, Any]]:
        """Selected features with LASSO coefficients, per group (selection does not depend on
        the classifier) and fit ("all training" or the CV fold)."""
        rows = []
        seen: set[tuple[str, str]] = set()
        for run in self.runs.values():
            if run.group == BASELINE:
                continue
            for k, fitted in enumerate(run.fitted):
                fit = "training set" if len(run.fitted) == 1 else f"fold {k + 1}"
                if (run.group, fit) in seen:
                    continue
                seen.add((run.group, fit))
                ranked = sorted(fitted.selected, key=lambda item: -abs(item[1]))
                for rank, (feature, coefficient) in enumerate(ranked, start=1):
                    rows.append(
                        {
                            "model": run.group,
                            "model_name": group_name(run.group),
                            "fit": fit,
                            "lambda": fitted.lasso_lambda,
                            "rank": rank,
                            "feature": feature,
                            "coefficient": coefficient,
                            **{f"n_{s}": n for s, n in fitted.selection_counts.items()},
                        }
                    )
        return rows


def resolve_groups(table: FeatureTable, models: Optional[Sequence[str]]) -> tuple[list, list]:
    """(group keys to fit, notes). Default: every group the table's columns allow; a group
    asked for by name that the table cannot supply is an error."""
    notes: list[str] = []
    if models:
        keys = list(dict.fromkeys(group_key(m) for m in models))
        for key in keys:
            usable, note = table.group_available(key)
            if not usable:
                raise ModelingError(f"{table.source}: {note}")
            if note:
                notes.append(note)
        return keys, notes
    keys = []
    for key in GROUPS:
        usable, note = table.group_available(key)
        if note:
            notes.append(note)
        if usable:
            keys.append(key)
    if not keys:
        raise ModelingError(f"{table.source}: no feature columns of any model group (ct_*, …)")
    return keys, notes


def resolve_classifiers(names: Optional[Sequence[str]], config: ModelConfig) -> list[str]:
    """Registry names (did-you-mean errors come from :func:`classifier_key`)."""
    return list(dict.fromkeys(classifier_key(n) for n in (names or config.classifiers)))


def _check_table(table: FeatureTable, columns: Sequence[str], cv: int) -> None:
    counts = np.bincount(table.y, minlength=2)
    if counts.min() == 0:
        only = "malignant" if counts[1] else "benign"
        raise ModelingError(
            f"{table.source}: every one of the {len(table)} lesions is {only}; "
            "the models need benign and malignant lesions"
        )
    needed = max(MIN_PATIENTS, cv)
    if table.n_patients < needed:
        raise ModelingError(
            f"{table.source}: {table.n_patients} patients are too few (need at least {needed})"
        )
    table.check_numeric(columns)
    table.check_finite(columns)


def run_grid(
    table: FeatureTable,
    models: Optional[Sequence[str]] = None,
    classifiers: Optional[Sequence[str]] = None,
    *,
    config: Optional[ModelConfig] = None,
    test_fraction: float = 0.3,
    seed: int = 0,
    cv: int = 0,
    external: Optional[FeatureTable] = None,
    progress: Optional[Progress] = None,
) -> GridResult:
    """Fit and evaluate every group × classifier, plus the SUVmax baseline.

    Modes: a 7:3 patient split (:func:`~BoneOligoMetLib.splits.patient_split`, ``seed``);
    ``cv`` ≥ 2: patient-grouped k-fold, each lesion predicted once by the model of the fold
    that held it out (pooled predictions, per-fold training thresholds); ``external``: the
    models fitted on all of ``table`` and tested on ``external``. A model whose selection
    leaves no feature is recorded in ``failed`` and the grid goes on. DeLong tests compare
    every model with the reference group (DLR+Complex, else Complex) of the same classifier,
    and the baseline with the reference of each classifier, on the held-out lesions.
    """
    from BoneOligoMetLib.splits import patient_folds, patient_split

    config = config or ModelConfig()
    if cv and external is not None:
        raise ModelingError("choose k-fold CV or an external test set, not both")
    if cv == 1 or cv < 0:
        raise ModelingError(f"--cv needs at least 2 folds, found {cv}")
    groups, notes = resolve_groups(table, models)
    names = resolve_classifiers(classifiers, config)
    notes = list(table.notes) + notes
    columns = sorted({c for g in groups for c in table.group_columns(g)}, key=table.columns.index)
    baseline_ok = all(c in table.columns for c in (SUV_MAX_COLUMN, LIVER_COLUMN))
    _check_table(table, columns + ([SUV_MAX_COLUMN, LIVER_COLUMN] if baseline_ok else []), cv)
    if not baseline_ok:
        notes.append("SUVmax baseline: skipped, no met_suv_max / met_liver_suv_mean columns")
    if external is not None:
        needed = columns + ([SUV_MAX_COLUMN, LIVER_COLUMN] if baseline_ok else [])
        external.matrix(needed, [0])  # names the missing columns
        if len(np.unique(external.y)) < 2:
            raise ModelingError(f"{external.source}: the external set holds one class only")
        external.check_numeric(needed)
        external.check_finite(needed)
    reference = next((g for g in REFERENCE_ORDER if g in groups), None)
    if reference is None:
        notes.append("no Complex or DLR+Complex model in the grid: no DeLong comparisons")
    elif reference != "dlr_complex":
        notes.append(f"no deep features: models are DeLong-compared with {group_name(reference)}")

    all_rows = np.arange(len(table))
    split: dict[str, np.ndarray] = {}
    if external is not None:
        mode, primary = "external", "external"
        fits = [(all_rows, np.arange(len(external)))]
        split = {"train": all_rows}
    elif cv:
        mode, primary = "cv", "cv"
        fits = patient_folds(table.y, table.patients, cv, seed)
    else:
        mode, primary = "split", "test"
        train, test = patient_split(table.y, table.patients, test_fraction, seed)
        fits = [(train, test)]
        split = {"train": train, "test": test}

    result = GridResult(
        mode=mode,
        primary=primary,
        table=table,
        external=external,
        groups=groups,
        classifiers=names,
        reference=reference,
        config=config,
        seed=seed,
        test_fraction=test_fraction,
        folds=cv,
        split=split,
        runs={},
        delong=[],
        notes=notes,
        failed=[],
    )
    test_table = external if external is not None else table
    cache: dict = {}
    jobs = [(g, c) for g in groups for c in names]
    if baseline_ok:
        jobs.append((BASELINE, BASELINE_CLASSIFIER))
    for number, (group, name) in enumerate(jobs):
        if number and jobs[number - 1][0] != group:
            cache.clear()  # encode/select steps are shared within a group only
        if progress:
            progress(number / len(jobs), f"{group_name(group)} / {classifier_name(name)}")
        fitted_models: list[FittedModel] = []
        pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        try:
            for k, (train, test) in enumerate(fits):
                if group == BASELINE:
                    fitted = fit_baseline(table, train)
                else:
                    fitted = fit_model(
                        table, None, group, name, train, config=config, seed=seed, cache=cache
                    )
                probability = fitted.predict_proba(test_table, test)
                fold = np.full(test.size, k if mode == "cv" else -1)
                pieces.append((test, probability, np.full(test.size, fitted.threshold), fold))
                fitted_models.append(fitted)
        except SelectionError as error:
            message = str(error)
            result.failed.append((group, name, message))
            log.warning("%s / %s not fitted: %s", group_name(group), name, message)
            continue
        index, probability, thresholds, folds = (np.concatenate(x) for x in zip(*pieces))
        order = np.argsort(index, kind="stable")
        run = ModelRun(group, name, fitted_models, {})
        run.predictions[primary] = (
            index[order],
            probability[order],
            thresholds[order],
            folds[order],
        )
        if mode != "cv":
            fitted = fitted_models[0]
            train = fitted.train_index
            none = np.full(train.size, -1)
            threshold = np.full(train.size, fitted.threshold)
            run.predictions["train"] = (train, fitted.train_probability, threshold, none)
            if fitted.oof_probability is not None:
                run.predictions["train_oof"] = (train, fitted.oof_probability, threshold, none)
        for set_name, (index, probability, thresholds, _) in run.predictions.items():
            source = result.set_table(set_name)
            run.evaluations[set_name] = evaluate(
                source.y[index],
                probability,
                thresholds,
                model=group,
                classifier=name,
                set_name=set_name,
                patients=source.patients[index],
                config=config,
                seed=seed,
            )
        for fitted in fitted_models:
            for note in fitted.notes:
                if note not in result.notes:
                    result.notes.append(note)
        result.runs[(group, name)] = run
    if progress:
        progress(1.0, "done")
    result.delong = _delong_rows(result)
    return result


def _delong_rows(result: GridResult) -> list[dict[str, Any]]:
    """Paired DeLong tests on the held-out lesions: each model against the reference group of
    the same classifier; the baseline against the reference of every classifier."""
    from BoneOligoMetLib.stats import delong_test

    rows: list[dict[str, Any]] = []
    if result.reference is None:
        return rows
    baseline = result.baseline()
    for name in result.classifiers:
        reference = result.run(result.reference, name)
        if reference is None:
            continue
        ref_index, ref_p, _, _ = reference.predictions[result.primary]
        others = [r for r in result.runs.values() if r.classifier == name and r is not reference]
        if baseline is not None:
            others.append(baseline)
        for run in others:
            index, p, _, _ = run.predictions[result.primary]
            if not np.array_equal(index, ref_index):
                continue  # not the same lesions (cannot happen within one grid)
            y = result.set_table(result.primary).y[index]
            test = delong_test(y, p, ref_p)
            low, high = test.difference_ci(result.config.level)
            rows.append(
                {
                    "set": result.primary,
                    "model": run.group,
                    "model_name": group_name(run.group),
                    "classifier": run.classifier,
                    "classifier_name": classifier_name(run.classifier),
                    "reference_model": result.reference,
                    "reference_classifier": name,
                    "auc_model": test.auc_a,
                    "auc_reference": test.auc_b,
                    "difference": test.difference,
                    "difference_low": low,
                    "difference_high": high,
                    "z": test.z,
                    "p_value": test.p_value,
                    "n_cases": test.n_cases,
                    "n_controls": test.n_controls,
                }
            )
    return rows
