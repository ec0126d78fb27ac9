"""Model bundles and one-call classification of a patient's lesions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from BoneOligoMetLib.classify import bone_change_from_hu, classify_case, probability_overlay
from BoneOligoMetLib.errors import BundleError
from BoneOligoMetLib.features.config import ExtractionConfig
from BoneOligoMetLib.features.row import case_features
from BoneOligoMetLib.io.manifest import read_manifest
from BoneOligoMetLib.models.bundle import SYNTHETIC_WARNING, load_bundle, save_bundle


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    """Bundle verdicts go to a folder of the test session, not the user's cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from BoneOligoMetLib.synthetic.phantom import generate_cohort

    return generate_cohort(4, seed=41, out_dir=tmp_path_factory.mktemp("classify"), workers=2)


@pytest.fixture(scope="module")
def trained(cohort, tmp_path_factory):
    """A bundle of a small RF on the metabolic + PET radiomics features of the cohort."""
    config = ExtractionConfig(images=("pet",))
    rows, labels, cases = [], [], []
    for case in read_manifest(cohort).cases:
        ct, suv = sitk.ReadImage(case.ct), sitk.ReadImage(case.pet, sitk.sitkFloat32)
        lesions = sitk.ReadImage(case.lesions[0].lesions)
        for row in case_features(ct, suv, lesions, config=config, name=case.patient_id):
            rows.append(row)
            labels.append(
                next(e.truth for e in case.lesions if e.lesion_label == row["lesion_label"])
            )
        cases.append((ct, suv, lesions))
    schema = ["met_suv_max", "met_suv_mean", "met_mtv_ml", "pet_original_firstorder_Mean",
              "pet_original_shape_VoxelVolume"]  # fmt: skip
    x = np.asarray([[row[c] for c in schema] for row in rows], dtype=float)
    y = np.asarray(labels)
    if len(set(y)) < 2:  # the cohort's seed gives both classes; keep the test honest if not
        pytest.fail("the synthetic cohort has one class only")
    model = make_pipeline(StandardScaler(), RandomForestClassifier(50, random_state=0)).fit(x, y)
    folder = save_bundle(
        tmp_path_factory.mktemp("bundle") / "b", pipeline=model, feature_schema=schema,
        threshold=0.5, extraction=config, name="test bundle", synthetic=True,
        training={"lesions": len(y)},
    )  # fmt: skip
    return folder, model, schema, rows, cases


def test_bundle_round_trip_gives_identical_probabilities(trained):
    folder, model, schema, rows, _ = trained
    bundle = load_bundle(folder)
    assert bundle.schema == schema
    assert bundle.synthetic
    assert bundle.warning == SYNTHETIC_WARNING
    expected = model.predict_proba(np.asarray([[r[c] for c in schema] for r in rows], float))[:, 1]
    np.testing.assert_array_equal(bundle.predict_proba(rows), expected)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["settings_digests"]) == {"met", "pet"}
    assert "model.skops" in manifest["files"]
    assert "reference.json" in manifest["files"]
    reference = json.loads((folder / "reference.json").read_text())["features"]
    assert list(reference) == schema  # every column here comes from the images


def test_classify_case_rows_overlay_and_warning(trained):
    folder, model, schema, rows, cases = trained
    ct, suv, lesions = cases[0]
    result = classify_case(ct, suv, lesions, bundle=folder, name="P1")
    labels = sorted(int(v) for v in np.unique(sitk.GetArrayViewFromImage(lesions)) if v)
    assert [r["lesion_label"] for r in result.rows] == labels
    first = next(r for r in rows if r["lesion_label"] == labels[0])
    expected = model.predict_proba(np.asarray([[first[c] for c in schema]], float))[0, 1]
    assert result.rows[0]["probability"] == pytest.approx(expected)
    assert result.rows[0]["malignant"] == (expected >= 0.5)
    assert result.warning == SYNTHETIC_WARNING
    assert {"rule_holes", "rule_outside_bone", "rule_necrosis"} <= set(result.rows[0])
    overlay = sitk.GetArrayViewFromImage(result.overlay)
    mask = sitk.GetArrayViewFromImage(lesions) == labels[0]
    assert np.allclose(overlay[mask], result.rows[0]["probability"])
    assert overlay[sitk.GetArrayViewFromImage(lesions) == 0].max() == 0
    assert result.overlay.GetSize() == ct.GetSize()


def test_classify_command_writes_results(trained, cohort, tmp_path, capsys):
    from BoneOligoMetLib.cli import main

    folder, *_ = trained
    case = read_manifest(cohort).cases[0]
    out = tmp_path / "out"
    code = main([
        "classify", "--ct", case.ct, "--pet", case.pet, "--lesions", case.lesions[0].lesions,
        "--model", str(folder), "--out", str(out),
    ])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "WARNING: synthetic demo model" in printed
    result = json.loads((out / "results.json").read_text())
    assert result["synthetic"] is True
    assert (out / "results.csv").read_text().startswith("lesion_label,probability,malignant")
    overlay = sitk.ReadImage(str(out / "overlay.nii.gz"))
    assert overlay.GetSize() == sitk.ReadImage(case.ct).GetSize()
    assert (out / f"lesion_{result['lesions'][0]['lesion_label']}.png").stat().st_size > 5000


def test_bundle_refuses_altered_or_mismatched_content(trained, tmp_path):
    import shutil

    folder, *_ = trained
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["feature_schema"] = manifest["feature_schema"][:-1]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="takes 5 features, the schema lists 4"):
        load_bundle(copy)
    bundle = load_bundle(folder)
    with pytest.raises(BundleError, match="lesion 7 lacks 1 of the model's features"):
        bundle.predict_proba([{"lesion_label": 7, **{c: 1.0 for c in bundle.schema[1:]}}])
    (copy / "model.skops").write_bytes((folder / "model.skops").read_bytes()[:-10])
    manifest["feature_schema"] = bundle.schema
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"model\.skops differs"):
        load_bundle(copy)
    with pytest.raises(BundleError, match="not a model bundle"):
        load_bundle(tmp_path)


def test_bundle_refuses_types_outside_the_allow_list(tmp_path):
    import skops.io as sio

    from BoneOligoMetLib.models.bundle import _load_pipeline

    path = tmp_path / "evil.skops"
    sio.dump({"f": json.loads}, path)  # a function of a module not on the list
    with pytest.raises(BundleError, match="not allowed in a bundle"):
        _load_pipeline(path)


def test_the_skops_audit_is_kept_per_file_and_cannot_widen_trust(trained, tmp_path):
    """The list of a file's types is kept by its SHA-256 (the second load skips the audit); a
    kept list short of the file's types, or naming a type outside the allow-list, is not
    trusted: the file is audited again."""
    import skops.io as sio

    from BoneOligoMetLib.io.files import file_sha256
    from BoneOligoMetLib.models.bundle import MODEL, _load_pipeline
    from BoneOligoMetLib.models.reference import cache_dir

    folder, model, schema, rows, _ = trained
    path = folder / MODEL
    digest = file_sha256(path)
    x = np.asarray([[r[c] for c in schema] for r in rows], float)
    kept = list(cache_dir().glob(f"skops-audits/{digest[:32]}-*.json"))
    for old in kept:
        old.unlink()
    first = _load_pipeline(path, digest)
    (kept,) = cache_dir().glob(f"skops-audits/{digest[:32]}-*.json")
    assert sorted(json.loads(kept.read_text())) == sorted(sio.get_untrusted_types(file=path))
    np.testing.assert_array_equal(first.predict_proba(x), model.predict_proba(x))
    for tampered in ([], ["os.system", *json.loads(kept.read_text())]):
        kept.write_text(json.dumps(tampered))
        again = _load_pipeline(path, digest)
        np.testing.assert_array_equal(again.predict_proba(x), model.predict_proba(x))
        assert "os.system" not in kept.read_text()  # audited again and kept anew


def test_bone_change_and_overlay_helpers():
    assert bone_change_from_hu(80.0) == "osteolytic"
    assert bone_change_from_hu(300.0) == "mixed"
    assert bone_change_from_hu(900.0) == "osteogenic"
    assert bone_change_from_hu(None) == ""
    ct = sitk.Image([8, 8, 4], sitk.sitkFloat32)
    labels = sitk.Image([8, 8, 4], sitk.sitkUInt8)
    labels[2, 2, 1] = 1
    labels[5, 5, 2] = 2
    overlay = probability_overlay(labels, ct, {1: 0.25, 2: 0.75})
    assert overlay[2, 2, 1] == 0.25
    assert overlay[5, 5, 2] == 0.75
    assert overlay[0, 0, 0] == 0.0


def test_packaged_demo_bundle_is_current_and_marked_synthetic():
    from BoneOligoMetLib.models.bundle import default_bundle_path
    from BoneOligoMetLib.synthetic import demo_bundle

    assert demo_bundle.main(["--check"]) == 0  # built from the current recipe and parameters
    bundle = load_bundle(default_bundle_path())
    assert bundle.synthetic
    assert bundle.deep is not None
    assert any(c.startswith("dl_ct_") for c in bundle.schema)
    assert any(c.startswith("clin_") for c in bundle.schema)
    held_out = bundle.manifest["metrics"]
    assert held_out["dlr_complex_rf"]["auc"] > held_out["suvmax_liver"]["auc"]


def test_demo_bundle_missing_clinical_values():
    from BoneOligoMetLib.synthetic.phantom import generate_patient

    patient = generate_patient(5, "small", n_lesions=1)
    images = (patient.ct, patient.suv, patient.lesion_labels)
    seed = patient.liver_seed_lps_mm
    result = classify_case(*images, clinical={"age": 60, "subtype": "HR+"}, liver_seed_lps_mm=seed)
    assert any("site not given (treated as unknown)" in note for note in result.notes)
    assert 0.0 <= result.rows[0]["probability"] <= 1.0
    with pytest.raises(BundleError, match="needs the clinical value"):
        classify_case(*images, clinical={"subtype": "HR+"}, liver_seed_lps_mm=seed)
    with pytest.raises(BundleError, match="liver reference point"):
        classify_case(*images, clinical={"age": 60, "subtype": "HR+"})


def test_bundle_keeps_no_machine_path_of_the_networks(trained, tmp_path):
    _, model, schema, *_ = trained
    config = ExtractionConfig(images=("pet",), deep_model=str(tmp_path / "deep"))
    saved = save_bundle(
        tmp_path / "b", pipeline=model, feature_schema=schema, threshold=0.5, extraction=config
    )
    manifest = json.loads((saved / "manifest.json").read_text())
    assert manifest["extraction"]["deep_model"] is None
    assert "dl" not in manifest["settings_digests"]
    assert load_bundle(saved).schema == schema


def test_classify_lesions_drawn_on_the_pet_grid(trained):
    _, _, _, _, cases = trained
    ct, suv, lesions = cases[0]
    on_pet = sitk.Resample(lesions, suv, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    folder = trained[0]
    result = classify_case(ct, suv, on_pet, bundle=folder)
    assert result.overlay.GetSize() == ct.GetSize()
    assert {r["rule_holes"] for r in result.rows} <= {"pass", "warn"}
