"""SUVbw from DICOM PET (QIBA): hand-computed factors on small series written with pydicom.

Every case uses a uniform 5000 Bq/mL phantom (activity at the 10:00:00 scan start), a 70 kg
patient and 370 MBq of F-18 (T½ 6586.2 s) injected at 09:00:00 unless the test says otherwise,
so the START factor is 70 000 g / (370e6 Bq × 2^(−3600 s / 6586.2 s)) = 2.76337e-4 g/mL.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from BoneOligoMetLib.cli import main
from BoneOligoMetLib.errors import BoneOligoMetError, DicomTagError, GeometryError, ImageReadError
from BoneOligoMetLib.io.dicom_tags import PHILIPS_PRIVATE_CREATOR
from BoneOligoMetLib.io.suv import pet_dicom_to_suv, read_suv_parameters
from BoneOligoMetLib.synthetic.dicom_pet import write_pet_series

ACTIVITY_BQML = 5000.0
INJECTION = dt.datetime(2024, 3, 1, 9, 0, 0)
SERIES = dt.datetime(2024, 3, 1, 10, 0, 0)
# Hand arithmetic: 2^(−3600/6586.2) = 0.684633, 70 000 / (370e6 × 0.684633) = 2.76337e-4.
START_FACTOR = 70_000 / (370e6 * 2 ** (-3600 / 6586.2))


def _phantom(shape_zyx=(6, 8, 8), spacing=(2.0, 2.5, 3.0), direction=None) -> sitk.Image:
    image = sitk.GetImageFromArray(np.full(shape_zyx, ACTIVITY_BQML))
    image.SetSpacing(spacing)
    image.SetOrigin((-8.0, -10.0, -120.0))
    if direction is not None:
        image.SetDirection(direction)
    return image


def _series(folder, image=None, **options):
    values = dict(
        weight_kg=70.0,
        injected_dose_bq=370e6,
        injection_datetime=INJECTION,
        series_datetime=SERIES,
    )
    values.update(options)
    return write_pet_series(image or _phantom(), folder, **values)


def _edit(files, change):
    """Rewrite every file after ``change(dataset)``."""
    for path in files:
        ds = pydicom.dcmread(path)
        change(ds)
        ds.save_as(path)


def _suv_values(folder, **overrides):
    image, parameters = pet_dicom_to_suv(folder, **overrides)
    return sitk.GetArrayFromImage(image), parameters


def test_start_decay_matches_hand_factor(tmp_path):
    _series(tmp_path)
    suv, parameters = _suv_values(tmp_path)
    assert abs(START_FACTOR - 2.76337e-4) < 1e-9
    assert parameters.suv_factor == pytest.approx(START_FACTOR, rel=1e-9)
    assert parameters.decay_factor_to_scan == pytest.approx(0.684633, rel=1e-5)
    assert parameters.uptake_time_s == 3600
    assert parameters.decay_correction == "START"
    np.testing.assert_allclose(suv, ACTIVITY_BQML * START_FACTOR, rtol=1e-4)
    assert suv.dtype == np.float32


def test_admin_decay_does_not_decay_the_dose(tmp_path):
    _series(tmp_path, decay_correction="ADMIN")
    suv, parameters = _suv_values(tmp_path)
    # Images are corrected to the injection: factor = 70 000 / 370e6 = 1.891892e-4.
    assert parameters.suv_factor == pytest.approx(70_000 / 370e6, rel=1e-9)
    assert parameters.decay_factor_to_scan == 1.0
    # Stored values are 5000 × 2^(3600/6586.2) = 7303.2 Bq/mL; the SUV is the same as START's.
    np.testing.assert_allclose(suv, ACTIVITY_BQML * START_FACTOR, rtol=1e-4)


def test_no_decay_correction_uses_each_slice_frame_time(tmp_path):
    _series(tmp_path, decay_correction="NONE", beds=2, bed_duration_s=120.0)
    suv, parameters = _suv_values(tmp_path)
    # Frame time = bed start + average-count-rate time of a 120 s frame (DICOM C.8.9.4.1.5):
    # λT = ln2/6586.2 × 120 = 0.0126290; T_avg = ln(λT / (1 − e^−λT)) / λ = 59.937 s
    # (≈ T/2 − λT²/24).
    rate = math.log(2) / 6586.2
    t_avg = math.log(rate * 120 / (1 - math.exp(-rate * 120))) / rate
    assert abs(t_avg - 59.937) < 1e-3
    bed1 = 70_000 / (370e6 * 2 ** (-(3600 + t_avg) / 6586.2))
    bed2 = 70_000 / (370e6 * 2 ** (-(3600 + 120 + t_avg) / 6586.2))
    np.testing.assert_allclose(parameters.slice_suv_factors, [bed1] * 3 + [bed2] * 3, rtol=1e-6)
    np.testing.assert_allclose(suv, ACTIVITY_BQML * START_FACTOR, rtol=1e-4)


def test_injection_before_midnight_scan_after(tmp_path):
    _series(
        tmp_path,
        injection_datetime=dt.datetime(2024, 3, 1, 23, 50, 0),
        series_datetime=dt.datetime(2024, 3, 2, 0, 40, 0),
        drop_tags=["RadiopharmaceuticalStartDateTime"],
    )
    suv, parameters = _suv_values(tmp_path)
    # 23:50 on SeriesDate (03-02) is after the 00:40 scan, so the injection was on 03-01:
    # Δt = 50 min = 3000 s; factor = 70 000 / (370e6 × 2^(−3000/6586.2)) = 2.5943e-4.
    expected = 70_000 / (370e6 * 2 ** (-3000 / 6586.2))
    assert abs(expected - 2.5943e-4) < 1e-8
    assert parameters.injection_datetime == dt.datetime(2024, 3, 1, 23, 50, 0)
    assert parameters.suv_factor == pytest.approx(expected, rel=1e-9)
    np.testing.assert_allclose(suv, ACTIVITY_BQML * expected, rtol=1e-4)


@pytest.mark.parametrize(
    ("manufacturer", "scan_source"),
    [("GE MEDICAL SYSTEMS", "(0009,100D)"), ("SIEMENS", "earliest acquisition")],
)
def test_series_time_after_acquisition_uses_qiba_fallback(tmp_path, manufacturer, scan_source):
    # Post-processing reset SeriesTime to 12:30; the acquisition (and GE's private scan
    # datetime) still say 10:00, which is the QIBA scan reference.
    later = dt.datetime(2024, 3, 1, 12, 30, 0)
    _series(tmp_path, stored_series_datetime=later, manufacturer=manufacturer, beds=2)
    suv, parameters = _suv_values(tmp_path)
    assert parameters.scan_reference_datetime == SERIES
    assert parameters.suv_factor == pytest.approx(START_FACTOR, rel=1e-9)
    sources = {p.name: p.source for p in parameters.provenance}
    assert scan_source in sources["scan reference time"]
    np.testing.assert_allclose(suv, ACTIVITY_BQML * START_FACTOR, rtol=1e-4)


def test_philips_cnts_uses_activity_scale_factor(tmp_path):
    _series(tmp_path, units="CNTS", manufacturer="Philips", philips_activity_scale=0.5)
    suv, parameters = _suv_values(tmp_path)
    # Bq/mL = rescaled counts × 0.5 (7053,1009); factor on counts = 0.5 × 2.76337e-4.
    assert parameters.units == "CNTS"
    assert parameters.suv_factor == pytest.approx(START_FACTOR, rel=1e-9)
    np.testing.assert_allclose(parameters.slice_suv_factors, 0.5 * START_FACTOR, rtol=1e-9)
    np.testing.assert_allclose(suv, ACTIVITY_BQML * START_FACTOR, rtol=1e-4)


def _drop_philips(element):
    def change(ds):
        del ds[ds.private_block(0x7053, PHILIPS_PRIVATE_CREATOR).get_tag(element)]

    return change


def test_philips_cnts_falls_back_to_suv_scale_factor(tmp_path):
    files = _series(tmp_path, units="CNTS", manufacturer="Philips", philips_activity_scale=0.5)
    _edit(files, _drop_philips(0x09))
    suv, parameters = _suv_values(tmp_path)
    assert parameters.weight_kg is None  # (7053,1000) is SUV per count: nothing else needed
    np.testing.assert_allclose(suv, ACTIVITY_BQML * START_FACTOR, rtol=1e-4)


def test_philips_cnts_without_scale_factors_is_an_error(tmp_path):
    files = _series(tmp_path, units="CNTS", manufacturer="Philips")
    _edit(files, _drop_philips(0x09))
    _edit(files, _drop_philips(0x00))
    with pytest.raises(DicomTagError, match=r"PET_0001\.dcm.*\(7053,1009\)"):
        pet_dicom_to_suv(tmp_path)


def test_gml_is_already_suv_and_needs_no_weight(tmp_path):
    _series(tmp_path, units="GML", drop_tags=["PatientWeight", "RadionuclideTotalDose"])
    suv, parameters = _suv_values(tmp_path)
    assert parameters.suv_factor == 1.0
    assert parameters.weight_kg is None
    np.testing.assert_allclose(suv, ACTIVITY_BQML * START_FACTOR, rtol=1e-4)


def test_beds_corrected_to_their_own_start_give_uniform_suv(tmp_path):
    files = _series(tmp_path, beds=(3, 3), bed_duration_s=180.0, bed_decay_reference="bed")
    headers = [pydicom.dcmread(f) for f in files]
    slopes = {float(ds.RescaleSlope) for ds in headers}
    frame_times_ms = {float(ds.FrameReferenceTime) for ds in headers}
    decay_factors = {float(ds.DecayFactor) for ds in headers}
    assert len(slopes) == 2
    # Frames differ by 180 s, DecayFactor does not: each bed is corrected over its own 89.9 s.
    assert len(frame_times_ms) == 2
    assert len(decay_factors) == 1
    # Bed 2 is stored corrected to 10:03, so its Bq/mL are 2^(−180/6586.2) = 0.98123 of bed 1's:
    # reading values as if all were corrected to 10:00 would make the SUV non-uniform by 1.9%.
    raw = [float(ds.pixel_array.mean()) * float(ds.RescaleSlope) for ds in headers]
    assert raw[5] / raw[0] == pytest.approx(2 ** (-180 / 6586.2), rel=1e-4)
    suv, parameters = _suv_values(tmp_path)
    assert parameters.slices_rereferenced
    assert suv.max() - suv.min() < 1e-4 * suv.mean()
    np.testing.assert_allclose(suv, ACTIVITY_BQML * START_FACTOR, rtol=1e-4)


def test_beds_corrected_to_series_start_are_not_rereferenced(tmp_path):
    _series(tmp_path, beds=3, bed_duration_s=150.0)
    suv, parameters = _suv_values(tmp_path)
    assert not parameters.slices_rereferenced
    np.testing.assert_allclose(parameters.slice_suv_factors, START_FACTOR, rtol=1e-12)
    np.testing.assert_allclose(suv, ACTIVITY_BQML * START_FACTOR, rtol=1e-4)


def _set(keyword, value):
    def change(ds):
        setattr(ds, keyword, value)

    return change


@pytest.mark.parametrize(
    ("options", "change", "keyword"),
    [
        ({"drop_tags": ["PatientWeight"]}, None, "PatientWeight"),
        ({}, _set("PatientWeight", "0"), "PatientWeight"),
        ({"weight_kg": 700.0}, None, "PatientWeight"),
        ({"drop_tags": ["RadionuclideTotalDose"]}, None, "RadionuclideTotalDose"),
        ({"injected_dose_bq": 370.0}, None, "RadionuclideTotalDose"),  # MBq stored as Bq
        ({"drop_tags": ["RadionuclideHalfLife"]}, None, "RadionuclideHalfLife"),
        (
            {"drop_tags": ["RadiopharmaceuticalInformationSequence"]},
            None,
            "RadiopharmaceuticalInformationSequence",
        ),
        (
            {"drop_tags": ["RadiopharmaceuticalStartDateTime", "RadiopharmaceuticalStartTime"]},
            None,
            "RadiopharmaceuticalStartTime",
        ),
        (
            {"injection_datetime": dt.datetime(2024, 3, 1, 10, 30)},
            None,
            "RadiopharmaceuticalStartDateTime",
        ),
        ({}, _set("Modality", "CT"), "Modality"),
        ({}, _set("Units", "PROPCNTS"), "Units"),
        ({"drop_tags": ["DecayCorrection"]}, None, "DecayCorrection"),
        ({}, _set("CorrectedImage", ["NORM", "DECY"]), "CorrectedImage"),
    ],
)
def test_bad_tag_is_a_one_line_error_naming_tag_and_file(tmp_path, options, change, keyword):
    files = _series(tmp_path, **options)
    if change is not None:
        _edit(files, change)
    with pytest.raises(DicomTagError) as caught:
        pet_dicom_to_suv(tmp_path)
    message = str(caught.value)
    assert keyword in message
    assert "PET_0001.dcm" in message
    assert "\n" not in message


def test_non_pet_series_is_an_error(tmp_path):
    files = _series(tmp_path / "a") + _series(tmp_path / "b")
    _edit(files, _set("Modality", "CT"))
    with pytest.raises(DicomTagError, match=r"PET_0001\.dcm: DICOM tag Modality is 'CT'"):
        pet_dicom_to_suv(tmp_path / "a")  # one series in the folder: its files are checked
    with pytest.raises(ImageReadError, match="no DICOM series with modality PT"):
        pet_dicom_to_suv(tmp_path)  # two CT series: the error lists them


def test_overrides_fix_missing_tags_and_are_recorded(tmp_path):
    _series(
        tmp_path,
        drop_tags=[
            "PatientWeight",
            "RadionuclideTotalDose",
            "RadiopharmaceuticalStartDateTime",
            "RadiopharmaceuticalStartTime",
        ],
    )
    suv, parameters = _suv_values(
        tmp_path, weight_kg=70.0, injected_dose_mbq=370.0, injection_time="09:00"
    )
    assert parameters.suv_factor == pytest.approx(START_FACTOR, rel=1e-9)
    sources = {p.name: p.source for p in parameters.provenance}
    assert sources["PatientWeight"] == "override"
    assert sources["RadionuclideTotalDose"] == "override"
    assert sources["injection time"] == "override"
    np.testing.assert_allclose(suv, ACTIVITY_BQML * START_FACTOR, rtol=1e-4)


def test_overrides_replace_header_values(tmp_path):
    files = _series(tmp_path)
    parameters = read_suv_parameters(
        files, weight_kg=80.0, injected_dose_mbq=400.0, injection_time="2024-03-01T09:30:00"
    )
    # 80 000 / (400e6 × 2^(−1800/6586.2)) = 2.4134e-4
    expected = 80_000 / (400e6 * 2 ** (-1800 / 6586.2))
    assert parameters.suv_factor == pytest.approx(expected, rel=1e-9)
    assert read_suv_parameters(tmp_path).suv_factor == pytest.approx(START_FACTOR, rel=1e-9)
    with pytest.raises(BoneOligoMetError, match="weight override 700 kg"):
        read_suv_parameters(files, weight_kg=700.0)
    with pytest.raises(BoneOligoMetError, match=r"dose override 0\.37 MBq"):
        read_suv_parameters(files, injected_dose_mbq=0.37)
    with pytest.raises(BoneOligoMetError, match="injection time"):
        read_suv_parameters(files, injection_time="half past nine")
    with pytest.raises(BoneOligoMetError, match="after the scan"):
        read_suv_parameters(files, injection_time="2024-03-01T10:30")


def test_geometry_matches_simpleitk_series_reader(tmp_path):
    angle = math.radians(20.0)  # rotated in-plane, so rows and columns are oblique
    cos, sin = math.cos(angle), math.sin(angle)
    direction = (cos, -sin, 0.0, sin, cos, 0.0, 0.0, 0.0, 1.0)
    image = _phantom(shape_zyx=(5, 7, 9), spacing=(1.5, 2.0, 3.27), direction=direction)
    ramp = sitk.GetArrayFromImage(image) * np.linspace(0.5, 2.0, 9)  # values vary per slice too
    ramp *= np.linspace(1.0, 3.0, 5)[:, None, None]
    activity = sitk.GetImageFromArray(ramp)
    activity.CopyInformation(image)
    _series(tmp_path, image=activity)
    suv, parameters = pet_dicom_to_suv(tmp_path)

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(tmp_path)))
    reader.SetOutputPixelType(sitk.sitkFloat32)
    reference = reader.Execute()
    np.testing.assert_allclose(suv.GetOrigin(), reference.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(suv.GetSpacing(), reference.GetSpacing(), atol=1e-4)
    np.testing.assert_allclose(suv.GetDirection(), reference.GetDirection(), atol=1e-4)
    np.testing.assert_allclose(suv.GetOrigin(), image.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(suv.GetDirection(), direction, atol=1e-6)
    bqml = sitk.GetArrayFromImage(reference)  # SimpleITK applies each slice's slope
    np.testing.assert_allclose(bqml, ramp, rtol=1e-4)
    np.testing.assert_allclose(sitk.GetArrayFromImage(suv), bqml * parameters.suv_factor, rtol=1e-6)


def test_uneven_or_duplicate_slices_are_errors_naming_files(tmp_path):
    files = _series(tmp_path / "gap")
    files[2].unlink()
    with pytest.raises(GeometryError, match=r"PET_0002\.dcm and .*PET_0004\.dcm: .*missing"):
        pet_dicom_to_suv(tmp_path / "gap")
    files = _series(tmp_path / "dup")
    first_position = pydicom.dcmread(files[0]).ImagePositionPatient
    _edit([files[1]], _set("ImagePositionPatient", first_position))
    with pytest.raises(GeometryError, match="same slice position"):
        read_suv_parameters(files)


def test_cli_writes_suv_and_prints_factor_and_tags(tmp_path, capsys):
    _series(tmp_path / "pet")
    output = tmp_path / "out" / "suv.nii.gz"
    assert main(["suv", str(tmp_path / "pet"), "-o", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "SUV factor: 0.000276337" in printed
    for name in ("PatientWeight", "RadionuclideTotalDose", "RadionuclideHalfLife", "Units"):
        assert name in printed
    assert "tag (0010,1030)" in printed
    written = sitk.GetArrayFromImage(sitk.ReadImage(str(output)))
    np.testing.assert_allclose(written, ACTIVITY_BQML * START_FACTOR, rtol=1e-4)


def test_cli_override_and_missing_tag(tmp_path, capsys):
    _series(tmp_path / "pet", drop_tags=["PatientWeight"])
    output = tmp_path / "suv.nii.gz"
    assert main(["suv", str(tmp_path / "pet"), "-o", str(output)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert "PatientWeight" in lines[0]
    assert "PET_0001.dcm" in lines[0]
    assert "--weight" in lines[0]
    assert not output.exists()
    assert main(["suv", str(tmp_path / "pet"), "-o", str(output), "--weight", "70"]) == 0
    assert "override" in capsys.readouterr().out
    assert output.exists()


@pytest.mark.parametrize(
    ("injection", "drop", "keyword", "shown"),
    [
        # A clock time 30 min after the scan: taking the day before would give 23.5 h.
        (dt.datetime(2024, 3, 1, 10, 30), "RadiopharmaceuticalStartDateTime", "StartTime", -0.5),
        (dt.datetime(2024, 3, 1, 10, 30), None, "StartDateTime", -0.5),
        (dt.datetime(2024, 3, 1, 3, 0), None, "StartDateTime", 7.0),  # 7 h: not plausible
    ],
)
def test_implausible_uptake_names_both_times_and_the_flags(
    tmp_path, injection, drop, keyword, shown
):
    files = _series(tmp_path, injection_datetime=injection, drop_tags=[drop] if drop else [])
    with pytest.raises(DicomTagError) as caught:
        read_suv_parameters(files)
    message = str(caught.value)
    assert f"Radiopharmaceutical{keyword}" in message
    assert f"injection {injection.isoformat()}" in message
    assert "scan reference 2024-03-01T10:00:00" in message
    assert f"an uptake of {shown:.2f} h" in message
    assert "--injection-time" in message
    assert "--max-uptake-h" in message
    assert "\n" not in message


def test_max_uptake_widens_the_plausible_range(tmp_path):
    files = _series(
        tmp_path,
        injection_datetime=dt.datetime(2024, 3, 1, 10, 30),
        drop_tags=["RadiopharmaceuticalStartDateTime"],
    )
    # 10:30 on the scan date is after the 10:00 scan; allowed 24 h, it is the day before.
    parameters = read_suv_parameters(files, max_uptake_h=24)
    assert parameters.injection_datetime == dt.datetime(2024, 2, 29, 10, 30)
    assert parameters.uptake_time_s == 23.5 * 3600
    late = _series(tmp_path / "late", injection_datetime=dt.datetime(2024, 3, 1, 3, 0))
    assert read_suv_parameters(late, max_uptake_h=8).uptake_time_s == 7 * 3600
    for bad in (0, -1, float("nan")):
        with pytest.raises(BoneOligoMetError, match="max uptake"):
            read_suv_parameters(late, max_uptake_h=bad)


def test_plausible_midnight_crossing_still_works(tmp_path):
    files = _series(
        tmp_path,
        injection_datetime=dt.datetime(2024, 3, 1, 23, 30),
        series_datetime=dt.datetime(2024, 3, 2, 0, 40),
        drop_tags=["RadiopharmaceuticalStartDateTime"],
    )
    parameters = read_suv_parameters(files)
    assert parameters.injection_datetime == dt.datetime(2024, 3, 1, 23, 30)
    assert parameters.uptake_time_s == 70 * 60


def test_implausible_injection_override_names_both_times(tmp_path):
    files = _series(tmp_path)
    with pytest.raises(BoneOligoMetError) as caught:
        read_suv_parameters(files, injection_time="10:20")
    message = str(caught.value)
    assert message.startswith("injection time override: injection 2024-03-01T10:20:00 after")
    assert "scan reference 2024-03-01T10:00:00" in message
    assert "--max-uptake-h" in message


def test_cli_max_uptake_option(tmp_path, capsys):
    _series(tmp_path / "pet", injection_datetime=dt.datetime(2024, 3, 1, 3, 0))
    output = tmp_path / "suv.nii.gz"
    assert main(["suv", str(tmp_path / "pet"), "-o", str(output)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "--max-uptake-h" in err[0]
    assert "2024-03-01T03:00:00" in err[0]
    assert not output.exists()
    assert main(["suv", str(tmp_path / "pet"), "-o", str(output), "--max-uptake-h", "8"]) == 0
    assert "uptake time" in capsys.readouterr().out
    assert output.exists()
