"""RTSTRUCT contours (DICOM RT Structure Set): read per ROI, and rasterised onto a reference
image grid by the even-odd rule treatment-planning systems store holes with (see
:func:`rasterise_roi`). Coordinates are DICOM patient coordinates (LPS mm), as ITK's.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
import SimpleITK as sitk

from BoneOligoMetLib.errors import ImageReadError, MaskError

log = logging.getLogger(__name__)

RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
# Contours whose planes lie closer than this (mm, along the normal) are on the same plane.
SAME_PLANE_MM = 0.05
# A contour whose points leave its plane by more than this fraction of the plane step is refused.
PLANARITY_FRACTION = 0.25
# Contour planes of one ROI must be parallel within this cosine.
PARALLEL_COSINE = 0.9999
# Points in one even-odd test block (memory: block × edges booleans).
POINT_BLOCK = 4096

PathLike = Union[str, Path]


@dataclass(frozen=True)
class RoiContours:
    """One ROI of a structure set: its closed planar contours as (N, 3) LPS mm arrays."""

    number: int  # ROI Number
    name: str  # ROI Name
    frame_of_reference_uid: str
    contours: tuple[np.ndarray, ...] = field(repr=False)
    skipped: int = 0  # POINT / OPEN_PLANAR contours and degenerate polygons (no area)

    @property
    def n_points(self) -> int:
        return int(sum(len(c) for c in self.contours))


def _newell_normal(points: np.ndarray) -> np.ndarray:
    """The polygon's normal × twice its area (Newell's method); zero for a degenerate one."""
    following = np.roll(points, -1, axis=0)
    return np.array(
        [
            np.sum((points[:, 1] - following[:, 1]) * (points[:, 2] + following[:, 2])),
            np.sum((points[:, 2] - following[:, 2]) * (points[:, 0] + following[:, 0])),
            np.sum((points[:, 0] - following[:, 0]) * (points[:, 1] + following[:, 1])),
        ]
    )


def read_rtstruct(path: PathLike) -> list[RoiContours]:
    """Every ROI of an RTSTRUCT file, in the order of its Structure Set ROI Sequence.

    A file that is not an RT Structure Set, or whose contour data cannot be read, is an
    :class:`ImageReadError` naming the file (and the ROI).
    """
    import pydicom

    path = Path(path)
    try:
        ds = pydicom.dcmread(path)
    except Exception as error:  # pydicom raises several types for a damaged file
        raise ImageReadError(f"{path}: not a readable DICOM file: {error}") from None
    if str(ds.get("SOPClassUID", "")) != RTSTRUCT_STORAGE:
        raise ImageReadError(
            f"{path}: not an RT Structure Set (SOP class {ds.get('SOPClassUID', 'missing')}, "
            f"modality {ds.get('Modality', 'missing')})"
        )
    contours_by_number: dict[int, Any] = {}
    for item in ds.get("ROIContourSequence", []):
        contours_by_number[int(item.ReferencedROINumber)] = item
    rois = []
    for item in ds.get("StructureSetROISequence", []):
        number, name = int(item.ROINumber), str(item.get("ROIName", "")).strip()
        closed, skipped = [], 0
        for contour in getattr(contours_by_number.get(number), "ContourSequence", []) or []:
            kind = str(contour.get("ContourGeometricType", "")).upper()
            data = contour.get("ContourData")
            if kind != "CLOSED_PLANAR" or not data:
                skipped += 1
                continue
            values = np.asarray([float(v) for v in data], dtype=float)
            if values.size % 3 or not np.all(np.isfinite(values)):
                raise ImageReadError(
                    f"{path}: ROI {name!r}: contour data holds {values.size} values, not "
                    "finite x,y,z triplets"
                )
            points = values.reshape(-1, 3)
            if len(points) < 3 or np.linalg.norm(_newell_normal(points)) == 0.0:
                skipped += 1  # a polygon without area marks no volume
                continue
            closed.append(points)
        rois.append(
            RoiContours(
                number=number,
                name=name,
                frame_of_reference_uid=str(item.get("ReferencedFrameOfReferenceUID", "")),
                contours=tuple(closed),
                skipped=skipped,
            )
        )
    return rois


def _roi_normal(roi: RoiContours) -> np.ndarray:
    """The unit normal shared by the ROI's contour planes (a MaskError if they are not parallel)."""
    normals = [_newell_normal(points) for points in roi.contours]
    largest = max(normals, key=np.linalg.norm)
    reference = largest / np.linalg.norm(largest)
    total = np.zeros(3)
    for normal in normals:
        unit = normal / np.linalg.norm(normal)
        if abs(unit @ reference) < PARALLEL_COSINE:
            angle = np.degrees(np.arccos(min(1.0, abs(unit @ reference))))
            raise MaskError(
                f"ROI {roi.name!r}: its contours lie in planes {angle:.1f}° apart; a ROI's "
                "contours must be parallel"
            )
        total += unit if unit @ reference > 0 else -unit
    return total / np.linalg.norm(total)


def _voxel_extent_along(reference: sitk.Image, normal: np.ndarray) -> float:
    """Length (mm) of a reference voxel's projection on ``normal``."""
    direction = np.asarray(reference.GetDirection(), dtype=float).reshape(3, 3)
    return float(np.sum(np.abs(normal @ direction) * np.asarray(reference.GetSpacing())))


def _planes(
    roi: RoiContours, normal: np.ndarray, reference: sitk.Image
) -> tuple[np.ndarray, list[list[np.ndarray]], float]:
    """(plane offsets along the normal in mm, increasing; the contours of each plane; half
    the plane step in mm) — the slab around each plane that its contours fill."""
    offsets = np.array([float(np.mean(points @ normal)) for points in roi.contours])
    order = np.argsort(offsets, kind="stable")
    planes: list[float] = []
    members: list[list[np.ndarray]] = []
    for index in order:
        if planes and offsets[index] - planes[-1] <= SAME_PLANE_MM:
            members[-1].append(roi.contours[index])
        else:
            planes.append(float(offsets[index]))
            members.append([roi.contours[index]])
    plane_offsets = np.array(planes)
    if len(plane_offsets) > 1:
        half = 0.5 * float(np.median(np.diff(plane_offsets)))
    else:
        half = 0.5 * _voxel_extent_along(reference, normal)
    for offset, contours in zip(plane_offsets, members):
        for points in contours:
            off_plane = float(np.max(np.abs(points @ normal - offset)))
            if off_plane > PLANARITY_FRACTION * 2 * half:
                raise MaskError(
                    f"ROI {roi.name!r}: a contour near {offset:.2f} mm along the normal leaves "
                    f"its plane by {off_plane:.2f} mm (not planar)"
                )
    return plane_offsets, members, half


def _crossings_inside(points: np.ndarray, polygons: Sequence[np.ndarray]) -> np.ndarray:
    """Even-odd (PNPOLY) test of 2D ``points`` (P, 2) against all ``polygons`` together."""
    starts = np.concatenate([polygon for polygon in polygons])
    ends = np.concatenate([np.roll(polygon, -1, axis=0) for polygon in polygons])
    x1, y1, x2, y2 = starts[:, 0], starts[:, 1], ends[:, 0], ends[:, 1]
    inside = np.zeros(len(points), dtype=bool)
    for begin in range(0, len(points), POINT_BLOCK):
        px = points[begin : begin + POINT_BLOCK, 0:1]
        py = points[begin : begin + POINT_BLOCK, 1:2]
        spans = (y1 > py) != (y2 > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = x1 + (py - y1) * (x2 - x1) / (y2 - y1)
        toggles = spans & (px < x_cross)
        inside[begin : begin + POINT_BLOCK] = (np.count_nonzero(toggles, axis=1) % 2) == 1
    return inside


def _fill_rows(polygons_ij: Sequence[np.ndarray], shape_ji: tuple[int, int]) -> np.ndarray:
    """Even-odd scan-line fill of polygons given in continuous (i, j) pixel indices: pixel
    (j, i) is in when an odd number of edges cross row j at a column > i (PNPOLY's rule)."""
    rows, columns = shape_ji
    plane = np.zeros(shape_ji, dtype=bool)
    starts = np.concatenate([polygon for polygon in polygons_ij])
    ends = np.concatenate([np.roll(polygon, -1, axis=0) for polygon in polygons_ij])
    i1, j1, i2, j2 = starts[:, 0], starts[:, 1], ends[:, 0], ends[:, 1]
    low = max(0, int(np.ceil(min(j1.min(), j2.min()))))
    high = min(rows - 1, int(np.floor(max(j1.max(), j2.max()))))
    column_index = np.arange(columns, dtype=float)
    for j in range(low, high + 1):
        spans = (j1 > j) != (j2 > j)
        if not np.any(spans):
            continue
        a1, b1, a2, b2 = i1[spans], j1[spans], i2[spans], j2[spans]
        crossings = np.sort(a1 + (j - b1) * (a2 - a1) / (b2 - b1))
        greater = len(crossings) - np.searchsorted(crossings, column_index, side="right")
        plane[j] = (greater % 2) == 1
    return plane


def rasterise_roi(roi: RoiContours, reference: sitk.Image) -> np.ndarray:
    """The ROI as a boolean (k, j, i) array on ``reference``'s grid, by this rule:

    - Only ``CLOSED_PLANAR`` contours are filled; ``POINT`` and ``OPEN_PLANAR`` contours mark no
      volume and are skipped (counted in :attr:`RoiContours.skipped`).
    - All contours of a ROI lie in parallel planes. A contour's plane is the mean of its points
      along the ROI's normal; contours within :data:`SAME_PLANE_MM` of each other share a plane.
    - A reference voxel belongs to the ROI when (1) the nearest contour plane to its centre lies
      within half a plane step (the median distance between the ROI's planes; for a ROI on one
      plane, half the voxel's own extent along the normal) and (2) its centre, projected onto
      that plane, is inside the plane's contours by the **even-odd rule**: every contour on the
      plane toggles inside/outside, so a contour inside another is a hole, an island inside the
      hole is in again, and two overlapping contours cancel where they overlap. This is how
      treatment-planning systems store holes (no flag says which contour is a hole) and what MIRP
      does for the IBSI reference masks.
    - A centre exactly on a contour edge counts as inside on the edges facing the lower index
      (column, row) and outside on the others (the PNPOLY crossing test), so two contours that
      share an edge never both claim a voxel.

    When the reference slices are the planes the contours were drawn on (the usual case: a mask
    on the image the RTSTRUCT references), (1) picks exactly that slice and (2) is a scan-line fill
    in the slice's own pixel grid. The reference may also be oblique to the contours, or sampled
    at another slice step: (1) then takes the nearest contour plane, like nearest-neighbour
    interpolation between planes, and (2) tests each voxel centre projected onto it.
    """
    if not roi.contours:
        raise MaskError(
            f"ROI {roi.name!r}: no closed planar contour to fill"
            + (f" ({roi.skipped} point/open contours skipped)" if roi.skipped else "")
        )
    normal = _roi_normal(roi)
    plane_offsets, members, half = _planes(roi, normal, reference)
    size = np.asarray(reference.GetSize())
    spacing = np.asarray(reference.GetSpacing(), dtype=float)
    origin = np.asarray(reference.GetOrigin(), dtype=float)
    direction = np.asarray(reference.GetDirection(), dtype=float).reshape(3, 3)
    to_index = np.linalg.inv(direction * spacing)  # LPS offset -> continuous (i, j, k)
    mask = np.zeros(tuple(size[::-1]), dtype=bool)

    # The voxels that can be in: the contours' box in index space, widened by the slab.
    points = np.concatenate(roi.contours)
    corners = np.concatenate([points + normal * half, points - normal * half])
    index = (corners - origin) @ to_index.T
    low = np.maximum(np.floor(index.min(axis=0)).astype(int), 0)
    high = np.minimum(np.ceil(index.max(axis=0)).astype(int), size - 1)
    if np.any(high < low):
        return mask
    aligned = abs(normal @ direction[:, 2]) >= PARALLEL_COSINE
    if aligned:  # contour planes parallel to the slices: one plane per slice, scan lines
        for k in range(low[2], high[2] + 1):
            centre = origin + direction[:, 2] * spacing[2] * k
            distance = np.abs(plane_offsets - centre @ normal)
            nearest = int(np.argmin(distance))
            if distance[nearest] > half + 1e-9:
                continue
            polygons = [((p - origin) @ to_index.T)[:, :2] for p in members[nearest]]
            mask[k] = _fill_rows(polygons, (int(size[1]), int(size[0])))
        return mask
    # Oblique: each voxel centre goes to its nearest plane and is tested there.
    u = np.cross(normal, [1.0, 0.0, 0.0] if abs(normal[0]) < 0.9 else [0.0, 1.0, 0.0])
    u /= np.linalg.norm(u)
    v = np.cross(normal, u)
    basis = np.stack([u, v])  # LPS -> in-plane (u, v)
    polygons_uv = [[p @ basis.T for p in contours] for contours in members]
    jj, ii = np.mgrid[low[1] : high[1] + 1, low[0] : high[0] + 1]
    for k in range(low[2], high[2] + 1):
        grid = np.stack([ii.ravel(), jj.ravel(), np.full(ii.size, k)], axis=1).astype(float)
        centres = origin + (grid * spacing) @ direction.T
        along = centres @ normal
        nearest = np.zeros(len(along), dtype=int)
        if len(plane_offsets) > 1:  # the nearer of the planes around each centre (tie: lower)
            above = np.clip(np.searchsorted(plane_offsets, along), 1, len(plane_offsets) - 1)
            below = above - 1
            upper = np.abs(plane_offsets[above] - along) < np.abs(along - plane_offsets[below])
            nearest = np.where(upper, above, below)
        near = np.abs(along - plane_offsets[nearest]) <= half + 1e-9
        inside = np.zeros(len(centres), dtype=bool)
        for plane in np.unique(nearest[near]):
            chosen = near & (nearest == plane)
            inside[chosen] = _crossings_inside(centres[chosen] @ basis.T, polygons_uv[plane])
        mask[k, low[1] : high[1] + 1, low[0] : high[0] + 1] = inside.reshape(ii.shape)
    return mask


def contour_extent_text(roi: RoiContours) -> str:
    """The LPS box (mm) of a ROI's contour points, for messages."""
    points = np.concatenate(roi.contours) if roi.contours else np.zeros((1, 3))
    low, high = points.min(axis=0), points.max(axis=0)
    return " × ".join(f"{a:.1f}…{b:.1f}" for a, b in zip(low, high))
