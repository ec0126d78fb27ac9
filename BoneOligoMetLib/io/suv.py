"""PET DICOM → SUVbw image (g/mL), following the QIBA SUV pseudo-code.

SUVbw = activity concentration (Bq/mL) × weight (g) / injected dose decayed to the time the
values refer to (Bq). :func:`pet_dicom_to_suv` and :func:`read_suv_parameters` read a series,
sort its slices and turn the header values (read and checked in :mod:`.suv_tags`) into one
factor per slice, so multi-bed series and Philips counts come out on one SUV scale;
:class:`SuvParameters` keeps the factors with a table of every value used and where it came from.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import SimpleITK as sitk

from BoneOligoMetLib.errors import DicomTagError, ImageReadError
from BoneOligoMetLib.io.dicom_series import list_dicom_series, select_dicom_series
from BoneOligoMetLib.io.dicom_tags import read_datasets, tag_number
from BoneOligoMetLib.io.files import PathLike
from BoneOligoMetLib.io.images import read_image
from BoneOligoMetLib.io.slices import SliceGeometry, slice_geometry
from BoneOligoMetLib.io.suv_tags import (
    BED_REFERENCE_TOLERANCE_S,
    DOSE_HINT,
    DOSE_RANGE_MBQ,
    MAX_UPTAKE_H,
    TIME_HINT,
    UPTAKE_HINT,
    WEIGHT_HINT,
    WEIGHT_RANGE_KG,
    InjectionTime,
    ParameterSource,
    Provenance,
    check_max_uptake_h,
    check_modality,
    radiopharmaceutical,
    read_decay_correction,
    read_dose_bq,
    read_half_life_s,
    read_injection,
    read_manufacturer,
    read_scan_reference,
    read_slice_references,
    read_units_scale,
    read_weight_kg,
)

__all__ = [
    "BED_REFERENCE_TOLERANCE_S",
    "DOSE_HINT",
    "DOSE_RANGE_MBQ",
    "MAX_UPTAKE_H",
    "TIME_HINT",
    "UPTAKE_HINT",
    "WEIGHT_HINT",
    "WEIGHT_RANGE_KG",
    "InjectionTime",
    "ParameterSource",
    "SuvParameters",
    "pet_dicom_to_suv",
    "read_suv_image",
    "read_suv_parameters",
]

log = logging.getLogger(__name__)


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


def _record_resampling(geometry: SliceGeometry, path: str, record: Provenance) -> None:
    """Record the regular grid that uneven steps at bed junctions were resampled onto."""
    low, high = geometry.step_range_mm
    spacing = f"{geometry.spacing[2]:.4g} mm, resampled to {geometry.size_z} planes"
    deviation = f"{geometry.largest_step_deviation_mm:.3g} mm (steps {low:.4g}–{high:.4g} mm)"
    record.add("slice spacing", spacing, "derived: commonest ImagePositionPatient step", path)
    record.add("largest step deviation", deviation, "derived: ImagePositionPatient", path)


def _stored_suv_parameters(
    units: str,
    factors: Sequence[float],
    manufacturer: str,
    paths: Sequence[str],
    overridden: bool,
    record: Provenance,
) -> SuvParameters:
    """Parameters of a series whose own factors give SUVbw (GML, or Philips' SUV factor)."""
    if overridden:
        log.warning("Units %s: the weight/dose/injection overrides are not used", units)
    record.add("SUV factor", f"{factors[0]:.6g}", f"derived: Units {units}")
    return SuvParameters(
        units, factors[0], manufacturer, tuple(paths), tuple(factors), tuple(record)
    )


def _suv_factors(
    bq_per_value: Sequence[float],
    references: Sequence[dt.datetime],
    common: dt.datetime,
    weight_kg: float,
    dose_bq: float,
    half_life_s: float,
    injection: dt.datetime,
    record: Provenance,
) -> tuple[tuple[float, ...], float, float]:
    """(factor per slice, decay factor, SUV factor) at the common reference time (QIBA).

    Each factor is weight_g / dose left at the time the values refer to, times the slice's
    Bq/mL per rescaled value.
    """

    def dose_left_bq(at: dt.datetime) -> float:  # QIBA: dose × 2^(−Δt/T½)
        return dose_bq * 2.0 ** (-(at - injection).total_seconds() / half_life_s)

    weight_g = weight_kg * 1000.0
    slice_factors = tuple(
        scale * weight_g / dose_left_bq(reference)
        for scale, reference in zip(bq_per_value, references)
    )
    decay_factor = dose_left_bq(common) / dose_bq
    suv_factor = weight_g / dose_left_bq(common)
    record.add(
        "decay factor", f"{decay_factor:.6g}", f"derived: 2^(−Δt/T½) at {common.isoformat()}"
    )
    record.add("SUV factor", f"{suv_factor:.6g} g/mL per Bq/mL", "derived: weight_g / dose left")
    return slice_factors, decay_factor, suv_factor


def _suv_parameters(
    datasets: Sequence[Any],
    paths: Sequence[str],
    weight_kg: Optional[float],
    injected_dose_mbq: Optional[float],
    injection_time: Optional[InjectionTime],
    max_uptake_h: float = MAX_UPTAKE_H,
    geometry: Optional[SliceGeometry] = None,
) -> SuvParameters:
    """SUV parameters of slices sorted along their normal: each header value read, checked and
    recorded in turn (the report's table keeps that order), then the factors."""
    first, path = datasets[0], paths[0]
    record = Provenance()
    if geometry is not None and geometry.resampled:  # uneven steps at bed junctions
        _record_resampling(geometry, path, record)
    check_modality(datasets, paths, record)
    manufacturer = read_manufacturer(first, path, record)
    units, bq_per_value, direct = read_units_scale(datasets, paths, record)
    if direct is not None:  # GML or Philips' own SUV factor: no weight, dose or time needed
        overridden = any(v is not None for v in (weight_kg, injected_dose_mbq, injection_time))
        return _stored_suv_parameters(units, direct, manufacturer, paths, overridden, record)

    decay_correction = read_decay_correction(datasets, paths, record)
    weight = read_weight_kg(first, path, weight_kg, record)
    isotope = radiopharmaceutical(first, path)
    dose_bq = read_dose_bq(isotope, path, injected_dose_mbq, record)
    half_life = read_half_life_s(isotope, path, record)
    scan, acquisitions = read_scan_reference(datasets, paths, record)
    injection = read_injection(isotope, path, injection_time, scan, max_uptake_h, record)
    references, rereferenced = read_slice_references(
        datasets, paths, decay_correction, acquisitions, scan, injection, half_life, record
    )
    common = injection if decay_correction == "ADMIN" else scan
    slice_factors, decay_factor, suv_factor = _suv_factors(
        bq_per_value,  # type: ignore[arg-type]
        references,
        common,
        weight,
        dose_bq,
        half_life,
        injection,
        record,
    )
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
    """The series' files: those given, one file, or a folder's PET (or ``series_uid``) series."""
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


def _sorted_series(
    source: Union[PathLike, Iterable[PathLike]], series_uid: Optional[str], pixels: bool
) -> tuple[list[Any], list[str], SliceGeometry]:
    """(datasets, paths, geometry) of the series, slices sorted along their normal."""
    paths = _series_files(source, series_uid)
    datasets = read_datasets(paths, pixels=pixels)
    geometry = slice_geometry(datasets, paths)
    return [datasets[i] for i in geometry.order], [paths[i] for i in geometry.order], geometry


def _slice_suv(ds: Any, path: str, factor: float) -> np.ndarray:
    """One slice's SUVbw: stored values × its own RescaleSlope + RescaleIntercept, × factor."""
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
    return (pixels.astype(np.float64) * slope + intercept) * factor


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
    datasets, paths, geometry = _sorted_series(source, series_uid, pixels=False)
    return _suv_parameters(
        datasets,
        paths,
        weight_kg,
        injected_dose_mbq,
        injection_time,
        check_max_uptake_h(max_uptake_h),
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
    datasets, paths, geometry = _sorted_series(source, series_uid, pixels=True)
    parameters = _suv_parameters(
        datasets,
        paths,
        weight_kg,
        injected_dose_mbq,
        injection_time,
        check_max_uptake_h(max_uptake_h),
        geometry,
    )
    planes = [
        _slice_suv(ds, path, factor)
        for ds, path, factor in zip(datasets, paths, parameters.slice_suv_factors)
    ]
    image = sitk.GetImageFromArray(geometry.stack(np.stack(planes)).astype(np.float32))
    image.SetOrigin(geometry.origin)
    image.SetSpacing(geometry.spacing)
    image.SetDirection(geometry.direction)
    return image, parameters


def read_suv_image(path: PathLike) -> sitk.Image:
    """The PET as SUVbw: a DICOM folder is converted from its header (:func:`pet_dicom_to_suv`),
    an image file is read as SUV (float32); the one rule of every command that takes a PET."""
    if Path(path).is_dir():
        return pet_dicom_to_suv(path)[0]
    return read_image(path, pixel_type=sitk.sitkFloat32)
