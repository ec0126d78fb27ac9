"""Rasterising lesions on a grid: masks clipped to bone, parts, and CT / FDG values.

Parts label image (``lesion_parts.nii.gz``): 1 viable, 2 necrotic, 3 calcified. A lesion
confined to bone is its solid ∩ its own bone ∩ marrow: the cortex around it stays intact, as
the CT shows it; a lesion allowed ``outside_bone_mm`` beyond the bone (one that breaks or
replaces the cortex) keeps the voxels within that distance of bone tissue (never air).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from BoneOligoMetLib.synthetic.phantom.anatomy import BONE_TISSUES, MARROW_TISSUES, Tissue
from BoneOligoMetLib.synthetic.phantom.grid import Box, Grid
from BoneOligoMetLib.synthetic.phantom.lesions import Lesion
from BoneOligoMetLib.synthetic.phantom.shapes import sdf_in_box
from BoneOligoMetLib.synthetic.phantom.skeleton import Bone

VIABLE, NECROTIC, CALCIFIED = 1, 2, 3


@dataclass
class RasterLesion:
    """A lesion on one grid: the box it occupies, its mask and parts (1/2/3, 0 outside)."""

    box: Box
    mask: np.ndarray  # bool, box-shaped
    parts: np.ndarray  # uint8, box-shaped

    @property
    def n_voxels(self) -> int:
        return int(np.count_nonzero(self.mask))


def bone_distance_mm(tissue_box: np.ndarray, spacing_xyz) -> np.ndarray:
    """Distance (mm) of every voxel of a tissue block to the nearest bone voxel (0 in bone)."""
    bone = np.isin(tissue_box, BONE_TISSUES)
    if not bone.any():
        return np.full(tissue_box.shape, np.inf, dtype=np.float32)
    sampling = (spacing_xyz[2], spacing_xyz[1], spacing_xyz[0])
    return ndimage.distance_transform_edt(~bone, sampling=sampling).astype(np.float32)


def rasterize_lesion(lesion: Lesion, bone: Bone, grid: Grid, tissues: np.ndarray) -> RasterLesion:
    """``lesion``'s mask and parts on ``grid`` (whose tissue labels are ``tissues``)."""
    low, high = lesion.shape.bounds()
    pad = lesion.outside_bone_mm + 2.0 * max(grid.spacing)
    box = grid.box(low - pad, high + pad)
    if box.empty:
        empty = np.zeros(box.shape, dtype=bool)
        return RasterLesion(box, empty, empty.astype(np.uint8))
    inside = sdf_in_box(lesion.shape, box) <= 0
    tissue_box = tissues[box.slices]
    own_bone = bone.sdf_box(box) <= lesion.outside_bone_mm
    if lesion.outside_bone_mm > 0:
        near_bone = bone_distance_mm(tissue_box, grid.spacing) <= lesion.outside_bone_mm
        allowed = near_bone & own_bone & (tissue_box != Tissue.AIR) & (tissue_box != Tissue.LUNG)
    else:  # confined: the cortex stays intact (only lesions that break it may replace it)
        allowed = np.isin(tissue_box, MARROW_TISSUES) & own_bone
    mask = inside & allowed
    parts = mask.astype(np.uint8)
    if lesion.necrotic is not None:
        parts[mask & (sdf_in_box(lesion.necrotic, box) <= 0)] = NECROTIC
    if lesion.calcified is not None:
        parts[mask & (sdf_in_box(lesion.calcified, box) <= 0)] = CALCIFIED
    return RasterLesion(box, mask, parts)


def lesion_hu(lesion: Lesion, raster: RasterLesion) -> np.ndarray:
    """CT values (HU, float32) of the lesion's voxels (box-shaped; use with ``raster.mask``)."""
    box = raster.box
    values = lesion.hu_viable + lesion.kind.hu_texture * lesion.ct_texture(box.x, box.y, box.z)
    values = np.broadcast_to(values, box.shape).astype(np.float32)
    if lesion.pattern is not None and lesion.hu_secondary is not None:  # mixed: sclerotic patches
        sclerotic = np.broadcast_to(lesion.pattern(box.x, box.y, box.z) > 0.0, box.shape)
        patch = lesion.hu_secondary + 0.5 * (values - lesion.hu_viable)
        values = np.where(sclerotic, patch, values)
    if lesion.rods_xy is not None and lesion.hu_secondary is not None:  # haemangioma dots
        rods = np.zeros(box.shape[1:], dtype=bool)
        for x, y in lesion.rods_xy:
            rods |= ((box.x[0] - x) ** 2 + (box.y[0] - y) ** 2) <= lesion.rod_radius_mm**2
        values = np.where(rods[None, :, :], np.float32(lesion.hu_secondary), values)
    values = np.where(raster.parts == NECROTIC, np.float32(lesion.hu_necrotic), values)
    values = np.where(raster.parts == CALCIFIED, np.float32(lesion.hu_calcified), values)
    return values.astype(np.float32)


def lesion_suv(lesion: Lesion, raster: RasterLesion) -> np.ndarray:
    """FDG level (SUV, float32, before blur and noise) of the lesion's voxels (box-shaped)."""
    box = raster.box
    texture = lesion.pet_texture(box.x, box.y, box.z)
    values = lesion.suv_viable * np.clip(1.0 + 0.15 * texture, 0.5, 1.5)
    values = np.broadcast_to(values, box.shape).astype(np.float32)
    values = np.where(
        raster.parts == NECROTIC, np.float32(lesion.suv_viable * lesion.necrosis_suv_ratio), values
    )
    values = np.where(raster.parts == CALCIFIED, np.float32(lesion.suv_calcified), values)
    return values.astype(np.float32)


def paint(target: np.ndarray, raster: RasterLesion, values) -> None:
    """Write ``values`` (box-shaped array or scalar) into ``target`` on the lesion's voxels."""
    view = target[raster.box.slices]
    if np.isscalar(values):
        view[raster.mask] = values
    else:
        view[raster.mask] = values[raster.mask]
