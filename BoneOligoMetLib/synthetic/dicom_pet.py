"""Write a DICOM PET series from a 3D image (the readers are in ``dicom_tags`` and ``suv``).

``write_pet_series`` stores a 3D activity image (Bq/mL, LPS) as a PET Image Storage
series, one file per axial slice, int16 with a per-slice RescaleSlope, with the SUV tags a GE
PET series carries (PS3.3 C.8.9.1 PET Series, C.8.9.2 PET Isotope, C.8.9.4 PET Image). Options
build the cases an SUV reader must survive: beds with their own acquisition times and decay
references, ADMIN / NONE decay correction, Philips CNTS, GML, a post-processed SeriesTime and
dropped tags.

Time model of the writer: ``activity_bqml`` is the activity concentration at
``series_datetime`` (the scan start and the DICOM Series reference time). Bed k starts
k × ``bed_duration_s`` later; its frame time is the bed start plus the frame's
average-count-rate time (C.8.9.4.1.5); stored values are that activity decayed to the time the
series says it is corrected to. So a correct reader gets SUVbw = activity × weight_g /
(dose × 2^(−Δt/T½)), Δt = series time − injection time, whatever the options.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Optional, Union

import numpy as np
import SimpleITK as sitk

from BoneOligoMetLib.io.dicom_tags import (
    F18_HALF_LIFE_S,
    GE_PRIVATE_CREATOR,
    PHILIPS_ACTIVITY_FACTOR,
    PHILIPS_PRIVATE_CREATOR,
    PHILIPS_SUV_FACTOR,
    average_count_time_s,
)
from BoneOligoMetLib.io.dicom_writer import (
    UidSource,
    dicom_datetime,
    dicom_time,
    save_dataset,
    set_identity,
    set_image_plane,
    set_int16_pixels,
    slice_offsets_mm,
    volume_planes,
)

PET_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.128"

PathLike = Union[str, Path]


def _code(value: str, scheme: str, meaning: str):
    from pydicom.dataset import Dataset

    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _bed_of_slices(n_slices: int, beds: Union[int, Sequence[int]]) -> list[int]:
    """Bed index of each slice: ``beds`` is a bed count (near-equal split) or slices per bed."""
    if isinstance(beds, int):
        counts = [len(part) for part in np.array_split(np.arange(n_slices), max(beds, 1))]
    else:
        counts = [int(count) for count in beds]
    if sum(counts) != n_slices or min(counts) < 1:
        raise ValueError(f"beds {beds!r} do not split {n_slices} slices into non-empty beds")
    return [bed for bed, count in enumerate(counts) for _ in range(count)]


def write_pet_series(
    activity_bqml: sitk.Image,
    folder: PathLike,
    *,
    weight_kg: float,
    injected_dose_bq: float,
    injection_datetime: dt.datetime,
    series_datetime: dt.datetime,
    half_life_s: float = F18_HALF_LIFE_S,
    decay_correction: str = "START",
    units: str = "BQML",
    manufacturer: str = "GE MEDICAL SYSTEMS",
    beds: Union[int, Sequence[int]] = 1,
    bed_duration_s: float = 120.0,
    bed_decay_reference: str = "series",
    stored_series_datetime: Optional[dt.datetime] = None,
    philips_activity_scale: float = 0.5,
    slice_positions_mm: Optional[Sequence[float]] = None,
    drop_tags: Sequence[str] = (),
    patient_sex: str = "F",
    patient_id: str = "BOM0001",
    patient_name: str = "Synthetic^Patient",
    study_uid: Optional[str] = None,
    frame_of_reference_uid: Optional[str] = None,
    series_description: str = "PET WB AC",
    series_number: int = 3,
    uid_entropy: Optional[Sequence[object]] = None,
) -> list[Path]:
    """Write ``activity_bqml`` (3D, Bq/mL at ``series_datetime``) as a PET series in ``folder``.

    ``decay_correction``: START, ADMIN or NONE. ``units``: BQML, CNTS (Philips; Bq/mL =
    rescaled value × ``philips_activity_scale``) or GML (stored values are SUVbw).
    ``beds``: number of beds, or slices per bed in slice order; bed k starts ``k ×
    bed_duration_s`` after ``series_datetime``. ``bed_decay_reference``: "series" (every bed
    decay-corrected to the series start, as DICOM requires) or "bed" (each bed to its own start,
    as some reconstructions do). ``stored_series_datetime`` replaces SeriesDate/Time (as
    post-processing does) while acquisition times and the GE scan datetime keep the truth.
    ``slice_positions_mm``: each slice's distance from the origin along the normal (mm, one
    per slice, increasing), e.g. the uneven steps where the beds of a GE multi-bed series
    meet; plane k of ``activity_bqml`` is written at its position. Even k × spacing if None.
    ``drop_tags``: keywords removed from every file (also inside the radiopharmaceutical item).
    ``uid_entropy``: makes every UID a function of these values (reproducible files); random
    UIDs without it. Returns the files in slice order.
    """
    from pydicom.dataset import Dataset
    from pydicom.valuerep import DS

    decay_correction, units = decay_correction.upper(), units.upper()
    if decay_correction not in ("START", "ADMIN", "NONE"):
        raise ValueError(f"decay_correction {decay_correction!r}: use START, ADMIN or NONE")
    if units not in ("BQML", "CNTS", "GML"):
        raise ValueError(f"units {units!r}: use BQML, CNTS or GML")
    if bed_decay_reference not in ("series", "bed"):
        raise ValueError(f"bed_decay_reference {bed_decay_reference!r}: use 'series' or 'bed'")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    activity, origin, direction, spacing = volume_planes(activity_bqml)  # (z, y, x)
    bed_of_slice = _bed_of_slices(activity.shape[0], beds)
    offsets = slice_offsets_mm(activity.shape[0], slice_positions_mm)

    def decay(seconds: float) -> float:  # fraction of activity left after ``seconds``
        return 2.0 ** (-seconds / half_life_s)

    weight_g, uptake_s = weight_kg * 1000.0, (series_datetime - injection_datetime).total_seconds()
    suv_per_bqml = weight_g / (injected_dose_bq * decay(uptake_s))  # QIBA SUVbw at series time
    uid = UidSource(uid_entropy)
    study_uid = study_uid or uid("study")
    series_uid = uid("series", "PT", series_number)
    frame_uid = frame_of_reference_uid or uid("frame of reference")
    shown_series = stored_series_datetime or series_datetime
    t_average_s = average_count_time_s(bed_duration_s, half_life_s)

    files: list[Path] = []
    for k, plane in enumerate(activity):
        bed_start = series_datetime + dt.timedelta(seconds=bed_of_slice[k] * bed_duration_s)
        frame_s = (bed_start - series_datetime).total_seconds() + t_average_s
        # Time the stored values are decay-corrected to (PS3.3 C.8.9.1.1.2).
        if decay_correction == "ADMIN":
            reference_s = -uptake_s
        elif decay_correction == "NONE":
            reference_s = frame_s
        else:
            reference_s = 0.0 if bed_decay_reference == "series" else frame_s - t_average_s
        values = plane * decay(reference_s)  # Bq/mL at the reference time
        if units == "GML":
            values = plane * suv_per_bqml
        elif units == "CNTS":
            values = values / philips_activity_scale
        peak = float(np.abs(values).max())
        slope = float(DS(peak / 32767.0 if peak > 0 else 1.0, auto_format=True))
        stored = np.clip(np.rint(values / slope), -32768, 32767).astype(np.int16)

        ds = Dataset()
        set_identity(
            ds,
            sop_class_uid=PET_IMAGE_STORAGE,
            sop_instance_uid=uid("instance", "PT", series_number, k),
            modality="PT",
            manufacturer=manufacturer,
            patient_name=patient_name,
            patient_id=patient_id,
            patient_sex=patient_sex,
            study_uid=study_uid,
            series_uid=series_uid,
            frame_of_reference_uid=frame_uid,
            study_datetime=series_datetime,
            series_datetime=shown_series,
            acquisition_datetime=bed_start,
            study_description="PET/CT WHOLE BODY",
            series_description=series_description,
            series_number=series_number,
            instance_number=k + 1,
        )
        ds.PatientWeight = DS(weight_kg, auto_format=True)
        ds.CorrectedImage = ["NORM", "DTIM", "ATTN", "SCAT", "RAN"] + (
            ["DECY"] if decay_correction != "NONE" else []
        )
        ds.DecayCorrection, ds.Units = decay_correction, units
        ds.SeriesType, ds.CountsSource = ["WHOLE BODY", "IMAGE"], "EMISSION"
        ds.CollimatorType = "NONE"  # Type 2 in the PET Series module
        ds.PatientOrientationCodeSequence, ds.PatientGantryRelationshipCodeSequence = [], []
        ds.RandomsCorrectionMethod, ds.AttenuationCorrectionMethod = "DLYD", "CT-derived mu-map"
        ds.ReconstructionMethod = "OSEM"
        ds.NumberOfSlices, ds.ImageIndex = activity.shape[0], k + 1
        ds.FrameReferenceTime = DS(frame_s * 1000.0, auto_format=True)  # ms from series time
        ds.ActualFrameDuration = round(bed_duration_s * 1000.0)  # ms
        if decay_correction != "NONE":  # DecayFactor = 2^((t_frame − t_reference)/T½)
            ds.DecayFactor = DS(2.0 ** ((frame_s - reference_s) / half_life_s), auto_format=True)
        isotope = Dataset()
        isotope.Radiopharmaceutical = "Fludeoxyglucose F^18^"
        isotope.RadiopharmaceuticalRoute = "Intravenous"
        isotope.RadiopharmaceuticalStartTime = dicom_time(injection_datetime)
        isotope.RadiopharmaceuticalStartDateTime = dicom_datetime(injection_datetime)
        isotope.RadionuclideTotalDose = DS(injected_dose_bq, auto_format=True)
        isotope.RadionuclideHalfLife = DS(half_life_s, auto_format=True)
        isotope.RadionuclidePositronFraction = DS(0.9673)
        isotope.RadionuclideCodeSequence = [_code("77004003", "SCT", "^18^Fluorine")]
        isotope.RadiopharmaceuticalCodeSequence = [
            _code("35321007", "SCT", "Fluorodeoxyglucose F^18^")
        ]
        ds.RadiopharmaceuticalInformationSequence = [isotope]
        set_image_plane(ds, origin, direction, spacing, k, offsets[k])
        set_int16_pixels(ds, stored, slope, 0.0)
        if manufacturer.upper().startswith("GE"):
            ge = ds.private_block(0x0009, GE_PRIVATE_CREATOR, create=True)
            ge.add_new(0x0D, "DT", dicom_datetime(series_datetime))
        if units == "CNTS":
            philips = ds.private_block(0x7053, PHILIPS_PRIVATE_CREATOR, create=True)
            philips_suv = suv_per_bqml * philips_activity_scale * decay(-reference_s)
            philips.add_new(PHILIPS_SUV_FACTOR, "DS", DS(philips_suv, auto_format=True))
            philips.add_new(
                PHILIPS_ACTIVITY_FACTOR, "DS", DS(philips_activity_scale, auto_format=True)
            )
        for keyword in drop_tags:
            for holder in (ds, isotope):
                if keyword in holder:
                    delattr(holder, keyword)

        path = save_dataset(ds, folder / f"PET_{k + 1:04d}.dcm")
        files.append(path)
    return files
