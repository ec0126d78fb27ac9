"""The necrotic and calcified parts of a lesion (§2.3: included in the ROI when they exceed 10 %
of its volume): found on the CT around the lesion, measured, and added to a label image."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from BoneOligoMetLib.image.bone import (
    cortex_connected,
    dilate_mm,
    fill_holes_array,
)
from BoneOligoMetLib.image.geometry import (
    voxel_volume_ml,
)
from BoneOligoMetLib.lesions.rule_config import RuleConfig


@dataclass(frozen=True)
class LesionParts:
    """Necrotic and calcified parts of one lesion's neighbourhood (0/1 masks on a CT crop)."""

    label: int
    necrotic: sitk.Image
    calcified: sitk.Image
    lesion_volume_ml: float  # the mask's volume
    necrotic_ml: float
    necrotic_outside_ml: float  # of the necrotic part, what the mask leaves out
    calcified_ml: float
    calcified_outside_ml: float

    def fraction(self, part: str) -> float:
        """Part volume over the volume of the lesion with the part added (0–1)."""
        part_ml = getattr(self, f"{part}_ml")
        whole = self.lesion_volume_ml + getattr(self, f"{part}_outside_ml")
        return part_ml / whole if whole > 0 else 0.0


def _viable_tissue(hu: np.ndarray, tissue: np.ndarray, config: RuleConfig) -> np.ndarray:
    """``tissue``'s soft voxels (HU < ``necrosis_viable_hu_max``) when those above the necrotic
    range (> ``necrosis_hu_max``) are at least ``necrosis_viable_min_share`` of it, else all
    of ``tissue`` (an osteoblastic lesion, whose only soft voxels are its core)."""
    soft = tissue & (hu < config.necrosis_viable_hu_max)
    matrix = np.count_nonzero(soft & (hu > config.necrosis_hu_max))
    if matrix >= config.necrosis_viable_min_share * np.count_nonzero(tissue):
        return soft
    return tissue


def viable_hu(hu: np.ndarray, tissue: np.ndarray, config: RuleConfig = RuleConfig()) -> float:
    """Median HU of ``tissue`` (bool), on its soft voxels (see :func:`_viable_tissue`)."""
    return float(np.median(hu[_viable_tissue(hu, tissue, config)]))


def necrotic_core(
    hu: np.ndarray,
    allowed: np.ndarray,
    mask: np.ndarray,
    voxel_ml: float,
    config: RuleConfig = RuleConfig(),
    rounds: int = 4,
) -> np.ndarray:
    """Necrotic cores (bool) among the ``allowed`` voxels (the mask and its holes) of a lesion
    ``mask`` (bool) on the CT array ``hu``; the steps are in the module docstring.

    The viable HU starts at the upper quartile of the lesion's (non-dense) voxels, then is
    their median with the previous round's candidates left out (``rounds`` in all: a core of
    up to ~45 % of the lesion is out of the estimate by the third).
    """
    in_range = allowed & (hu >= config.necrosis_hu_min) & (hu <= config.necrosis_hu_max)
    candidates = np.zeros_like(mask)
    viable = float("nan")
    for round_ in range(rounds):
        rest = mask & ~candidates
        if not rest.any():
            break
        if round_ == 0:
            viable = float(np.percentile(hu[_viable_tissue(hu, rest, config)], 75))
        else:
            viable = viable_hu(hu, rest, config)
        candidates = in_range & (hu <= viable - config.necrosis_hu_contrast)
    regions, count = ndimage.label(candidates)
    if count == 0:
        return candidates
    index = np.arange(1, count + 1)
    sizes = np.asarray(ndimage.sum(candidates, regions, index)) * voxel_ml
    levels = np.asarray(ndimage.median(hu, regions, index))
    cores = index[
        (sizes >= config.necrosis_min_ml - 1e-9)
        & (levels <= viable - config.necrosis_core_contrast)
    ]
    found = np.isin(regions, cores)
    if not config.necrosis_grow or not found.any():
        return found
    # Step 4: the core's border at half-way between its own HU and the viable tissue's (the
    # partial-volume edge of a blurred step; an osteoblastic lesion's core edge reads well above
    # necrosis_hu_max), never closer to the viable HU than a core's own median may be
    # (necrosis_core_contrast: the viable tissue's low tail stays out).
    level = float(np.median(hu[found]))
    limit = min(0.5 * (level + viable), viable - config.necrosis_core_contrast)
    grow = allowed & (hu >= config.necrosis_hu_min) & (hu <= limit)
    return ndimage.binary_propagation(found, mask=grow | found)


def lesion_parts(
    ct_crop: sitk.Image,
    suv_crop: sitk.Image,
    mask: np.ndarray,
    label: int,
    suv_max: float,
    config: RuleConfig = RuleConfig(),
) -> LesionParts:
    """Necrotic and calcified parts of a lesion ``mask`` (bool, on ``ct_crop``'s array).

    ``suv_crop`` is the SUV resampled onto ``ct_crop``; ``suv_max`` the lesion's SUVmax. Inside
    the mask and in the holes it encloses (3D, or in any axial, coronal or sagittal slice):
    necrotic = the cores of :func:`necrotic_core` among voxels with SUV <
    ``necrosis_suv_fraction`` × SUVmax; calcified = HU >
    ``calcification_hu`` and ≥ ``calcification_hu_contrast`` above the median HU. Calcified
    voxels are also searched in a ``neighbourhood_mm`` ring around the mask, outside the bone's
    cortical shell (``cortex_mm`` deep: cortex is as dense as calcification).
    """
    hu = sitk.GetArrayViewFromImage(ct_crop)
    suv = sitk.GetArrayViewFromImage(suv_crop)
    median_hu = float(np.median(hu[mask]))
    enclosed = fill_holes_array(mask)
    voxel_ml = voxel_volume_ml(ct_crop)
    necrotic = necrotic_core(
        hu, enclosed & (suv < config.necrosis_suv_fraction * suv_max), mask, voxel_ml, config
    )
    dense = hu > max(config.calcification_hu, median_hu + config.calcification_hu_contrast)
    mask_image = sitk.GetImageFromArray(mask.astype(np.uint8))
    mask_image.CopyInformation(ct_crop)
    ring = sitk.GetArrayFromImage(dilate_mm(mask_image, config.neighbourhood_mm)).astype(bool)
    outside = dense & ~mask
    cortex = cortex_connected(ct_crop, outside, config.bone_threshold_hu)
    calcified = dense & (mask | (enclosed & ~cortex) | (ring & ~cortex))

    def image(array: np.ndarray) -> sitk.Image:
        result = sitk.GetImageFromArray(array.astype(np.uint8))
        result.CopyInformation(ct_crop)
        return result

    return LesionParts(
        label=label,
        necrotic=image(necrotic),
        calcified=image(calcified),
        lesion_volume_ml=float(mask.sum()) * voxel_ml,
        necrotic_ml=float(necrotic.sum()) * voxel_ml,
        necrotic_outside_ml=float((necrotic & ~mask).sum()) * voxel_ml,
        calcified_ml=float(calcified.sum()) * voxel_ml,
        calcified_outside_ml=float((calcified & ~mask).sum()) * voxel_ml,
    )


def include_parts(
    lesions: sitk.Image,
    parts: Sequence[LesionParts],
    *,
    min_fraction: float = RuleConfig.part_min_fraction,
) -> sitk.Image:
    """``lesions`` with each part over ``min_fraction`` of its lesion added to that lesion's label
    (§2.3), and the holes that this closes filled; parts at or under it are negligible and left
    out. Voxels of other lesions are never overwritten.
    """
    array = sitk.GetArrayFromImage(lesions)
    for found in parts:
        for part in ("necrotic", "calcified"):
            if found.fraction(part) <= min_fraction:
                continue
            image = getattr(found, part)
            start = lesions.TransformPhysicalPointToIndex(image.GetOrigin())[::-1]
            region = sitk.GetArrayFromImage(image).astype(bool)
            window = array[tuple(slice(a, a + n) for a, n in zip(start, region.shape))]
            window[region & (window == 0)] = found.label
            mask = window == found.label
            window[ndimage.binary_fill_holes(mask) & ~mask & (window == 0)] = found.label
    result = sitk.GetImageFromArray(array)
    result.CopyInformation(lesions)
    return result
