"""What every DICOM series writer here shares (CT in ``dicom_ct``, PET in ``dicom_pet``).

UIDs (random, or derived from caller-given entropy so the same inputs give the same files),
DA/TM/DT strings, the patient / study / series / frame-of-reference tags, the image plane of
slice k of an LPS volume, signed 16-bit pixels with a rescale, and file meta + saving with
pydicom 2 (Slicer's Python) or 3. One file per axial slice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np
import SimpleITK as sitk


def dicom_date(value: dt.datetime) -> str:
    """DICOM DA ``YYYYMMDD``."""
    return value.strftime("%Y%m%d")


def dicom_time(value: dt.datetime) -> str:
    """DICOM TM ``HHMMSS`` (``.ffffff`` only when there are fractional seconds)."""
    return value.strftime("%H%M%S.%f" if value.microsecond else "%H%M%S")


def dicom_datetime(value: dt.datetime) -> str:
    """DICOM DT ``YYYYMMDDHHMMSS[.ffffff]``."""
    return dicom_date(value) + dicom_time(value)


class UidSource:
    """Makes UIDs: random, or, with ``entropy``, a function of (entropy, name) only.

    ``UidSource(["seed 7", "patient 3"])("series", "CT")`` is the same UID on every run, so a
    synthetic study written twice is byte-identical (pydicom's ``generate_uid(entropy_srcs=...)``).
    """

    def __init__(self, entropy: Optional[Sequence[object]] = None) -> None:
        self.entropy = None if entropy is None else [str(item) for item in entropy]

    def __call__(self, *name: object) -> str:
        from pydicom.uid import generate_uid

        if self.entropy is None:
            return generate_uid()
        return generate_uid(entropy_srcs=[*self.entropy, *(str(item) for item in name)])


def slice_offsets_mm(n_slices: int, offsets_mm: Optional[Sequence[float]]) -> list[Optional[float]]:
    """Each slice's distance from the first along the normal: ``offsets_mm`` checked (one per
    slice, increasing), or None per slice for the even k × spacing."""
    if offsets_mm is None:
        return [None] * n_slices
    offsets = [float(value) for value in offsets_mm]
    if len(offsets) != n_slices or any(b <= a for a, b in zip(offsets, offsets[1:])):
        raise ValueError(
            f"slice_offsets_mm: expected {n_slices} increasing distances (mm), got {offsets_mm!r}"
        )
    return offsets


def volume_planes(image: sitk.Image) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple]:
    """(voxels as float64 (z, y, x), origin, direction 3×3 (columns: i, j, k), spacing)."""
    if image.GetDimension() != 3:
        raise ValueError("a DICOM series is written from a 3D image")
    array = sitk.GetArrayFromImage(image).astype(np.float64)
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    return array, np.array(image.GetOrigin(), dtype=float), direction, image.GetSpacing()


def set_identity(
    ds: Any,
    *,
    sop_class_uid: str,
    sop_instance_uid: str,
    modality: str,
    manufacturer: str,
    patient_name: str,
    patient_id: str,
    patient_sex: str,
    study_uid: str,
    series_uid: str,
    frame_of_reference_uid: str,
    study_datetime: dt.datetime,
    series_datetime: dt.datetime,
    acquisition_datetime: dt.datetime,
    study_description: str,
    series_description: str,
    series_number: int,
    instance_number: int,
) -> None:
    """SOP common, patient, general study / series / equipment and frame-of-reference tags."""
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class_uid, sop_instance_uid
    ds.StudyDate, ds.StudyTime = dicom_date(study_datetime), dicom_time(study_datetime)
    ds.SeriesDate, ds.SeriesTime = dicom_date(series_datetime), dicom_time(series_datetime)
    ds.AcquisitionDate = dicom_date(acquisition_datetime)
    ds.AcquisitionTime = dicom_time(acquisition_datetime)
    ds.ContentDate, ds.ContentTime = dicom_date(series_datetime), dicom_time(series_datetime)
    ds.Modality, ds.Manufacturer = modality, manufacturer
    ds.StudyDescription, ds.SeriesDescription = study_description, series_description
    ds.PatientName, ds.PatientID, ds.PatientSex = patient_name, patient_id, patient_sex
    ds.PatientBirthDate = ""
    ds.ReferringPhysicianName, ds.AccessionNumber = "", ""
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = frame_of_reference_uid, ""
    ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "1", series_number, instance_number
    ds.PatientPosition = "HFS"


def set_image_plane(
    ds: Any,
    origin: np.ndarray,
    direction: np.ndarray,
    spacing: Sequence[float],
    k: int,
    position_mm: Optional[float] = None,
) -> None:
    """Image Plane module of slice ``k`` (position, orientation, spacing, thickness, location).

    ``position_mm``: the slice's distance from ``origin`` along the normal (mm); k × spacing
    when None. Real multi-bed PET steps unevenly where beds meet.
    """
    from pydicom.valuerep import DS

    along = spacing[2] * k if position_mm is None else position_mm
    position = origin + direction[:, 2] * along
    ds.ImagePositionPatient = [DS(v, auto_format=True) for v in position]
    ds.ImageOrientationPatient = [
        DS(v, auto_format=True) for v in (*direction[:, 0], *direction[:, 1])
    ]
    ds.SliceLocation = DS(float(position @ direction[:, 2]), auto_format=True)
    ds.PixelSpacing = [DS(spacing[1], auto_format=True), DS(spacing[0], auto_format=True)]
    ds.SliceThickness = DS(spacing[2], auto_format=True)


def set_int16_pixels(ds: Any, stored: np.ndarray, slope: float, intercept: float) -> None:
    """Image Pixel module, signed 16-bit MONOCHROME2: value = stored × slope + intercept."""
    from pydicom.valuerep import DS

    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept = DS(intercept, auto_format=True)
    ds.RescaleSlope = DS(slope, auto_format=True)
    ds.PixelData = np.ascontiguousarray(stored, dtype="<i2").tobytes()


def save_dataset(ds: Any, path: Path) -> Path:
    """Add file meta (explicit VR little endian) and write ``ds`` as a DICOM Part 10 file."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    if int(pydicom.__version__.split(".")[0]) >= 3:
        ds.save_as(path, enforce_file_format=True)
    else:  # pragma: no cover - pydicom 2.x (Slicer's Python)
        ds.preamble = b"\0" * 128
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(str(path), write_like_original=False)
    return path
