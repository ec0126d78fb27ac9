"""The PET header values that set the SUV scale, each checked and recorded with its source.

Modality, units (with the Philips counts scale), decay correction, weight, dose, half-life, the
scan reference time (QIBA: SeriesTime, unless a post-processed series made it later than the
earliest acquisition: then GE's scan datetime (0009,100D), else that acquisition), the
injection time, and the time each slice's values refer to (PS3.3 C.8.9.1.1.2: START the scan
reference, ADMIN the injection, NONE the frame's FrameReferenceTime; beds decay-corrected to
their own start are re-referenced). A missing or implausible value raises DicomTagError naming
the tag and the file, with the override that fixes it; :mod:`.suv` turns the values into factors.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional, Union

from BoneOligoMetLib.errors import BoneOligoMetError, DicomTagError
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
    tag_label,
    tag_number,
    tag_text,
)

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


class Provenance(list):
    """The values used so far, in the order they were read (the report's table)."""

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


def check_modality(datasets: Sequence[Any], paths: Sequence[str], record: Provenance) -> None:
    """Every slice is a PET image (Modality PT)."""
    for ds, slice_path in zip(datasets, paths):
        modality = tag_text(ds, "Modality")
        if modality.upper() != "PT":
            found = f"is {modality!r}" if modality else "is missing"
            raise DicomTagError("Modality", slice_path, f"{found}, expected 'PT' (a PET image)")
    record.add("Modality", "PT", tag_label("Modality"), paths[0])


def read_manufacturer(ds: Any, path: str, record: Provenance) -> str:
    """The Manufacturer ("" when absent): it decides which private tags apply."""
    manufacturer = tag_text(ds, "Manufacturer")
    record.add("Manufacturer", manufacturer or "(absent)", tag_label("Manufacturer"), path)
    return manufacturer


def read_units_scale(datasets, paths, record: Provenance):
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


def read_decay_correction(datasets: Sequence[Any], paths: Sequence[str], record: Provenance) -> str:
    """DecayCorrection (START, ADMIN or NONE), checked against CorrectedImage (QIBA: ATTN)."""
    path = paths[0]
    hint = "expected START, ADMIN or NONE"
    decay_correction = _series_text(datasets, paths, "DecayCorrection", hint)
    if decay_correction not in ("START", "ADMIN", "NONE"):
        raise DicomTagError("DecayCorrection", path, f"is {decay_correction!r}", hint)
    record.add("DecayCorrection", decay_correction, tag_label("DecayCorrection"), path)
    corrected = datasets[0].get("CorrectedImage")
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
    return decay_correction


def read_weight_kg(ds: Any, path: str, override: Optional[float], record: Provenance) -> float:
    """Patient weight (kg): the override, else PatientWeight, within WEIGHT_RANGE_KG."""
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


def radiopharmaceutical(ds: Any, path: str) -> Any:
    """The first RadiopharmaceuticalInformationSequence item: dose, half-life, injection time."""
    sequence = ds.get("RadiopharmaceuticalInformationSequence")
    if not sequence:
        raise DicomTagError(
            "RadiopharmaceuticalInformationSequence",
            path,
            "is missing or empty",
            "it holds the injected dose, half-life and injection time",
        )
    if len(sequence) > 1:
        log.warning("%s: %d radiopharmaceutical items; using the first", path, len(sequence))
    return sequence[0]


def read_dose_bq(isotope: Any, path: str, override_mbq: Optional[float], record: Provenance):
    """Injected dose (Bq): the override (MBq), else RadionuclideTotalDose, within DOSE_RANGE_MBQ."""
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


def read_half_life_s(isotope: Any, path: str, record: Provenance) -> float:
    """RadionuclideHalfLife (s); a value other than F-18's is used, with a warning."""
    half_life = tag_number(isotope, "RadionuclideHalfLife", path)
    if not half_life or half_life < 0:
        problem = "is missing" if half_life is None else f"is {half_life:g}"
        raise DicomTagError("RadionuclideHalfLife", path, problem, "F-18: 6586.2 s (QIBA)")
    if abs(half_life - F18_HALF_LIFE_S) > 0.01 * F18_HALF_LIFE_S:
        log.warning("%s: half-life %.6g s is not F-18's 6586.2 s; using it", path, half_life)
    label = tag_label("RadionuclideHalfLife")
    record.add("RadionuclideHalfLife", f"{half_life:.6g} s", label, path)
    return half_life


def read_scan_reference(datasets, paths, record: Provenance):
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


def read_injection(
    isotope,
    path,
    override,
    scan: dt.datetime,
    max_uptake_h: float,
    record: Provenance,
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


def check_max_uptake_h(value: Optional[float]) -> float:
    """The longest plausible uptake (h): MAX_UPTAKE_H unless a positive number is given."""
    if value is None:
        return MAX_UPTAKE_H
    if not (math.isfinite(value) and value > 0):
        raise BoneOligoMetError(f"max uptake {value!r} h: expected a positive number of hours")
    return float(value)


def read_slice_references(
    datasets,
    paths,
    decay_correction,
    acquisitions,
    scan,
    injection,
    half_life_s,
    record: Provenance,
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
