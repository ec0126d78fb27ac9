"""Reading DICOM tags: DA/TM/DT values, numeric and private elements, and the physical
geometry of one-slice-per-file series (sorted along the slice normal, LPS).

Shared by the SUV reader (``suv``) and the PET writer's tests; every failure is an error that
names the tag and the file.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np

from BoneOligoMetLib.errors import DicomTagError, GeometryError, ImageReadError

F18_HALF_LIFE_S = 6586.2  # QIBA FDG-PET/CT profile: 109.77 min
GE_PRIVATE_CREATOR = "GEMS_PETD_01"  # (0009,10xx); 0x0D = PET scan_datetime (DT)
PHILIPS_PRIVATE_CREATOR = "Philips PET Private Group"  # (7053,10xx)
PHILIPS_SUV_FACTOR = 0x00  # (7053,1000) SUV scale factor: SUVbw per rescaled value
PHILIPS_ACTIVITY_FACTOR = 0x09  # (7053,1009) activity concentration scale factor: Bq/mL per value


def average_count_time_s(frame_duration_s: float, half_life_s: float) -> float:
    """Seconds after frame start at which the activity equals its frame average (C.8.9.4.1.5)."""
    if frame_duration_s <= 0:
        return 0.0
    decay_during_frame = math.log(2.0) / half_life_s * frame_duration_s
    return math.log(decay_during_frame / (1.0 - math.exp(-decay_during_frame))) / (
        math.log(2.0) / half_life_s
    )


def parse_dicom_time(text: str) -> Optional[dt.time]:
    """DICOM TM (``HH[MM[SS[.F]]]``, legacy ``HH:MM:SS``) as a time; None if it is not one."""
    match = re.fullmatch(r"(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?", text.strip().replace(":", ""))
    if not match:
        return None
    hours, minutes, seconds, fraction = match.groups()
    try:
        return dt.time(
            int(hours), int(minutes or 0), int(seconds or 0), int((fraction or "0").ljust(6, "0"))
        )
    except ValueError:
        return None


def parse_dicom_date(text: str) -> Optional[dt.date]:
    """DICOM DA (``YYYYMMDD``, legacy ``YYYY.MM.DD``) as a date; None if it is not one."""
    try:
        return dt.datetime.strptime(text.strip().replace(".", ""), "%Y%m%d").date()
    except ValueError:
        return None


def parse_dicom_datetime(text: str) -> Optional[dt.datetime]:
    """DICOM DT (``YYYYMMDD[HHMMSS[.F]][&ZZXX]``), naive: the UTC offset is dropped."""
    text = re.sub(r"[+-]\d{4}$", "", text.strip())
    day = parse_dicom_date(text[:8]) if len(text) >= 8 else None
    clock = parse_dicom_time(text[8:]) if len(text) > 8 else dt.time()
    return dt.datetime.combine(day, clock) if day and clock is not None else None


def tag_label(keyword: str) -> str:
    """``tag (gggg,eeee)`` for a standard keyword, for provenance tables."""
    from pydicom.datadict import tag_for_keyword

    tag = tag_for_keyword(keyword)
    return f"tag ({tag >> 16:04X},{tag & 0xFFFF:04X})" if tag is not None else "tag"


def tag_text(ds: Any, keyword: str) -> str:
    """A single-valued tag as stripped text; "" when absent or empty."""
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def tag_number(ds: Any, keyword: str, path: object) -> Optional[float]:
    """A numeric tag as float; None when absent or empty; DicomTagError when not a number."""
    text = tag_text(ds, keyword)
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise DicomTagError(keyword, path, f"is {text!r}, not a number") from None
    if not math.isfinite(value):
        raise DicomTagError(keyword, path, f"is {text!r}, not a finite number")
    return value


def private_text(ds: Any, group: int, creator: str, element: int) -> Optional[str]:
    """The value of private element ``(group, xx<element>)`` reserved by ``creator``, as text."""
    try:
        tag = ds.private_block(group, creator).get_tag(element)
    except KeyError:
        return None
    if tag not in ds:
        return None
    value = ds[tag].value
    if isinstance(value, bytes):  # VR UN in files written without the private dictionary
        value = value.decode("ascii", "replace")
    return str(value).strip(" \x00") or None


def private_number(ds: Any, group: int, creator: str, element: int, path: object):
    """A numeric private element as float, None when absent; DicomTagError when not a number."""
    text = private_text(ds, group, creator, element)
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        name = f"({group:04X},10{element:02X}) of {creator!r}"
        raise DicomTagError(name, path, f"is {text!r}, not a number") from None


def read_datasets(paths: Sequence[str], pixels: bool = True) -> list[Any]:
    """pydicom datasets of ``paths``; an unreadable file is an ImageReadError naming it."""
    import pydicom

    datasets = []
    for path in paths:
        try:
            datasets.append(pydicom.dcmread(path, stop_before_pixels=not pixels))
        except (pydicom.errors.InvalidDicomError, OSError, ValueError, EOFError) as error:
            raise ImageReadError(f"{path}: not a readable DICOM file: {error}") from None
    return datasets


def _floats(ds: Any, keyword: str, path: str, count: int) -> np.ndarray:
    value = ds.get(keyword)
    if value is None or len(value) != count:
        found = "is missing" if value is None else f"has {len(value)} values, not {count}"
        raise DicomTagError(keyword, path, found, "needed to place the slice in space")
    return np.array([float(v) for v in value], dtype=float)


def slice_geometry(datasets: Sequence[Any], paths: Sequence[str]):
    """(order, origin_mm, spacing_mm, direction) of one-slice-per-file images, in LPS.

    ``order`` sorts the slices along their normal (row × column, as GDCM/ITK do); direction
    columns are the row, column and normal directions. Duplicate or unevenly spaced slices,
    mixed orientations or sizes, or in-plane shifts are a GeometryError naming the files.
    """
    orientation = _floats(datasets[0], "ImageOrientationPatient", paths[0], 6)
    row, col = orientation[:3] / np.linalg.norm(orientation[:3]), orientation[3:]
    col = col / np.linalg.norm(col)
    if abs(float(row @ col)) > 1e-3:
        raise GeometryError(f"{paths[0]}: ImageOrientationPatient rows and columns not orthogonal")
    normal = np.cross(row, col)
    size = (tag_text(datasets[0], "Rows"), tag_text(datasets[0], "Columns"))
    positions = []
    for ds, path in zip(datasets, paths):
        if np.abs(_floats(ds, "ImageOrientationPatient", path, 6) - orientation).max() > 1e-4:
            raise GeometryError(f"{path}: ImageOrientationPatient differs from {paths[0]}")
        if (tag_text(ds, "Rows"), tag_text(ds, "Columns")) != size:
            raise GeometryError(f"{path}: Rows×Columns differ from {paths[0]}")
        positions.append(_floats(ds, "ImagePositionPatient", path, 3))
    along = np.array([p @ normal for p in positions])
    order = [int(i) for i in np.argsort(along, kind="stable")]
    gaps = np.diff(along[order])
    median = float(np.median(gaps)) if len(gaps) else 0.0
    for k, gap in enumerate(gaps):
        pair = f"{paths[order[k]]} and {paths[order[k + 1]]}"
        if gap < 1e-3:
            raise GeometryError(
                f"{pair}: same slice position {along[order[k]]:.3f} mm along the normal "
                "(several series or time frames in one folder?)"
            )
        if abs(gap - median) > 0.01 * median + 1e-3:
            raise GeometryError(
                f"{pair}: uneven slice spacing, {gap:.4g} mm here but {median:.4g} mm elsewhere "
                "(missing slice?)"
            )
    for k in order:
        offset = positions[k] - positions[order[0]]
        if np.linalg.norm(offset - (offset @ normal) * normal) > 0.01:
            raise GeometryError(f"{paths[k]}: slice shifted in-plane from {paths[order[0]]}")
    spacing_xy = _floats(datasets[0], "PixelSpacing", paths[0], 2)
    spacing_z = float(gaps.mean()) if len(gaps) else None
    if spacing_z is None:
        spacing_z = tag_number(datasets[0], "SliceThickness", paths[0]) or 1.0
    direction = np.column_stack([row, col, normal]).ravel()
    spacing = (float(spacing_xy[1]), float(spacing_xy[0]), spacing_z)
    return order, tuple(positions[order[0]].tolist()), spacing, tuple(direction.tolist())
