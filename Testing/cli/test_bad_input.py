"""Bad input on the command line: one line on stderr naming the file, flag or lesion, a non-zero
exit, and nothing written — never a traceback, never a silently wrong number.

Each kind is a row of a table run through ``bone-oligomet classify`` on a small synthetic
patient with a fast model bundle (metabolic and clinical features only); the kinds that
concern one command's own input (DICOM, SUV tags, cohort runs) sit with that command's tests.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline

from BoneOligoMetLib.classify import OUTSIDE_DOMAIN, check_clinical
from BoneOligoMetLib.cli import main
from BoneOligoMetLib.errors import BundleError
from BoneOligoMetLib.features.config import ExtractionConfig
from BoneOligoMetLib.models.bundle import default_bundle_path, load_bundle, save_bundle
from BoneOligoMetLib.models.table import TableEncoder

SCHEMA = ["met_suv_max", "met_mtv_ml", "clin_age", "clin_subtype"]
SUBTYPES = ["HER2+", "HR+", "triple-negative"]


@pytest.fixture(scope="module")
def patient(tmp_path_factory):
    """A one-lesion synthetic patient: CT, SUV, lesion labels, liver seed (LPS mm)."""
    from BoneOligoMetLib.synthetic.phantom import generate_cohort

    root = tmp_path_factory.mktemp("bad_input")
    generate_cohort(1, seed=41, out_dir=root, workers=1)
    folder = next((root / "patients").iterdir())
    record = json.loads((folder / "patient.json").read_text())
    return folder, record["liver_seed_lps_mm"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A small bundle that loads in milliseconds: SUVmax, MTV, age and subtype into a forest."""
    rng = np.random.default_rng(0)
    n = 60
    x = np.empty((n, len(SCHEMA)), dtype=object)
    x[:, 0] = rng.uniform(1, 9, n)
    x[:, 1] = rng.uniform(0.5, 20, n)
    x[:, 2] = rng.integers(35, 80, n).astype(float)
    x[:, 3] = rng.choice(SUBTYPES, n)
    y = (x[:, 0].astype(float) + rng.normal(0, 1, n) > 4).astype(int)
    pipeline = Pipeline(
        [
            ("encode", TableEncoder(SCHEMA, categorical=["clin_subtype"])),
            ("classify", RandomForestClassifier(20, random_state=0)),
        ]
    ).fit(x, y)
    return save_bundle(
        tmp_path_factory.mktemp("bundle") / "small",
        pipeline=pipeline,
        feature_schema=SCHEMA,
        threshold=0.5,
        extraction=ExtractionConfig(images=()),
        name="small test bundle",
    )


def _write(image: sitk.Image, path: Path) -> str:
    sitk.WriteImage(image, str(path))
    return str(path)


def _scaled_ct(folder: Path, tmp: Path) -> dict:
    ct = sitk.ReadImage(str(folder / "ct.nii.gz"), sitk.sitkFloat32)
    return {"--ct": _write(ct * 1000.0, tmp / "ct_x1000.nii.gz")}


def _nan_in_lesion(folder: Path, tmp: Path, suffix: str = ".nrrd") -> dict:
    suv = sitk.ReadImage(str(folder / "suv.nii.gz"), sitk.sitkFloat32)
    lesions = sitk.ReadImage(str(folder / "lesions.nii.gz"))
    inside = np.argwhere(sitk.GetArrayViewFromImage(lesions) == 1)
    centre = inside[len(inside) // 2][::-1].tolist()
    point = lesions.TransformIndexToPhysicalPoint([int(v) for v in centre])
    array = sitk.GetArrayFromImage(suv)
    k, j, i = suv.TransformPhysicalPointToIndex(point)[::-1]
    array[k, j, i] = np.nan  # at the lesion's centre
    array[0, 0, 0] = np.inf  # and far from it
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(suv)
    return {"--pet": _write(out, tmp / f"suv_nan{suffix}")}


def _nan_in_lesion_nifti(folder: Path, tmp: Path) -> dict:
    """NIfTI too: SimpleITK's own reader would turn the NaN into 0 (image_io reads it as is)."""
    return _nan_in_lesion(folder, tmp, ".nii.gz")


def _soft_mask(folder: Path, tmp: Path) -> dict:
    lesions = sitk.ReadImage(str(folder / "lesions.nii.gz"), sitk.sitkFloat32)
    return {"--lesions": _write(lesions * 0.6, tmp / "probability_map.nii.gz")}


def _parent_is_a_file(folder: Path, tmp: Path) -> dict:
    (tmp / "a_file").write_text("not a folder")
    return {"--out": str(tmp / "a_file" / "results")}


def _out_is_a_file(folder: Path, tmp: Path) -> dict:
    (tmp / "results.txt").write_text("")
    return {"--out": str(tmp / "results.txt")}


CASES = [
    # (kind, files changed, arguments changed (None: left out), message pattern)
    ("CT scaled ×1000", _scaled_ct, {}, r"CT: values (down|up) to .* outside what a CT holds"),
    (
        "NaN in the SUV inside a lesion",
        _nan_in_lesion,
        {},
        r"PET: 2 voxel\(s\) are NaN or infinite, in or beside a lesion \(lesion 1: 1\)",
    ),
    (
        "NaN in a NIfTI SUV inside a lesion",
        _nan_in_lesion_nifti,
        {},
        r"PET: 2 voxel\(s\) are NaN or infinite, in or beside a lesion \(lesion 1: 1\)",
    ),
    ("float mask", _soft_mask, {}, r"probability_map\.nii\.gz: not a label image"),
    ("age below 0", None, {"--clinical": "age=-5"}, r"clinical age -5 is outside the model's"),
    (
        "unknown subtype",
        None,
        {"--clinical": "subtype=XYZ"},
        r"clinical subtype 'XYZ' is not a category the model knows \(HER2\+, HR\+, "
        r"triple-negative\)",
    ),
    (
        "unknown clinical key",
        None,
        {"--clinical": "agee=61"},
        r"clinical 'agee' is not a value this model uses \(age, subtype\); did you mean 'age'",
    ),
    (
        "no such lesion",
        None,
        {"--clinical": ["age=61", "subtype:9=HR+"]},
        r"subtype:9: no lesion 9 \(lesions 1\)",
    ),
    ("age not a number", None, {"--clinical": "age=old"}, r"clinical age 'old' is not a number"),
    ("age not given", None, {"--clinical": None}, r"the model needs the clinical value\(s\) age$"),
    ("liver seed NaN", None, {"--liver-seed": "nan,0,0"}, r"argument --liver-seed: .*'nan,0,0'"),
    ("liver seed short", None, {"--liver-seed": "1,2"}, r"argument --liver-seed: .*'1,2'"),
    ("output parent is a file", _parent_is_a_file, {}, r"--out .*a_file is a file, not a folder"),
    ("output is a file", _out_is_a_file, {}, r"--out .*results\.txt: exists and is not a folder"),
]


@pytest.mark.parametrize(("kind", "change", "extra", "pattern"), CASES, ids=[c[0] for c in CASES])
def test_classify_refuses_in_one_line_and_writes_nothing(
    patient, bundle, tmp_path, capsys, kind, change, extra, pattern
):
    folder, liver = patient
    args = {
        "--ct": str(folder / "ct.nii.gz"),
        "--pet": str(folder / "suv.nii.gz"),
        "--lesions": str(folder / "lesions.nii.gz"),
        "--out": str(tmp_path / "results"),
        "--model": str(bundle),
        "--liver-seed": ",".join(str(v) for v in liver),
        "--clinical": "age=61",
    }
    if change is not None:
        args.update(change(folder, tmp_path))
    args.update(extra)
    argv = ["classify", "--no-png"]
    for flag, values in args.items():
        argv += [f"{flag}={v}" for v in ([values] if isinstance(values, str) else values or [])]
    before = set(tmp_path.rglob("*"))
    status = _exit_status(argv)
    err = capsys.readouterr().err
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert re.search(pattern, lines[0]), lines[0]
    assert set(tmp_path.rglob("*")) == before  # nothing written


def _exit_status(argv) -> int:
    """The exit status of the command, whether it returns it or argparse exits."""
    try:
        return main(argv)
    except SystemExit as stop:
        return int(stop.code)


def test_soft_tissue_lesion_is_outside_the_models_domain(patient, bundle, tmp_path, capsys):
    """A lesion with no bone around it gets no probability, in every output that carries one."""
    folder, liver = patient
    lesions = sitk.ReadImage(str(folder / "lesions.nii.gz"))
    array = sitk.GetArrayFromImage(lesions)
    k, j, i = lesions.TransformPhysicalPointToIndex(liver)[::-1]
    array[k - 2 : k + 3, j - 3 : j + 4, i - 3 : i + 4] = 2  # a "tumour" in the liver
    two = sitk.GetImageFromArray(array)
    two.CopyInformation(lesions)
    path = _write(two, tmp_path / "two_lesions.nii.gz")
    out = tmp_path / "out"
    status = main(
        ["classify", "--ct", str(folder / "ct.nii.gz"), "--pet", str(folder / "suv.nii.gz"),
         "--lesions", path, "--model", str(bundle), "--out", str(out), "--clinical", "age=61",
         f"--liver-seed={','.join(str(v) for v in liver)}"]
    )  # fmt: skip
    printed, err = capsys.readouterr()
    assert status == 0, err
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert rows[0]["probability"] not in ("", OUTSIDE_DOMAIN)
    assert 0.0 <= float(rows[0]["probability"]) <= 1.0
    assert rows[1]["probability"] == OUTSIDE_DOMAIN
    assert rows[1]["verdict"] == OUTSIDE_DOMAIN
    assert rows[1]["malignant"] == ""
    assert re.fullmatch(
        r"100% of the mask outside bone, (no bone near it|half of it over \d+ mm from bone): "
        r"not a bone lesion",
        rows[1]["domain"],
    ), rows[1]["domain"]
    saved = json.loads((out / "results.json").read_text())["lesions"][1]
    assert saved["probability"] == OUTSIDE_DOMAIN
    assert saved["malignant"] is None
    overlay = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "overlay.nii.gz")))
    assert not overlay[array == 2].any()  # no colour for a lesion without a probability
    assert overlay[array == 1].min() > 0 or rows[0]["probability"] == "0.0"
    assert (out / "lesion_2.png").is_file()
    assert f"lesion 2: {OUTSIDE_DOMAIN}" in printed


def test_demo_bundle_checks_clinical_values_against_its_training():
    bundle = load_bundle(default_bundle_path())
    checked = check_clinical(bundle, {"age": 61, "subtype": "hr+", "site": {1: "Pelvis"}}, [1])
    assert checked == {"clin_age": 61, "clin_subtype": "HR+", "clin_site": {1: "pelvis"}}
    with pytest.raises(BundleError, match=r"clinical age -5 is outside the model's range"):
        check_clinical(bundle, {"age": -5})
    with pytest.raises(BundleError, match=r"'XYZ' is not a category .*HR\+"):
        check_clinical(bundle, {"subtype": "XYZ"})
    with pytest.raises(BundleError, match=r"'vertebra' .*; did you mean 'vertebrae'"):
        check_clinical(bundle, {"site": {1: "vertebra"}}, [1])
    with pytest.raises(BundleError, match=r"clinical 'foo' is not a value this model uses"):
        check_clinical(bundle, {"foo": 1})


def test_training_range_of_clinical_numbers_is_kept(bundle):
    loaded = load_bundle(bundle)
    low, high = loaded.pipeline.named_steps["encode"].ranges_["clin_age"]
    assert 35 <= low < high <= 79
    check_clinical(loaded, {"age": low})
    with pytest.raises(BundleError, match=rf"outside the model's range {low:g}…{high:g}"):
        check_clinical(loaded, {"age": high + 1})


@pytest.mark.parametrize(
    ("raised", "status", "pattern"),
    [
        (KeyboardInterrupt(), 130, r"^bone-oligomet suv: interrupted$"),
        (PermissionError(13, "Permission denied", "/x/y.nii.gz"), 1, r"/x/y\.nii\.gz: Permission"),
        (RuntimeError("boom\nsecond line"), 1, r"internal error: RuntimeError: boom second line"),
    ],
)
def test_interruptions_and_failures_of_the_system_are_one_line(
    monkeypatch, capsys, raised, status, pattern
):
    from BoneOligoMetLib.cli import suv as suv_command

    def fail(args):
        raise raised

    monkeypatch.setattr(suv_command, "run", fail)
    assert main(["suv", "folder", "-o", "x.nii.gz"]) == status
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert re.search(pattern, err.strip()), err


def _other_commands(folder: Path, tmp: Path) -> list:
    """(kind, argv, message pattern) of the other commands."""
    ct, suv, lesions = (str(folder / f) for f in ("ct.nii.gz", "suv.nii.gz", "lesions.nii.gz"))
    (tmp / "empty.nii.gz").write_bytes(b"")
    (tmp / "text.nii.gz").write_text("hello")
    single = sitk.ReadImage(suv)
    sitk.WriteImage(sitk.JoinSeries([single, single]), str(tmp / "4d.nii.gz"))
    zero = sitk.Image([4, 4, 4], sitk.sitkUInt8)
    sitk.WriteImage(sitk.Compose([zero, zero, zero]), str(tmp / "rgb.nii.gz"))
    sitk.WriteImage(zero, str(tmp / "zero.nii.gz"))
    sitk.WriteImage(sitk.ReadImage(ct) + 1024, str(tmp / "ct_no_intercept.nii.gz"))
    (tmp / "junk.csv").write_text("a,b\n1,2\n")
    out = str(tmp / "out.nii.gz")
    bq = str(folder / "pet_bqml.nii.gz")
    empty, text, four_d, rgb, zero_mask = (
        str(tmp / f)
        for f in ("empty.nii.gz", "text.nii.gz", "4d.nii.gz", "rgb.nii.gz", "zero.nii.gz")
    )
    return [
        ("suv: a folder without DICOM", ["suv", str(folder), "-o", out], r"no DICOM series"),
        ("metabolic: Bq/mL as SUV", ["metabolic", "--pet", bq, "--lesions", lesions],
         r"look like Bq/mL, not SUV"),
        ("metabolic: empty file", ["metabolic", "--pet", suv, "--lesions", empty],
         r"empty\.nii\.gz: cannot read"),
        ("metabolic: text as NIfTI", ["metabolic", "--pet", suv, "--lesions", text],
         r"text\.nii\.gz: not a readable NIfTI"),
        ("metabolic: 4D PET", ["metabolic", "--pet", four_d, "--lesions", lesions],
         r"4d\.nii\.gz: expected a 3D scalar image, found 4D"),
        ("metabolic: RGB mask", ["metabolic", "--pet", suv, "--lesions", rgb],
         r"rgb\.nii\.gz: expected a 3D scalar image, found 3D with 3"),
        ("metabolic: empty mask", ["metabolic", "--pet", suv, "--lesions", zero_mask],
         r"empty \(no voxel > 0\)"),
        ("segment: CT without intercept", ["segment", "--ct", str(tmp / "ct_no_intercept.nii.gz"),
         "--pet", suv, "--seed=0,0,0", "-o", out], r"rescale intercept dropped"),
        ("segment: output format", ["segment", "--ct", ct, "--pet", suv, "--seed=0,0,0", "-o",
         str(tmp / "out.txt")], r"--output .*out\.txt: cannot write this format"),
        ("radiomics: unknown params", ["radiomics", "--image", ct, "--mask", lesions, "--params",
         "nope"], r"no packaged parameter file 'nope'"),
        ("extract: not a manifest", ["extract", "--manifest", str(tmp / "junk.csv"), "--out",
         str(tmp / "f.parquet")], r"junk\.csv: missing column\(s\) patient_id"),
        ("extract: no workers", ["extract", "--manifest", str(tmp / "junk.csv"), "--out",
         str(tmp / "f.parquet"), "--workers", "0"], r"argument --workers"),
        ("train: no table", ["train", "--features", str(tmp / "none.parquet"), "--out",
         str(tmp / "run")], r"none\.parquet: no such feature table"),
        ("phantom: no patients", ["phantom", "--patients", "0", "--out", str(tmp / "ph")],
         r"--patients 0: give at least 1"),
        ("classify: device typo", ["classify", "--ct", ct, "--pet", suv, "--lesions", lesions,
         "--device", "tpu", "--out", str(tmp / "cl")], r"argument --device: .*'tpu'"),
        # checked before any image is read: the CT named here does not even exist
        ("classify: no liver seed", ["classify", "--ct", str(tmp / "no_ct.nii.gz"), "--pet", suv,
         "--lesions", lesions, "--out", str(tmp / "cl")], r"--liver-seed X,Y,Z is needed"),
    ]  # fmt: skip


def test_other_commands_refuse_in_one_line_and_write_nothing(patient, tmp_path, capfd):
    """Read at the file descriptors: ITK's console warnings bypass Python's streams."""
    folder, _ = patient
    for kind, argv, pattern in _other_commands(folder, tmp_path):
        before = set(tmp_path.rglob("*"))
        status = _exit_status(argv)
        err = capfd.readouterr().err
        lines = err.strip().splitlines()
        assert status == 2, f"{kind}: {err}"
        assert len(lines) == 1, f"{kind}: {err}"
        assert re.search(pattern, lines[0]), f"{kind}: {lines[0]}"
        assert set(tmp_path.rglob("*")) == before, kind
