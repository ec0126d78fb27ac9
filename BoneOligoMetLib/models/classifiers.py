"""The study's classifiers by name (§2.6, Tables 2–4), and the reader's SUVmax-vs-liver baseline.

Defaults suit small cohorts (a few hundred lesions, tens of selected features), one thread each so
that a grid of models runs in parallel; scale-sensitive methods (SVM, KNN, LR) carry their own
``StandardScaler``. The study's Mamba classifier (Table 4) is not reproduced: asking for it is an
error that says so.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from BoneOligoMetLib.errors import ClassifierError

# Registry name -> display name used in the study's tables (reported_results.csv "classifier").
DISPLAY_NAMES: dict[str, str] = {
    "rf": "RF",
    "svm": "SVM",
    "et": "ExtraTrees",
    "knn": "KNN",
    "lr": "LR",
    "dt": "DT",
    "xgboost": "XGBoost",
    "lightgbm": "LightGBM",
    "svm+knn": "SVM+KNN",
}
CLASSIFIERS = tuple(DISPLAY_NAMES)
# The study's grid (§2.6 and Figure 3): every single classifier, RF first.
STUDY_CLASSIFIERS = ("rf", "svm", "et", "knn", "lr", "dt", "xgboost", "lightgbm")
_ALIASES = {
    "randomforest": "rf",
    "random_forest": "rf",
    "extratrees": "et",
    "extra_trees": "et",
    "logisticregression": "lr",
    "logistic_regression": "lr",
    "decisiontree": "dt",
    "decision_tree": "dt",
    "xgb": "xgboost",
    "lgbm": "lightgbm",
    "lgb": "lightgbm",
}


def classifier_key(name: str) -> str:
    """The registry name for a registry name, display name or alias (case-insensitive)."""
    key = name.strip().lower().replace(" ", "")
    if key in DISPLAY_NAMES:
        return key
    for registry, display in DISPLAY_NAMES.items():
        if key == display.lower():
            return registry
    if key in _ALIASES:
        return _ALIASES[key]
    if key == "mamba":
        raise ClassifierError(
            "the study's Mamba classifier is not reproduced here; choose one of "
            + ", ".join(CLASSIFIERS)
        )
    close = difflib.get_close_matches(key, [*CLASSIFIERS, *_ALIASES], n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ClassifierError(f"unknown classifier {name!r}{hint} (known: {', '.join(CLASSIFIERS)})")


def display_name(name: str) -> str:
    """The study's table name of a classifier ("rf" -> "RF", "et" -> "ExtraTrees")."""
    return DISPLAY_NAMES[classifier_key(name)]


def _scaled(estimator: Any, step: str) -> Any:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("scale", StandardScaler()), (step, estimator)])


def make_classifier(name: str, random_state: Optional[int] = 0, **params: Any) -> Any:
    """An unfitted classifier by registry or display name, with these defaults:

    | name     | display    | estimator and defaults                                            |
    |----------|------------|-------------------------------------------------------------------|
    | rf       | RF         | RandomForest, 500 trees, sqrt features: the study's final model   |
    | svm      | SVM        | RBF SVC (C=1, gamma="scale") + Platt scaling (see below)          |
    | et       | ExtraTrees | ExtraTrees, 500 trees, sqrt features                              |
    | knn      | KNN        | 9 nearest neighbours, uniform weights                             |
    | lr       | LR         | L2 logistic regression, C=1                                       |
    | dt       | DT         | decision tree, depth ≤ 4, ≥ 5 lesions per leaf                    |
    | xgboost  | XGBoost    | 300 trees, depth 3, learning rate 0.05, row/column subsample 0.8  |
    | lightgbm | LightGBM   | 300 trees, 15 leaves, rate 0.05, ≥ 10 per leaf, subsample 0.8     |
    | svm+knn  | SVM+KNN    | soft vote of svm and knn (Table 3, deep Complex)                  |

    SVM probabilities: ``CalibratedClassifierCV(SVC, method="sigmoid", ensemble=False)`` over 5
    stratified folds — the SVC fitted on all rows, Platt's sigmoid fitted on out-of-fold decision
    values; what ``SVC(probability=True)`` did (deprecated in scikit-learn 1.9).

    XGBoost and LightGBM are imported only when asked for.

    ``params`` override those defaults (e.g. ``make_classifier("rf", n_estimators=100)``); for
    "svm" they go to the ``SVC``, for "svm+knn" use the single classifiers instead.
    """
    key = classifier_key(name)
    if key == "svm+knn":
        if params:
            raise ClassifierError("svm+knn takes no parameters; build a VotingClassifier yourself")
        from sklearn.ensemble import VotingClassifier

        members = [(k, make_classifier(k, random_state)) for k in ("svm", "knn")]
        return VotingClassifier(members, voting="soft")
    defaults, build = _BUILDERS[key]
    options = {**defaults(random_state), **params}
    try:
        return build(options, random_state)
    except TypeError as error:
        raise ClassifierError(f"{display_name(key)}: bad parameter ({error})") from error


def _rf(options: dict, _: Any) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(**options)


def _et(options: dict, _: Any) -> Any:
    from sklearn.ensemble import ExtraTreesClassifier

    return ExtraTreesClassifier(**options)


def _svm(options: dict, random_state: Optional[int]) -> Any:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.svm import SVC

    folds = StratifiedKFold(5, shuffle=True, random_state=random_state)
    platt = CalibratedClassifierCV(SVC(**options), method="sigmoid", cv=folds, ensemble=False)
    return _scaled(platt, "svm")


def _knn(options: dict, _: Any) -> Any:
    from sklearn.neighbors import KNeighborsClassifier

    return _scaled(KNeighborsClassifier(**options), "knn")


def _lr(options: dict, _: Any) -> Any:
    from sklearn.linear_model import LogisticRegression

    return _scaled(LogisticRegression(**options), "lr")


def _dt(options: dict, _: Any) -> Any:
    from sklearn.tree import DecisionTreeClassifier

    return DecisionTreeClassifier(**options)


def _xgboost(options: dict, _: Any) -> Any:
    from xgboost import XGBClassifier

    return XGBClassifier(**options)


def _lightgbm(options: dict, _: Any) -> Any:
    from lightgbm import LGBMClassifier

    return LGBMClassifier(**options)


_TREES = {"n_estimators": 500, "max_features": "sqrt", "n_jobs": 1}
_BUILDERS = {
    "rf": (lambda rs: {**_TREES, "random_state": rs}, _rf),
    "et": (lambda rs: {**_TREES, "random_state": rs}, _et),
    "svm": (lambda rs: {"C": 1.0, "kernel": "rbf", "gamma": "scale", "random_state": rs}, _svm),
    "knn": (lambda rs: {"n_neighbors": 9, "weights": "uniform"}, _knn),
    "lr": (lambda rs: {"C": 1.0, "max_iter": 5000, "random_state": rs}, _lr),
    "dt": (lambda rs: {"max_depth": 4, "min_samples_leaf": 5, "random_state": rs}, _dt),
    "xgboost": (
        lambda rs: {
            "n_estimators": 300,
            "max_depth": 3,
            "learning_rate": 0.05,
            "subsample": 0.8,
            "colsample_bytree": 0.8,
            "eval_metric": "logloss",
            "n_jobs": 1,
            "random_state": rs,
        },
        _xgboost,
    ),
    "lightgbm": (
        lambda rs: {
            "n_estimators": 300,
            "num_leaves": 15,
            "learning_rate": 0.05,
            "min_child_samples": 10,
            "subsample": 0.8,
            "subsample_freq": 1,
            "colsample_bytree": 0.8,
            "n_jobs": 1,
            "verbose": -1,
            "random_state": rs,
        },
        _lightgbm,
    ),
}


# ---------------------------------------------------------------------------------------------
# The reader's baseline (§2.3: a lesion is abnormal when its SUVmax exceeds the liver SUVmean)

SUV_MAX_COLUMN = "met_suv_max"
LIVER_COLUMN = "met_liver_suv_mean"


class SuvmaxLiverBaseline(ClassifierMixin, BaseEstimator):
    """Malignant when the lesion's SUVmax exceeds the liver SUVmean — what a reader does.

    Learns nothing. Score: the ratio r = SUVmax / liver SUVmean (``decision_function``);
    ``predict_proba`` gives r/(1 + r) for the positive class, a monotone map of r (the same
    AUC) that crosses 0.5 exactly at r = 1, so ``predict`` and ``predict_proba >= 0.5`` agree —
    it is a ranking score, not a calibrated probability. r = 1 exactly counts as benign.

    Columns are found by name: from a DataFrame's columns (pandas, pyarrow, polars) or from
    ``feature_names`` (the columns of the arrays given to fit/predict); without names ``X``
    must hold exactly two columns, SUVmax then the liver SUVmean. The positive class is the
    larger label (1 = malignant). A lesion without a liver reference (NaN, ≤ 0) is an error.
    """

    def __init__(
        self,
        suv_max_column: str = SUV_MAX_COLUMN,
        liver_column: str = LIVER_COLUMN,
        feature_names: Optional[Sequence[str]] = None,
    ) -> None:
        self.suv_max_column = suv_max_column
        self.liver_column = liver_column
        self.feature_names = feature_names

    def fit(self, X: Any, y: Any) -> SuvmaxLiverBaseline:
        array = _validate(self, X, reset=True)
        labels = np.asarray(y)
        if labels.ndim != 1 or labels.shape[0] != array.shape[0]:
            raise ClassifierError(f"{labels.size} labels for {array.shape[0]} rows of features")
        self.classes_ = np.unique(labels)
        if self.classes_.size != 2:
            raise ClassifierError(
                f"SUVmax/liver baseline needs two classes, found {self.classes_.size}"
            )
        names = getattr(self, "feature_names_in_", None)
        if names is None and self.feature_names is not None:
            names = [str(c) for c in self.feature_names]
            if len(names) != array.shape[1]:
                raise ClassifierError(
                    f"feature_names has {len(names)} names but X has {array.shape[1]} columns"
                )
        if names is None:
            if array.shape[1] != 2:
                raise ClassifierError(
                    f"SUVmax/liver baseline: without column names X must hold 2 columns "
                    f"(SUVmax, liver SUVmean), found {array.shape[1]}; pass feature_names"
                )
            self.columns_ = np.array([0, 1])
            return self
        names = [str(c) for c in names]
        for column in (self.suv_max_column, self.liver_column):
            if column not in names:
                raise ClassifierError(f"SUVmax/liver baseline: column {column!r} is missing")
        self.columns_ = np.array([names.index(self.suv_max_column), names.index(self.liver_column)])
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """SUVmax / liver SUVmean per lesion."""
        check_is_fitted(self, "columns_")
        array = _validate(self, X, reset=False)
        suv_max, liver = array[:, self.columns_[0]], array[:, self.columns_[1]]
        for label, values, bad in (
            ("SUVmax", suv_max, ~np.isfinite(suv_max) | (suv_max < 0)),
            ("liver SUVmean", liver, ~np.isfinite(liver) | (liver <= 0)),
        ):
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise ClassifierError(
                    f"SUVmax/liver baseline: {label} is {values[row]} at row {row} "
                    f"({int(bad.sum())} rows); every lesion needs SUVmax and a liver reference"
                )
        return suv_max / liver

    def predict_proba(self, X: Any) -> np.ndarray:
        ratio = self.decision_function(X)
        positive = ratio / (1.0 + ratio)
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: Any) -> np.ndarray:
        return np.where(self.decision_function(X) > 1.0, self.classes_[1], self.classes_[0])


def _validate(estimator: BaseEstimator, X: Any, reset: bool) -> np.ndarray:
    """``X`` as a 2-D float array, recording/checking feature names; NaN is allowed here."""
    try:
        from sklearn.utils.validation import validate_data
    except ImportError:  # pragma: no cover - scikit-learn < 1.6
        return estimator._validate_data(X, reset=reset, dtype=np.float64, force_all_finite=False)
    return validate_data(estimator, X, reset=reset, dtype=np.float64, ensure_all_finite=False)
