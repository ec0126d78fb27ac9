"""Reading CT/PET from NIfTI, NRRD and DICOM series folders with physical geometry kept."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from conftest import make_image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from BoneOligoMetLib import image_io
from BoneOligoMetLib.errors import ImageReadError

SPACING = (0.98, 1.1, 3.27)  # x ≠ y: catches a swapped PixelSpacing
ORIGIN = (-120.0, -80.5, -400.0)


def _write_ct_series(folder, values_kji, modality="CT", description="CT body", intercept=-1024):
    """A minimal but valid axial DICOM series (stored = HU − intercept) with known geometry."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid, frame_uid, study_uid = generate_uid(), generate_uid(), generate_uid()
    for k, slice_values in enumerate(values_kji):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = (
            study_uid,
            series_uid,
            frame_uid,
        )
        ds.Modality = modality
        ds.SeriesDescription = description
        ds.PatientID = "TEST"
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [ORIGIN[0], ORIGIN[1], ORIGIN[2] + k * SPACING[2]]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [SPACING[1], SPACING[0]]  # row spacing (y), column spacing (x)
        ds.SliceThickness = SPACING[2]
        ds.Rows, ds.Columns = slice_values.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = intercept, 1
        ds.PixelData = (slice_values - intercept).astype(np.int16).tobytes()
        ds.save_as(folder / f"slice{k:03d}.dcm", enforce_file_format=True)
    return series_uid


@pytest.fixture
def hu_values():
    rng = np.random.default_rng(0)
    return rng.integers(-1000, 1500, size=(4, 6, 5)).astype(np.int16)


def test_dicom_series_keeps_hu_and_geometry(tmp_path, hu_values):
    _write_ct_series(tmp_path / "ct", hu_values)
    image = image_io.read_image(tmp_path / "ct")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), hu_values)
    np.testing.assert_allclose(image.GetSpacing(), SPACING, atol=1e-4)
    np.testing.assert_allclose(image.GetOrigin(), ORIGIN, atol=1e-4)
    np.testing.assert_allclose(image.GetDirection(), np.eye(3).ravel())


def test_folder_with_two_series_picks_by_modality_or_lists_them(tmp_path, hu_values):
    ct_uid = _write_ct_series(tmp_path / "study" / "ct", hu_values)
    _write_ct_series(tmp_path / "study" / "pet", hu_values // 100 + 20, "PT", "PET AC", 0)
    with pytest.raises(ImageReadError) as caught:
        image_io.read_image(tmp_path / "study")
    message = str(caught.value)
    assert "2 DICOM series" in message
    assert "CT 'CT body'" in message
    assert "PT 'PET AC'" in message
    ct = image_io.read_image(tmp_path / "study", modality="CT")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(ct), hu_values)
    assert image_io.select_dicom_series(tmp_path / "study", series_uid=ct_uid).modality == "CT"
    with pytest.raises(ImageReadError, match="no DICOM series with modality MR"):
        image_io.read_image(tmp_path / "study", modality="MR")


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_file_formats_round_trip_geometry(tmp_path, suffix):
    direction = (0, 1, 0, -1, 0, 0, 0, 0, 1)
    image = make_image(
        np.arange(60, dtype=np.float32).reshape(3, 4, 5),
        spacing=(0.98, 1.5, 3.27),
        origin=(10.0, -20.0, 30.0),
        direction=direction,
    )
    path = image_io.write_image(image, tmp_path / f"sub/image{suffix}")
    back = image_io.read_image(path)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
    np.testing.assert_allclose(back.GetSpacing(), image.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(back.GetOrigin(), image.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(back.GetDirection(), direction, atol=1e-6)


def test_unknown_or_missing_files_are_one_line_errors(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        image_io.read_image(tmp_path / "missing.nii.gz")
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with pytest.raises(ImageReadError, match="unknown image format"):
        image_io.read_image(text)
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(ImageReadError) as caught:
        image_io.read_image(broken)
    assert str(broken) in str(caught.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageReadError, match="no DICOM series found"):
        image_io.read_image(tmp_path / "empty")


def test_vector_image_is_refused(tmp_path):
    vector = sitk.Image([3, 3, 3], sitk.sitkVectorFloat32, 3)
    path = image_io.write_image(vector, tmp_path / "vector.nii.gz")
    with pytest.raises(ImageReadError, match="3D scalar image"):
        image_io.read_image(path)
