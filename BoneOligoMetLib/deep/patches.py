"""Lesion-centred patches for the deep branch, from whole-body CT (HU) and SUV PET.

A patch is a cube of ``PatchConfig.size`` voxels of ``spacing_mm``, axis-aligned with the image it
is cut from and centred on the lesion's centre of mass (physical LPS mm, so CT, PET and mask
patches of a lesion cover the same box whatever their grids). Only a box around the lesion is
read: the image is cropped to the patch plus a margin, smoothed against aliasing when the patch
is coarser than the image (Gaussian, σ = ½·√(s_patch² − s_image²) per axis), then interpolated
linearly. The CT is windowed and the SUV clipped to the configured ranges and both are scaled to
[0, 1]; outside the field of view CT reads air and PET zero. The lesion mask patch (for the
deep-supervision loss) is the mask interpolated linearly and thresholded at ½ (a lesion smaller
than a patch voxel keeps the voxels it touches).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Optional

import numpy as np
import SimpleITK as sitk

from BoneOligoMetLib.deep.config import MODALITIES, PatchConfig
from BoneOligoMetLib.errors import GeometryError, MaskError
from BoneOligoMetLib.image.geometry import Region, crop_region, crop_to_physical_box
from BoneOligoMetLib.image.labels import label_regions
from BoneOligoMetLib.image.units import require_finite

OUTSIDE = {"ct": -1000.0, "pet": 0.0}  # HU of air, SUV outside the field of view


@dataclass(frozen=True)
class LesionPatches:
    """One lesion's patches: ``images[modality]`` float32 in [0, 1] and ``mask`` uint8, each a
    (size, size, size) array in NumPy order (z, y, x); ``centre_lps_mm`` the patch centre."""

    label: int
    images: Mapping[str, np.ndarray]
    mask: np.ndarray
    centre_lps_mm: tuple[float, float, float]


def lesion_centre_mm(lesions: sitk.Image, label: int, region: Region) -> np.ndarray:
    """Centre of mass (LPS mm) of the voxels of ``label`` inside its box ``region``."""
    crop, _ = crop_region(lesions, region)
    inside = np.argwhere(sitk.GetArrayViewFromImage(crop) == label)
    if inside.size == 0:
        raise MaskError(f"lesion label {label}: no voxel")
    mean_index = inside.mean(axis=0)[::-1]  # (x, y, z) continuous index in the crop
    return np.asarray(crop.TransformContinuousIndexToPhysicalPoint(mean_index.tolist()))


def patch_reference(centre_mm: Sequence[float], direction: Sequence[float], config: PatchConfig):
    """An empty image on the patch grid: ``config.size``³ voxels centred on ``centre_mm``."""
    size, spacing = config.size, config.spacing_mm
    reference = sitk.Image([size] * 3, sitk.sitkFloat32)
    reference.SetSpacing([spacing] * 3)
    reference.SetDirection(tuple(direction))
    matrix = np.asarray(direction, dtype=float).reshape(3, 3)
    half = (size - 1) / 2.0 * spacing
    reference.SetOrigin(tuple(np.asarray(centre_mm, float) - matrix @ np.full(3, half)))
    return reference


def _antialiased_crop(image: sitk.Image, reference: sitk.Image, name: str) -> sitk.Image:
    margin = 2.0 * max(image.GetSpacing()) + reference.GetSpacing()[0]
    corners = [
        reference.TransformIndexToPhysicalPoint(corner)
        for corner in ((0, 0, 0), tuple(n - 1 for n in reference.GetSize()))
    ]
    low = np.minimum(*corners) - margin
    high = np.maximum(*corners) + margin
    try:
        crop = crop_to_physical_box(image, low, high)
    except GeometryError as error:
        raise GeometryError(f"{name}: the lesion patch {error}") from None
    require_finite(crop, f"{name} patch")  # NaN would spread through the smoothing and the net
    sigma = [
        0.5 * float(np.sqrt(max(0.0, reference.GetSpacing()[0] ** 2 - s**2)))
        for s in crop.GetSpacing()
    ]
    if max(sigma) > 0:
        variance = [v * v for v in sigma]  # mm², per axis; 0 leaves an axis alone
        crop = sitk.DiscreteGaussian(sitk.Cast(crop, sitk.sitkFloat32), variance, 32, 0.01, True)
    return crop


def scaled(values: np.ndarray, modality: str, config: PatchConfig) -> np.ndarray:
    """HU or SUV to [0, 1] with the configured window (fixed, not per patient)."""
    low, high = config.intensity_range(modality)
    return ((np.clip(values, low, high) - low) / (high - low)).astype(np.float32)


def image_patch(
    image: sitk.Image, reference: sitk.Image, modality: str, config: PatchConfig, name: str = ""
) -> np.ndarray:
    """``image`` (HU for ct, SUV for pet) on the patch grid, scaled to [0, 1]."""
    crop = _antialiased_crop(image, reference, name or modality.upper())
    resampled = sitk.Resample(
        crop, reference, sitk.Transform(), sitk.sitkLinear, OUTSIDE[modality], sitk.sitkFloat32
    )
    return scaled(sitk.GetArrayFromImage(resampled), modality, config)


def mask_patch(lesions: sitk.Image, label: int, region: Region, reference: sitk.Image):
    """The lesion's mask on the patch grid (uint8)."""
    crop, _ = crop_region(lesions, region, (2, 2, 2))
    binary = sitk.Cast(sitk.Equal(crop, float(label)), sitk.sitkFloat32)
    resampled = sitk.GetArrayFromImage(
        sitk.Resample(binary, reference, sitk.Transform(), sitk.sitkLinear, 0.0)
    )
    mask = resampled >= 0.5
    if not mask.any():  # a lesion smaller than a patch voxel keeps the voxels it touches
        mask = resampled > 0
    return mask.astype(np.uint8)


def lesion_patches(
    ct: sitk.Image,
    suv: sitk.Image,
    lesions: sitk.Image,
    config: PatchConfig,
    *,
    labels: Optional[Sequence[int]] = None,
    modalities: Sequence[str] = MODALITIES,
    regions: Optional[Mapping[int, Region]] = None,
    name: str = "case",
) -> list[LesionPatches]:
    """Patches of every lesion (or ``labels``) of a patient; ``regions`` from
    :func:`~BoneOligoMetLib.image.labels.label_regions` when already known. The patch axes follow
    the CT's direction."""
    regions = regions if regions is not None else label_regions(lesions)
    chosen = sorted(regions) if labels is None else [int(v) for v in labels]
    images = {"ct": ct, "pet": suv}
    out = []
    for label in chosen:
        if label not in regions:
            raise MaskError(f"{name}: lesion label {label} not found; labels {sorted(regions)}")
        where = f"{name} lesion {label}"
        centre = lesion_centre_mm(lesions, label, regions[label])
        reference = patch_reference(centre, ct.GetDirection(), config)
        patches = {
            m: image_patch(images[m], reference, m, config, f"{where} {m.upper()}")
            for m in modalities
        }
        mask = mask_patch(lesions, label, regions[label], reference)
        if not mask.any():
            raise MaskError(f"{where}: the lesion is smaller than one patch voxel")
        out.append(LesionPatches(label, patches, mask, tuple(float(c) for c in centre)))
    return out
