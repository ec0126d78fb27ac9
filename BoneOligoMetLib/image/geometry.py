"""Physical geometry of PET/CT pairs and lesion masks: overlap, grids, resampling, cropping.

All coordinates are ITK LPS millimetres. Whole-body images are only ever resampled at their own
resolution (PET onto the CT grid for the fused view); fine resampling happens on lesion crops.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import numpy as np
import SimpleITK as sitk

from BoneOligoMetLib.errors import GeometryError, MaskError

log = logging.getLogger(__name__)

# Two grids are the same when origins agree within this fraction of a voxel and directions within
# this cosine tolerance (DICOM positions are stored with ~6 significant digits).
GRID_TOLERANCE = 1e-3


def describe_grid(image: sitk.Image) -> str:
    """One-line description of an image grid: size, spacing (mm), origin (LPS mm)."""
    size = "×".join(str(n) for n in image.GetSize())
    spacing = "×".join(f"{s:.4g}" for s in image.GetSpacing())
    origin = ", ".join(f"{o:.1f}" for o in image.GetOrigin())
    return f"{size} voxels of {spacing} mm at ({origin}) mm"


def physical_bounds(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned LPS box (mm) around the image's voxels, voxel edges included."""
    size = np.asarray(image.GetSize(), dtype=float)
    corners = np.array(
        [
            image.TransformContinuousIndexToPhysicalPoint(tuple(float(c) for c in corner))
            for corner in itertools.product(*[(-0.5, n - 0.5) for n in size])
        ]
    )
    return corners.min(axis=0), corners.max(axis=0)


def _box_volume(low: np.ndarray, high: np.ndarray) -> float:
    return float(np.prod(np.clip(high - low, 0.0, None)))


def overlap_fraction(a: sitk.Image, b: sitk.Image) -> float:
    """Volume of the intersection of the two images' boxes over the smaller box's volume."""
    a_low, a_high = physical_bounds(a)
    b_low, b_high = physical_bounds(b)
    inter = _box_volume(np.maximum(a_low, b_low), np.minimum(a_high, b_high))
    smaller = min(_box_volume(a_low, a_high), _box_volume(b_low, b_high))
    return inter / smaller if smaller > 0 else 0.0


def _extent_text(image: sitk.Image) -> str:
    low, high = physical_bounds(image)
    return ", ".join(f"{axis} {lo:.0f}…{hi:.0f}" for axis, lo, hi in zip("xyz", low, high))


def require_overlap(
    a: sitk.Image,
    b: sitk.Image,
    names: tuple[str, str] = ("CT", "PET"),
    min_fraction: float = 0.25,
) -> float:
    """Refuse two images that do not share physical space; return the overlap fraction.

    ``min_fraction`` of the smaller image's box must lie inside the other (a PET/CT pair from one
    scanner overlaps almost entirely; a pair from two patients or two studies usually not at all).
    """
    fraction = overlap_fraction(a, b)
    if fraction < min_fraction:
        raise GeometryError(
            f"{names[0]} and {names[1]} do not overlap physically "
            f"({fraction:.0%} of the smaller field shared, {min_fraction:.0%} needed): "
            f"{names[0]} spans {_extent_text(a)} mm, {names[1]} spans {_extent_text(b)} mm (LPS)"
        )
    return fraction


def same_grid(a: sitk.Image, b: sitk.Image, tolerance: float = GRID_TOLERANCE) -> bool:
    """True when both images have the same size, spacing, origin and direction."""
    if a.GetSize() != b.GetSize():
        return False
    spacing_a = np.asarray(a.GetSpacing())
    if not np.allclose(spacing_a, b.GetSpacing(), rtol=tolerance, atol=0):
        return False
    if not np.allclose(a.GetDirection(), b.GetDirection(), atol=tolerance):
        return False
    origin_shift = np.abs(np.subtract(a.GetOrigin(), b.GetOrigin()))
    return bool(np.all(origin_shift <= tolerance * spacing_a.min()))


def require_mask_grid(
    mask: sitk.Image, references: Sequence[tuple[str, sitk.Image]], mask_name: str = "mask"
) -> str:
    """The name of the reference whose grid the mask shares; an error listing all grids if none."""
    for name, reference in references:
        if same_grid(mask, reference):
            return name
    grids = "; ".join(f"{name}: {describe_grid(image)}" for name, image in references)
    raise GeometryError(
        f"{mask_name} grid ({describe_grid(mask)}) matches none of the images ({grids})"
    )


def resample_to_reference(
    image: sitk.Image,
    reference: sitk.Image,
    interpolator: int = sitk.sitkLinear,
    default_value: float = 0.0,
    pixel_type: Optional[int] = None,
) -> sitk.Image:
    """``image`` resampled onto ``reference``'s grid (identity transform: same physical space)."""
    return sitk.Resample(
        image,
        reference,
        sitk.Transform(),
        interpolator,
        float(default_value),
        image.GetPixelID() if pixel_type is None else pixel_type,
    )


def resample_pet_to_ct(pet: sitk.Image, ct: sitk.Image) -> sitk.Image:
    """PET (SUV or Bq/mL) on the CT grid for the fused view: linear, 0 outside the PET field."""
    require_overlap(ct, pet, ("CT", "PET"))
    return resample_to_reference(pet, ct, sitk.sitkLinear, 0.0, sitk.sitkFloat32)


def mask_physical_bounds(mask: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """LPS box (mm, voxel edges included) around the non-zero voxels of ``mask``."""
    array = sitk.GetArrayViewFromImage(mask)
    nonzero = np.nonzero(array)
    if nonzero[0].size == 0:
        raise MaskError("mask is empty (no voxel > 0)")
    low_kji = [int(axis.min()) for axis in nonzero]
    high_kji = [int(axis.max()) for axis in nonzero]
    # The outer corners of the edge voxels suffice: the index-to-point map is monotone in each
    # index (in floating point too), so no inner voxel corner lies outside their box.
    corners = [
        mask.TransformContinuousIndexToPhysicalPoint(corner)
        for corner in itertools.product(
            (low_kji[2] - 0.5, high_kji[2] + 0.5),
            (low_kji[1] - 0.5, high_kji[1] + 0.5),
            (low_kji[0] - 0.5, high_kji[0] + 0.5),
        )
    ]
    corners_array = np.asarray(corners)
    return corners_array.min(axis=0), corners_array.max(axis=0)


def crop_to_physical_box(
    image: sitk.Image, low: Sequence[float], high: Sequence[float]
) -> sitk.Image:
    """The sub-image of voxels whose extent meets the LPS box [low, high] (mm); geometry kept."""
    corners = [
        image.TransformPhysicalPointToContinuousIndex(tuple(float(c) for c in corner))
        for corner in itertools.product(*zip(low, high))
    ]
    corners_array = np.asarray(corners)
    size = np.asarray(image.GetSize())
    start = np.clip(np.floor(corners_array.min(axis=0) + 0.5), 0, size - 1).astype(int)
    stop = np.clip(np.ceil(corners_array.max(axis=0) - 0.5), 0, size - 1).astype(int)
    if np.any(corners_array.max(axis=0) < -0.5) or np.any(corners_array.min(axis=0) > size - 0.5):
        raise GeometryError(
            f"box {tuple(np.round(low, 1))}…{tuple(np.round(high, 1))} mm lies outside the image "
            f"({describe_grid(image)})"
        )
    return sitk.RegionOfInterest(image, [int(v) for v in stop - start + 1], [int(v) for v in start])


def crop_to_mask(image: sitk.Image, mask: sitk.Image, margin_mm: float = 10.0) -> sitk.Image:
    """``image`` cropped to the bounding box of ``mask``'s non-zero voxels plus ``margin_mm``.

    The mask may lie on another grid (e.g. a CT-grid lesion cropping the PET); geometry is kept,
    so the crop sits at the same physical place as in the full image.
    """
    low, high = mask_physical_bounds(mask)
    return crop_to_physical_box(image, low - margin_mm, high + margin_mm)


def voxel_volume_ml(image: sitk.Image) -> float:
    """Volume of one voxel of ``image`` in mL (spacing in mm)."""
    return float(np.prod(image.GetSpacing())) / 1000.0


# --- lesion boxes in a label image ------------------------------------------------------------


@dataclass(frozen=True)
class Region:
    """A lesion's voxel box in the image it was drawn on (ITK index order x, y, z)."""

    start: tuple[int, int, int]  # first voxel of the box
    size: tuple[int, int, int]  # voxels per axis
    parent_size: tuple[int, int, int]  # size of the whole image


def crop_region(image: sitk.Image, region: Region, margin_voxels: Sequence[int] = (0, 0, 0)):
    """The box of ``region`` grown by ``margin_voxels`` (clipped to the image) and its start."""
    start = [max(0, s - m) for s, m in zip(region.start, margin_voxels)]
    stop = [
        min(n, s + z + m)
        for n, s, z, m in zip(region.parent_size, region.start, region.size, margin_voxels)
    ]
    size = [b - a for a, b in zip(start, stop)]
    return sitk.RegionOfInterest(image, size, start), tuple(start)
