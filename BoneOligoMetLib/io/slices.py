"""Where one-slice-per-file DICOM images lie: their order along the slice normal, the nominal
spacing, and the regular grid a series with bed-junction steps is resampled onto (LPS)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from BoneOligoMetLib.errors import DicomTagError, GeometryError
from BoneOligoMetLib.io.dicom_tags import tag_number, tag_text

log = logging.getLogger(__name__)

# Slice positions (fractions of the nominal spacing, the most common step). Real GE Discovery
# multi-bed PET steps 3.27 mm within a bed and 3.19–3.29 mm where beds meet (2.4 % off).
EVEN_STEP_FRACTION = 0.01  # steps this close to each other are one spacing (rounding)


JUNCTION_FRACTION = 0.20  # a step up to 20 % off the spacing is a bed junction: resampled


MISSING_SLICE_STEP = 1.5  # a step of 1.5 spacings or more leaves slices out: refused


GRID_FRACTION = 0.01  # slices all within 1 % of a spacing of the even grid are not resampled


SNAP_FRACTION = 0.002  # a grid plane this close to a true slice takes that slice's values


STEP_ROUNDING_MM = 0.01  # steps differing from the spacing by more are counted as uneven


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
