"""Reading CT/PET from NIfTI, NRRD and DICOM series folders with physical geometry kept."""

from __future__ import annotations

import gzip
import re
import struct

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from conftest import make_image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from BoneOligoMetLib.errors import ImageReadError
from BoneOligoMetLib.io import images as image_io

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


def _cut_in_half(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _float_volume(shape_zyx=(5, 6, 7)):
    rng = np.random.default_rng(3)
    return rng.uniform(0.5, 9.0, size=shape_zyx).astype(np.float32)


@pytest.mark.parametrize(
    ("name", "compress", "cut", "expected"),
    [
        ("pet.nii.gz", True, "pet.nii.gz", "truncated NIfTI file"),
        ("pet.nii", False, "pet.nii", r"truncated NIfTI file: 596 of 1192 bytes"),
        ("ct.nii.gz", True, "ct.nii.gz", "truncated NIfTI file"),  # int16: ISIZE check
        ("pet.nrrd", False, "pet.nrrd", "truncated image file"),
        ("pet.nrrd", True, "pet.nrrd", "truncated image file"),
        ("pet.nhdr", False, "pet.raw", "truncated image file"),
        ("pet.nhdr", True, "pet.raw.gz", "truncated image file"),
        ("pet.mha", False, "pet.mha", r"truncated MetaImage file: pet\.mha holds \d+ of 840"),
        ("pet.mha", True, "pet.mha", "truncated MetaImage file: pet.mha holds"),
        ("pet.mhd", False, "pet.raw", r"truncated MetaImage file: pet\.raw holds \d+ of 840"),
        ("pet.mhd", True, "pet.zraw", "truncated MetaImage file: pet.zraw holds"),
    ],
)
def test_file_cut_short_is_refused_naming_it(tmp_path, name, compress, cut, expected):
    values = _float_volume()
    if name.startswith("ct"):
        values = (values * 100).astype(np.int16)
    image = make_image(values, spacing=(2.0, 2.0, 3.27))
    path = image_io.write_image(image, tmp_path / name, compress=compress)
    _cut_in_half(tmp_path / cut)
    with pytest.raises(ImageReadError) as caught:
        image_io.read_image(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message
    assert re.search(expected, message), message


def test_simpleitk_reads_a_cut_nifti_as_zeros_which_we_refuse(tmp_path):
    # Why the check exists: SimpleITK fills the missing half with zeros, no error.
    path = image_io.write_image(make_image(_float_volume()), tmp_path / "pet.nii.gz")
    _cut_in_half(path)
    silent = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    assert silent.shape == (5, 6, 7)
    assert (silent == 0).sum() > 0
    with pytest.raises(ImageReadError, match="truncated NIfTI file: the gzip stream ends"):
        image_io.read_image(path)


def test_multi_member_gzip_nifti_is_read(tmp_path):
    values = (_float_volume() * 100).astype(np.int16)
    plain = image_io.write_image(make_image(values), tmp_path / "ct.nii", compress=False)
    raw = plain.read_bytes()
    members = tmp_path / "ct.nii.gz"  # legal gzip: two members, ISIZE of the second only
    members.write_bytes(gzip.compress(raw[:500]) + gzip.compress(raw[500:]))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image_io.read_image(members)), values)
    assert len(raw) == 352 + 5 * 6 * 7 * 2
    members.write_bytes(gzip.compress(raw[:500]) + gzip.compress(raw[500:700]))
    with pytest.raises(ImageReadError, match=r"truncated NIfTI file: 700 of 772 bytes"):
        image_io.read_image(members)


@pytest.mark.parametrize(("suffix", "dtype"), [(".nii.gz", np.float32), (".nii", np.float64)])
def test_float_nifti_keeps_nan_and_inf(tmp_path, suffix, dtype):
    values = _float_volume().astype(dtype)
    values[2, 3, 4], values[0, 0, 0], values[4, 5, 6] = np.nan, np.inf, -np.inf
    path = image_io.write_image(make_image(values), tmp_path / f"pet{suffix}")
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(path)))[2, 3, 4] == 0.0  # SimpleITK
    read = sitk.GetArrayFromImage(image_io.read_image(path))
    assert read.dtype == dtype
    np.testing.assert_array_equal(read, values)  # NaN == NaN for assert_array_equal
    assert np.isnan(read[2, 3, 4])
    assert (read[0, 0, 0], read[4, 5, 6]) == (np.inf, -np.inf)


def test_nan_inside_a_lesion_is_refused_not_read_as_zero(tmp_path):
    from BoneOligoMetLib.errors import UnitsError
    from BoneOligoMetLib.image.units import require_suv_crop

    suv = np.full((5, 6, 7), 1.2, dtype=np.float32)
    suv[1:4, 2:5, 2:5] = 4.72  # the lesion
    suv[2, 3, 3] = np.nan  # its hottest voxel lost by the reconstruction
    path = image_io.write_image(make_image(suv), tmp_path / "suv.nii.gz")
    crop = image_io.read_image(path)[2:5, 2:5, 1:4]
    with pytest.raises(UnitsError, match=r"lesion 2: 1 voxel\(s\) are NaN or infinite"):
        require_suv_crop(crop, "lesion 2")


def _nifti1(values_zyx, endian="<", sform=None, qform_code=0, slope=1.0, inter=0.0):
    """NIfTI-1 bytes written by hand (float32), so header fields SimpleITK's writer never sets
    (big-endian, an sform with permuted axes, a rescale) can be read back."""
    nz, ny, nx = values_zyx.shape
    head = bytearray(352)
    struct.pack_into(endian + "i", head, 0, 348)
    struct.pack_into(endian + "8h", head, 40, 3, nx, ny, nz, 1, 1, 1, 1)
    struct.pack_into(endian + "2h", head, 70, 16, 32)  # float32
    struct.pack_into(endian + "8f", head, 76, 1.0, 1.5, 2.0, 3.27, 1, 1, 1, 1)
    struct.pack_into(endian + "3f", head, 108, 352.0, slope, inter)
    struct.pack_into(endian + "2h", head, 252, qform_code, 1 if sform is not None else 0)
    if sform is not None:
        struct.pack_into(endian + "12f", head, 280, *np.asarray(sform, dtype=float).ravel())
    head[344:348] = b"n+1\0"
    return bytes(head) + values_zyx.astype(endian + "f4").tobytes()


@pytest.mark.parametrize(
    "case", ["oblique written by SimpleITK", "sform permuted", "big-endian", "rescaled"]
)
def test_float_nifti_voxel_order_and_geometry_match_simpleitk(tmp_path, case):
    values = _float_volume()
    path = tmp_path / "pet.nii"
    if case == "oblique written by SimpleITK":
        angle = np.radians(25.0)  # rotated about z, then y and z flipped
        c, s = np.cos(angle), np.sin(angle)
        direction = (np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ np.diag([1, -1, -1])).ravel()
        image = make_image(values, spacing=(1.5, 2.0, 3.27), origin=(5, -7, 9), direction=direction)
        path = image_io.write_image(image, tmp_path / "pet.nii.gz")
    elif case == "sform permuted":  # i runs along -y, j along x: no identity anywhere
        sform = [[0, 2.0, 0, -10], [-1.5, 0, 0, 20], [0, 0, -3.27, 30]]
        path.write_bytes(_nifti1(values, sform=sform))
    elif case == "big-endian":
        path.write_bytes(
            _nifti1(values, endian=">", sform=[[-1, 0, 0, 1], [0, 1.5, 0, 2], [0, 0, 3.27, 3]])
        )
    else:
        path.write_bytes(_nifti1(values, slope=2.5, inter=-1.25))
    reference = sitk.ReadImage(str(path))
    ours = image_io.read_image(path)
    assert not np.allclose(reference.GetDirection(), np.eye(3).ravel()) or case == "rescaled"
    np.testing.assert_array_equal(sitk.GetArrayFromImage(ours), sitk.GetArrayFromImage(reference))
    assert ours.GetOrigin() == reference.GetOrigin()
    assert ours.GetSpacing() == reference.GetSpacing()
    assert ours.GetDirection() == reference.GetDirection()
    expected = values * 2.5 - 1.25 if case == "rescaled" else values
    np.testing.assert_allclose(sitk.GetArrayFromImage(ours), expected, rtol=1e-6, atol=1e-6)
