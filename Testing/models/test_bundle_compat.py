"""Whether a bundle fits this environment is decided by its reference case's features, not by
version strings (issue 12): the packaged demo bundle under other reported versions, moved
features, the per-environment cache, bundles saved before reference cases, a broken model file."""

from __future__ import annotations

import json
import logging
import re
import shutil
import zipfile

import pytest

from BoneOligoMetLib.errors import BundleError
from BoneOligoMetLib.features.config import ExtractionConfig
from BoneOligoMetLib.io.files import file_sha256
from BoneOligoMetLib.models import reference as reference_module
from BoneOligoMetLib.models.bundle import _load_pipeline, default_bundle_path, load_bundle
from BoneOligoMetLib.models.reference import moved_features

SLICER_RADIOMICS = "3.1.0.dev12+gabcdef"  # how a SlicerRadiomics build of a later commit reports
# The parameter digests of the demo bundle as saved before reference cases existed (they mixed
# in bone-oligomet 0.1.0 and pyradiomics v3.0.1, the versions that manifest records).
OLD_DEMO_VERSIONS = {"bone-oligomet": "0.1.0", "pyradiomics": "v3.0.1"}
OLD_DEMO_DIGESTS = {
    "met": "28821c0e35e7e6e8b73201da2c2c27033d19a0366d37bab54f7d06125f2c01f4",
    "ct": "5bb5de2dc1565287ed6bc71e205522195bd9556e892244bfddd65fc29f7f36bb",
    "pet": "816bab4f582844c9a026438b678841c2d09fb4700e462c4070b21a29b376a17b",
    "petct": "e81b53e7cd0247b7aeb3dd6bcd0108b6b38aafcd7744b9b65c8e836921a11c47",
}


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """An empty verdict cache per test."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "bone-oligomet" / "bundle-checks"


@pytest.fixture
def recomputed(monkeypatch):
    """Counts the reference case's recomputations."""
    calls = []
    original = reference_module.reference_values

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(reference_module, "reference_values", counting)
    return calls


def _copy(tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(default_bundle_path(), copy)
    return copy


def _rewrite(folder, manifest):
    """Write the manifest back with the files' current hashes (as a tamperer would)."""
    manifest["files"] = {name: file_sha256(folder / name) for name in manifest["files"]}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


def test_demo_bundle_classifies_with_other_reported_versions(monkeypatch, cache, recomputed):
    import radiomics

    import BoneOligoMetLib
    from BoneOligoMetLib.classify import classify_case
    from BoneOligoMetLib.features import config as features
    from BoneOligoMetLib.synthetic.phantom import generate_patient

    monkeypatch.setattr(radiomics, "__version__", SLICER_RADIOMICS)
    monkeypatch.setattr(BoneOligoMetLib, "__version__", "0.2.0")
    monkeypatch.setattr(features, "__version__", "0.2.0")
    patient = generate_patient(5, "small", n_lesions=1)
    result = classify_case(
        patient.ct, patient.suv, patient.lesion_labels,
        clinical={"age": 60, "subtype": "HR+", "site": "vertebrae"},
        liver_seed_lps_mm=patient.liver_seed_lps_mm,
    )  # fmt: skip
    assert 0.0 <= result.rows[0]["probability"] <= 1.0
    assert len(recomputed) == 1
    (verdict,) = [json.loads(p.read_text()) for p in cache.glob("*.json")]
    assert (verdict["pyradiomics"], verdict["bone-oligomet"]) == (SLICER_RADIOMICS, "0.2.0")
    assert verdict["features"] == 348  # every image column of the schema: met, ct, pet, petct, dl


def test_the_verdict_is_cached_per_environment(monkeypatch, cache, recomputed):
    import radiomics

    load_bundle(default_bundle_path())
    load_bundle(default_bundle_path())
    assert len(recomputed) == 1
    assert len(list(cache.glob("*.json"))) == 1
    monkeypatch.setattr(radiomics, "__version__", SLICER_RADIOMICS)  # another environment
    load_bundle(default_bundle_path())
    assert len(recomputed) == 2
    assert len(list(cache.glob("*.json"))) == 2


def test_an_unwritable_cache_is_no_error(tmp_path, monkeypatch, recomputed):
    blocked = tmp_path / "a file"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    load_bundle(default_bundle_path())
    load_bundle(default_bundle_path())
    assert len(recomputed) == 2  # checked each time instead


def test_moved_reference_values_are_refused_naming_them(tmp_path):
    folder = _copy(tmp_path)
    path = folder / "reference.json"
    record = json.loads(path.read_text())
    values = record["features"]
    values["ct_original_glcm_Contrast"] *= 1 + 1e-4
    values["dl_pet_003"] += 0.05
    values["pet_original_firstorder_Mean"] *= 1 + 1e-9  # rounding: not a move
    path.write_text(json.dumps(record))
    _rewrite(folder, _manifest(folder))
    with pytest.raises(BundleError) as error:
        load_bundle(folder)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: 2 of the 348 features of the reference case differ")
    assert "ct_original_glcm_Contrast" in message
    assert "dl_pet_003" in message
    assert "pet_original_firstorder_Mean" not in message
    assert "(-1.0e-04 relative)" in message
    assert "(-0.05 SD)" in message


def test_a_pyradiomics_that_computes_differently_is_refused(monkeypatch, recomputed):
    from radiomics.glcm import RadiomicsGLCM

    original = RadiomicsGLCM.getContrastFeatureValue
    monkeypatch.setattr(
        RadiomicsGLCM, "getContrastFeatureValue", lambda self: original(self) * 1.001
    )
    with pytest.raises(BundleError, match="3 of the 348 features") as error:
        load_bundle(default_bundle_path())
    for image in ("ct", "pet", "petct"):
        assert f"{image}_original_glcm_Contrast" in str(error.value)
    monkeypatch.setattr(RadiomicsGLCM, "getContrastFeatureValue", original)
    load_bundle(default_bundle_path())  # a refusal is not cached: checked again, and passes
    assert len(recomputed) == 2


def _old_style(folder):
    """The bundle as saved before reference cases: version-mixing digests, no reference."""
    manifest = _manifest(folder)
    for path in folder.glob("reference*"):
        path.unlink()
    del manifest["reference"], manifest["settings_digests"]
    manifest["group_digests"] = dict(OLD_DEMO_DIGESTS)
    manifest["versions"] = {**manifest["versions"], **OLD_DEMO_VERSIONS}  # what it recorded
    manifest["files"] = {k: v for k, v in manifest["files"].items() if "reference" not in k}
    return manifest


def test_a_bundle_saved_before_reference_cases_still_loads(tmp_path, monkeypatch, caplog):
    import radiomics

    folder = _copy(tmp_path)
    manifest = _old_style(folder)
    _rewrite(folder, manifest)
    monkeypatch.setattr(radiomics, "__version__", SLICER_RADIOMICS)  # judged by what it recorded
    with caplog.at_level(logging.WARNING, logger="BoneOligoMetLib.models.bundle"):
        bundle = load_bundle(folder)
    assert bundle.deep is not None
    assert "no reference case in the bundle" in caplog.text
    manifest["group_digests"]["pet"] = "0" * 64  # another PET parameter file
    _rewrite(folder, manifest)
    with pytest.raises(BundleError, match="the pet feature settings here"):
        load_bundle(folder)


def test_settings_digests_hold_parameters_only(monkeypatch):
    import radiomics

    from BoneOligoMetLib.features.config import ExtractionConfig

    config = ExtractionConfig()
    settings = {g: config.settings_digest(g) for g in config.groups}
    store = {g: config.group_digest(g) for g in config.groups}
    assert _manifest(default_bundle_path())["settings_digests"] == settings
    monkeypatch.setattr(radiomics, "__version__", SLICER_RADIOMICS)
    assert {g: config.settings_digest(g) for g in config.groups} == settings
    # the cohort store's keys still follow the versions: a new pyradiomics recomputes parts
    assert all(config.group_digest(g) != store[g] for g in config.groups)
    assert ExtractionConfig(mtv_threshold_suv=2.5).settings_digest("met") != settings["met"]


def test_a_model_file_that_is_not_skops_is_one_line(tmp_path):
    folder = _copy(tmp_path)
    model = folder / "model.skops"
    model.write_text("a text file renamed\n")
    _rewrite(folder, _manifest(folder))
    with pytest.raises(BundleError) as error:
        load_bundle(folder)
    assert str(error.value) == f"{model}: not a skops file (File is not a zip file)"
    model.write_bytes((default_bundle_path() / "model.skops").read_bytes()[:5000])  # truncated
    with pytest.raises(BundleError, match=r"model\.skops: not a skops file"):
        _load_pipeline(model)
    with zipfile.ZipFile(model, "w") as archive:  # a zip, but not skops'
        archive.writestr("notes.txt", "x")
    with pytest.raises(BundleError, match=r"not a skops file \(There is no item named 'schema"):
        _load_pipeline(model)


def test_moved_features_tolerances():
    saved = {"ct_a": 100.0, "met_b": 0.0, "dl_ct_000": 0.5, "met_fdg_avid": True, "pet_c": None}
    assert moved_features(saved, dict(saved)) == []
    near = {"ct_a": 100.0 * (1 + 5e-7), "met_b": 1e-13, "dl_ct_000": 0.509}
    assert moved_features(saved, {**saved, **near}) == []
    far = {"ct_a": 100.0002, "met_b": 1e-9, "dl_ct_000": 0.52, "met_fdg_avid": False}
    moved = moved_features(saved, {**saved, **far})
    assert [m[0] for m in moved] == ["ct_a", "met_b", "dl_ct_000", "met_fdg_avid"]
    assert moved_features({"ct_a": float("nan")}, {"ct_a": float("nan")}) == []
    assert [m[0] for m in moved_features({"ct_a": 1.0}, {"ct_a": float("nan")})] == ["ct_a"]
    assert moved_features({"ct_a": 1.0}, {})[0][0] == "ct_a"  # a value no longer computed


def test_saving_with_networks_writes_the_reference_values_again(tmp_path):
    """save_bundle computes the reference row (deep columns on the CPU) as the packaged one."""
    import numpy as np
    from sklearn.dummy import DummyClassifier

    from BoneOligoMetLib.models.bundle import save_bundle

    manifest = _manifest(default_bundle_path())
    schema = manifest["feature_schema"]
    pipeline = DummyClassifier().fit(np.zeros((2, len(schema))), [0, 1])  # the model is no matter
    folder = save_bundle(
        tmp_path / "again", pipeline=pipeline, feature_schema=schema, threshold=0.5,
        extraction=ExtractionConfig.from_mapping(manifest["extraction"]),
        deep_folder=default_bundle_path() / "deep",
    )  # fmt: skip
    saved = json.loads((folder / "reference.json").read_text())
    packaged = json.loads((default_bundle_path() / "reference.json").read_text())
    # The same columns, equal within the tolerance that decides a bundle's compatibility. The
    # same CPU repeats them bit for bit; another CPU's LAPACK kernels move the features taken
    # from eigenvalues (shape axis lengths, elongation, flatness; GLCM MCC) by a few units in the
    # last place: measured ≤ 1.8e-15 relative between the machine that built the bundle and
    # this one. Everything else stays bit for bit.
    saved, packaged = saved["features"], packaged["features"]
    assert saved.keys() == packaged.keys()
    assert reference_module.moved_features(packaged, saved) == []
    eigen = re.compile(r"_shape_(\w+AxisLength|Elongation|Flatness)$|_glcm_MCC$")
    for column, value in packaged.items():
        if saved[column] != value:
            assert eigen.search(column), (column, saved[column], value)
            assert abs(saved[column] - value) <= 1e-14 * abs(value), (column, saved[column], value)
    for name in ("reference_ct.nrrd", "reference_pet.nrrd", "reference_lesions.nrrd"):
        assert _manifest(folder)["files"][name] == file_sha256(default_bundle_path() / name)
    assert load_bundle(folder).schema == schema
