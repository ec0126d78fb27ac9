"""Classifier registry (the study's names) and the SUVmax-vs-liver reader baseline."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from conftest import SHARED
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_score

from BoneOligoMetLib.errors import ClassifierError
from BoneOligoMetLib.lesions.metabolic import LesionMetabolics
from BoneOligoMetLib.models.classifiers import (
    CLASSIFIERS,
    DISPLAY_NAMES,
    LIVER_COLUMN,
    STUDY_CLASSIFIERS,
    SUV_MAX_COLUMN,
    SuvmaxLiverBaseline,
    classifier_key,
    display_name,
    make_classifier,
)


@pytest.fixture(scope="module")
def small_set():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 80)
    X = np.column_stack([1.5 * y + rng.normal(0, 0.8, 80), rng.normal(size=(80, 3))])
    return X, y


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_every_classifier_fits_and_gives_probabilities(name, small_set):
    X, y = small_set
    model = make_classifier(name, random_state=1).fit(X, y)
    proba = model.predict_proba(X)
    assert proba.shape == (80, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert roc_auc_score(y, proba[:, 1]) > 0.8
    assert set(np.unique(model.predict(X))) <= {0, 1}
    again = make_classifier(name, random_state=1).fit(X, y).predict_proba(X)
    np.testing.assert_allclose(again, proba)  # seeded: the same model twice


def test_names_match_the_studys_tables():
    with open(SHARED / "data" / "study" / "reported_results.csv", newline="") as handle:
        reported = {row["classifier"] for row in csv.DictReader(handle)}
    for name in sorted(reported - {"Mamba"}):
        assert display_name(classifier_key(name)) == name
    with pytest.raises(ClassifierError, match="Mamba classifier is not reproduced"):
        make_classifier("Mamba")
    assert set(STUDY_CLASSIFIERS) <= set(CLASSIFIERS)
    assert STUDY_CLASSIFIERS[0] == "rf"
    assert DISPLAY_NAMES["et"] == "ExtraTrees"


def test_aliases_and_a_helpful_unknown_name():
    assert classifier_key("RandomForest") == "rf"
    assert classifier_key("Extra Trees") == "et"
    assert classifier_key("LGBM") == "lightgbm"
    with pytest.raises(ClassifierError, match="did you mean 'xgboost'") as info:
        make_classifier("xgbost")
    assert "\n" not in str(info.value)


def test_parameters_override_the_defaults():
    assert make_classifier("rf").n_estimators == 500
    assert make_classifier("rf", n_estimators=20, random_state=5).get_params()["random_state"] == 5
    assert make_classifier("knn", n_neighbors=3).named_steps["knn"].n_neighbors == 3
    svm = make_classifier("svm", C=10.0).named_steps["svm"]
    assert svm.estimator.C == 10.0
    assert svm.ensemble is False
    with pytest.raises(ClassifierError, match="bad parameter"):
        make_classifier("dt", n_trees=5)


def lesion_rows(pairs):
    """Feature rows with the real metabolic column names (LesionMetabolics.as_row)."""
    names = None
    rows = []
    for suv_max, liver in pairs:
        row = LesionMetabolics(
            label=1,
            suv_max=suv_max,
            suv_mean=suv_max / 2,
            suv_min=0.5,
            suv_std=0.3,
            suv_peak=suv_max * 0.8,
            suv_peak_local=suv_max * 0.8,
            mtv_ml=1.0,
            tlg=2.0,
            volume_ml=1.5,
            liver_suv_mean=liver,
            suv_max_liver_ratio=suv_max / liver,
        ).as_row()
        numeric = {k: float(v) for k, v in row.items() if isinstance(v, (int, float))}
        names = list(numeric)
        rows.append(list(numeric.values()))
    return np.array(rows), names


def test_baseline_calls_malignant_above_the_liver():
    X, names = lesion_rows([(5.0, 2.0), (2.0, 2.0), (1.5, 2.5), (2.6, 2.5)])
    assert SUV_MAX_COLUMN in names
    assert LIVER_COLUMN in names
    y = np.array([1, 0, 0, 1])
    model = SuvmaxLiverBaseline(feature_names=names).fit(X, y)
    np.testing.assert_allclose(model.decision_function(X), [2.5, 1.0, 0.6, 1.04])
    assert model.predict(X).tolist() == [1, 0, 0, 1]  # ratio exactly 1 is benign
    proba = model.predict_proba(X)[:, 1]
    assert ((proba > 0.5) == (model.predict(X) == 1)).all()
    assert roc_auc_score(y, proba) == roc_auc_score(y, model.decision_function(X))


def test_baseline_with_two_columns_and_in_cross_validation():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 60)
    X = np.column_stack([rng.gamma(2.0, 1.0, 60) + 2.5 * y, rng.uniform(1.8, 2.6, 60)])
    labels = np.where(y == 1, "malignant", "benign")
    model = SuvmaxLiverBaseline().fit(X, labels)
    assert set(model.predict(X)) <= {"benign", "malignant"}
    assert cross_val_score(clone(model), X, y, cv=3, scoring="roc_auc").mean() > 0.7


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda X, n: SuvmaxLiverBaseline().fit(X, [0, 1, 0, 1]), "2 columns"),
        (lambda X, n: SuvmaxLiverBaseline(feature_names=n[:-1]).fit(X, [0, 1, 0, 1]), "names"),
        (
            lambda X, n: SuvmaxLiverBaseline(liver_column="x", feature_names=n).fit(X, [0, 1] * 2),
            "'x'",
        ),
        (lambda X, n: SuvmaxLiverBaseline(feature_names=n).fit(X, [1, 1, 1, 1]), "two classes"),
    ],
)
def test_baseline_bad_input(make, fragment):
    X, names = lesion_rows([(5.0, 2.0), (2.0, 2.0), (1.5, 2.5), (2.6, 2.5)])
    with pytest.raises(ClassifierError, match=fragment):
        make(X, names)


def test_baseline_refuses_a_lesion_without_liver_reference():
    X, names = lesion_rows([(5.0, 2.0), (2.0, 2.0)])
    model = SuvmaxLiverBaseline(feature_names=names).fit(X, [1, 0])
    X[1, names.index(LIVER_COLUMN)] = np.nan
    with pytest.raises(ClassifierError, match="liver SUVmean is nan at row 1") as info:
        model.predict_proba(X)
    assert "\n" not in str(info.value)
