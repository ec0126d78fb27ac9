"""Cohort extraction: one table in manifest order, resume after an interruption or a kill, bad
cases recorded, parameter changes invalidating only their group, process pool and Dask agreeing,
reader ICC, and the manifest's checks."""

from __future__ import annotations

import csv
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from BoneOligoMetLib.cli import main
from BoneOligoMetLib.errors import BoneOligoMetError, ExtractionInterrupted, ManifestError
from BoneOligoMetLib.features.cohort import extract_cohort, output_paths
from BoneOligoMetLib.features.config import ExtractionConfig
from BoneOligoMetLib.features.radiomics_params import params_path
from BoneOligoMetLib.features.row import lesion_features, prepare_case
from BoneOligoMetLib.io.files import remove_temporaries
from BoneOligoMetLib.io.images import read_image, write_image
from BoneOligoMetLib.io.manifest import read_manifest
from BoneOligoMetLib.io.tables import read_table, write_table
from BoneOligoMetLib.synthetic.phantom import generate_cohort

GROUP_PREFIXES = ("met_", "ct_", "pet_", "petct_")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """Three small synthetic patients (four lesions) and their manifest."""
    folder = tmp_path_factory.mktemp("cohort")
    return generate_cohort(3, seed=5, out_dir=folder, workers=1)


def _manifest_rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _write_manifest(rows: list[dict], path: Path) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _absolute(rows: list[dict], base: Path) -> list[dict]:
    """Manifest rows with absolute paths (for a manifest written elsewhere)."""
    roles = ("ct", "pet_bqml", "suv", "lesions", "lesion_parts", "tissues", "ct_dicom", "pet_dicom")
    return [{k: str(base / v) if k in roles and v else v for k, v in row.items()} for row in rows]


def _mtimes(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*.json")}


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def test_cohort_extracts_to_one_table_in_manifest_order(cohort, tmp_path):
    out = tmp_path / "features.parquet"
    summary = extract_cohort(cohort, out)
    assert (summary.n_lesions, summary.n_ok, summary.n_failed) == (4, 4, 0)
    assert summary.n_computed == 4
    columns, rows = read_table(out)
    manifest = _manifest_rows(cohort)
    assert [(r["patient_id"], r["lesion_label"]) for r in rows] == [
        (m["patient_id"], int(m["lesion_label"])) for m in manifest
    ]
    assert columns[:7] == [
        "patient_id", "lesion_label", "label",
        "clin_age", "clin_subtype", "clin_site", "clin_bone_change",
    ]  # fmt: skip
    groups = [next(p for p in GROUP_PREFIXES if c.startswith(p)) for c in columns[7:]]
    assert groups == sorted(groups, key=GROUP_PREFIXES.index)
    assert not [(r["patient_id"], c) for r in rows for c in columns if _is_missing(r[c])]
    assert [r["label"] for r in rows] == [int(m["label"]) for m in manifest]
    # The table holds exactly what lesion_features gives for that lesion.
    first = manifest[0]
    base = cohort.parent
    case = prepare_case(
        read_image(base / first["ct"]),
        read_image(base / first["suv"], pixel_type=sitk.sitkFloat32),
        read_image(base / first["lesions"]),
        liver_seed_lps_mm=read_manifest(cohort).cases[0].liver_seed_lps_mm,
    )
    direct = lesion_features(case, int(first["lesion_label"]))
    for name, value in direct.items():
        if name.startswith(GROUP_PREFIXES):
            assert rows[0][name] == pytest.approx(value, rel=1e-12), name
    # A rerun reuses everything and writes the same table, column order included.
    again = extract_cohort(cohort, tmp_path / "again.csv")
    assert (again.n_computed, again.n_reused) == (4, 0)  # another output: its own parts
    again = extract_cohort(cohort, out)
    assert (again.n_computed, again.n_reused) == (0, 4)
    assert read_table(out)[0] == columns


def test_an_interrupted_run_resumes_without_recomputing(cohort, tmp_path):
    out = tmp_path / "features.parquet"
    seen = []

    def stop_after_two(fraction, message):
        if message.endswith(" done"):
            seen.append(message)
            if len(seen) == 2:
                raise KeyboardInterrupt("stopped by the test")

    with pytest.raises(ExtractionInterrupted) as stopped:  # a KeyboardInterrupt
        extract_cohort(cohort, out, progress=stop_after_two)
    assert (stopped.value.kept, stopped.value.total) == (2, 4)
    parts = output_paths(out)["parts"]
    before = _mtimes(parts)
    assert len(before) == 2 * 4  # two lesions, four groups each, stored as they finished
    assert not out.exists()
    summary = extract_cohort(cohort, out)
    assert (summary.n_reused, summary.n_computed, summary.n_ok) == (2, 2, 4)
    after = _mtimes(parts)
    assert {k: after[k] for k in before} == before  # finished parts untouched
    assert len(after) == 4 * 4


def test_a_bad_case_is_recorded_and_the_run_goes_on(cohort, tmp_path):
    rows = _absolute(_manifest_rows(cohort), cohort.parent)
    missing_ct = {**rows[0], "patient_id": "BOM0099", "ct": str(tmp_path / "no_ct.nii.gz")}
    wrong_label = {**rows[0], "lesion_label": "9"}
    manifest = _write_manifest([*rows, missing_ct, wrong_label], tmp_path / "manifest.csv")
    out = tmp_path / "features.csv"
    assert main(["extract", "--manifest", str(manifest), "--out", str(out), "--no-progress"]) == 1
    _, table = read_table(out)
    assert len(table) == 4
    errors = _manifest_rows(output_paths(out)["errors"])
    assert [(e["patient_id"], e["lesion_label"]) for e in errors] == [
        ("BOM0099", str(rows[0]["lesion_label"])),
        (rows[0]["patient_id"], "9"),
    ]
    assert "no_ct.nii.gz" in errors[0]["error"]
    assert "lesion label 9 not found" in errors[1]["error"]
    assert all("\n" not in e["error"] for e in errors)
    # Failed lesions are retried on the next run; finished ones are not.
    summary = extract_cohort(manifest, out)
    assert (summary.n_reused, summary.n_computed, summary.n_failed) == (4, 2, 2)
    # Fixed: the errors file goes away.
    summary = extract_cohort(_write_manifest(rows, tmp_path / "manifest.csv"), out)
    assert summary.n_failed == 0
    assert not output_paths(out)["errors"].exists()


def test_bad_voxels_fail_their_lesion_and_wrong_units_their_case(cohort, tmp_path):
    """A NaN in one lesion's PET crop (in a slice the whole-image unit sample skips) fails that
    lesion with its name; a PET in Bq/mL fails every lesion of its case; the rest goes on."""
    from BoneOligoMetLib.image.labels import label_regions
    from BoneOligoMetLib.image.units import sample_slices

    rows = _absolute(_manifest_rows(cohort), cohort.parent)
    second = [r for r in rows if r["patient_id"] == "BOM0002"]
    suv = read_image(second[0]["suv"], pixel_type=sitk.sitkFloat32)
    lesions = read_image(second[0]["lesions"])
    region = label_regions(lesions)[2]
    centre = [s + n // 2 for s, n in zip(region.start, region.size)]
    x, y, z = suv.TransformPhysicalPointToIndex(lesions.TransformIndexToPhysicalPoint(centre))
    _, ny, nz = suv.GetSize()
    rows_read = set(np.unique(sample_slices(np.arange(nz * ny).reshape(nz, ny, 1))).tolist())
    z = next(k for k in range(z, nz) if k * ny + y not in rows_read)
    array = sitk.GetArrayFromImage(suv)
    array[z, y, x] = np.nan
    bad = sitk.GetImageFromArray(array)
    bad.CopyInformation(suv)
    write_image(bad, tmp_path / "suv_nan.nrrd")  # ITK reads NIfTI NaN as 0
    changed = []
    for row in rows:
        if row["patient_id"] == "BOM0002":
            row = {**row, "suv": str(tmp_path / "suv_nan.nrrd")}
        elif row["patient_id"] == "BOM0003":
            row = {**row, "suv": row["pet_bqml"]}
        changed.append(row)
    manifest = _write_manifest(changed, tmp_path / "manifest.csv")
    summary = extract_cohort(manifest, tmp_path / "features.csv")
    errors = {
        (e["patient_id"], e["lesion_label"]): e["error"]
        for e in _manifest_rows(output_paths(tmp_path / "features.csv")["errors"])
    }
    assert "BOM0001" not in {p for p, _ in errors}
    assert errors[("BOM0002", "2")].startswith("BOM0002 lesion 2: PET crop: 1 voxel(s) are NaN")
    assert errors[("BOM0003", "1")].startswith("BOM0003: PET: values up to")
    assert "look like Bq/mL" in errors[("BOM0003", "1")]
    assert summary.n_ok == len(rows) - len(errors)


def test_a_changed_params_file_invalidates_only_its_group(cohort, tmp_path):
    pet_yaml = tmp_path / "pet.yaml"
    shutil.copy(params_path("pet"), pet_yaml)
    config = ExtractionConfig(pet_params=str(pet_yaml))
    out = tmp_path / "features.parquet"
    extract_cohort(cohort, out, config=config)
    parts = output_paths(out)["parts"]
    before = _mtimes(parts)
    _, first = read_table(out)

    # Comments and layout do not change the effective parameters: nothing to do.
    pet_yaml.write_text("# edited\n" + pet_yaml.read_text())
    assert extract_cohort(cohort, out, config=config).n_computed == 0

    pet_yaml.write_text(pet_yaml.read_text().replace("binWidth: 0.79365", "binWidth: 0.25\n#"))
    summary = extract_cohort(cohort, out, config=config)
    assert (summary.n_computed, summary.n_ok) == (4, 4)
    after = _mtimes(parts)
    assert {k: after[k] for k in before} == before  # met, ct, petct (and old pet) parts kept
    assert len(after) == len(before) + 4  # four new pet parts
    _, second = read_table(out)
    for old, new in zip(first, second):
        assert old["ct_original_glcm_Contrast"] == new["ct_original_glcm_Contrast"]
        assert old["pet_original_firstorder_Mean"] == new["pet_original_firstorder_Mean"]
        assert old["pet_original_glcm_JointAverage"] != new["pet_original_glcm_JointAverage"]


def test_a_touched_image_recomputes_its_case_only(cohort, tmp_path):
    out = tmp_path / "features.parquet"
    extract_cohort(cohort, out)
    rows = _manifest_rows(cohort)
    suv = cohort.parent / rows[-1]["suv"]
    stat = suv.stat()
    os.utime(suv, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    summary = extract_cohort(cohort, out)
    last_patient = [r for r in rows if r["patient_id"] == rows[-1]["patient_id"]]
    assert summary.n_computed == len(last_patient)


def _same_tables(a: Path, b: Path) -> None:
    columns_a, rows_a = read_table(a)
    columns_b, rows_b = read_table(b)
    assert columns_a == columns_b
    for row_a, row_b in zip(rows_a, rows_b):
        for column in columns_a:
            if isinstance(row_a[column], float):
                assert row_a[column] == pytest.approx(row_b[column], rel=1e-9, abs=1e-12), column
            else:
                assert row_a[column] == row_b[column], column
    assert len(rows_a) == len(rows_b)


def test_process_pool_and_dask_give_the_in_process_table(cohort, tmp_path):
    distributed = pytest.importorskip("distributed")
    extract_cohort(cohort, tmp_path / "serial.parquet")
    pool = extract_cohort(cohort, tmp_path / "pool.parquet", workers=2)
    assert pool.n_computed == 4
    _same_tables(tmp_path / "serial.parquet", tmp_path / "pool.parquet")
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        out = tmp_path / "dask.parquet"
        args = ["extract", "--manifest", str(cohort), "--out", str(out), "--no-progress",
                "--scheduler", cluster.scheduler_address]  # fmt: skip
        assert main(args) == 0
    _same_tables(tmp_path / "serial.parquet", out)


def test_two_readers_give_feature_icc(cohort, tmp_path):
    rows = _absolute(_manifest_rows(cohort), cohort.parent)
    second = []
    for row in rows:  # reader B draws every lesion one voxel larger in-plane
        path = tmp_path / f"{row['patient_id']}_B.nii.gz"
        if not path.exists():
            labels = read_image(row["lesions"])
            grown = sitk.GrayscaleDilate(labels, [1, 1, 0])
            write_image(sitk.Cast(grown, labels.GetPixelID()), path)
        second.append({**row, "reader": "B", "lesions": str(path)})
    readers = [{**row, "reader": "A"} for row in rows] + second
    manifest = _write_manifest(readers, tmp_path / "readers.csv")
    out = tmp_path / "features.parquet"
    summary = extract_cohort(manifest, out, config=ExtractionConfig(images=("pet",)))
    assert summary.n_ok == 8
    columns, _ = read_table(out)
    assert columns[:3] == ["patient_id", "reader", "lesion_label"]
    icc_columns, icc = read_table(summary.icc)
    assert icc_columns[:2] == ["feature", "icc"]
    by_feature = {r["feature"]: r for r in icc}
    assert by_feature["met_suv_max"]["n_readers"] == 2
    assert by_feature["met_suv_max"]["n_lesions"] == 4
    # Growing the mask barely moves SUVmax, while the volume changes systematically.
    assert by_feature["met_suv_max"]["icc"] > by_feature["met_volume_ml"]["icc"]
    assert all(-1.0 <= r["icc"] <= 1.0 for r in icc if not _is_missing(r["icc"]))


def test_manifest_checks(cohort, tmp_path, capsys):
    rows = _absolute(_manifest_rows(cohort), cohort.parent)
    no_lesions = [{k: v for k, v in row.items() if k != "lesions"} for row in rows]
    with pytest.raises(ManifestError, match=r"missing column.*lesions"):
        read_manifest(_write_manifest(no_lesions, tmp_path / "a.csv"))
    with pytest.raises(ManifestError, match=r"row 3: lesion 1 of BOM0001 is listed twice"):
        read_manifest(_write_manifest([rows[0], rows[0]], tmp_path / "b.csv"))
    bad_label = [{**rows[0], "lesion_label": "one"}]
    with pytest.raises(ManifestError, match="not an integer"):
        read_manifest(_write_manifest(bad_label, tmp_path / "c.csv"))
    bad_seed = [{**rows[0], "liver_seed_lps_mm": "1,2"}]
    with pytest.raises(ManifestError, match="liver_seed_lps_mm"):
        read_manifest(_write_manifest(bad_seed, tmp_path / "d.csv"))
    args = ["extract", "--manifest", str(tmp_path / "a.csv"), "--out", str(tmp_path / "x.csv")]
    assert main(args) == 2
    assert capsys.readouterr().err.count("\n") == 1
    # The phantom's manifest: relative paths, liver seeds from patient.json.
    manifest = read_manifest(cohort)
    assert manifest.n_lesions == 4
    assert all(case.liver_seed_lps_mm is not None for case in manifest.cases)
    assert manifest.clinical_columns == (
        "clin_age",
        "clin_subtype",
        "clin_site",
        "clin_bone_change",
    )
    seeded = [{**row, "liver_seed_lps_mm": "1.5, -2, 30"} for row in rows[:1]]
    assert read_manifest(_write_manifest(seeded, tmp_path / "e.csv")).cases[
        0
    ].liver_seed_lps_mm == (
        1.5,
        -2.0,
        30.0,
    )


@pytest.mark.parametrize("workers", ["0", "-2", "two"])
def test_workers_below_one_are_refused(cohort, tmp_path, capsys, workers):
    out = tmp_path / "features.parquet"
    args = ["extract", "--manifest", str(cohort), "--out", str(out), "--workers", workers]
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("bone-oligomet extract: error: argument --workers:")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(BoneOligoMetError, match="workers must be a whole number of at least 1"):
        extract_cohort(cohort, out, workers=0)
    assert list(tmp_path.iterdir()) == []


def _refused(cohort, out: Path, capsys, monkeypatch) -> str:
    """The command's one-line error for ``--out out``, checked to come before any computing."""
    import BoneOligoMetLib.features.cohort as extract

    def no_computing(*args, **kwargs):
        raise AssertionError("computed before the output was checked")

    monkeypatch.setattr(extract, "run_case", no_computing)
    args = ["extract", "--manifest", str(cohort), "--out", str(out), "--no-progress"]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    return captured.err.strip()


def test_an_output_that_cannot_be_written_is_refused_before_computing(
    cohort, tmp_path, capsys, monkeypatch
):
    done = tmp_path / "done" / "features.parquet"
    extract_cohort(cohort, done)  # finished parts, which a refused run must leave alone
    before = _mtimes(output_paths(done)["parts"])
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    out = a_file / "run" / "features.parquet"
    assert _refused(cohort, out, capsys, monkeypatch) == (
        f"bone-oligomet extract: error: cannot write the output {out}: "
        f"{a_file} is a file, not a folder"
    )
    assert a_file.read_text() == "not a folder"
    done.unlink()
    done.mkdir()  # the table's name taken by a folder
    assert _refused(cohort, done, capsys, monkeypatch).endswith(f"{done}: it is a folder")
    assert _mtimes(output_paths(done)["parts"]) == before
    assert sorted(p.name for p in done.parent.iterdir()) == [done.name, done.name + ".parts"]


def test_an_output_folder_without_write_permission_is_refused(
    cohort, tmp_path, capsys, monkeypatch
):
    if os.name == "posix" and os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
    elif sys.platform.startswith("linux"):  # root writes anywhere, but sysfs takes no files
        folder = Path("/sys")
    else:
        pytest.skip("needs a folder this user cannot write in")
    out = folder / "features.parquet"
    try:
        message = _refused(cohort, out, capsys, monkeypatch)
    finally:
        if folder != Path("/sys"):
            folder.chmod(0o755)
    assert message.startswith(
        f"bone-oligomet extract: error: cannot write the output {out}: "
        f"{folder} does not take new files ("
    )
    assert not output_paths(out)["parts"].exists()


def test_a_table_write_that_fails_leaves_the_old_table_whole(tmp_path, monkeypatch):
    """The table goes to a temporary file renamed over the old one: a crash in between leaves
    the old table (and no temporary file)."""
    out = tmp_path / "features.parquet"
    write_table(["patient_id", "x"], [{"patient_id": "A", "x": 1.0}], out)
    old = out.read_bytes()

    def crash(source, target):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        write_table(["patient_id", "x"], [{"patient_id": "B", "x": 2.0}] * 1000, out)
    assert out.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


def test_a_killed_writers_temporary_files_are_removed_by_pid(tmp_path):
    """What a worker killed mid-write leaves is named with its pid; the parent that stopped it
    removes exactly those."""
    parts = tmp_path / "features.parquet.parts"
    (parts / "ab").mkdir(parents=True)
    theirs = [parts / "ab" / f".ab12.json.{pid}.0123456789abcdef.tmp" for pid in (4001, 4002)]
    other = parts / "ab" / ".ab34.json.40011.0123456789abcdef.tmp"  # another pid, same prefix
    finished = parts / "ab" / "ab12.json"
    for path in (*theirs, other, finished):
        path.write_text("{}")
    assert remove_temporaries(parts, [4001, 4002]) == 2
    assert sorted(parts.rglob("*")) == sorted([parts / "ab", other, finished])


def _run_until_parts(args: list[str], parts: Path, at_least: int, timeout_s: float = 120):
    """Start the command, SIGKILL it once ``parts`` holds ``at_least`` files; their names."""
    process = subprocess.Popen(
        [sys.executable, "-m", "BoneOligoMetLib", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if parts.is_dir() and len(list(parts.rglob("*.json"))) >= at_least:
                break
            if process.poll() is not None:
                pytest.fail("the extraction finished before it could be killed")
            time.sleep(0.01)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return _mtimes(parts)


def test_a_killed_run_loses_nothing_finished(cohort, tmp_path):
    out = tmp_path / "features.parquet"
    parts = output_paths(out)["parts"]
    args = ["extract", "--manifest", str(cohort), "--out", str(out), "--no-progress",
            "--workers", "2"]  # fmt: skip
    before = _run_until_parts(args, parts, at_least=4)
    assert not out.exists()
    summary = extract_cohort(cohort, out)
    assert summary.n_reused + summary.n_computed == 4
    assert summary.n_reused >= len(before) // 4 >= 1
    after = _mtimes(parts)
    assert {k: after[k] for k in before} == before
    assert summary.n_ok == 4


def test_pet_and_ct_from_dicom_match_nifti(tmp_path):
    manifest = generate_cohort(1, seed=8, out_dir=tmp_path / "dicom", dicom=True, workers=1)
    config = ExtractionConfig(images=("ct", "pet"))
    nifti = extract_cohort(manifest, tmp_path / "nifti.parquet", config=config)
    dicom = extract_cohort(manifest, tmp_path / "dicom.parquet", config=config, prefer_dicom=True)
    assert nifti.n_ok == dicom.n_ok >= 1
    _, a = read_table(tmp_path / "nifti.parquet")
    _, b = read_table(tmp_path / "dicom.parquet")
    for row_a, row_b in zip(a, b):
        for name in ("ct_original_firstorder_Mean", "ct_original_shape_MeshVolume"):
            assert row_a[name] == pytest.approx(row_b[name], rel=1e-6)
        for name in ("met_suv_max", "met_suv_peak", "pet_original_firstorder_Mean"):
            assert row_a[name] == pytest.approx(row_b[name], rel=2e-3)


@pytest.mark.large
def test_fifty_patients_killed_halfway_finish_without_recomputing(tmp_path):
    manifest = generate_cohort(50, seed=21, out_dir=tmp_path / "cohort", workers=2)
    n_lesions = len(_manifest_rows(manifest))
    out = tmp_path / "features.parquet"
    parts = output_paths(out)["parts"]
    args = ["extract", "--manifest", str(manifest), "--out", str(out), "--workers", "2",
            "--no-progress"]  # fmt: skip
    before = _run_until_parts(args, parts, at_least=2 * n_lesions, timeout_s=600)
    summary = extract_cohort(manifest, out, workers=2)
    assert summary.n_reused >= len(before) // 4 - 2  # lesions in flight may be partial
    assert summary.n_reused + summary.n_computed == n_lesions
    after = _mtimes(parts)
    assert {k: after[k] for k in before} == before
    columns, rows = read_table(out)
    assert len(rows) == n_lesions
    assert not [c for r in rows for c in columns if _is_missing(r[c])]
    again = extract_cohort(manifest, out)
    assert again.n_computed == 0
    assert read_table(out) == (columns, rows)
    values = np.array([[r[c] for c in columns if c.startswith("pet_")] for r in rows])
    assert np.isfinite(values).all()
