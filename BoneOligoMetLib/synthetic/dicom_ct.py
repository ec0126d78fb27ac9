"""Write a 3D CT image (HU, LPS geometry) as a DICOM CT Image Storage series.

One file per axial slice, signed 16-bit pixels with RescaleIntercept −1024 and slope 1 (as GE
stores CT), so integer HU read back exactly; the CT Image module's acquisition tags describe the
study's protocol (§2.2: 120 kV, 110 mA, 0.5 s rotation, pitch 1, 3.27 mm slices).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Optional, Union

import numpy as np
import SimpleITK as sitk

from BoneOligoMetLib.io.dicom_writer import (
    UidSource,
    save_dataset,
    set_identity,
    set_image_plane,
    set_int16_pixels,
    slice_offsets_mm,
    volume_planes,
)

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
CT_INTERCEPT = -1024.0

PathLike = Union[str, Path]


def write_ct_series(
    ct_hu: sitk.Image,
    folder: PathLike,
    *,
    series_datetime: dt.datetime,
    patient_id: str = "BOM0001",
    patient_name: str = "Synthetic^Patient",
    patient_sex: str = "F",
    patient_weight_kg: Optional[float] = None,
    manufacturer: str = "GE MEDICAL SYSTEMS",
    study_uid: Optional[str] = None,
    frame_of_reference_uid: Optional[str] = None,
    series_description: str = "CT WB 3.27mm",
    series_number: int = 2,
    kvp: float = 120.0,
    tube_current_ma: float = 110.0,
    slice_positions_mm: Optional[Sequence[float]] = None,
    uid_entropy: Optional[Sequence[object]] = None,
) -> list[Path]:
    """Write ``ct_hu`` (3D, HU) as a CT series in ``folder``; the files in slice order.

    Values are rounded to whole HU and clipped to −1024…31743. Give the PET series the same
    ``study_uid`` and ``frame_of_reference_uid`` to make the pair one PET/CT study.
    ``uid_entropy`` makes every UID a function of these values (reproducible files).
    ``slice_positions_mm``: each slice's distance from the origin along the normal (mm, one per
    slice, increasing); even k × spacing if None.
    """
    from pydicom.dataset import Dataset
    from pydicom.valuerep import DS

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    hu, origin, direction, spacing = volume_planes(ct_hu)
    offsets = slice_offsets_mm(hu.shape[0], slice_positions_mm)
    uid = UidSource(uid_entropy)
    study_uid = study_uid or uid("study")
    series_uid = uid("series", "CT", series_number)
    frame_uid = frame_of_reference_uid or uid("frame of reference")
    files: list[Path] = []
    for k, plane in enumerate(hu):
        stored = np.clip(np.rint(plane - CT_INTERCEPT), -32768, 32767).astype(np.int16)
        ds = Dataset()
        set_identity(
            ds,
            sop_class_uid=CT_IMAGE_STORAGE,
            sop_instance_uid=uid("instance", "CT", series_number, k),
            modality="CT",
            manufacturer=manufacturer,
            patient_name=patient_name,
            patient_id=patient_id,
            patient_sex=patient_sex,
            study_uid=study_uid,
            series_uid=series_uid,
            frame_of_reference_uid=frame_uid,
            study_datetime=series_datetime,
            series_datetime=series_datetime,
            acquisition_datetime=series_datetime,
            study_description="PET/CT WHOLE BODY",
            series_description=series_description,
            series_number=series_number,
            instance_number=k + 1,
        )
        if patient_weight_kg is not None:
            ds.PatientWeight = DS(patient_weight_kg, auto_format=True)
        ds.KVP = DS(kvp, auto_format=True)
        ds.XRayTubeCurrent = round(tube_current_ma)
        ds.ExposureTime = 500  # ms: 0.5 s rotation
        ds.SpiralPitchFactor = DS(1.0, auto_format=True)
        ds.ConvolutionKernel = "STANDARD"
        ds.RescaleType = "HU"
        set_image_plane(ds, origin, direction, spacing, k, offsets[k])
        set_int16_pixels(ds, stored, 1.0, CT_INTERCEPT)
        files.append(save_dataset(ds, folder / f"CT_{k + 1:04d}.dcm"))
    return files
