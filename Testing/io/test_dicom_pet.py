"""The PET DICOM writer and the tag/time/geometry readers it shares with ``suv``."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import UID, ExplicitVRLittleEndian

from BoneOligoMetLib.io.dicom_tags import (
    GE_PRIVATE_CREATOR,
    PHILIPS_PRIVATE_CREATOR,
    average_count_time_s,
    parse_dicom_date,
    parse_dicom_datetime,
    parse_dicom_time,
    private_text,
)
from BoneOligoMetLib.synthetic.dicom_pet import PET_IMAGE_STORAGE, write_pet_series

INJECTION = dt.datetime(2024, 3, 1, 9, 0, 0)
SERIES = dt.datetime(2024, 3, 1, 10, 0, 0)
HALF_LIFE_S = 6586.2


def _activity() -> sitk.Image:
    """8×8×6 Bq/mL image whose slices differ (1000…6000) and whose rows ramp within a slice."""
    array = np.arange(1, 7, dtype=float)[:, None, None] * 1000.0 * np.ones((6, 8, 8))
    array *= np.linspace(0.5, 1.5, 8)[None, :, None]
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((2.0, 2.5, 3.0))
    image.SetOrigin((-8.0, -10.0, -120.0))
    image.SetDirection((1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, -1.0))  # flipped y and z
    return image


def _write(folder, **options):
    values = dict(
        weight_kg=65.0,
        injected_dose_bq=300e6,
        injection_datetime=INJECTION,
        series_datetime=SERIES,
    )
    values.update(options)
    files = write_pet_series(_activity(), folder, **values)
    return files, [pydicom.dcmread(path) for path in files]


def _rescaled(ds) -> np.ndarray:
    return ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def test_series_is_valid_pet_image_storage(tmp_path):
    files, datasets = _write(tmp_path)
    assert [path.name for path in files] == [f"PET_{k:04d}.dcm" for k in range(1, 7)]
    for ds in datasets:
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert ds.file_meta.MediaStorageSOPClassUID == PET_IMAGE_STORAGE == ds.SOPClassUID
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.Modality == "PT"
        assert ds.Units == "BQML"
        assert ds.DecayCorrection == "START"
        assert ds.pixel_array.dtype == np.int16
        assert int(np.abs(ds.pixel_array).max()) == 32767  # the slope uses the int16 range
        assert float(ds.PatientWeight) == 65.0
        isotope = ds.RadiopharmaceuticalInformationSequence[0]
        assert isotope.Radiopharmaceutical == "Fludeoxyglucose F^18^"
        assert float(isotope.RadionuclideTotalDose) == 300e6
        assert float(isotope.RadionuclideHalfLife) == HALF_LIFE_S
        assert isotope.RadiopharmaceuticalStartDateTime == "20240301090000"
        assert isotope.RadiopharmaceuticalStartTime == "090000"
        assert isotope.RadionuclideCodeSequence[0].CodeMeaning == "^18^Fluorine"
        assert (ds.SeriesDate, ds.SeriesTime) == ("20240301", "100000")
        for uid in (ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.StudyInstanceUID):
            assert UID(uid).is_valid
        assert private_text(ds, 0x0009, GE_PRIVATE_CREATOR, 0x0D) == "20240301100000"
    assert len({ds.SOPInstanceUID for ds in datasets}) == 6
    for keyword in ("SeriesInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID"):
        assert len({ds.get(keyword) for ds in datasets}) == 1
    assert len({float(ds.RescaleSlope) for ds in datasets}) == 6  # per-slice slopes


def test_pixels_and_geometry_round_trip_through_simpleitk(tmp_path):
    files, datasets = _write(tmp_path)
    expected = sitk.GetArrayFromImage(_activity())
    for k, ds in enumerate(datasets):
        np.testing.assert_allclose(_rescaled(ds), expected[k], rtol=1e-4)
        assert [float(v) for v in ds.PixelSpacing] == [2.5, 2.0]
        assert float(ds.SliceThickness) == 3.0
        assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, -1, 0]
        np.testing.assert_allclose(
            [float(v) for v in ds.ImagePositionPatient], [-8.0, -10.0, -120.0 - 3.0 * k]
        )
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(path) for path in files])
    reader.SetOutputPixelType(sitk.sitkFloat32)
    read = reader.Execute()
    np.testing.assert_allclose(read.GetSpacing(), (2.0, 2.5, 3.0), atol=1e-6)
    np.testing.assert_allclose(read.GetOrigin(), (-8.0, -10.0, -120.0), atol=1e-6)
    np.testing.assert_allclose(read.GetDirection(), _activity().GetDirection(), atol=1e-6)
    np.testing.assert_allclose(sitk.GetArrayFromImage(read), expected, rtol=1e-4)


def test_beds_set_acquisition_frame_time_and_decay_factor(tmp_path):
    _files, datasets = _write(tmp_path, beds=(2, 4), bed_duration_s=150.0)
    t_avg_s = average_count_time_s(150.0, HALF_LIFE_S)
    assert [ds.AcquisitionTime for ds in datasets] == ["100000"] * 2 + ["100230"] * 4
    for k, ds in enumerate(datasets):
        frame_s = (0.0 if k < 2 else 150.0) + t_avg_s
        assert float(ds.FrameReferenceTime) == pytest.approx(frame_s * 1000.0, abs=0.01)
        assert int(ds.ActualFrameDuration) == 150_000
        # All beds corrected to the series start: DecayFactor = 2^(t_frame / T½).
        assert float(ds.DecayFactor) == pytest.approx(2 ** (frame_s / HALF_LIFE_S), rel=1e-9)
        np.testing.assert_allclose(_rescaled(ds), sitk.GetArrayFromImage(_activity())[k], 1e-4)


def test_beds_decay_corrected_to_their_own_start(tmp_path):
    _files, datasets = _write(tmp_path, beds=2, bed_decay_reference="bed", bed_duration_s=150.0)
    t_avg_s = average_count_time_s(150.0, HALF_LIFE_S)
    activity = sitk.GetArrayFromImage(_activity())
    for k, ds in enumerate(datasets):
        bed_start_s = 0.0 if k < 3 else 150.0
        assert float(ds.DecayFactor) == pytest.approx(2 ** (t_avg_s / HALF_LIFE_S), rel=1e-9)
        np.testing.assert_allclose(
            _rescaled(ds), activity[k] * 2 ** (-bed_start_s / HALF_LIFE_S), rtol=1e-4
        )


def test_admin_and_none_decay_correction(tmp_path):
    activity = sitk.GetArrayFromImage(_activity())
    _files, admin = _write(tmp_path / "admin", decay_correction="ADMIN")
    t_avg_s = average_count_time_s(120.0, HALF_LIFE_S)
    # ADMIN: values at the injection (3600 s earlier) and DecayFactor from injection to frame.
    np.testing.assert_allclose(_rescaled(admin[0]), activity[0] * 2 ** (3600 / HALF_LIFE_S), 1e-4)
    assert float(admin[0].DecayFactor) == pytest.approx(
        2 ** ((3600 + t_avg_s) / HALF_LIFE_S), rel=1e-9
    )
    _files, none = _write(tmp_path / "none", decay_correction="NONE")
    # NONE: activity at the frame time, no DecayFactor, no DECY in CorrectedImage.
    np.testing.assert_allclose(
        _rescaled(none[0]), activity[0] * 2 ** (-t_avg_s / HALF_LIFE_S), 1e-4
    )
    assert "DecayFactor" not in none[0]
    assert "DECY" not in none[0].CorrectedImage


def test_philips_cnts_and_gml(tmp_path):
    activity = sitk.GetArrayFromImage(_activity())
    _files, cnts = _write(
        tmp_path / "cnts", units="CNTS", manufacturer="Philips", philips_activity_scale=4.0
    )
    ds = cnts[0]
    assert ds.Units == "CNTS"
    assert private_text(ds, 0x0009, GE_PRIVATE_CREATOR, 0x0D) is None
    block = ds.private_block(0x7053, PHILIPS_PRIVATE_CREATOR)
    assert block.get_tag(0x09) == 0x70531009
    assert float(block[0x09].value) == 4.0
    np.testing.assert_allclose(_rescaled(ds) * 4.0, activity[0], rtol=1e-4)
    suv_factor = 65_000 / (300e6 * 2 ** (-3600 / HALF_LIFE_S))
    assert float(block[0x00].value) == pytest.approx(4.0 * suv_factor, rel=1e-9)
    _files, gml = _write(tmp_path / "gml", units="GML")
    np.testing.assert_allclose(_rescaled(gml[0]), activity[0] * suv_factor, rtol=1e-4)


def test_drop_tags_and_post_processed_series_time(tmp_path):
    later = dt.datetime(2024, 3, 1, 13, 15, 0)
    _files, datasets = _write(
        tmp_path,
        stored_series_datetime=later,
        drop_tags=["PatientWeight", "RadiopharmaceuticalStartDateTime"],
    )
    ds = datasets[0]
    assert "PatientWeight" not in ds
    assert "RadiopharmaceuticalStartDateTime" not in ds.RadiopharmaceuticalInformationSequence[0]
    assert ds.RadiopharmaceuticalInformationSequence[0].RadiopharmaceuticalStartTime == "090000"
    assert (ds.SeriesTime, ds.AcquisitionTime) == ("131500", "100000")
    assert private_text(ds, 0x0009, GE_PRIVATE_CREATOR, 0x0D) == "20240301100000"


def test_bad_writer_options_are_value_errors(tmp_path):
    with pytest.raises(ValueError, match="decay_correction"):
        _write(tmp_path, decay_correction="LATER")
    with pytest.raises(ValueError, match="units"):
        _write(tmp_path, units="MBQ")
    with pytest.raises(ValueError, match="beds"):
        _write(tmp_path, beds=(2, 2))


def test_dicom_time_parsing():
    assert parse_dicom_time("101530.25") == dt.time(10, 15, 30, 250000)
    assert parse_dicom_time("1015") == dt.time(10, 15)
    assert parse_dicom_time("10:15:30") == dt.time(10, 15, 30)
    assert parse_dicom_time("2561") is None
    assert parse_dicom_date("20240229") == dt.date(2024, 2, 29)
    assert parse_dicom_date("2024.02.29") == dt.date(2024, 2, 29)
    assert parse_dicom_date("20230229") is None
    assert parse_dicom_datetime("20240301235000.5+0100") == dt.datetime(
        2024, 3, 1, 23, 50, 0, 500000
    )
    assert parse_dicom_datetime("20240301") == dt.datetime(2024, 3, 1)
    assert parse_dicom_datetime("2024") is None


def test_average_count_time():
    # x = λT = ln2 × 300 / 6586.2 = 0.0315727; ln(x / (1 − e^−x)) / λ = 149.605 s,
    # close to the series expansion T/2 − λT²/24 = 150 − 0.395.
    rate = math.log(2) / HALF_LIFE_S
    assert average_count_time_s(300.0, HALF_LIFE_S) == pytest.approx(149.605, abs=1e-3)
    assert average_count_time_s(300.0, HALF_LIFE_S) == pytest.approx(
        150.0 - rate * 300.0**2 / 24, abs=1e-3
    )
    assert average_count_time_s(0.0, HALF_LIFE_S) == 0.0
