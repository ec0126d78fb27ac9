"""Bone mask from CT (HU), for restricting lesion ROIs to bone and measuring what lies outside it.

The mask is built on a CT crop around a lesion or seed, never on a whole body:

1. threshold: HU ≥ ``threshold_hu`` (150 HU by default: cancellous bone is 150–400 HU and cortex
   1000–1600, while muscle, organs and blood are ≤ 70 HU even with 12 HU of noise);
2. closing with a ball of ``closing_mm`` (10 mm): bridges gaps up to ~2 cm, so a lytic lesion
   that broke through the cortex, or destroyed a short stretch of a rib, is enclosed again
   (5 mm left a third of the synthetic lytic rib lesions outside "bone"; the price is that
   concavities narrower than ~2 cm, e.g. between vertebrae, count as bone too);
3. hole filling, in 3D and in every slice of each of the three orthogonal planes: marrow, lytic
   lesions (30–150 HU), necrotic cores and fatty haemangiomas inside the bone join it; the
   per-slice fill also closes tubes that the crop cuts open (a femoral shaft is a ring in each
   axial slice, a rib in each coronal or sagittal one, neither a closed 3D hole). Holes are
   judged within the crop, so a ring larger than it (the pelvic inlet) stays open;
4. ``dilation_mm`` (3 mm): a margin that keeps a lytic lesion's soft-tissue edge (the
   synthetic ones reach 2–5 mm beyond the cortex) and the partial-volume rim of the cortex.
   :func:`bone_mask` returns steps 1–3 ("the bone"); the segmentation restricts to the dilated
   mask (:func:`bone_search_mask`).

A lytic lesion that destroyed a whole stretch of a thin bone longer than ~2 cm (a rib, a
spinous process) leaves no bone to close over: that part of it is not "bone" here.

Radii in mm become per-axis voxel radii, so anisotropic CT (e.g. 0.98×0.98×3.27 mm) gets an
ellipsoidal kernel of the same physical size.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from BoneOligoMetLib.errors import BoneOligoMetError

log = logging.getLogger(__name__)

# Defaults (see the module docstring for the reason behind each).
BONE_THRESHOLD_HU = 150.0
BONE_CLOSING_MM = 10.0
BONE_DILATION_MM = 3.0


def _plane_structure(axis: int) -> np.ndarray:
    """In-plane 4-connectivity, no neighbour along ``axis``: a slice-by-slice fill in one call."""
    structure = ndimage.generate_binary_structure(3, 1)
    index = [slice(None)] * 3
    for offset in (0, 2):
        index[axis] = offset
        structure[tuple(index)] = False
    return structure


_PLANE_STRUCTURES = tuple(_plane_structure(axis) for axis in range(3))


@dataclass(frozen=True)
class BoneConfig:
    """Parameters of the CT bone mask (HU and mm)."""

    threshold_hu: float = BONE_THRESHOLD_HU
    closing_mm: float = BONE_CLOSING_MM
    dilation_mm: float = BONE_DILATION_MM

    def __post_init__(self) -> None:
        if self.closing_mm < 0 or self.dilation_mm < 0:
            raise BoneOligoMetError(
                f"bone mask: closing_mm ({self.closing_mm}) and dilation_mm "
                f"({self.dilation_mm}) must be ≥ 0"
            )


def radius_in_voxels(image: sitk.Image, radius_mm: float) -> list[int]:
    """Per-axis (x, y, z) voxel radius of a ball of ``radius_mm`` on ``image``'s grid."""
    return [round(radius_mm / s) for s in image.GetSpacing()]


def dilate_mm(mask: sitk.Image, radius_mm: float) -> sitk.Image:
    """Binary (0/1 uint8) dilation by a ball of ``radius_mm`` (ellipsoidal in voxels)."""
    radius = radius_in_voxels(mask, radius_mm)
    mask = sitk.Cast(mask > 0, sitk.sitkUInt8)
    if not any(radius):
        return mask
    return sitk.BinaryDilate(mask, radius, sitk.sitkBall, 0.0, 1.0)


def erode_mm(mask: sitk.Image, radius_mm: float) -> sitk.Image:
    """Binary (0/1 uint8) erosion by a ball of ``radius_mm``; the image border is not an edge."""
    radius = radius_in_voxels(mask, radius_mm)
    mask = sitk.Cast(mask > 0, sitk.sitkUInt8)
    if not any(radius):
        return mask
    return sitk.BinaryErode(mask, radius, sitk.sitkBall, 0.0, 1.0, boundaryToForeground=True)


def fill_holes_array(mask: np.ndarray, slices: bool = True) -> np.ndarray:
    """``mask`` (z, y, x bool) with its 3D holes filled and, with ``slices``, also the 2D holes of
    every axial, coronal and sagittal slice."""
    filled = ndimage.binary_fill_holes(mask)
    if slices:
        for structure in _PLANE_STRUCTURES:
            filled |= ndimage.binary_fill_holes(mask, structure=structure)
    return filled


def bone_mask(ct: sitk.Image, config: BoneConfig = BoneConfig()) -> sitk.Image:
    """Bone (0/1 uint8, same grid) of a CT crop in HU: threshold, closing, holes filled.

    Not dilated: use :func:`dilate_mm` with ``config.dilation_mm`` for the search mask.
    """
    bone = sitk.Cast(ct >= config.threshold_hu, sitk.sitkUInt8)
    radius = radius_in_voxels(ct, config.closing_mm)
    if any(radius):
        # safeBorder pads the image so that bone cut by the crop edge is not eroded away.
        bone = sitk.BinaryMorphologicalClosing(bone, radius, sitk.sitkBall, 1.0, True)
    filled = fill_holes_array(sitk.GetArrayViewFromImage(bone).astype(bool))
    result = sitk.GetImageFromArray(filled.astype(np.uint8))
    result.CopyInformation(ct)
    return result


def cortex_connected(ct: sitk.Image, dense: np.ndarray, threshold_hu: float) -> np.ndarray:
    """Voxels of ``dense`` (z, y, x bool) connected, through dense voxels, to the bone's outer
    surface: the cortex, which is as dense as a calcification but reaches the surface.

    Bone here is the HU threshold with holes filled but no closing, so its surface is the real
    one (a closing would move it outward in concavities).
    """
    bone = fill_holes_array(sitk.GetArrayFromImage(ct >= threshold_hu).astype(bool))
    surface = bone & ~ndimage.binary_erosion(bone, border_value=1)
    components, _ = ndimage.label(dense)
    touching = np.unique(components[surface & dense])
    return np.isin(components, touching[touching > 0])


def bone_search_mask(ct: sitk.Image, config: BoneConfig = BoneConfig()) -> sitk.Image:
    """The bone of :func:`bone_mask` dilated by ``config.dilation_mm``: where lesions may lie."""
    return dilate_mm(bone_mask(ct, config), config.dilation_mm)


def nearest_voxel_distance_mm(
    mask: sitk.Image, point_lps_mm: Sequence[float]
) -> tuple[float, tuple[int, int, int]]:
    """Distance (mm) from an LPS point to the nearest non-zero voxel centre of ``mask``, and that
    voxel's (z, y, x) array index; ``inf`` and (-1, -1, -1) when the mask is empty."""
    array = sitk.GetArrayViewFromImage(mask)
    indices = np.argwhere(array)
    if indices.size == 0:
        return float("inf"), (-1, -1, -1)
    points = physical_points(mask, indices)
    distances = np.linalg.norm(points - np.asarray(point_lps_mm, dtype=float), axis=1)
    best = int(np.argmin(distances))
    return float(distances[best]), tuple(int(v) for v in indices[best])  # type: ignore[return-value]


def physical_points(image: sitk.Image, indices_zyx: np.ndarray) -> np.ndarray:
    """LPS mm of voxel centres given as an (n, 3) array of (z, y, x) indices."""
    spacing = np.asarray(image.GetSpacing())
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    matrix = direction * spacing  # column j scaled by spacing j
    return np.asarray(indices_zyx, dtype=float)[:, ::-1] @ matrix.T + np.asarray(image.GetOrigin())


def physical_grid(image: sitk.Image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LPS coordinates (x, y, z), each shaped like the image array (z, y, x), of voxel centres."""
    size_zyx = image.GetSize()[::-1]
    k, j, i = np.meshgrid(*(np.arange(n, dtype=float) for n in size_zyx), indexing="ij")
    matrix = np.asarray(image.GetDirection()).reshape(3, 3) * np.asarray(image.GetSpacing())
    origin = np.asarray(image.GetOrigin())
    return tuple(  # type: ignore[return-value]
        origin[a] + matrix[a, 0] * i + matrix[a, 1] * j + matrix[a, 2] * k for a in range(3)
    )
