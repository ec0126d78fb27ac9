"""Reading DICOM: DA/TM/DT values, numeric and private elements, files cut short, and the
physical geometry of one-slice-per-file series (sorted along the slice normal, LPS), with
uneven multi-bed PET slices put on a regular grid.

Shared by the SUV reader (``suv``), the generic reader (``image_io``) and the PET writer's
tests; every failure is an error that names the tag and the file.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from BoneOligoMetLib.errors import DicomTagError, GeometryError, ImageReadError

log = logging.getLogger(__name__)

F18_HALF_LIFE_S = 6586.2  # QIBA FDG-PET/CT profile: 109.77 min
GE_PRIVATE_CREATOR = "GEMS_PETD_01"  # (0009,10xx); 0x0D = PET scan_datetime (DT)
PHILIPS_PRIVATE_CREATOR = "Philips PET Private Group"  # (7053,10xx)
PHILIPS_SUV_FACTOR = 0x00  # (7053,1000) SUV scale factor: SUVbw per rescaled value
PHILIPS_ACTIVITY_FACTOR = 0x09  # (7053,1009) activity concentration scale factor: Bq/mL per value
PIXEL_DATA_TAG = 0x7FE00010
FLOAT_PIXEL_DATA_TAGS = (0x7FE00008, 0x7FE00009)  # Float / Double Float Pixel Data
DEFER_BYTES = 4096  # header reads leave values larger than this (the pixel data) on disk

# Slice positions (fractions of the nominal spacing, the most common step). Real GE Discovery
# multi-bed PET steps 3.27 mm within a bed and 3.19–3.29 mm where beds meet (2.4 % off).
EVEN_STEP_FRACTION = 0.01  # steps this close to each other are one spacing (rounding)
JUNCTION_FRACTION = 0.20  # a step up to 20 % off the spacing is a bed junction: resampled
MISSING_SLICE_STEP = 1.5  # a step of 1.5 spacings or more leaves slices out: refused
GRID_FRACTION = 0.01  # slices all within 1 % of a spacing of the even grid are not resampled
SNAP_FRACTION = 0.002  # a grid plane this close to a true slice takes that slice's values
STEP_ROUNDING_MM = 0.01  # steps differing from the spacing by more are counted as uneven


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


def _raw_elements(ds: Any) -> list[Any]:
    """Top-level and file-meta elements as read: raw, so a deferred value is not loaded."""
    found = []
    for holder in (getattr(ds, "file_meta", None), ds):
        raw = getattr(holder, "_dict", None)  # pydicom 2 and 3 (elements() converts in 2)
        if holder is not None:
            found += list(raw.values()) if isinstance(raw, dict) else list(holder.elements())
    return found


def _pixel_element(ds: Any) -> Any:
    try:
        return ds.get_item(PIXEL_DATA_TAG, keep_deferred=True)
    except TypeError:  # pragma: no cover - pydicom 2 has no keep_deferred
        return getattr(ds, "_dict", {}).get(PIXEL_DATA_TAG)


def expected_pixel_bytes(ds: Any) -> Optional[int]:
    """Bytes of native pixel data: Rows × Columns × samples × BitsAllocated/8 × frames.

    None for compressed (encapsulated) pixel data or when the image tags are absent.
    """
    from pydicom.uid import UID

    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is not None and UID(str(syntax)).is_compressed:
        return None
    try:
        rows, columns, bits = int(ds.Rows), int(ds.Columns), int(ds.BitsAllocated)
        samples = int(ds.get("SamplesPerPixel") or 1)
        frames = int(str(ds.get("NumberOfFrames") or 1).strip() or 1)
    except (AttributeError, TypeError, ValueError):
        return None
    return (rows * columns * samples * frames * bits + 7) // 8


def is_image_storage(ds: Any) -> bool:
    """Whether the SOP class is an image storage class, so the file must hold pixel data
    (DICOMDIR, RTSTRUCT, SR, presentation states are not)."""
    from pydicom.uid import UID

    meta = getattr(ds, "file_meta", None)
    uid = meta.get("MediaStorageSOPClassUID") if meta is not None else None
    uid = uid or ds.get("SOPClassUID")
    return uid is not None and "Image Storage" in UID(str(uid)).name


def pixel_data_problem(ds: Any, path: object, end_of_file: str = "") -> Optional[str]:
    """Why the pixel data of ``ds`` (read from ``path``) cannot be used, or None.

    pydicom reads a file cut short without a word, so this looks for the cut: an element whose
    value runs past the end of the file, an image without pixel data, or native pixel data
    shorter than Rows × Columns × BitsAllocated/8 (× frames). ``end_of_file``: pydicom's
    end-of-file warning, if it gave one. The message is one line naming the file.
    """
    size = os.path.getsize(path)
    if end_of_file:
        return f"{path}: truncated DICOM file: {end_of_file}"
    for element in _raw_elements(ds):
        length = getattr(element, "length", 0xFFFFFFFF)
        if element.tag == PIXEL_DATA_TAG or length == 0xFFFFFFFF:
            continue
        if element.value_tell + length > size:
            have = max(size - element.value_tell, 0)
            tag = f"({element.tag >> 16:04X},{element.tag & 0xFFFF:04X})"
            return f"{path}: truncated DICOM file: ends inside tag {tag} ({have} of {length} bytes)"
    if len(ds) == 0:
        return f"{path}: truncated DICOM file: no data elements after the file meta information"
    pixels = _pixel_element(ds)
    if pixels is None:
        if any(tag in ds for tag in FLOAT_PIXEL_DATA_TAGS) or not (
            "Rows" in ds or is_image_storage(ds)
        ):
            return None
        return f"{path}: truncated DICOM file: no pixel data (7FE0,0010); it ends at byte {size}"
    expected = expected_pixel_bytes(ds)
    declared = getattr(pixels, "length", 0xFFFFFFFF)
    if expected is None or declared == 0xFFFFFFFF:
        return None  # encapsulated (compressed) data: its decoder judges it
    present = max(min(declared, size - pixels.value_tell), 0)
    if pixels.value is not None:
        present = min(present, len(pixels.value))
    if present >= expected:
        return None
    if present < declared:
        return f"{path}: truncated DICOM file: pixel data holds {present} of {expected} bytes"
    return (
        f"{path}: not a readable DICOM file: pixel data holds {present} of {expected} bytes "
        "(Rows × Columns × BitsAllocated/8 × frames)"
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def inspect_dicom_file(
    path: object, pixels: bool = True, force: bool = False
) -> tuple[Optional[Any], Optional[str]]:
    """(pydicom dataset or None, why it cannot be used or None) for one file.

    ``pixels=False`` leaves large values (the pixel data) on disk until accessed; ``force``
    reads files without the Part-10 "DICM" preamble. The reason is one line naming the file:
    "not a readable DICOM file: ..." or "truncated DICOM file: ..." (:func:`pixel_data_problem`).
    """
    import pydicom

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(str(path), defer_size=None if pixels else DEFER_BYTES, force=force)
        except Exception as error:  # pydicom raises many types on garbage (struct.error, ...)
            return None, f"{path}: not a readable DICOM file: {_first_line(error)}"
    end_of_file = next(
        (
            str(w.message).split(" in file ")[0]
            for w in caught
            if "end of file" in str(w.message).lower() or "EOF" in str(w.message)
        ),
        "",
    )
    return ds, pixel_data_problem(ds, path, end_of_file)


def read_dataset(path: object, pixels: bool = True) -> Any:
    """One pydicom dataset; an unreadable or truncated file is an ImageReadError naming it."""
    ds, problem = inspect_dicom_file(path, pixels)
    if problem:
        raise ImageReadError(problem)
    return ds


def read_datasets(paths: Sequence[str], pixels: bool = True) -> list[Any]:
    """pydicom datasets of ``paths`` (:func:`read_dataset`): an unreadable or truncated file is
    an ImageReadError naming it."""
    return [read_dataset(path, pixels) for path in paths]


def _floats(ds: Any, keyword: str, path: str, count: int) -> np.ndarray:
    value = ds.get(keyword)
    if value is None or len(value) != count:
        found = "is missing" if value is None else f"has {len(value)} values, not {count}"
        raise DicomTagError(keyword, path, found, "needed to place the slice in space")
    return np.array([float(v) for v in value], dtype=float)


@dataclass(frozen=True)
class SliceGeometry:
    """Where the slices of a one-slice-per-file series lie, and the regular grid they go on.

    ``order``: file indices sorted along the slice normal. ``origin`` (mm, LPS), ``spacing``
    (mm: column, row, slice) and ``direction`` (row-major 3×3; columns: row, column and normal
    directions) describe the grid of ``size_z`` planes. ``positions_mm``: the true sorted slice
    positions along the normal, mm from the first. When ``resampled``, the slices are not
    evenly spaced (PET bed junctions) and :meth:`stack` interpolates them onto the grid.
    """

    order: tuple[int, ...]
    origin: tuple[float, float, float]
    spacing: tuple[float, float, float]
    direction: tuple[float, ...]
    positions_mm: tuple[float, ...]
    size_z: int
    resampled: bool = False
    uneven_steps: int = 0  # steps differing from the spacing by more than STEP_ROUNDING_MM
    step_range_mm: tuple[float, float] = (0.0, 0.0)
    largest_step_deviation_mm: float = 0.0  # max |step − spacing|
    largest_offset_mm: float = 0.0  # max distance of a true slice from its nearest grid plane
    folder: str = ""  # where the files are, for the log line

    def note(self) -> str:
        """One line saying how uneven the slices were and how they were put on the grid."""
        if not self.resampled:
            return f"slices evenly spaced, {self.spacing[2]:.4g} mm"
        low, high = self.step_range_mm
        return (
            f"uneven slice steps {low:.4g}–{high:.4g} mm ({self.uneven_steps} of "
            f"{len(self.positions_mm) - 1} differ from the {self.spacing[2]:.4g} mm spacing, "
            f"largest deviation {self.largest_step_deviation_mm:.3g} mm; bed junctions): "
            f"resampled along z onto a regular {self.spacing[2]:.4g} mm grid of {self.size_z} "
            f"planes, linear between the true slice positions (slices were up to "
            f"{self.largest_offset_mm:.3g} mm off it)"
        )

    def stack(self, planes: np.ndarray) -> np.ndarray:
        """Slices (k, row, column) in ``order`` → the grid (z, row, column), same dtype.

        Evenly spaced slices are returned as they are. Otherwise each grid plane is linear
        between the two true slices around it; a plane within SNAP_FRACTION of a spacing of a
        true slice is that slice exactly; a last plane past the last slice (at most half a
        spacing) is the last slice. Resampling logs one warning (:meth:`note`); it is logged
        here, once the volume is read, so an error found before it stays the only message.
        """
        planes = np.asarray(planes)
        if not self.resampled:
            return planes
        log.warning("%s: %s", self.folder, self.note())
        positions = np.asarray(self.positions_mm)
        step = self.spacing[2]
        out = np.empty((self.size_z, *planes.shape[1:]), dtype=planes.dtype)
        for j in range(self.size_z):
            z = j * step
            k = min(max(int(np.searchsorted(positions, z, side="right")) - 1, 0), len(planes) - 1)
            if abs(z - positions[k]) <= SNAP_FRACTION * step or k == len(planes) - 1:
                out[j] = planes[k]
            elif abs(positions[k + 1] - z) <= SNAP_FRACTION * step:
                out[j] = planes[k + 1]
            else:
                t = (z - positions[k]) / (positions[k + 1] - positions[k])
                out[j] = planes[k].astype(np.float64) * (1.0 - t) + planes[k + 1] * t
        return out


def _nominal_step(steps: np.ndarray) -> float:
    """The most common slice step (mm): the median of the largest cluster of steps within
    EVEN_STEP_FRACTION of each other, so a few bed-junction steps do not move it."""
    ordered = np.sort(steps)
    reach = EVEN_STEP_FRACTION * ordered + 1e-3
    low = np.searchsorted(ordered, ordered - reach, side="left")
    high = np.searchsorted(ordered, ordered + reach, side="right")
    counts = high - low
    candidates = np.flatnonzero(counts == counts.max())
    best = candidates[np.argmin(np.abs(ordered[candidates] - np.median(ordered)))]
    return float(np.median(ordered[low[best] : high[best]]))


def _check_steps(gaps: np.ndarray, along: np.ndarray, files: Sequence[str]) -> float:
    """The nominal step (mm); a duplicate, missing or irregular step is a GeometryError."""
    positive = gaps[gaps > 1e-3]
    nominal = _nominal_step(positive) if len(positive) else 0.0
    for k, gap in enumerate(gaps):
        pair = f"{files[k]} and {files[k + 1]}"
        if gap <= max(1e-3, EVEN_STEP_FRACTION * nominal):
            raise GeometryError(
                f"{pair}: same slice position {along[k]:.3f} mm along the normal (a duplicate "
                "slice, or several series or time frames in one folder?)"
            )
        deviation = abs(gap - nominal)
        if deviation <= JUNCTION_FRACTION * nominal:
            continue
        if gap >= MISSING_SLICE_STEP * nominal:
            missing = max(round(gap / nominal) - 1, 1)
            raise GeometryError(
                f"{pair}: slices {gap:.4g} mm apart but {nominal:.4g} mm elsewhere: "
                f"{missing} slice(s) missing between them"
            )
        raise GeometryError(
            f"{pair}: uneven slice spacing, {gap:.4g} mm here but {nominal:.4g} mm elsewhere "
            f"(steps within {JUNCTION_FRACTION:.0%} of the spacing, as at PET bed junctions, "
            "are resampled; this one is not)"
        )
    return nominal


def slice_geometry(datasets: Sequence[Any], paths: Sequence[str]) -> SliceGeometry:
    """Geometry of one-slice-per-file images in LPS, decided from ImagePositionPatient.

    Slices are sorted along their normal (row × column, as GDCM/ITK do). The nominal spacing
    is the most common step. Steps within JUNCTION_FRACTION (20 %) of it, as where the beds of
    a multi-bed PET meet, are accepted: when a slice then lies more than GRID_FRACTION (1 %) of
    a spacing off the even grid, the grid has the nominal spacing from the first slice and
    :meth:`SliceGeometry.stack` resamples onto it (and logs one warning). A duplicate position,
    a step of 1.5 spacings or more (missing slice) or any other step, mixed orientations or
    sizes, or in-plane shifts are a GeometryError naming the two files.
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
    along = along[order]
    gaps = np.diff(along)
    nominal = _check_steps(gaps, along, [str(paths[k]) for k in order])
    for k in order:
        offset = positions[k] - positions[order[0]]
        if np.linalg.norm(offset - (offset @ normal) * normal) > 0.01:
            raise GeometryError(f"{paths[k]}: slice shifted in-plane from {paths[order[0]]}")
    spacing_xy = _floats(datasets[0], "PixelSpacing", paths[0], 2)
    relative = along - along[0]
    common = dict(
        order=tuple(order),
        origin=tuple(positions[order[0]].tolist()),
        direction=tuple(np.column_stack([row, col, normal]).ravel().tolist()),
        positions_mm=tuple(relative.tolist()),
    )
    if len(gaps) == 0:
        thickness = tag_number(datasets[0], "SliceThickness", paths[0]) or 1.0
        spacing = (float(spacing_xy[1]), float(spacing_xy[0]), thickness)
        return SliceGeometry(spacing=spacing, size_z=1, **common)
    mean_step = float(relative[-1] / len(gaps))
    even_offsets = relative - np.arange(len(relative)) * mean_step
    if np.abs(even_offsets).max() <= GRID_FRACTION * nominal + 1e-3:
        spacing = (float(spacing_xy[1]), float(spacing_xy[0]), mean_step)
        return SliceGeometry(spacing=spacing, size_z=len(relative), **common)
    size_z = round(float(relative[-1]) / nominal) + 1
    grid = np.arange(size_z) * nominal
    nearest = np.abs(relative[:, None] - grid[None, :]).min(axis=1)
    geometry = SliceGeometry(
        spacing=(float(spacing_xy[1]), float(spacing_xy[0]), nominal),
        size_z=size_z,
        resampled=True,
        uneven_steps=int(np.count_nonzero(np.abs(gaps - nominal) > STEP_ROUNDING_MM)),
        step_range_mm=(float(gaps.min()), float(gaps.max())),
        largest_step_deviation_mm=float(np.abs(gaps - nominal).max()),
        largest_offset_mm=float(nearest.max()),
        folder=str(Path(str(paths[0])).parent),
        **common,
    )
    return geometry
