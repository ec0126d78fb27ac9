"""Statistics: DeLong against pROC's published aSAH numbers, CIs, threshold metrics, Table 1."""

from __future__ import annotations

import csv
import itertools
import math

import numpy as np
import pytest
from conftest import SHARED
from scipy import stats as sps
from sklearn.calibration import calibration_curve
from sklearn.metrics import roc_auc_score

from BoneOligoMetLib.errors import BoneOligoMetError
from BoneOligoMetLib.models import characteristics, stats

ASAH = SHARED / "data" / "aSAH"

# ../shared/data/aSAH/README.md: the numbers pROC's own unit tests hold for the aSAH data set.
PROC_AUC_WFNS = 0.823678861788618
PROC_AUC_S100B = 0.731368563685637
PROC_DELONG_Z = 2.20898359144091
PROC_DELONG_P = 0.0271757822291882
# pROC's documented example output: ci.auc(aSAH$outcome, aSAH$s100b) -> "95% CI: 0.6301-0.8326
# (DeLong)"; coords(roc(aSAH$outcome, aSAH$s100b), "best") -> threshold 0.205,
# specificity 0.8055556, sensitivity 0.6341463 (not in the README: from pROC's manual).
PROC_CI_S100B = (0.6301, 0.8326)


@pytest.fixture(scope="module")
def asah():
    with open(ASAH / "aSAH.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for key in ("age", "wfns", "s100b", "ndka"):
            row[key] = float(row[key])
    return rows


def column(rows, key):
    return [row[key] for row in rows]


def brute_force_delong(positive, scores):
    """DeLong 1988 as written: placement values from all case/control pairs (O(m·n))."""
    cases, controls = scores[:, positive], scores[:, ~positive]
    m, n = cases.shape[1], controls.shape[1]
    psi = (cases[:, :, None] > controls[:, None, :]) + 0.5 * (
        cases[:, :, None] == controls[:, None, :]
    )
    v10, v01 = psi.mean(axis=2), psi.mean(axis=1)
    return psi.mean(axis=(1, 2)), np.cov(v10) / m + np.cov(v01) / n


def test_delong_reproduces_proc_on_asah(asah):
    y = column(asah, "outcome")
    result = stats.delong_test(y, column(asah, "wfns"), column(asah, "s100b"), pos_label="Poor")
    assert result.auc_a == pytest.approx(PROC_AUC_WFNS, abs=1e-12)
    assert result.auc_b == pytest.approx(PROC_AUC_S100B, abs=1e-12)
    assert result.z == pytest.approx(PROC_DELONG_Z, abs=1e-10)
    assert result.p_value == pytest.approx(PROC_DELONG_P, abs=1e-12)
    # the four-decimal criterion of issue 7, stated as such
    assert (round(result.z, 4), round(result.p_value, 4)) == (2.2090, 0.0272)
    assert (result.n_cases, result.n_controls) == (41, 72)


def test_delong_with_boolean_labels_and_swapped_order(asah):
    poor = np.array(column(asah, "outcome")) == "Poor"
    forward = stats.delong_test(poor, column(asah, "wfns"), column(asah, "s100b"))
    backward = stats.delong_test(poor.astype(int), column(asah, "s100b"), column(asah, "wfns"))
    assert backward.z == pytest.approx(-forward.z)
    assert backward.p_value == pytest.approx(forward.p_value)
    low, high = forward.difference_ci()
    assert low < forward.difference < high
    assert low > 0  # p < 0.05: the difference's 95% CI excludes 0


def test_delong_directions_follow_proc(asah):
    y = column(asah, "outcome")
    negated = -np.array(column(asah, "s100b"))
    assert stats.roc_auc(y, negated, pos_label="Poor") == pytest.approx(1 - PROC_AUC_S100B)
    assert stats.roc_auc(y, negated, pos_label="Poor", direction=">") == pytest.approx(
        PROC_AUC_S100B
    )
    auto = stats.delong_test(y, column(asah, "wfns"), negated, direction="auto", pos_label="Poor")
    assert auto.auc_b == pytest.approx(PROC_AUC_S100B)
    assert auto.z == pytest.approx(PROC_DELONG_Z)
    # "Good" as the positive class turns every AUC around
    assert stats.roc_auc(y, column(asah, "s100b"), pos_label="Good") == pytest.approx(
        1 - PROC_AUC_S100B
    )


def test_delong_ci_matches_proc_and_the_brute_force_variance(asah):
    y = column(asah, "outcome")
    ci = stats.auc_ci_delong(y, column(asah, "s100b"), pos_label="Poor")
    assert (round(ci.low, 4), round(ci.high, 4)) == PROC_CI_S100B
    assert ci.auc == pytest.approx(PROC_AUC_S100B)
    positive = np.array(y) == "Poor"
    scores = np.array([column(asah, "wfns"), column(asah, "s100b"), column(asah, "ndka")])
    aucs, cov = brute_force_delong(positive, scores)
    for k, name in enumerate(("wfns", "s100b", "ndka")):
        one = stats.auc_ci_delong(y, column(asah, name), pos_label="Poor")
        assert one.auc == pytest.approx(aucs[k])
        assert one.variance == pytest.approx(cov[k, k], rel=1e-12)
    pair = stats.delong_test(y, scores[1], scores[2], pos_label="Poor")
    assert pair.covariance == pytest.approx(cov[1, 2], rel=1e-12)


def test_auc_counts_ties_as_half():
    y = [0, 0, 1, 1]
    assert stats.roc_auc(y, [0.1, 0.4, 0.35, 0.8]) == 0.75  # 3 of 4 pairs ordered
    assert stats.roc_auc(y, [1, 2, 2, 3]) == 0.875  # (1 + 0.5 + 1 + 1) / 4
    assert stats.roc_auc(y, [5, 5, 5, 5]) == 0.5


def test_delong_matches_brute_force_with_many_ties():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 60).astype(bool)
    a = rng.integers(0, 4, 60) + y  # ordinal scores: many ties
    b = np.round(rng.normal(size=60) + 0.5 * y, 1)
    aucs, cov = brute_force_delong(y, np.array([a, b], dtype=float))
    result = stats.delong_test(y, a, b)
    assert (result.auc_a, result.auc_b) == pytest.approx(tuple(aucs))
    assert result.auc_a == pytest.approx(roc_auc_score(y, a))
    expected_z = (aucs[0] - aucs[1]) / math.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    assert result.z == pytest.approx(expected_z)
    assert result.p_value == pytest.approx(2 * sps.norm.sf(abs(expected_z)))


def test_identical_scores_give_z_0_and_p_1():
    y = [0, 1, 0, 1, 1, 0]
    score = [0.2, 0.9, 0.4, 0.3, 0.7, 0.1]
    result = stats.delong_test(y, score, score)
    assert (result.z, result.p_value) == (0.0, 1.0)


def test_bootstrap_ci_is_seeded_and_near_delong(asah):
    y, s100b = column(asah, "outcome"), column(asah, "s100b")
    first = stats.auc_ci_bootstrap(y, s100b, pos_label="Poor", n_boot=500, random_state=1)
    again = stats.auc_ci_bootstrap(y, s100b, pos_label="Poor", n_boot=500, random_state=1)
    assert first == again
    assert first.auc == pytest.approx(PROC_AUC_S100B)
    assert first.low < first.auc < first.high
    assert first.low == pytest.approx(PROC_CI_S100B[0], abs=0.03)
    assert first.high == pytest.approx(PROC_CI_S100B[1], abs=0.03)
    loose = stats.auc_ci_bootstrap(y, s100b, pos_label="Poor", n_boot=500, stratified=False)
    assert loose.low < loose.auc < loose.high
    assert "unstratified" in loose.method


def test_youden_threshold_reproduces_proc_best(asah):
    y, s100b = column(asah, "outcome"), column(asah, "s100b")
    threshold = stats.youden_threshold(y, s100b, pos_label="Poor")
    assert threshold == pytest.approx(0.205)
    metrics = stats.binary_metrics(y, s100b, threshold, pos_label="Poor")
    assert metrics.sensitivity.value == pytest.approx(0.6341463, abs=1e-7)
    assert metrics.specificity.value == pytest.approx(0.8055556, abs=1e-7)


def test_youden_threshold_small_example():
    # scores 1..6; labels put the clean cut between 3 and 4 -> midpoint 3.5
    assert stats.youden_threshold([0, 0, 0, 1, 1, 1], [1, 2, 3, 4, 5, 6]) == 3.5
    # a useless score keeps the "all positive" candidate (J = 0 everywhere)
    assert stats.youden_threshold([0, 1, 0, 1], [1, 1, 1, 1]) == 1.0


def test_wilson_interval_hand_values():
    low, high = stats.wilson_ci(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    assert stats.wilson_ci(0, 10)[0] == 0.0
    assert stats.wilson_ci(10, 10)[1] == 1.0
    assert all(math.isnan(v) for v in stats.wilson_ci(0, 0))


def test_binary_metrics_counts_and_cis():
    y = [1, 1, 1, 1, 0, 0, 0, 0, 0, 1]
    p = [0.9, 0.8, 0.7, 0.2, 0.6, 0.1, 0.3, 0.2, 0.05, 0.55]
    m = stats.binary_metrics(y, p, 0.5, n_boot=300)
    assert (m.tp, m.fn, m.fp, m.tn) == (4, 1, 1, 4)
    assert m.sensitivity.value == 0.8
    assert m.specificity.value == 0.8
    assert m.accuracy.value == 0.8
    assert m.precision.value == 0.8
    assert m.f1.value == pytest.approx(0.8)
    assert m.f1.low <= m.f1.value <= m.f1.high
    assert m.sensitivity.method == "wilson"
    assert m.f1.method.startswith("bootstrap")
    assert (m.sensitivity.low, m.sensitivity.high) == stats.wilson_ci(4, 5)
    assert m.brier == pytest.approx(np.mean((np.array(p) - np.array(y)) ** 2))
    row = m.as_row("test_")
    assert row["test_sensitivity"] == 0.8
    assert "test_f1_high" in row
    assert row["test_tp"] == 4
    # nothing called positive: precision is undefined, F1 is 0; ratios are not probabilities
    none = stats.binary_metrics(y, np.array(p) * 3, 10.0, n_boot=50)
    assert math.isnan(none.precision.value)
    assert none.f1.value == 0.0
    assert math.isnan(none.brier)


def test_calibration_matches_sklearn():
    rng = np.random.default_rng(0)
    prob = rng.uniform(size=200)
    y = (rng.uniform(size=200) < prob).astype(int)
    for strategy in ("uniform", "quantile"):
        ours = stats.calibration(y, prob, 5, strategy=strategy)
        true, pred = calibration_curve(y, prob, n_bins=5, strategy=strategy)
        np.testing.assert_allclose(ours.prob_true, true)
        np.testing.assert_allclose(ours.prob_pred, pred)
        assert ours.counts.sum() == 200


def test_cohort_characteristics_tests_by_kind(asah):
    table = characteristics.cohort_characteristics(
        asah, "outcome", ["age", "gender", "s100b"], kinds={"age": "normal"}
    )
    assert table.group_sizes == {"Good": 72, "Poor": 41}
    assert table.columns[:4] == ["variable", "level", "Good", "Poor"]
    rows = {(r["variable"], r["level"]): r for r in table.rows}
    good = np.array([r["age"] for r in asah if r["outcome"] == "Good"])
    poor = np.array([r["age"] for r in asah if r["outcome"] == "Poor"])
    age = rows[("age", "")]
    assert age["test"] == "Welch t-test"
    assert age["p"] == pytest.approx(sps.ttest_ind(good, poor, equal_var=False).pvalue)
    assert age["Good"] == f"{good.mean():.2f} ± {good.std(ddof=1):.2f}"
    gender = rows[("gender", "")]
    assert gender["test"] == "χ²"
    counts = [[50, 22], [21, 20]]  # Good, Poor × Female, Male
    assert gender["statistic"] == pytest.approx(sps.chi2_contingency(counts, correction=False)[0])
    assert rows[("gender", "Female")]["Good"] == "50 (69.4%)"
    s100b = rows[("s100b", "")]  # skewed: Shapiro rejects normality, so Mann–Whitney and median
    assert s100b["test"] == "Mann–Whitney U"
    assert "[" in s100b["Good"]


def test_cohort_characteristics_small_counts_use_fisher_and_count_missing():
    columns = {
        "split": ["train"] * 12 + ["test"] * 8,
        "site": ["spine"] * 10 + ["rib"] * 2 + ["spine"] * 3 + ["rib"] * 4 + [None],
        "subtype": list("AABBCCAABC") + list("AB") + list("CCCBBAAC"),
    }
    table = characteristics.cohort_characteristics(
        columns, "split", ["site", "subtype"], groups=["train", "test"]
    )
    site = next(r for r in table.rows if r["variable"] == "site" and r["level"] == "")
    assert site["test"] == "Fisher exact"
    assert site["missing"] == 1
    assert site["p"] == pytest.approx(sps.fisher_exact([[2, 10], [4, 3]])[1])
    subtype = next(r for r in table.rows if r["variable"] == "subtype" and r["level"] == "")
    assert subtype["test"].startswith("Fisher–Freeman–Halton")
    assert 0 < subtype["p"] <= 1


def test_monte_carlo_fisher_agrees_with_the_exact_test():
    counts = np.array([[3, 9], [7, 2]])
    exact = sps.fisher_exact(counts)[1]
    assert characteristics._fisher_monte_carlo(counts) == pytest.approx(exact, abs=0.01)


def test_cohort_characteristics_from_an_arrow_table(asah):
    pa = pytest.importorskip("pyarrow")
    columns = {key: column(asah, key) for key in ("outcome", "age", "gender")}
    from_rows = characteristics.cohort_characteristics(asah, "outcome", ["age", "gender"])
    from_arrow = characteristics.cohort_characteristics(
        pa.table(columns), "outcome", ["age", "gender"]
    )
    assert from_arrow == from_rows
    assert list(from_rows.rows[0]) == from_rows.columns


def test_cohort_table_writes_csv(tmp_path, asah):
    table = characteristics.cohort_characteristics(
        asah, "outcome", ["wfns"], kinds={"wfns": "categorical"}
    )
    table.to_csv(tmp_path / "table1.csv")
    with open(tmp_path / "table1.csv", newline="") as handle:
        written = list(csv.DictReader(handle))
    assert len(written) == 1 + 5
    assert written[1]["level"] == "1.0"


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: stats.delong_test([1, 1, 1], [1, 2, 3], [3, 2, 1]), "one class"),
        (lambda: stats.delong_test([0, 1, 0], [1, 2, float("nan")], [1, 2, 3]), "NaN"),
        (lambda: stats.delong_test([0, 1, 0], [1, 2], [1, 2, 3]), "2 values but there are 3"),
        (lambda: stats.roc_auc(["a", "b"], [1, 2]), "pos_label"),
        (lambda: stats.roc_auc(["a", "b"], [1, 2], pos_label="c"), "does not occur"),
        (lambda: stats.roc_auc([0, 1], [1, 2], direction="up"), "direction"),
        (lambda: stats.auc_ci_delong([0, 1], [1, 2], level=95), "level"),
        (lambda: stats.binary_metrics([0, 1], [0.2, 0.8], float("nan")), "threshold"),
        (lambda: stats.calibration([0, 1], [0.2, 1.8]), "[0, 1]"),
        (
            lambda: characteristics.cohort_characteristics({"g": [1, 1]}, "g", []),
            "at least 2 groups",
        ),
        (lambda: characteristics.cohort_characteristics({"g": [1, 2]}, "g", ["x"]), "'x' is not"),
    ],
)
def test_bad_input_is_a_one_line_error(call, fragment):
    with pytest.raises(stats.StatsError) as info:
        call()
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message
    assert isinstance(info.value, BoneOligoMetError)
    assert isinstance(info.value, ValueError)


def test_every_pair_of_asah_markers(asah):
    """Each pairwise DeLong test is antisymmetric and agrees with the brute-force covariance."""
    y = np.array(column(asah, "outcome")) == "Poor"
    names = ("wfns", "s100b", "ndka", "age")
    scores = np.array([column(asah, name) for name in names])
    aucs, cov = brute_force_delong(y, scores)
    for i, j in itertools.combinations(range(len(names)), 2):
        result = stats.delong_test(y, scores[i], scores[j])
        var = cov[i, i] + cov[j, j] - 2 * cov[i, j]
        assert result.z == pytest.approx((aucs[i] - aucs[j]) / math.sqrt(var))
