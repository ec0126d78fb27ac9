"""Feature selection on synthetic data whose informative, redundant and noise features are known."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline

from BoneOligoMetLib.errors import SelectionError
from BoneOligoMetLib.models.classifiers import make_classifier
from BoneOligoMetLib.models.selection import (
    CorrelationFilter,
    LassoSelector,
    MannWhitneyFilter,
    lasso_coefficients,
    study_selector,
)


def synthetic(n=200, n_noise=30, seed=0):
    """Two informative features, a near-copy of the first (less label-related), noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    strong = 1.2 * y + rng.normal(0, 0.8, n)
    second = -0.9 * y + rng.normal(0, 0.8, n)
    copy = 3.0 * strong + 10.0 + rng.normal(0, 0.6, n)  # r ≈ 0.99 with strong, noisier
    noise = rng.normal(size=(n, n_noise))
    X = np.column_stack([strong, second, copy, noise])
    names = ["strong", "second", "copy"] + [f"noise{i}" for i in range(n_noise)]
    return X, y, names


def kept(selector, names):
    return list(np.asarray(names)[selector.get_support()])


def test_mann_whitney_keeps_the_informative_features():
    X, y, names = synthetic()
    mw = MannWhitneyFilter().fit(X, y)
    selected = kept(mw, names)
    assert {"strong", "second", "copy"} <= set(selected)
    assert len(selected) - 3 <= 4  # ~5% of 30 noise features pass p < 0.05 by chance
    assert mw.pvalues_[0] < 1e-6
    assert mw.auc_[0] > 0.8
    assert mw.auc_[1] < 0.3
    assert mw.transform(X).shape == (200, len(selected))


def test_correlation_filter_drops_the_less_label_related_copy():
    X, y, names = synthetic()
    cf = CorrelationFilter(threshold=0.85).fit(X, y)
    selected = kept(cf, names)
    assert "copy" not in selected
    assert {"strong", "second"} <= set(selected)
    assert cf.replaced_by_[2] == 0
    assert cf.replaced_by_[0] == -1
    assert cf.association_[0] > cf.association_[2]
    r = np.corrcoef(cf.transform(X), rowvar=False)
    assert np.abs(r[np.triu_indices_from(r, 1)]).max() <= 0.85


def test_spearman_sees_monotone_copies_that_pearson_misses():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 150)
    x = y + rng.normal(0, 0.7, 150)
    X = np.column_stack([x, np.exp(3 * x)])  # same ranks, far from linear
    assert CorrelationFilter(0.9, "pearson").fit(X, y).get_support().tolist() == [True, True]
    assert CorrelationFilter(0.9, "spearman").fit(X, y).get_support().tolist() == [True, False]


def naive_correlation_filter(X, y, threshold):
    """The rule written plainly: visit by |r with label| descending, keep if not redundant."""
    r = np.corrcoef(np.column_stack([X, y]), rowvar=False)
    association = np.abs(r[-1, :-1])
    kept_idx = []
    for j in np.argsort(-association, kind="stable"):
        if all(abs(r[j, k]) <= threshold for k in kept_idx):
            kept_idx.append(int(j))
    return sorted(kept_idx)


def test_correlation_filter_blocks_agree_with_the_plain_rule():
    rng = np.random.default_rng(2)
    n, groups = 80, 120
    y = rng.integers(0, 2, n)
    base = rng.normal(size=(n, groups)) + 0.3 * y[:, None]
    X = np.repeat(base, 5, axis=1) + rng.normal(0, 0.35, (n, groups * 5))  # 600 > one block
    cf = CorrelationFilter(0.8).fit(X, y)
    assert np.flatnonzero(cf.get_support()).tolist() == naive_correlation_filter(X, y, 0.8)


def test_lasso_keeps_the_informative_features_and_reports_lambda():
    X, y, names = synthetic()
    lasso = LassoSelector(cv=5, random_state=0).fit(X[:, [0, 1, *range(3, 33)]], y)
    coef = dict(zip(np.asarray(names)[[0, 1, *range(3, 33)]], lasso.coef_full_))
    assert coef["strong"] > 0 > coef["second"]
    assert lasso.alpha_ in lasso.alphas_
    assert lasso.alpha_ > 0
    assert lasso.coef_.size == lasso.get_support().sum()
    assert lasso.cv_error_.shape == lasso.alphas_.shape
    fixed = LassoSelector(alphas=[0.2, 0.015, 0.05]).fit(X, y)
    assert fixed.alpha_ in (0.2, 0.015, 0.05)


def test_logistic_lasso_keeps_the_informative_features():
    X, y, _ = synthetic(n_noise=8)
    lasso = LassoSelector(cv=3, alphas=12, kind="logistic").fit(X[:, [0, 1, *range(3, 11)]], y)
    assert lasso.coef_full_[0] > 0 > lasso.coef_full_[1]
    assert lasso.alphas_.size == 12


def test_study_pipeline_end_to_end_with_names():
    X, y, names = synthetic()
    pipe = study_selector().fit(X, y)
    assert [name for name, _ in pipe.steps] == ["zscore", "mannwhitney", "correlation", "lasso"]
    selected = list(pipe.get_feature_names_out(names))
    assert "strong" in selected
    assert "second" in selected
    assert "copy" not in selected
    pairs = lasso_coefficients(pipe, names)
    assert [name for name, _ in pairs] == selected
    assert dict(pairs)["strong"] > 0 > dict(pairs)["second"]
    assert pipe.transform(X).shape == (200, len(selected))


def test_study_stages_and_overrides():
    dlr = study_selector("dlr")
    assert [name for name, _ in dlr.steps] == ["zscore", "correlation", "lasso"]
    assert dlr.named_steps["correlation"].get_params()["method"] == "spearman"
    assert dlr.named_steps["correlation"].threshold == 0.9
    assert (dlr.named_steps["lasso"].cv, dlr.named_steps["lasso"].kind) == (10, "logistic")
    custom = study_selector(mannwhitney_p=0.01, correlation_threshold=0.7, cv=3, lasso="logistic")
    assert custom.named_steps["mannwhitney"].p == 0.01
    assert custom.named_steps["correlation"].threshold == 0.7
    assert custom.named_steps["lasso"].cv == 3
    assert "mannwhitney" not in study_selector(mannwhitney=False).named_steps
    with pytest.raises(SelectionError, match="stage"):
        study_selector("radiomic")


def test_selection_is_learnt_from_training_rows_only():
    X, y, _names = synthetic(n=240)
    train, test = np.arange(160), np.arange(160, 240)
    pipe = study_selector().fit(X[train], y[train])
    alone = MannWhitneyFilter().fit(X[train], y[train])
    np.testing.assert_array_equal(pipe.named_steps["mannwhitney"].pvalues_, alone.pvalues_)
    support = [step.get_support().copy() for _, step in pipe.steps[1:]]
    scrambled = np.random.default_rng(9).permutation(X[test])  # test rows cannot change it
    assert pipe.transform(scrambled).shape[1] == support[-1].sum()
    assert all((step.get_support() == s).all() for (_, step), s in zip(pipe.steps[1:], support))
    # inside cross-validation every fold refits the selection on its own training part
    model = make_pipeline(study_selector(cv=3), make_classifier("lr"))
    scores = cross_val_score(model, X, y, cv=3, scoring="roc_auc")
    assert scores.min() > 0.75


def test_feature_names_come_from_a_table():
    pa = pytest.importorskip("pyarrow")
    X, y, names = synthetic()
    table = pa.table({name: X[:, k] for k, name in enumerate(names)})
    pipe = study_selector().fit(table, y)
    assert list(pipe.get_feature_names_out()) == list(pipe.get_feature_names_out(names))
    assert "strong" in pipe.get_feature_names_out()
    assert dict(lasso_coefficients(pipe))["strong"] > 0


def test_no_feature_left_is_an_error_naming_the_step():
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(60, 5)), rng.integers(0, 2, 60)
    with pytest.raises(SelectionError, match="Mann–Whitney U filter") as info:
        MannWhitneyFilter(p=1e-6).fit(X, y)
    assert "\n" not in str(info.value)
    best = MannWhitneyFilter(p=1e-6, on_empty="keep_best").fit(X, y)
    assert best.get_support().sum() == 1
    assert best.get_support()[np.argmin(best.pvalues_)]
    with pytest.raises(SelectionError, match=r"LASSO .* kept no feature"):
        LassoSelector(alphas=[10.0]).fit(X, y)
    fallback = LassoSelector(alphas=[10.0], on_empty="keep_best").fit(X, y)
    assert fallback.get_support().sum() == 1
    assert fallback.coef_.tolist() == [0.0]


@pytest.mark.parametrize(
    ("fit", "fragment"),
    [
        (lambda X, y: MannWhitneyFilter().fit(X, np.ones_like(y)), "two classes"),
        (lambda X, y: CorrelationFilter().fit(X, y[:-1]), "labels for"),
        (lambda X, y: CorrelationFilter(method="kendall").fit(X, y), "method"),
        (lambda X, y: LassoSelector(cv=50).fit(X, y), "folds"),
        (lambda X, y: LassoSelector(kind="ridge").fit(X, y), "kind"),
        (lambda X, y: CorrelationFilter().fit(np.zeros_like(X), y), "constant"),
    ],
)
def test_bad_input_is_a_one_line_error(fit, fragment):
    X, y, _ = synthetic(n=40, n_noise=2)
    with pytest.raises(SelectionError, match=fragment) as info:
        fit(X, y)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_nan_features_name_the_column():
    pa = pytest.importorskip("pyarrow")
    X, y, names = synthetic(n=40, n_noise=2)
    X[7, 1] = np.nan
    table = pa.table({name: X[:, k] for k, name in enumerate(names)})
    with pytest.raises(SelectionError, match="'second', row 7"):
        MannWhitneyFilter().fit(table, y)


def test_fitted_pipeline_round_trips_through_skops(tmp_path):
    sio = pytest.importorskip("skops.io")
    X, y, names = synthetic()
    pipe = study_selector().fit(X, y)
    path = tmp_path / "selector.skops"
    sio.dump(pipe, path)
    loaded = sio.load(path, trusted=sio.get_untrusted_types(file=path))
    np.testing.assert_array_equal(loaded.transform(X), pipe.transform(X))
    assert list(loaded.get_feature_names_out(names)) == list(pipe.get_feature_names_out(names))


def test_selectors_clone_with_their_parameters():
    lasso = LassoSelector(cv=10, kind="logistic", random_state=3)
    assert clone(lasso).get_params() == lasso.get_params()
    assert clone(CorrelationFilter(0.9, "spearman")).method == "spearman"
