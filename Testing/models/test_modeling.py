"""The model grid: feature groups, encoding, fitting on training patients only, thresholds from the
training data, evaluation on held-out patients (split, k-fold, external), DeLong vs the reference.

The feature tables are synthetic, built here with a known informative column per prefix: each
of ct_, pet_, petct_, dl_ct_, dl_pet_ holds one column shifted by ``shift`` SD in malignant
lesions and a few noise columns; SUVmax over the liver carries a weak signal; clinical columns
are noise (age, and a text subtype to one-hot encode).
"""

from __future__ import annotations

import numpy as np
import pytest

from BoneOligoMetLib.errors import ClassifierError, ModelingError
from BoneOligoMetLib.models.fit import ModelConfig, fit_model
from BoneOligoMetLib.models.groups import BASELINE, GROUPS, group_key
from BoneOligoMetLib.models.stats import youden_threshold
from BoneOligoMetLib.models.study_grid import run_grid
from BoneOligoMetLib.models.table import FeatureTable, TableEncoder

PREFIXES = ("ct_", "pet_", "petct_", "dl_ct_", "dl_pet_")
FAST = ModelConfig(
    classifiers=("rf", "lr"),
    classifier_params={"rf": {"n_estimators": 60}},
    lasso_alphas=15,
    threshold_folds=3,
    n_boot=200,
)


def synthetic_rows(
    n_patients: int = 60,
    seed: int = 0,
    shift: float = 1.0,
    prefixes: tuple[str, ...] = PREFIXES,
    noise: int = 4,
) -> tuple[list[str], list[dict]]:
    """(columns, rows): 1–3 lesions per patient, ~60% malignant, one informative column per
    prefix (``{prefix}signal``), ``noise`` noise columns per prefix, weak SUVmax signal."""
    rng = np.random.default_rng(seed)
    rows = []
    for patient in range(n_patients):
        for lesion in range(int(rng.integers(1, 4))):
            y = int(rng.random() < 0.6)
            liver = float(rng.normal(2.2, 0.15))
            row = {
                "patient_id": f"P{patient:03d}",
                "lesion_label": lesion + 1,
                "label": y,
                "clin_age": float(np.round(rng.normal(58, 8))),
                "clin_subtype": str(rng.choice(["HR+", "HER2+", "triple-negative"])),
                "met_suv_max": liver * float(np.exp(rng.normal(0.25 * y, 0.5))),
                "met_liver_suv_mean": liver,
                "met_tlg": float(rng.gamma(2.0, 3.0)),
            }
            for prefix in prefixes:
                row[f"{prefix}signal"] = shift * y + float(rng.normal())
                for j in range(noise):
                    row[f"{prefix}noise{j}"] = float(rng.normal())
            rows.append(row)
    return list(rows[0]), rows


def synthetic_table(**kwargs) -> FeatureTable:
    columns, rows = synthetic_rows(**kwargs)
    return FeatureTable(columns, rows, source="synthetic.parquet")


@pytest.fixture(scope="module")
def table() -> FeatureTable:
    return synthetic_table()


@pytest.fixture(scope="module")
def grid(table):
    return run_grid(table, ["ct", "complex", "dlr_complex"], config=FAST, seed=0)


# ---------------------------------------------------------------------------------------------
# Groups and names


def test_groups_are_column_selections_by_prefix(table):
    assert table.group_columns("ct") == ["ct_signal", *(f"ct_noise{j}" for j in range(4))]
    assert all(c.startswith("pet_") for c in table.group_columns("pet"))  # no petct_ in PET
    assert all(c.startswith("petct_") for c in table.group_columns("petct"))
    assert set(table.group_columns("dl_petct")) == {
        c for c in table.columns if c.startswith(("dl_ct_", "dl_pet_"))
    }
    complex_ = set(table.group_columns("complex"))
    assert {"met_suv_max", "clin_age", "clin_subtype", "petct_signal"} <= complex_
    assert not any(c.startswith("dl_") for c in complex_)
    dlr = set(table.group_columns("dlr"))
    assert {"dl_pet_signal", "ct_signal"} <= dlr
    assert "met_tlg" not in dlr
    everything = {c for c in table.columns if c not in ("patient_id", "lesion_label", "label")}
    assert set(table.group_columns("dlr_complex")) == everything
    assert GROUPS["dlr"].stage == "dlr"
    assert GROUPS["complex"].stage == "radiomics"


def test_groups_without_their_columns_are_skipped_with_a_note():
    radiomics_only = synthetic_table(n_patients=30, prefixes=("ct_", "pet_", "petct_"))
    from BoneOligoMetLib.models.study_grid import resolve_groups

    keys, notes = resolve_groups(radiomics_only, None)
    assert keys == ["ct", "pet", "petct", "complex"]
    assert any("DLR+Complex: skipped, no dl_ct_*, dl_pet_* columns" in n for n in notes)
    with pytest.raises(ModelingError, match="DL PET: skipped, no dl_pet_"):
        resolve_groups(radiomics_only, ["dl_pet"])


def test_model_names_display_names_and_did_you_mean():
    assert group_key("DLR+Complex") == "dlr_complex"
    assert group_key("radiomics PET-CT") == "petct"
    assert group_key("DL PET-CT") == "dl_petct"
    assert group_key("Complex") == "complex"
    with pytest.raises(ModelingError, match="did you mean 'dlr_complex'") as info:
        group_key("dlr_complx")
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------
# Bad input: one-line errors that name what is wrong


def test_bad_tables_are_refused_with_a_clear_message():
    columns, rows = synthetic_rows(n_patients=30)
    no_label = [{k: v for k, v in r.items() if k != "label"} for r in rows]
    with pytest.raises(ModelingError, match="no 'label' column"):
        FeatureTable([c for c in columns if c != "label"], no_label)
    benign = [{**r, "label": 0} for r in rows]
    with pytest.raises(ModelingError, match=r"every one of the \d+ lesions is benign"):
        run_grid(FeatureTable(columns, benign), ["ct"], config=FAST)
    with pytest.raises(ModelingError, match="8 patients are too few"):
        run_grid(synthetic_table(n_patients=8), ["ct"], config=FAST)
    holed = [dict(r) for r in rows]
    holed[5]["pet_noise2"] = float("nan")
    with pytest.raises(ModelingError, match=r"'pet_noise2' at patient P\d+ lesion \d") as info:
        run_grid(FeatureTable(columns, holed), ["pet"], config=FAST)
    assert "do not impute" in str(info.value)
    text = [dict(r) for r in rows]
    text[0]["ct_noise0"] = "high"
    with pytest.raises(ModelingError, match="'ct_noise0' holds text 'high'"):
        run_grid(FeatureTable(columns, text), ["ct"], config=FAST)
    worded = [{**r, "label": "maybe"} for r in rows]
    with pytest.raises(ModelingError, match="label 'maybe' is not 0/1 or benign/malignant"):
        FeatureTable(columns, worded)


def test_unknown_names_suggest_the_right_one(table):
    with pytest.raises(ClassifierError, match="did you mean 'xgboost'"):
        run_grid(table, ["ct"], ["xgbost"], config=FAST)
    with pytest.raises(ModelingError, match="did you mean 'petct'"):
        run_grid(table, ["petc"], config=FAST)


def test_text_labels_and_several_readers():
    columns, rows = synthetic_rows(n_patients=12)
    worded = [{**r, "label": "malignant" if r["label"] else "Benign"} for r in rows]
    assert FeatureTable(columns, worded).y.tolist() == [r["label"] for r in rows]
    doubled = [{**r, "reader": reader} for r in rows for reader in ("B", "A")]
    read = FeatureTable([*columns, "reader"], doubled)
    assert len(read) == len(rows)
    assert "reader 'A'" in read.notes[0]


# ---------------------------------------------------------------------------------------------
# Encoding


def test_clinical_categories_are_learned_from_training_rows_only():
    names = ["clin_age", "clin_subtype"]
    train = np.array([[50, "HR+"], [61, "HER2+"], [58, "HR+"]], dtype=object)
    encoder = TableEncoder(names, ["clin_subtype"]).fit(train)
    assert list(encoder.get_feature_names_out()) == [
        "clin_age",
        "clin_subtype=HER2+",
        "clin_subtype=HR+",
    ]
    unseen = np.array([[70, "triple-negative"], [44, None], [52, "HR+"]], dtype=object)
    np.testing.assert_array_equal(encoder.transform(unseen), [[70, 0, 0], [44, 0, 0], [52, 0, 1]])
    with pytest.raises(ModelingError, match="feature 'clin_age' is None at row 1"):
        encoder.transform(np.array([[50, "HR+"], [None, "HR+"]], dtype=object))


# ---------------------------------------------------------------------------------------------
# Fitting on training patients, thresholds from training data


def test_no_patient_on_both_sides(grid, table):
    train, test = grid.split["train"], grid.split["test"]
    assert not set(table.patients[train]) & set(table.patients[test])
    assert sorted(np.r_[train, test].tolist()) == list(range(len(table)))
    assert 0.2 < test.size / len(table) < 0.4
    for run in grid.runs.values():
        np.testing.assert_array_equal(run.fitted[0].train_index, train)
        np.testing.assert_array_equal(run.predictions["test"][0], test)


def test_threshold_is_youden_on_out_of_fold_training_predictions(grid, table):
    differs = 0
    for (group, _), run in grid.runs.items():
        fitted = run.fitted[0]
        if group == BASELINE:
            assert fitted.threshold == np.nextafter(0.5, 1.0)
            continue
        y_train = table.y[fitted.train_index]
        assert fitted.threshold == youden_threshold(y_train, fitted.oof_probability)
        assert "out-of-fold" in fitted.threshold_method
        assert run.evaluations["test"].metrics.threshold == fitted.threshold
        index, probability, thresholds, _ = run.predictions["test"]
        assert np.all(thresholds == fitted.threshold)
        differs += youden_threshold(table.y[index], probability) != fitted.threshold
    assert differs > 0  # a test-tuned threshold would have been noticed


def test_test_labels_do_not_change_the_fitted_model(table, grid):
    train, test = grid.split["train"], grid.split["test"]
    flipped_rows = [dict(r) for r in table.rows]
    for i in test:
        flipped_rows[i]["label"] = 1 - flipped_rows[i]["label"]
    flipped = FeatureTable(table.columns, flipped_rows)
    a = fit_model(table, None, "complex", "rf", train, config=FAST, seed=0)
    b = fit_model(flipped, None, "complex", "rf", train, config=FAST, seed=0)
    assert a.threshold == b.threshold
    assert a.selected == b.selected
    np.testing.assert_array_equal(a.predict_proba(table, test), b.predict_proba(flipped, test))


def test_shared_selection_cache_gives_the_same_models(table, grid):
    train, test = grid.split["train"], grid.split["test"]
    cache: dict = {}
    cached = [
        fit_model(table, None, "dlr_complex", c, train, config=FAST, cache=cache)
        for c in ("lr", "rf")
    ][1]
    alone = fit_model(table, None, "dlr_complex", "rf", train, config=FAST)
    assert cached.threshold == alone.threshold
    np.testing.assert_array_equal(
        cached.predict_proba(table, test), alone.predict_proba(table, test)
    )


def test_fitted_model_exposes_what_a_bundle_needs(grid, table):
    fitted = grid.run("dlr_complex", "rf").fitted[0]
    assert fitted.features == table.group_columns("dlr_complex")
    assert fitted.categorical == ["clin_subtype"]
    assert [name for name, _ in fitted.pipeline.steps] == ["encode", "select", "classify"]
    assert 0 < fitted.lasso_lambda < 1
    names = [name for name, _ in fitted.selected]
    assert {"ct_signal", "pet_signal", "dl_ct_signal"} <= set(names)  # the informative ones
    counts = fitted.selection_counts
    assert counts["encoded"] == counts["input"] + 2  # clin_subtype: 3 one-hot columns
    assert counts["encoded"] >= counts["correlation"] >= counts["lasso"] == len(names)
    assert "mannwhitney" not in counts  # DLR stage (§3.6): no Mann–Whitney step
    assert {"auc", "auc_oof"} <= set(fitted.training)
    rows = np.array([[r[c] for c in fitted.features] for r in table.rows[:5]], dtype=object)
    np.testing.assert_allclose(
        fitted.pipeline.predict_proba(rows)[:, 1], fitted.predict_proba(table, range(5))
    )


def test_pipeline_round_trips_through_skops(grid, table):
    sio = pytest.importorskip("skops.io")
    fitted = grid.run("complex", "lr").fitted[0]
    blob = sio.dumps(fitted.pipeline)
    loaded = sio.loads(blob, trusted=sio.get_untrusted_types(data=blob))
    X = table.matrix(fitted.features)
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted.pipeline.predict_proba(X))


def test_table_encoder_keeps_its_old_class_path():
    """Bundles saved before the split name ``BoneOligoMetLib.models.table.TableEncoder``."""
    from BoneOligoMetLib.models import fit as modeling

    assert modeling.TableEncoder is TableEncoder


# ---------------------------------------------------------------------------------------------
# Evaluation and comparisons


def test_dlr_complex_beats_the_suvmax_baseline_when_the_data_make_it_so(grid):
    model = grid.run("dlr_complex", "rf").evaluations["test"].auc
    baseline = grid.baseline().evaluations["test"].auc
    assert model.auc > 0.85 > baseline.auc + 0.1
    assert model.low <= model.auc <= model.high
    row = next(
        d for d in grid.delong if d["model"] == BASELINE and d["reference_classifier"] == "rf"
    )
    assert row["auc_reference"] == pytest.approx(model.auc)
    assert row["p_value"] < 0.05
    # every other model is compared with DLR+Complex of the same classifier
    pairs = {(d["model"], d["classifier"]) for d in grid.delong if d["model"] != BASELINE}
    assert pairs == {("ct", "rf"), ("complex", "rf"), ("ct", "lr"), ("complex", "lr")}
    assert all(d["reference_classifier"] == d["classifier"] for d in grid.delong[:2])


def test_metrics_rows_cover_every_model_classifier_and_set(grid):
    rows = grid.metrics_rows()
    sets = {(r["model"], r["classifier"], r["set"]) for r in rows}
    for group in ("ct", "complex", "dlr_complex"):
        for classifier in ("rf", "lr"):
            assert {(group, classifier, s) for s in ("train", "train_oof", "test")} <= sets
    assert (BASELINE, "rule", "test") in sets
    test_rows = [r for r in rows if r["set"] == "test"]
    for row in test_rows:
        assert 0 <= row["auc_low"] <= row["auc"] <= row["auc_high"] <= 1
        assert row["tp"] + row["fn"] == row["n_malignant"]
        assert 0 <= row["brier"] <= 1
        assert 0 <= row["average_precision"] <= 1
    reference = [r for r in test_rows if r["model"] == "dlr_complex"]
    assert all(r["delong_p_vs_reference"] is None for r in reference)
    assert all(r["delong_p_vs_reference"] is not None for r in test_rows if r not in reference)


def test_k_fold_cv_predicts_every_lesion_once_by_a_model_that_never_saw_its_patient(table):
    result = run_grid(table, ["pet", "complex"], ["lr"], config=FAST, cv=3, seed=1)
    assert result.primary == "cv"
    run = result.run("complex", "lr")
    index, probability, thresholds, folds = run.predictions["cv"]
    np.testing.assert_array_equal(index, np.arange(len(table)))
    assert len(run.fitted) == 3
    assert set(folds.tolist()) == {0, 1, 2}
    for k, fitted in enumerate(run.fitted):
        held_out = index[folds == k]
        assert not set(table.patients[fitted.train_index]) & set(table.patients[held_out])
        assert np.all(thresholds[folds == k] == fitted.threshold)
    evaluation = run.evaluations["cv"]
    assert evaluation.n_lesions == len(table)
    called = probability >= thresholds
    assert evaluation.metrics.tp == int((called & (table.y == 1)).sum())
    assert {d["model"] for d in result.delong} == {"pet", BASELINE}


def test_external_cohort_is_the_test_set(table):
    external = synthetic_table(n_patients=25, seed=9)
    result = run_grid(table, ["complex"], ["lr"], config=FAST, external=external)
    run = result.run("complex", "lr")
    np.testing.assert_array_equal(run.fitted[0].train_index, np.arange(len(table)))
    assert run.evaluations["external"].n_lesions == len(external)
    assert run.evaluations["external"].auc.auc > 0.7
    columns, rows = synthetic_rows(n_patients=25, seed=9)
    short = FeatureTable(
        [c for c in columns if c != "pet_noise1"],
        [{k: v for k, v in r.items() if k != "pet_noise1"} for r in rows],
        source="other.parquet",
    )
    with pytest.raises(
        ModelingError, match=r"other.parquet: 1 feature column\(s\) .* missing: pet_noise1"
    ):
        run_grid(table, ["complex"], ["lr"], config=FAST, external=short)


def test_a_model_whose_selection_keeps_nothing_is_reported_and_the_grid_goes_on():
    columns, rows = synthetic_rows(n_patients=30, shift=2.0, prefixes=("ct_", "pet_", "petct_"))
    for row in rows:  # CT carries no information: every CT column is constant
        for column in columns:
            if column.startswith("ct_"):
                row[column] = 1.0
    result = run_grid(FeatureTable(columns, rows), ["ct", "pet"], ["lr"], config=FAST)
    assert [(g, c) for g, c, _ in result.failed] == [("ct", "lr")]
    assert "Radiomics CT: no feature passed the Mann–Whitney U filter" in result.failed[0][2]
    assert "smallest p 1 (ct_signal)" in result.failed[0][2]
    assert result.run("pet", "lr") is not None
