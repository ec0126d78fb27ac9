"""PET DICOM → SUVbw (body-weight SUV, g/mL), following the QIBA SUV pseudo-code.

SUVbw = activity concentration (Bq/mL) × weight (g) / injected dose decayed to the time the
activity refers to (Bq). That time depends on DecayCorrection (PS3.3 C.8.9.1.1.2):

- START: the scan reference time. QIBA takes the series datetime, unless it is later than the
  earliest acquisition (a post-processed series): then the GE private scan datetime
  (0009,100D), else the earliest acquisition datetime.
- ADMIN: the injection time, so the dose is not decayed.
- NONE: each slice's own frame time. We use FrameReferenceTime, which DICOM defines as the time
  the pixel values occurred (C.8.9.4.1.5: the frame's average-count-rate time), else
  AcquisitionTime + that average-count-rate time computed from ActualFrameDuration.

Multi-bed series whose beds were decay-corrected to different times (each slice's reference
is t_frame − T½·log2(DecayFactor), t_frame from FrameReferenceTime) are brought to the one scan
reference time slice by slice, so the volume comes out on one SUV scale.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import SimpleITK as sitk

from BoneOligoMetLib.errors import BoneOligoMetError, DicomTagError, ImageReadError
from BoneOligoMetLib.io.dicom_series import list_dicom_series, select_dicom_series
from BoneOligoMetLib.io.dicom_tags import (
    F18_HALF_LIFE_S,
    GE_PRIVATE_CREATOR,
    PHILIPS_ACTIVITY_FACTOR,
    PHILIPS_PRIVATE_CREATOR,
    PHILIPS_SUV_FACTOR,
    average_count_time_s,
    parse_dicom_date,
    parse_dicom_datetime,
    parse_dicom_time,
    private_number,
    private_text,
    read_datasets,
    tag_label,
    tag_number,
    tag_text,
)
from BoneOligoMetLib.io.files import PathLike
from BoneOligoMetLib.io.slices import SliceGeometry, slice_geometry

log = logging.getLogger(__name__)

InjectionTime = Union[str, dt.datetime, dt.time]

WEIGHT_RANGE_KG = (1.0, 300.0)
DOSE_RANGE_MBQ = (10.0, 2000.0)  # adult FDG activities are ~150–600 MBq
MAX_UPTAKE_H = 6.0  # default plausible uptake (injection → scan reference): 0–6 h
BED_REFERENCE_TOLERANCE_S = 1.0  # slices whose decay references differ more are re-referenced
WEIGHT_HINT = "override with --weight KG"
DOSE_HINT = "override with --dose MBQ"
TIME_HINT = "override with --injection-time HH:MM[:SS]"
UPTAKE_HINT = "fix with --injection-time HH:MM[:SS] or ISO, or allow it with --max-uptake-h H"


@dataclass(frozen=True)
class ParameterSource:
    """One value the SUV computation used: name, printed value, where it came from, which file."""

    name: str
    value: str
    source: str  # "tag (gggg,eeee)", "private tag ...", "override" or "derived: ..."
    path: str = ""


@dataclass(frozen=True)
class SuvParameters:
    """Everything that sets the SUV scale of one PET series.

    ``suv_factor`` (g/mL per Bq/mL): SUVbw = Bq/mL × suv_factor at the common reference time
    (scan reference for START and NONE, injection for ADMIN); 1 for GML. ``slice_suv_factors``:
    the factor applied to each slice's rescaled stored value, in ``files`` order (sorted along
    the slice normal); it includes the Philips counts → Bq/mL scale and multi-bed re-referencing.
    ``decay_factor_to_scan``: the fraction of the dose left at the common reference time.
    Fields the units make unnecessary (GML) are None.
    """

    units: str
    suv_factor: float
    manufacturer: str
    files: tuple[str, ...]
    slice_suv_factors: tuple[float, ...]
    provenance: tuple[ParameterSource, ...]
    decay_correction: Optional[str] = None
    weight_kg: Optional[float] = None
    injected_dose_bq: Optional[float] = None
    half_life_s: Optional[float] = None
    injection_datetime: Optional[dt.datetime] = None
    scan_reference_datetime: Optional[dt.datetime] = None
    decay_factor_to_scan: Optional[float] = None
    slices_rereferenced: bool = False

    @property
    def uptake_time_s(self) -> Optional[float]:
        """Seconds from injection to the scan reference time."""
        if self.injection_datetime is None or self.scan_reference_datetime is None:
            return None
        return (self.scan_reference_datetime - self.injection_datetime).total_seconds()

    def report(self) -> str:
        """The SUV factor and a table of every value used, with its source and file."""
        lines = [f"SUV factor: {self.suv_factor:.6g} g/mL per Bq/mL (SUVbw = Bq/mL × factor)"]
        low, high = min(self.slice_suv_factors), max(self.slice_suv_factors)
        if not math.isclose(low, high, rel_tol=1e-9) or self.units == "CNTS":
            lines.append(f"factors applied to the rescaled slice values: {low:.6g} … {high:.6g}")
        rows = [("parameter", "value", "source", "file")] + [
            (p.name, p.value, p.source, Path(p.path).name if p.path else "")
            for p in self.provenance
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths)] + [row[3]]
            lines.append("  ".join(cells).rstrip())
        return "\n".join(lines)


class _Provenance(list):
    def add(self, name: str, value: str, source: str, path: object = "") -> None:
        self.append(ParameterSource(name, value, source, str(path)))


def _date_time(ds: Any, path: str, date_kw: str, time_kw: str, default_date=None):
    """Date and time tags combined; None when the time is absent."""
    time_text = tag_text(ds, time_kw)
    if not time_text:
        return None
    clock = parse_dicom_time(time_text)
    if clock is None:
        raise DicomTagError(time_kw, path, f"is {time_text!r}, not a DICOM time HHMMSS")
    date_text = tag_text(ds, date_kw)
    if not date_text and default_date is not None:
        return dt.datetime.combine(default_date, clock)
    day = parse_dicom_date(date_text)
    if day is None:
        problem = f"is {date_text!r}, not a DICOM date YYYYMMDD" if date_text else "is missing"
        raise DicomTagError(date_kw, path, problem)
    return dt.datetime.combine(day, clock)


def _series_text(datasets: Sequence[Any], paths: Sequence[str], keyword: str, hint: str) -> str:
    """A tag that must be present and equal in every slice, upper-cased."""
    first = tag_text(datasets[0], keyword)
    if not first:
        raise DicomTagError(keyword, paths[0], "is missing", hint)
    for ds, path in zip(datasets, paths):
        if tag_text(ds, keyword) != first:
            found = f"is {tag_text(ds, keyword)!r} but {first!r} in {paths[0]}"
            raise DicomTagError(keyword, path, found, hint)
    return first.upper()


def _units_scale(datasets, paths, record: _Provenance):
    """(Units, Bq/mL per rescaled value per slice or None, direct SUV factors per slice or None)."""
    units = _series_text(datasets, paths, "Units", "expected BQML, CNTS or GML")
    record.add("Units", units, tag_label("Units"), paths[0])
    if units == "GML":  # QIBA: GML is taken as SUVbw
        return units, None, [1.0] * len(datasets)
    if units == "BQML":
        return units, [1.0] * len(datasets), None
    if units != "CNTS":
        raise DicomTagError(
            "Units",
            paths[0],
            f"is {units!r}, expected BQML, CNTS (Philips) or GML",
            "SUVbw needs Bq/mL, Philips counts with their scale factor, or SUVbw",
        )

    # QIBA, Philips CNTS: Bq/mL = rescaled value × (7053,1009); else (7053,1000) gives SUVbw.
    def per_slice(element: int) -> list[Optional[float]]:
        return [
            private_number(ds, 0x7053, PHILIPS_PRIVATE_CREATOR, element, path)
            for ds, path in zip(datasets, paths)
        ]

    source = f"private tag ({PHILIPS_PRIVATE_CREATOR})"
    activity = per_slice(PHILIPS_ACTIVITY_FACTOR)
    if all(value is not None and value > 0 for value in activity):
        scales = [float(value) for value in activity]  # type: ignore[arg-type]
        shown = f"{min(scales):.6g}" + (f"…{max(scales):.6g}" if min(scales) < max(scales) else "")
        record.add("Philips scale (7053,1009)", f"{shown} Bq/mL per count", source, paths[0])
        return units, scales, None
    suv_scale = per_slice(PHILIPS_SUV_FACTOR)
    if all(value is not None and value > 0 for value in suv_scale):
        log.warning("Units CNTS without (7053,1009): using the Philips SUV factor (7053,1000)")
        record.add("Philips SUV scale (7053,1000)", f"{suv_scale[0]:.6g}", source, paths[0])
        return units, None, [float(value) for value in suv_scale]  # type: ignore[arg-type]
    bad = next(path for path, value in zip(paths, activity) if value is None or value <= 0)
    raise DicomTagError(
        "Philips ActivityConcentrationScaleFactor (7053,1009)",
        bad,
        "is missing or not positive for Units CNTS, so counts cannot be converted to Bq/mL",
        "export the series in BQML or as SUV",
    )


def _weight_kg(ds: Any, path: str, override: Optional[float], record: _Provenance) -> float:
    low, high = WEIGHT_RANGE_KG
    if override is not None:
        if not low <= override <= high:
            raise BoneOligoMetError(
                f"weight override {override:g} kg is outside {low:g}–{high:g} kg"
            )
        record.add("PatientWeight", f"{override:g} kg", "override")
        return float(override)
    weight = tag_number(ds, "PatientWeight", path)
    if not weight:
        problem = "is missing" if weight is None else "is 0"
        raise DicomTagError("PatientWeight", path, problem, WEIGHT_HINT)
    if not low <= weight <= high:
        problem = f"is {weight:g} kg, outside {low:g}–{high:g} kg"
        raise DicomTagError("PatientWeight", path, problem, WEIGHT_HINT)
    record.add("PatientWeight", f"{weight:g} kg", tag_label("PatientWeight"), path)
    return weight


def _dose_bq(isotope: Any, path: str, override_mbq: Optional[float], record: _Provenance):
    low, high = DOSE_RANGE_MBQ
    if override_mbq is not None:
        if not low <= override_mbq <= high:
            raise BoneOligoMetError(
                f"dose override {override_mbq:g} MBq is outside {low:g}–{high:g} MBq"
            )
        record.add("RadionuclideTotalDose", f"{override_mbq * 1e6:.6g} Bq", "override")
        return float(override_mbq) * 1e6
    dose = tag_number(isotope, "RadionuclideTotalDose", path)
    if not dose or dose < 0:
        problem = "is missing" if dose is None else f"is {dose:g}"
        raise DicomTagError("RadionuclideTotalDose", path, problem, DOSE_HINT)
    if not low <= dose / 1e6 <= high:
        problem = f"is {dose:g} Bq ({dose / 1e6:.4g} MBq), outside {low:g}–{high:g} MBq"
        raise DicomTagError("RadionuclideTotalDose", path, problem, DOSE_HINT)
    record.add("RadionuclideTotalDose", f"{dose:.6g} Bq", tag_label("RadionuclideTotalDose"), path)
    return dose


def _half_life_s(isotope: Any, path: str, record: _Provenance) -> float:
    half_life = tag_number(isotope, "RadionuclideHalfLife", path)
    if not half_life or half_life < 0:
        problem = "is missing" if half_life is None else f"is {half_life:g}"
        raise DicomTagError("RadionuclideHalfLife", path, problem, "F-18: 6586.2 s (QIBA)")
    if abs(half_life - F18_HALF_LIFE_S) > 0.01 * F18_HALF_LIFE_S:
        log.warning("%s: half-life %.6g s is not F-18's 6586.2 s; using it", path, half_life)
    label = tag_label("RadionuclideHalfLife")
    record.add("RadionuclideHalfLife", f"{half_life:.6g} s", label, path)
    return half_life


def _scan_reference(datasets, paths, record: _Provenance):
    """(scan reference datetime, acquisition datetime per slice), by the QIBA pseudo-code."""
    series = _date_time(datasets[0], paths[0], "SeriesDate", "SeriesTime")
    if series is None:
        raise DicomTagError("SeriesTime", paths[0], "is missing", "QIBA's scan reference time")
    source = "tag (0008,0021)+(0008,0031)"
    record.add("SeriesDate/SeriesTime", series.isoformat(), source, paths[0])
    acquisitions = [
        _date_time(ds, path, "AcquisitionDate", "AcquisitionTime", series.date())
        for ds, path in zip(datasets, paths)
    ]
    known = [(time, path) for time, path in zip(acquisitions, paths) if time is not None]
    if not known:
        log.warning("%s: no AcquisitionTime in the series; using SeriesTime", paths[0])
        record.add("scan reference time", series.isoformat(), "derived: SeriesTime")
        return series, acquisitions
    earliest, earliest_path = min(known)
    source = "tag (0008,0022)+(0008,0032)"
    record.add("earliest AcquisitionDate/Time", earliest.isoformat(), source, earliest_path)
    if series <= earliest:
        record.add("scan reference time", series.isoformat(), "derived: SeriesTime (QIBA)")
        return series, acquisitions
    # SeriesTime after the acquisition: reset by post-processing (QIBA).
    ge_text = private_text(datasets[0], 0x0009, GE_PRIVATE_CREATOR, 0x0D)
    ge_scan = parse_dicom_datetime(ge_text) if ge_text else None
    if ge_scan is not None:
        source = "private tag (0009,100D) GE scan datetime (QIBA)"
        record.add("scan reference time", ge_scan.isoformat(), source, paths[0])
        return ge_scan, acquisitions
    source = "derived: earliest acquisition, SeriesTime is later (QIBA)"
    record.add("scan reference time", earliest.isoformat(), source, earliest_path)
    return earliest, acquisitions


def _parse_injection_override(value: InjectionTime, scan_date: dt.date):
    """(datetime, time_only) from 'HH:MM[:SS]', an ISO datetime, or datetime/time objects."""
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None), False
    if isinstance(value, dt.time):
        return dt.datetime.combine(scan_date, value.replace(tzinfo=None)), True
    text = str(value).strip()
    match = re.fullmatch(r"(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?", text)
    try:
        if match:
            hours, minutes, seconds, fraction = match.groups()
            micro = int((fraction or "0").ljust(6, "0"))
            clock = dt.time(int(hours), int(minutes), int(seconds or 0), micro)
            return dt.datetime.combine(scan_date, clock), True
        if "T" in text or " " in text:
            return dt.datetime.fromisoformat(text).replace(tzinfo=None), False
    except ValueError:
        pass
    raise BoneOligoMetError(
        f"injection time {text!r}: expected HH:MM[:SS] or an ISO datetime YYYY-MM-DDTHH:MM[:SS]"
    )


def _injection(
    isotope,
    path,
    override,
    scan: dt.datetime,
    max_uptake_h: float,
    record: _Provenance,
) -> dt.datetime:
    """Injection datetime (QIBA): StartDateTime, else StartTime on the scan date.

    A clock time later than the scan is taken as the day before (injected before midnight,
    scanned after) only when that gives a plausible uptake. An uptake outside 0…max_uptake_h is
    an error naming both times and the flags that fix it.
    """
    keyword, where = "", ""
    if override is not None:
        injection, time_only = _parse_injection_override(override, scan.date())
        source = "override"
    else:
        keyword, where = "RadiopharmaceuticalStartDateTime", path
        text = tag_text(isotope, keyword)
        injection, time_only, source = None, False, tag_label(keyword)
        if text:
            injection = parse_dicom_datetime(text)
            if injection is None:
                raise DicomTagError(keyword, path, f"is {text!r}, not a DICOM datetime", TIME_HINT)
        else:
            keyword = "RadiopharmaceuticalStartTime"
            text = tag_text(isotope, keyword)
            clock = parse_dicom_time(text) if text else None
            if clock is None:
                problem = f"is {text!r}, not a DICOM time" if text else "is missing"
                raise DicomTagError(keyword, path, problem, TIME_HINT)
            # QIBA: the start date is not explicit; take the scan's date (SeriesDate unless the
            # series was post-processed on another day).
            injection, time_only = dt.datetime.combine(scan.date(), clock), True
            source = tag_label(keyword) + " on the scan date"
    limit_s = max_uptake_h * 3600.0
    day_before = injection - dt.timedelta(days=1)
    if time_only and injection > scan and (scan - day_before).total_seconds() <= limit_s:
        injection = day_before  # injected before midnight, scanned after (QIBA)
        source += ", minus 1 day (scan after midnight)"
    uptake_s = (scan - injection).total_seconds()
    if not 0 <= uptake_s <= limit_s:
        relation = "after" if uptake_s < 0 else "before"
        problem = (
            f"injection {injection.isoformat()} {relation} the scan reference {scan.isoformat()}: "
            f"an uptake of {uptake_s / 3600:.2f} h"
        )
        if time_only and uptake_s < 0:
            problem += f" ({(scan - day_before).total_seconds() / 3600:.2f} h if the day before)"
        problem += f", outside the plausible 0–{max_uptake_h:g} h"
        if keyword:
            raise DicomTagError(keyword, path, f"gives {problem}", UPTAKE_HINT)
        raise BoneOligoMetError(f"injection time override: {problem} ({UPTAKE_HINT})")
    record.add("injection time", injection.isoformat(), source, where)
    record.add("uptake time", f"{uptake_s:.0f} s", "derived: scan reference − injection")
    return injection


def _max_uptake_h(value: Optional[float]) -> float:
    if value is None:
        return MAX_UPTAKE_H
    if not (math.isfinite(value) and value > 0):
        raise BoneOligoMetError(f"max uptake {value!r} h: expected a positive number of hours")
    return float(value)


def _slice_references(
    datasets,
    paths,
    decay_correction,
    acquisitions,
    scan,
    injection,
    half_life_s,
    record: _Provenance,
):
    """The datetime each slice's values are decay-corrected to (or measured at, for NONE)."""
    if decay_correction == "ADMIN":
        return [injection] * len(datasets), False
    frames = []  # when each slice's activity occurred (C.8.9.4.1.5)
    for ds, path, acquired in zip(datasets, paths, acquisitions):
        offset_ms = tag_number(ds, "FrameReferenceTime", path)  # ms after the series reference
        duration_ms = tag_number(ds, "ActualFrameDuration", path)
        if offset_ms is not None:
            frames.append(scan + dt.timedelta(milliseconds=offset_ms))
        elif acquired is not None:
            mean_s = average_count_time_s((duration_ms or 0.0) / 1000.0, half_life_s)
            frames.append(acquired + dt.timedelta(seconds=mean_s))
        else:
            frames.append(scan)
    if decay_correction == "NONE":
        shown = f"{min(frames).isoformat()} … {max(frames).isoformat()}"
        record.add("slice activity times", shown, "derived: FrameReferenceTime (C.8.9.4.1.5)")
        return frames, False
    implied = []  # START: t_frame − T½·log2(DecayFactor) per slice (C.8.9.4.1.5)
    for ds, path, frame in zip(datasets, paths, frames):
        factor = tag_number(ds, "DecayFactor", path)
        if tag_number(ds, "FrameReferenceTime", path) is None or not factor or factor <= 0:
            return [scan] * len(datasets), False
        implied.append(frame - dt.timedelta(seconds=half_life_s * math.log2(factor)))
    spread_s = (max(implied) - min(implied)).total_seconds()
    if spread_s <= BED_REFERENCE_TOLERANCE_S:
        return [scan] * len(datasets), False
    log.info(  # handled, and shown in the provenance table
        "slices are decay-corrected to times up to %.0f s apart (beds to their own start?); "
        "each is brought to the scan reference time %s",
        spread_s,
        scan.isoformat(),
    )
    shown = f"{min(implied).isoformat()} … {max(implied).isoformat()}"
    record.add("slice decay references", shown, "derived: FrameReferenceTime, DecayFactor")
    return implied, True


def _suv_parameters(
    datasets: Sequence[Any],
    paths: Sequence[str],
    weight_kg: Optional[float],
    injected_dose_mbq: Optional[float],
    injection_time: Optional[InjectionTime],
    max_uptake_h: float = MAX_UPTAKE_H,
    geometry: Optional[SliceGeometry] = None,
) -> SuvParameters:
    first, path = datasets[0], paths[0]
    record = _Provenance()
    if geometry is not None and geometry.resampled:  # uneven steps at bed junctions
        low, high = geometry.step_range_mm
        spacing = f"{geometry.spacing[2]:.4g} mm, resampled to {geometry.size_z} planes"
        deviation = f"{geometry.largest_step_deviation_mm:.3g} mm (steps {low:.4g}–{high:.4g} mm)"
        record.add("slice spacing", spacing, "derived: commonest ImagePositionPatient step", path)
        record.add("largest step deviation", deviation, "derived: ImagePositionPatient", path)
    for ds, slice_path in zip(datasets, paths):
        modality = tag_text(ds, "Modality")
        if modality.upper() != "PT":
            found = f"is {modality!r}" if modality else "is missing"
            raise DicomTagError("Modality", slice_path, f"{found}, expected 'PT' (a PET image)")
    record.add("Modality", "PT", tag_label("Modality"), path)
    manufacturer = tag_text(first, "Manufacturer")
    record.add("Manufacturer", manufacturer or "(absent)", tag_label("Manufacturer"), path)
    units, bq_per_value, direct = _units_scale(datasets, paths, record)
    if direct is not None:  # GML or Philips' own SUV factor: no weight, dose or time needed
        if any(value is not None for value in (weight_kg, injected_dose_mbq, injection_time)):
            log.warning("Units %s: the weight/dose/injection overrides are not used", units)
        record.add("SUV factor", f"{direct[0]:.6g}", f"derived: Units {units}")
        return SuvParameters(
            units, direct[0], manufacturer, tuple(paths), tuple(direct), tuple(record)
        )

    hint = "expected START, ADMIN or NONE"
    decay_correction = _series_text(datasets, paths, "DecayCorrection", hint)
    if decay_correction not in ("START", "ADMIN", "NONE"):
        raise DicomTagError("DecayCorrection", path, f"is {decay_correction!r}", hint)
    record.add("DecayCorrection", decay_correction, tag_label("DecayCorrection"), path)
    corrected = first.get("CorrectedImage")
    corrected = [corrected] if isinstance(corrected, str) else list(corrected or [])
    corrected = [str(value).strip().upper() for value in corrected]
    if corrected:
        shown = "\\".join(corrected)
        if "ATTN" not in corrected:  # QIBA: not attenuation-corrected is not quantitative
            raise DicomTagError("CorrectedImage", path, f"is {shown}, without ATTN")
        if ("DECY" in corrected) != (decay_correction != "NONE"):
            log.warning(
                "CorrectedImage %s disagrees with DecayCorrection %s", shown, decay_correction
            )
        record.add("CorrectedImage", shown, tag_label("CorrectedImage"), path)

    weight = _weight_kg(first, path, weight_kg, record)
    sequence = first.get("RadiopharmaceuticalInformationSequence")
    if not sequence:
        raise DicomTagError(
            "RadiopharmaceuticalInformationSequence",
            path,
            "is missing or empty",
            "it holds the injected dose, half-life and injection time",
        )
    if len(sequence) > 1:
        log.warning("%s: %d radiopharmaceutical items; using the first", path, len(sequence))
    dose_bq = _dose_bq(sequence[0], path, injected_dose_mbq, record)
    half_life = _half_life_s(sequence[0], path, record)
    scan, acquisitions = _scan_reference(datasets, paths, record)
    injection = _injection(sequence[0], path, injection_time, scan, max_uptake_h, record)
    references, rereferenced = _slice_references(
        datasets, paths, decay_correction, acquisitions, scan, injection, half_life, record
    )

    def dose_left_bq(at: dt.datetime) -> float:  # QIBA: dose × 2^(−Δt/T½)
        return dose_bq * 2.0 ** (-(at - injection).total_seconds() / half_life)

    weight_g = weight * 1000.0
    slice_factors = tuple(
        scale * weight_g / dose_left_bq(reference)
        for scale, reference in zip(bq_per_value, references)  # type: ignore[arg-type]
    )
    common = injection if decay_correction == "ADMIN" else scan
    decay_factor = dose_left_bq(common) / dose_bq
    suv_factor = weight_g / dose_left_bq(common)
    record.add(
        "decay factor", f"{decay_factor:.6g}", f"derived: 2^(−Δt/T½) at {common.isoformat()}"
    )
    record.add("SUV factor", f"{suv_factor:.6g} g/mL per Bq/mL", "derived: weight_g / dose left")
    log.info("SUV factor %.6g (weight %g kg, dose %.6g Bq)", suv_factor, weight, dose_bq)
    return SuvParameters(
        units=units,
        suv_factor=suv_factor,
        manufacturer=manufacturer,
        files=tuple(paths),
        slice_suv_factors=slice_factors,
        provenance=tuple(record),
        decay_correction=decay_correction,
        weight_kg=weight,
        injected_dose_bq=dose_bq,
        half_life_s=half_life,
        injection_datetime=injection,
        scan_reference_datetime=scan,
        decay_factor_to_scan=decay_factor,
        slices_rereferenced=rereferenced,
    )


def _series_files(source: Union[PathLike, Iterable[PathLike]], series_uid: Optional[str]):

    if not isinstance(source, (str, os.PathLike)):
        files = [str(path) for path in source]
        if not files:
            raise ImageReadError("no DICOM files given")
        return files
    path = Path(source)
    if path.is_file():
        return [str(path)]
    if not path.is_dir():
        raise ImageReadError(f"{path}: no such file or folder")
    if series_uid is None:
        series = list_dicom_series(path)
        pet = [s for s in series if s.modality.upper() == "PT"]
        if len(series) == 1 and not pet:  # let the Modality check name the file
            return list(series[0].usable_files())
        if len(pet) == 1:
            return list(pet[0].usable_files())
    modality = "PT" if series_uid is None else None
    return list(select_dicom_series(path, modality, series_uid).usable_files())


def read_suv_parameters(
    source: Union[PathLike, Iterable[PathLike]],
    *,
    series_uid: Optional[str] = None,
    weight_kg: Optional[float] = None,
    injected_dose_mbq: Optional[float] = None,
    injection_time: Optional[InjectionTime] = None,
    max_uptake_h: Optional[float] = None,
) -> SuvParameters:
    """SUV parameters of a PET series: a folder (as in :func:`pet_dicom_to_suv`), or files.

    Reads headers only; files may come in any order. Overrides replace the header values and
    are recorded as such: ``weight_kg`` (kg), ``injected_dose_mbq`` (MBq), ``injection_time``
    ('HH:MM[:SS]' on the scan date, an ISO datetime, or a datetime/time). ``max_uptake_h``
    (default 6 h): the longest plausible time from injection to the scan reference. A missing
    or implausible tag raises DicomTagError naming the tag and the file.
    """
    paths = _series_files(source, series_uid)
    datasets = read_datasets(paths, pixels=False)
    geometry = slice_geometry(datasets, paths)
    return _suv_parameters(
        [datasets[i] for i in geometry.order],
        [paths[i] for i in geometry.order],
        weight_kg,
        injected_dose_mbq,
        injection_time,
        _max_uptake_h(max_uptake_h),
        geometry,
    )


def pet_dicom_to_suv(
    source: Union[PathLike, Iterable[PathLike]],
    *,
    series_uid: Optional[str] = None,
    weight_kg: Optional[float] = None,
    injected_dose_mbq: Optional[float] = None,
    injection_time: Optional[InjectionTime] = None,
    max_uptake_h: Optional[float] = None,
) -> tuple[sitk.Image, SuvParameters]:
    """Read a PET DICOM series (folder, file or files) as a float32 SUVbw image in LPS.

    A folder with several series needs ``series_uid`` unless exactly one is PET. Each slice's
    own RescaleSlope/Intercept is applied (multi-bed slopes differ); slices are sorted along
    their normal. Uneven steps where beds meet (within 20 % of the most common step) are
    resampled along z onto a regular grid (:func:`dicom_tags.slice_geometry`; recorded in the
    provenance); a missing or duplicate slice, or a file cut short, is an error naming the
    files. Overrides and ``max_uptake_h`` as in :func:`read_suv_parameters`.
    """
    paths = _series_files(source, series_uid)
    datasets = read_datasets(paths, pixels=True)
    geometry = slice_geometry(datasets, paths)
    datasets, paths = [datasets[i] for i in geometry.order], [paths[i] for i in geometry.order]
    parameters = _suv_parameters(
        datasets,
        paths,
        weight_kg,
        injected_dose_mbq,
        injection_time,
        _max_uptake_h(max_uptake_h),
        geometry,
    )
    planes = []
    for ds, path, factor in zip(datasets, paths, parameters.slice_suv_factors):
        try:
            pixels = ds.pixel_array
        except Exception as error:  # pydicom raises several types for undecodable pixel data
            raise ImageReadError(f"{path}: cannot decode pixel data: {error}") from None
        if pixels.ndim != 2:
            raise ImageReadError(f"{path}: multi-frame PET is not supported (one slice per file)")
        slope = tag_number(ds, "RescaleSlope", path)
        if slope is None or slope <= 0:  # PET Image module: Type 1, and it varies per slice
            problem = "is missing" if slope is None else f"is {slope:g}"
            raise DicomTagError("RescaleSlope", path, problem)
        intercept = tag_number(ds, "RescaleIntercept", path) or 0.0
        planes.append((pixels.astype(np.float64) * slope + intercept) * factor)
    image = sitk.GetImageFromArray(geometry.stack(np.stack(planes)).astype(np.float32))
    image.SetOrigin(geometry.origin)
    image.SetSpacing(geometry.spacing)
    image.SetDirection(geometry.direction)
    return image, parameters
