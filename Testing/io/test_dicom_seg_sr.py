"""DICOM out: the SEG and the TID 1500 measurement report of ``export-dicom`` on the synthetic
patient's DICOM CT (three lesions, one of them absent from the results), and on an oblique CT,
checked with tools no one here wrote: dciodvfy (dicom3tools) for the standard, highdicom's
frame-by-source-instance reader and dcmqi's segimage2itkimage for the labels, dcmqi's
tid1500reader and highdicom's SR parser for the measurements.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from BoneOligoMetLib.cli import main
from BoneOligoMetLib.io.images import read_image, write_image
from BoneOligoMetLib.synthetic.dicom_ct import write_ct_series

hd = pytest.importorskip("highdicom", reason="DICOM SEG/SR need highdicom (Python >= 3.10)")

MODEL = "BoneOligoMet synthetic demo (DLR+Complex, RF)"
WARNING = "synthetic demo model — not for clinical use"
# Lesion 2 is left out of the results on purpose: its report has measurements, no probability.
PROBABILITIES = {1: 0.25, 3: 0.875}


def _tool(name: str) -> str:
    """A command-line tool: beside this Python (the venv's bin, where pip puts dcmqi), or on
    PATH (dciodvfy from Debian's dicom3tools); the test skips, saying so, when it is absent."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if not found:
        how = "apt-get install dicom3tools" if name == "dciodvfy" else "pip install dcmqi"
        pytest.skip(f"{name} not installed ({how}; the Makefile's install step does it)")
    return found


def _dciodvfy(path: Path) -> list[str]:
    """dciodvfy's error lines for one file (its warnings are printed, not failed)."""
    run = subprocess.run([_tool("dciodvfy"), str(path)], capture_output=True, text=True)
    lines = (run.stdout + run.stderr).splitlines()
    print("\n".join(lines))
    return [line for line in lines if line.startswith("Error")]


def _ct_datasets(folder: Path) -> dict[str, pydicom.Dataset]:
    return {
        str(ds.SOPInstanceUID): ds
        for ds in (pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm")))
    }


def _labels_by_instance(ct_folder: Path, labels: np.ndarray, image: sitk.Image) -> dict:
    """{CT SOPInstanceUID: label plane}: the plane of ``labels`` each CT slice lies on."""
    planes = {}
    for uid, ds in _ct_datasets(ct_folder).items():
        index = image.TransformPhysicalPointToContinuousIndex(
            [float(v) for v in ds.ImagePositionPatient]
        )
        assert np.allclose(index, np.round(index), atol=1e-3)
        planes[uid] = labels[round(index[2])]
    return planes


def _check_seg_against_labels(seg_path: Path, ct_folder: Path, labels, image) -> None:
    """Every segment, frame by frame through highdicom's source-instance lookup (no geometry
    of ours involved), equals its lesion's label on the CT slice."""
    seg = hd.seg.segread(str(seg_path))
    expected = _labels_by_instance(ct_folder, labels, image)
    by_number = {int(s.SegmentNumber): str(s.TrackingID) for s in seg.SegmentSequence}
    label_of = {n: int(t.split()[-1]) for n, t in by_number.items()}
    assert sorted(label_of.values()) == sorted(int(v) for v in np.unique(labels) if v)
    referenced = {str(uid) for _, _, uid in seg.get_source_image_uids()}
    assert referenced == set(expected)  # every CT slice is a source, none other
    for uid, plane in expected.items():
        pixels = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=[uid], segment_numbers=sorted(label_of),
            assert_missing_frames_are_empty=True,
        )[0]  # fmt: skip
        for position, number in enumerate(sorted(label_of)):
            assert np.array_equal(pixels[..., position] > 0, plane == label_of[number]), (
                uid,
                number,
            )


def _check_dcmqi(seg_path: Path, tmp_path: Path, labels, image) -> None:
    """dcmqi's segimage2itkimage: each segment's file, on the CT grid, is its lesion."""
    out = tmp_path / "dcmqi"
    out.mkdir()
    run = subprocess.run(
        [_tool("segimage2itkimage"), "--inputDICOM", str(seg_path), "--outputDirectory",
         str(out), "--outputType", "nifti"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    meta = json.loads((out / "meta.json").read_text())
    attributes = [segment for group in meta["segmentAttributes"] for segment in group]
    assert len(attributes) == len([v for v in np.unique(labels) if v])
    for segment in attributes:
        label = int(segment["TrackingIdentifier"].split()[-1])
        assert segment["SegmentedPropertyTypeCodeSequence"]["CodeValue"] == "52988006"
        assert segment["SegmentedPropertyCategoryCodeSequence"]["CodeValue"] == "49755003"
        assert segment["AnatomicRegionSequence"]["CodeValue"] == "272673000"
        written = sitk.ReadImage(str(out / f"{segment['labelID']}.nii.gz"))
        on_ct = sitk.Resample(written, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
        assert np.array_equal(sitk.GetArrayFromImage(on_ct) > 0, labels == label), label


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The synthetic patient (3 lesions) exported with a PET DICOM and results for two lesions."""
    from BoneOligoMetLib.synthetic.phantom import generate_patient, write_patient

    folder = tmp_path_factory.mktemp("patient")
    write_patient(generate_patient(seed=3, preset="small", n_lesions=3), folder, dicom=True)
    results = {
        "model": MODEL,
        "synthetic": True,
        "warning": WARNING,
        "threshold": 0.5,
        "lesions": [
            {"lesion_label": label, "probability": p, "verdict": "x", "met_suv_max": 99.0}
            for label, p in PROBABILITIES.items()
        ],
    }
    (folder / "results.json").write_text(json.dumps(results))
    out = folder / "export"
    args = ["export-dicom", "--ct", str(folder / "dicom" / "CT"), "--lesions"]
    args += [str(folder / "lesions.nii.gz"), "--results", str(folder / "results.json")]
    assert main([*args, "--pet", str(folder / "dicom" / "PET"), "--out", str(out)]) == 0
    return folder, out


def test_the_synthetic_patient_exports_a_seg_and_sr_that_dciodvfy_accepts(exported):
    _, out = exported
    assert sorted(p.name for p in out.iterdir()) == ["seg.dcm", "sr.dcm"]
    assert _dciodvfy(out / "seg.dcm") == []
    assert _dciodvfy(out / "sr.dcm") == []


def test_seg_frames_are_the_labels_on_each_ct_slice(exported, tmp_path):
    folder, out = exported
    ct = read_image(folder / "dicom" / "CT")
    labels = sitk.GetArrayFromImage(read_image(folder / "lesions.nii.gz"))
    _check_seg_against_labels(out / "seg.dcm", folder / "dicom" / "CT", labels, ct)
    _check_dcmqi(out / "seg.dcm", tmp_path, labels, ct)
    # Our reader gives the lesions their labels again, also with the SEG and SR put into the
    # CT's folder (as a reader who keeps a study together does).
    together = shutil.copytree(folder / "dicom" / "CT", tmp_path / "study")
    for name in ("seg.dcm", "sr.dcm"):
        shutil.copy(out / name, together / name)
    back = tmp_path / "back.nii.gz"
    args = ["labels", "--from", str(together / "seg.dcm"), "--reference", str(together)]
    assert main([*args, "-o", str(back)]) == 0
    assert np.array_equal(sitk.GetArrayFromImage(read_image(back)), labels)


def test_seg_and_sr_keep_the_patient_and_study_and_get_new_uids(exported):
    folder, out = exported
    ct = pydicom.dcmread(next((folder / "dicom" / "CT").glob("*.dcm")))
    for path in (out / "seg.dcm", out / "sr.dcm"):
        ds = pydicom.dcmread(path)
        for keyword in ("PatientName", "PatientID", "PatientSex", "StudyInstanceUID", "StudyID"):
            assert ds.get(keyword) == ct.get(keyword), keyword
        for keyword in ("SeriesInstanceUID", "SOPInstanceUID"):
            assert ds.get(keyword) != ct.get(keyword)
        assert "InstitutionName" not in ds
        assert "ReferringPhysicianName" not in ds or ds.ReferringPhysicianName == ct.get(
            "ReferringPhysicianName"
        )
    seg = pydicom.dcmread(out / "seg.dcm")
    assert seg.FrameOfReferenceUID == ct.FrameOfReferenceUID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == ct.SeriesInstanceUID


def _text_items(item) -> dict[str, list[str]]:
    """{concept meaning: [text/UID values]} of every content item under ``item``."""
    found: dict[str, list[str]] = {}
    for child in item.get("ContentSequence", []):
        meaning = str(child.ConceptNameCodeSequence[0].CodeMeaning)
        for keyword in ("TextValue", "UID"):
            if keyword in child:
                found.setdefault(meaning, []).append(str(child.get(keyword)))
        for key, values in _text_items(child).items():
            found.setdefault(key, []).extend(values)
    return found


def test_sr_holds_each_lesions_measurements_and_probability(exported):
    from BoneOligoMetLib.io.suv import pet_dicom_to_suv
    from BoneOligoMetLib.lesions.metabolic import metabolic_table

    folder, out = exported
    suv, _ = pet_dicom_to_suv(folder / "dicom" / "PET")
    lesions = read_image(folder / "lesions.nii.gz")
    ct = read_image(folder / "dicom" / "CT")
    labels = sitk.GetArrayFromImage(lesions)
    truth = {m.label: m for m in metabolic_table(suv, lesions)}
    seg = pydicom.dcmread(out / "seg.dcm")
    segment_of = {str(s.TrackingUID): int(s.SegmentNumber) for s in seg.SegmentSequence}
    sr = hd.sr.srread(str(out / "sr.dcm"))
    assert WARNING in sr.SeriesDescription
    groups = sr.content.get_volumetric_roi_measurement_groups()
    assert len(groups) == 3
    seen = set()
    for group in groups:
        label = int(group.tracking_identifier.split()[-1])
        seen.add(label)
        reference = group.referenced_segment[0].ReferencedSOPSequence[0]  # the IMAGE item
        assert reference.ReferencedSOPInstanceUID == seg.SOPInstanceUID
        assert reference.ReferencedSegmentNumber == segment_of[group.tracking_uid]
        values = {}
        for m in group.get_measurements():
            key = m.name.value + ("/" + m.derivation.value if m.derivation else "")
            values[key] = (m.value, m.unit.value)
        voxel_ml = np.prod(ct.GetSpacing()) / 1000
        assert values["118565006"] == pytest.approx((np.sum(labels == label) * voxel_ml, "ml"))
        t = truth[label]
        assert values["126401/56851009"] == pytest.approx((t.suv_max, "g/ml{SUVbw}"))
        assert values["126401/373098007"] == pytest.approx((t.suv_mean, "g/ml{SUVbw}"))
        assert values["126401/126031"] == pytest.approx((t.suv_peak, "g/ml{SUVbw}"))
        assert values["126032"] == pytest.approx((t.mtv_ml, "ml"))
        assert values["126033"] == pytest.approx((t.tlg, "g{SUVbw}"))
        texts = _text_items(group[0])  # the group container
        if label in PROBABILITIES:  # the measured SUVmax, not the one in the results file
            assert values["111047"] == pytest.approx((100 * PROBABILITIES[label], "%"))
            assert MODEL in texts["Algorithm Name"]
            assert WARNING in texts["Algorithm Parameters"]
        else:
            assert "111047" not in values
            assert MODEL not in texts.get("Algorithm Name", [])
    assert seen == {1, 2, 3}


def test_dcmqi_reads_the_measurement_report(exported, tmp_path):
    _, out = exported
    meta = tmp_path / "sr.json"
    run = subprocess.run(
        [_tool("tid1500reader"), "--inputDICOM", str(out / "sr.dcm"),
         "--outputMetadata", str(meta)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(meta.read_text())
    groups = {g["TrackingIdentifier"]: g for g in report["Measurements"]}
    assert sorted(groups) == ["lesion 1", "lesion 2", "lesion 3"]
    for name, group in groups.items():
        quantities = [item["quantity"]["CodeValue"] for item in group["measurementItems"]]
        assert quantities.count("126401") == 3  # SUVmax, SUVmean, SUVpeak
        assert ("111047" in quantities) == (int(name.split()[-1]) in PROBABILITIES)


def test_an_oblique_ct_exports_exactly(tmp_path):
    """A CT tilted about two axes, lesions labelled 2 and 5 (no label 1): no results, no PET."""
    angle_z, angle_x = np.radians(20.0), np.radians(12.0)
    rz = np.array(
        [[np.cos(angle_z), -np.sin(angle_z), 0], [np.sin(angle_z), np.cos(angle_z), 0], [0, 0, 1]]
    )
    rx = np.array(
        [[1, 0, 0], [0, np.cos(angle_x), -np.sin(angle_x)], [0, np.sin(angle_x), np.cos(angle_x)]]
    )
    direction = rz @ rx
    rng = np.random.default_rng(0)
    hu = rng.normal(40.0, 20.0, size=(14, 36, 40)).astype(np.float32)
    ct = sitk.GetImageFromArray(hu)
    ct.SetSpacing((1.5, 1.25, 2.5))
    ct.SetOrigin((-30.0, 12.0, 7.5))
    ct.SetDirection(tuple(direction.ravel()))
    import datetime as dt

    write_ct_series(ct, tmp_path / "CT", series_datetime=dt.datetime(2024, 5, 6, 10, 0))
    k, j, i = np.mgrid[:14, :36, :40]
    labels = np.zeros(hu.shape, dtype=np.uint8)
    labels[(k - 5) ** 2 / 9 + (j - 10) ** 2 / 25 + (i - 12) ** 2 / 36 < 1] = 2
    labels[(k - 9) ** 2 / 4 + (j - 25) ** 2 / 16 + (i - 28) ** 2 / 16 < 1] = 5
    image = read_image(tmp_path / "CT")
    assert np.allclose(image.GetDirection(), direction.ravel(), atol=1e-5)
    label_image = sitk.GetImageFromArray(labels)
    label_image.CopyInformation(image)
    write_image(label_image, tmp_path / "lesions.nii.gz")
    out = tmp_path / "export"
    args = ["export-dicom", "--ct", str(tmp_path / "CT"), "--lesions"]
    assert main([*args, str(tmp_path / "lesions.nii.gz"), "--out", str(out)]) == 0
    assert _dciodvfy(out / "seg.dcm") == []
    assert _dciodvfy(out / "sr.dcm") == []
    _check_seg_against_labels(out / "seg.dcm", tmp_path / "CT", labels, image)
    _check_dcmqi(out / "seg.dcm", tmp_path, labels, image)
    back = tmp_path / "back.nii.gz"
    args = ["labels", "--from", str(out / "seg.dcm"), "--reference", str(tmp_path / "CT")]
    assert main([*args, "-o", str(back)]) == 0
    assert np.array_equal(sitk.GetArrayFromImage(read_image(back)), labels)
    sr = hd.sr.srread(str(out / "sr.dcm"))
    for group in sr.content.get_volumetric_roi_measurement_groups():  # volume only: no PET
        assert [m.name.value for m in group.get_measurements()] == ["118565006"]


def test_labels_on_the_pet_grid_are_resampled_onto_the_ct(exported, tmp_path, capsys):
    folder, _ = exported
    ct = read_image(folder / "dicom" / "CT")
    pet = read_image(folder / "suv.nii.gz")
    on_pet = sitk.Resample(
        read_image(folder / "lesions.nii.gz"), pet, sitk.Transform(), sitk.sitkNearestNeighbor, 0
    )
    write_image(on_pet, tmp_path / "pet_labels.nii.gz")
    out = tmp_path / "export"
    args = ["export-dicom", "--ct", str(folder / "dicom" / "CT"), "--lesions"]
    assert main([*args, str(tmp_path / "pet_labels.nii.gz"), "--out", str(out)]) == 0
    assert "not on the CT grid: resampled nearest-neighbour" in capsys.readouterr().out
    expected = sitk.Resample(on_pet, ct, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    labels = sitk.GetArrayFromImage(expected)
    _check_seg_against_labels(out / "seg.dcm", folder / "dicom" / "CT", labels, ct)


def test_bad_input_is_one_line_and_writes_nothing(exported, tmp_path, capsys):
    folder, _ = exported
    ct = str(folder / "dicom" / "CT")
    lesions = str(folder / "lesions.nii.gz")
    results = json.loads((folder / "results.json").read_text())
    results["lesions"].append({"lesion_label": 7, "probability": 0.5})
    (tmp_path / "extra.json").write_text(json.dumps(results))
    (tmp_path / "broken.json").write_text("{not json")
    far = read_image(lesions)
    far.SetOrigin((5000.0, 0.0, 0.0))
    write_image(far, tmp_path / "far.nii.gz")
    cases = [
        (
            ["--results", str(tmp_path / "extra.json")],
            "lesion(s) 7 that lesions.nii.gz does not hold",
        ),
        (["--results", str(tmp_path / "broken.json")], "broken.json: not the results.json"),
        (["--lesions", str(tmp_path / "far.nii.gz")], "do not overlap"),
        (["--ct", str(folder / "dicom" / "PET")], "no DICOM series with modality CT"),
    ]
    for number, (change, message) in enumerate(cases):
        out = tmp_path / f"out{number}"
        args = {"--ct": ct, "--lesions": lesions, "--out": str(out)}
        args.update(dict(zip(change[::2], change[1::2])))
        assert main(["export-dicom", *[v for pair in args.items() for v in pair]]) == 2, change
        error = capsys.readouterr().err
        assert error.count("\n") == 1, error
        assert message in error, error
        assert not out.exists()


def test_the_panels_call_with_a_case_result(exported, tmp_path):
    """What the Slicer panel calls: the CT's files, the label image, the CaseResult in memory
    (no SUV image: the metabolic values of its feature rows are written)."""
    from BoneOligoMetLib.classify import OUTSIDE_DOMAIN, CaseResult
    from BoneOligoMetLib.report.dicom_export import export_dicom

    folder, _ = exported
    files = sorted((folder / "dicom" / "CT").glob("*.dcm"))
    lesions = read_image(folder / "lesions.nii.gz")
    features = [
        {"lesion_label": n, "met_suv_max": 5.0 + n, "met_suv_mean": 2.0 + n,
         "met_suv_peak": 3.0 + n, "met_mtv_ml": 1.5 * n, "met_tlg": 4.0 * n}
        for n in (1, 2, 3)
    ]  # fmt: skip
    rows = [
        {"lesion_label": 1, "probability": 0.4, "verdict": "benign"},
        {"lesion_label": 2, "probability": OUTSIDE_DOMAIN, "verdict": OUTSIDE_DOMAIN},
        {"lesion_label": 3, "probability": 0.9, "verdict": "malignant"},
    ]
    result = CaseResult(
        rows=rows, overlay=lesions, threshold=0.5, device="cpu", synthetic=True, warning=WARNING,
        bundle_name=MODEL, features=features,
    )  # fmt: skip
    exported_files = export_dicom(files, lesions, tmp_path / "out", results=result)
    assert [m.probability for m in exported_files.lesions] == [0.4, None, 0.9]
    assert [m.suv_peak for m in exported_files.lesions] == [4.0, 5.0, 6.0]
    assert any("lesion 2: outside model domain" in note for note in exported_files.notes)
    assert _dciodvfy(exported_files.sr_path) == []
