"""Write a DICOM PET series from a 3D activity image: the test bed of the SUV reader (``io.suv``).

:func:`write_pet_series` stores Bq/mL (LPS) as a PET Image Storage series, one int16 file per
axial slice with its own RescaleSlope and the SUV tags a GE series carries (PS3.3 C.8.9.1 PET
Series, C.8.9.2 PET Isotope, C.8.9.4 PET Image); options build the cases a reader must survive
(beds with their own times and decay references, ADMIN / NONE decay correction, Philips CNTS,
GML, a post-processed SeriesTime, dropped tags). The activity is that at the series time and
stored values are it decayed to the time the series says they are corrected to, so a correct
reader gets SUVbw = activity × weight_g / (dose × 2^(−Δt/T½)), Δt = series − injection time,
whatever the options.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
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


def _check_options(decay_correction: str, units: str, bed_decay_reference: str) -> tuple[str, str]:
    """(DecayCorrection, Units) upper-cased, each option checked (a ValueError names it)."""
    decay_correction, units = decay_correction.upper(), units.upper()
    if decay_correction not in ("START", "ADMIN", "NONE"):
        raise ValueError(f"decay_correction {decay_correction!r}: use START, ADMIN or NONE")
    if units not in ("BQML", "CNTS", "GML"):
        raise ValueError(f"units {units!r}: use BQML, CNTS or GML")
    if bed_decay_reference not in ("series", "bed"):
        raise ValueError(f"bed_decay_reference {bed_decay_reference!r}: use 'series' or 'bed'")
    return decay_correction, units


@dataclass(frozen=True)
class _Acquisition:
    """What every slice shares: the dose and its times, and the units values are stored in.

    Times are seconds after ``series_datetime``; bed k starts k × ``bed_duration_s`` later.
    """

    weight_kg: float
    injected_dose_bq: float
    injection_datetime: dt.datetime
    series_datetime: dt.datetime
    half_life_s: float
    decay_correction: str
    units: str
    bed_duration_s: float
    bed_decay_reference: str
    philips_activity_scale: float

    def decay(self, seconds: float) -> float:
        """Fraction of the activity left after ``seconds``."""
        return 2.0 ** (-seconds / self.half_life_s)

    @property
    def uptake_s(self) -> float:
        return (self.series_datetime - self.injection_datetime).total_seconds()

    @property
    def suv_per_bqml(self) -> float:
        """QIBA SUVbw per Bq/mL at the series time (g/mL)."""
        weight_g = self.weight_kg * 1000.0
        return weight_g / (self.injected_dose_bq * self.decay(self.uptake_s))

    def slice_times(self, bed: int) -> tuple[dt.datetime, float, float]:
        """(bed start, frame time, reference time) of a slice of ``bed``: the frame time is the
        bed start plus the average-count-rate time (C.8.9.4.1.5); the reference time is what the
        stored values are decay-corrected to (C.8.9.1.1.2): the injection (ADMIN), the frame
        time (NONE), or the series start or the bed's own start (START)."""
        t_average_s = average_count_time_s(self.bed_duration_s, self.half_life_s)
        bed_start = self.series_datetime + dt.timedelta(seconds=bed * self.bed_duration_s)
        frame_s = (bed_start - self.series_datetime).total_seconds() + t_average_s
        if self.decay_correction == "ADMIN":
            reference_s = -self.uptake_s
        elif self.decay_correction == "NONE":
            reference_s = frame_s
        else:
            reference_s = 0.0 if self.bed_decay_reference == "series" else frame_s - t_average_s
        return bed_start, frame_s, reference_s

    def stored_values(self, plane: np.ndarray, reference_s: float) -> tuple[np.ndarray, float]:
        """(int16 stored values, RescaleSlope) of one plane of activity (Bq/mL at the series
        time) in the series' units: Bq/mL at the reference time, Philips counts, or SUVbw."""
        from pydicom.valuerep import DS

        values = plane * self.decay(reference_s)  # Bq/mL at the reference time
        if self.units == "GML":
            values = plane * self.suv_per_bqml
        elif self.units == "CNTS":
            values = values / self.philips_activity_scale
        peak = float(np.abs(values).max())
        slope = float(DS(peak / 32767.0 if peak > 0 else 1.0, auto_format=True))
        return np.clip(np.rint(values / slope), -32768, 32767).astype(np.int16), slope

    def set_pet_tags(self, ds, k: int, n_slices: int, frame_s: float, reference_s: float) -> None:
        """The PET Series and PET Image module tags of slice ``k`` (C.8.9.1, C.8.9.4), with the
        frame time and decay factor the SUV reader uses."""
        from pydicom.valuerep import DS

        ds.PatientWeight = DS(self.weight_kg, auto_format=True)
        ds.CorrectedImage = ["NORM", "DTIM", "ATTN", "SCAT", "RAN"] + (
            ["DECY"] if self.decay_correction != "NONE" else []
        )
        ds.DecayCorrection, ds.Units = self.decay_correction, self.units
        ds.SeriesType, ds.CountsSource = ["WHOLE BODY", "IMAGE"], "EMISSION"
        ds.CollimatorType = "NONE"  # Type 2 in the PET Series module
        ds.PatientOrientationCodeSequence, ds.PatientGantryRelationshipCodeSequence = [], []
        ds.RandomsCorrectionMethod, ds.AttenuationCorrectionMethod = "DLYD", "CT-derived mu-map"
        ds.ReconstructionMethod = "OSEM"
        ds.NumberOfSlices, ds.ImageIndex = n_slices, k + 1
        ds.FrameReferenceTime = DS(frame_s * 1000.0, auto_format=True)  # ms from series time
        ds.ActualFrameDuration = round(self.bed_duration_s * 1000.0)  # ms
        if self.decay_correction != "NONE":  # DecayFactor = 2^((t_frame − t_reference)/T½)
            factor = 2.0 ** ((frame_s - reference_s) / self.half_life_s)
            ds.DecayFactor = DS(factor, auto_format=True)

    def isotope_item(self):
        """The radiopharmaceutical item of the PET Isotope module (C.8.9.2): F-18 FDG."""
        from pydicom.dataset import Dataset
        from pydicom.valuerep import DS

        isotope = Dataset()
        isotope.Radiopharmaceutical = "Fludeoxyglucose F^18^"
        isotope.RadiopharmaceuticalRoute = "Intravenous"
        isotope.RadiopharmaceuticalStartTime = dicom_time(self.injection_datetime)
        isotope.RadiopharmaceuticalStartDateTime = dicom_datetime(self.injection_datetime)
        isotope.RadionuclideTotalDose = DS(self.injected_dose_bq, auto_format=True)
        isotope.RadionuclideHalfLife = DS(self.half_life_s, auto_format=True)
        isotope.RadionuclidePositronFraction = DS(0.9673)
        isotope.RadionuclideCodeSequence = [_code("77004003", "SCT", "^18^Fluorine")]
        isotope.RadiopharmaceuticalCodeSequence = [
            _code("35321007", "SCT", "Fluorodeoxyglucose F^18^")
        ]
        return isotope

    def set_private_tags(self, ds, manufacturer: str, reference_s: float) -> None:
        """GE's scan datetime (0009,100D); for CNTS, Philips' SUV and activity scale factors."""
        from pydicom.valuerep import DS

        if manufacturer.upper().startswith("GE"):
            ge = ds.private_block(0x0009, GE_PRIVATE_CREATOR, create=True)
            ge.add_new(0x0D, "DT", dicom_datetime(self.series_datetime))
        if self.units == "CNTS":
            scale = self.philips_activity_scale
            philips = ds.private_block(0x7053, PHILIPS_PRIVATE_CREATOR, create=True)
            philips_suv = self.suv_per_bqml * scale * self.decay(-reference_s)
            philips.add_new(PHILIPS_SUV_FACTOR, "DS", DS(philips_suv, auto_format=True))
            philips.add_new(PHILIPS_ACTIVITY_FACTOR, "DS", DS(scale, auto_format=True))


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

    decay_correction, units = _check_options(decay_correction, units, bed_decay_reference)
    acquisition = _Acquisition(
        weight_kg,
        injected_dose_bq,
        injection_datetime,
        series_datetime,
        half_life_s,
        decay_correction,
        units,
        bed_duration_s,
        bed_decay_reference,
        philips_activity_scale,
    )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    activity, origin, direction, spacing = volume_planes(activity_bqml)  # (z, y, x)
    bed_of_slice = _bed_of_slices(activity.shape[0], beds)
    offsets = slice_offsets_mm(activity.shape[0], slice_positions_mm)
    uid = UidSource(uid_entropy)
    identity = dict(
        sop_class_uid=PET_IMAGE_STORAGE,
        modality="PT",
        manufacturer=manufacturer,
        patient_name=patient_name,
        patient_id=patient_id,
        patient_sex=patient_sex,
        study_uid=study_uid or uid("study"),
        series_uid=uid("series", "PT", series_number),
        frame_of_reference_uid=frame_of_reference_uid or uid("frame of reference"),
        study_datetime=series_datetime,
        series_datetime=stored_series_datetime or series_datetime,
        study_description="PET/CT WHOLE BODY",
        series_description=series_description,
        series_number=series_number,
    )
    files: list[Path] = []
    for k, plane in enumerate(activity):
        bed_start, frame_s, reference_s = acquisition.slice_times(bed_of_slice[k])
        stored, slope = acquisition.stored_values(plane, reference_s)
        ds = Dataset()
        instance_uid = uid("instance", "PT", series_number, k)
        set_identity(
            ds,
            sop_instance_uid=instance_uid,
            acquisition_datetime=bed_start,
            instance_number=k + 1,
            **identity,
        )
        acquisition.set_pet_tags(ds, k, activity.shape[0], frame_s, reference_s)
        isotope = acquisition.isotope_item()
        ds.RadiopharmaceuticalInformationSequence = [isotope]
        set_image_plane(ds, origin, direction, spacing, k, offsets[k])
        set_int16_pixels(ds, stored, slope, 0.0)
        acquisition.set_private_tags(ds, manufacturer, reference_s)
        for keyword in drop_tags:  # also inside the radiopharmaceutical item
            for holder in (ds, isotope):
                if keyword in holder:
                    delattr(holder, keyword)
        files.append(save_dataset(ds, folder / f"PET_{k + 1:04d}.dcm"))
    return files
