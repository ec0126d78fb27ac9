"""The border of ``method="petct"`` (§2.3: "use PET and CT where borders are unclear") around a
seeded lesion's SUV ≥ 2.2 region: anchored on that region's part in bone, drawn where the CT
departs from the patient's own marrow and the PET keeps part of the lesion's contrast: the 2.2
region alone misses a faint lesion's edge (PET blur) and ignores the CT. The file holds
:class:`RefineConfig` (the tuned settings) and the steps :func:`_refine_petct` runs for
:mod:`BoneOligoMetLib.lesions.segment`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from BoneOligoMetLib.image.bone import (
    dilate_mm,
    fill_holes_array,
)

# Soft tissue (a lytic lesion's part outside bone) is above fat.
SOFT_TISSUE_MIN_HU = -50.0
MIN_REFERENCE_VOXELS = 20  # marrow and soft-tissue references need this many voxels


@dataclass(frozen=True)
class RefineConfig:
    """The "PET and CT where borders are unclear" border (§2.3) around the SUV ≥ 2.2 region.

    Defaults tuned on synthetic cohorts seed 11 and 23 (80 small patients each), checked on the
    unseen seed 7 (``bench/bench_segment.py``) and seed 5150 (the tests).
    """

    # The border moves at most this far from the anchor (the SUV ≥ 2.2 region in bone): a
    # faint lesion's 2.2 region is a few voxels at its hottest point, its edge a radius away.
    margin_mm: float = 12.0
    # PET core in bone where the CT shows nothing: marrow background + this fraction of the
    # lesion's contrast over it (≈ the half-maximum edge of a blurred lesion, a little out).
    core_fraction: float = 0.4
    # Where the CT shows the lesion, PET voxels at this fraction join the CT-abnormal ones:
    # the parts of a mixed lesion whose CT reads like the marrow around it.
    union_fraction: float = 0.5
    # Soft tissue (outside the bone's own outline: a lytic lesion through the cortex): the
    # background is this percentile of the soft tissue around the lesion (a liver or kidney
    # beside the bone raises it), the core this fraction of the contrast over it.
    soft_percentile: float = 90.0
    soft_fraction: float = 0.4
    # Voxels at this fraction of the contrast or more give the lesion's own CT level.
    hot_fraction: float = 0.7
    # A CT voxel joins the lesion only where PET still shows this much of the contrast.
    support_fraction: float = 0.2
    # Normal marrow's CT: its median and robust SD; a voxel departs from it by more than
    # ct_k SDs, clipped to ct_min_hu…ct_max_hu (thin ribs give a wide SD from their cortex).
    ct_k: float = 3.0
    ct_min_hu: float = 60.0
    ct_max_hu: float = 150.0
    # A side (lytic, below the marrow; sclerotic, above it) shows when this share of the hot
    # voxels departs on it; then voxels beyond half the side's departure are lesion.
    side_share: float = 0.05
    # Normal marrow and soft tissue: 8–14 mm from the anchor, marrow below cortical density.
    reference_inner_mm: float = 8.0
    reference_mm: float = 14.0
    reference_max_hu: float = 700.0
    # Cortex (this dense and connected to the bone's surface, and this far around it) is not a
    # sclerotic lesion.
    cortex_hu: float = 1000.0
    cortex_zone_mm: float = 1.0
    smooth_mm: float = 1.0  # Gaussian σ on the CT against its noise
    closing_mm: float = 2.0  # bridges one-voxel gaps between the CT and PET parts


def _as_image(array: np.ndarray, like: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.CopyInformation(like)
    return image


def _component(
    mask: np.ndarray, seed_index: Optional[tuple[int, int, int]], anchor: np.ndarray
) -> np.ndarray:
    """The component of ``mask`` holding the seed (None: outside the array), else the one
    overlapping ``anchor`` most (an empty mask when none does)."""
    components, count = ndimage.label(mask)
    if count == 0:
        return mask
    if seed_index is not None and components[seed_index]:
        return components == components[seed_index]
    overlap = np.bincount(components[anchor], minlength=count + 1)
    overlap[0] = 0
    if not overlap.max():
        return np.zeros_like(mask)
    return components == int(np.argmax(overlap))


def _anchor(region: np.ndarray, bone_core: np.ndarray, seed_index: tuple[int, int, int]):
    """The part of the SUV ≥ 2.2 region inside bone proper nearest the seed (the region
    itself when none is): a faint lesion's region can run on along a liver beside a rib."""
    components, count = ndimage.label(region & bone_core)
    if count == 0:
        return region
    if components[seed_index]:
        return components == components[seed_index]
    points = np.argwhere(components > 0)
    nearest = points[np.argmin(np.abs(points - np.asarray(seed_index)).sum(axis=1))]
    return components == components[tuple(nearest)]


def _refine_petct(
    region: np.ndarray,
    values: np.ndarray,
    hu: np.ndarray,
    bone_core: np.ndarray,
    searched: np.ndarray,
    sphere: np.ndarray,
    seed_index: tuple[int, int, int],
    config: RefineConfig,
    ct_crop: sitk.Image,
    bone_hu: float,
) -> np.ndarray:
    """:func:`_refine_box` on the box ``reference_mm`` around the anchor (all it looks at)."""
    anchor = _anchor(region, bone_core, seed_index)
    spacing_zyx = ct_crop.GetSpacing()[::-1]
    pad = [int(np.ceil(max(config.reference_mm, config.margin_mm) / s)) + 2 for s in spacing_zyx]
    points = np.argwhere(anchor)
    low = np.maximum(points.min(axis=0) - pad, 0)
    high = np.minimum(points.max(axis=0) + np.asarray(pad) + 1, anchor.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(low, high))
    sub_crop = ct_crop[box[2], box[1], box[0]]
    inside = all(a <= i < b for i, a, b in zip(seed_index, low, high))
    sub_seed = tuple(int(i - a) for i, a in zip(seed_index, low)) if inside else None
    lesion = _refine_box(
        anchor[box],
        values[box],
        np.asarray(hu)[box],
        bone_core[box],
        searched[box],
        sphere[box],
        sub_seed,
        config,
        sub_crop,
        bone_hu,
    )
    if lesion is None:
        return region
    result = np.zeros_like(region)
    result[box] = lesion
    return result


@dataclass(frozen=True, eq=False)
class _Tissues:
    """The box's CT read as tissues."""

    smooth: np.ndarray  # HU, Gaussian σ ``smooth_mm`` against the CT's noise
    bone: np.ndarray  # the bone's own outline: smooth ≥ the bone threshold, holes filled
    soft: np.ndarray  # outside it, above fat
    cortex: np.ndarray  # dense voxels on the bone's surface and around them: not sclerosis


@dataclass(frozen=True, eq=False)
class _Reference:
    """Normal tissue around the anchor, and the SUV the lesion's contrasts are taken over."""

    from_anchor: np.ndarray  # mm
    reach: np.ndarray  # within ``margin_mm`` of the anchor, in the sphere
    marrow: np.ndarray  # normal marrow (may hold fewer than MIN_REFERENCE_VOXELS)
    background: float  # SUV of the marrow
    soft_background: float  # SUV of the soft tissue (the marrow's when too little of it)


def _refine_box(
    anchor: np.ndarray,
    values: np.ndarray,
    hu: np.ndarray,
    bone_core: np.ndarray,
    searched: np.ndarray,
    sphere: np.ndarray,
    seed_index: Optional[tuple[int, int, int]],
    config: RefineConfig,
    ct_crop: sitk.Image,
    bone_hu: float,
) -> Optional[np.ndarray]:
    """The lesion around ``anchor`` (the SUV ≥ threshold region in bone) by PET and CT.

    Bone here is the bone's own outline (CT ≥ ``bone_hu``, holes filled, no closing); soft
    tissue the rest above fat. The lesion's CT is compared with the patient's own marrow
    (8–14 mm around the anchor): a lytic and/or sclerotic departure (both: mixed) makes the
    CT draw the border in bone where PET keeps ``support_fraction`` of the contrast, joined
    by PET's ``union_fraction`` core; no departure leaves PET's ``core_fraction`` core. Soft
    tissue joins where PET is hot over the surrounding soft tissue, and, for a lytic lesion,
    where it is CT-abnormal inside the closed bone mask. Gaps are closed, enclosed holes
    (necrotic cores, calcifications) filled, the seed's component kept. None: no contrast over
    the marrow, or nothing left.
    """
    tissues = _tissues(hu, ct_crop, bone_hu, config)
    reference = _reference(anchor, values, tissues, searched, sphere, ct_crop, config)
    peak = float(values[anchor].max())
    contrast = peak - reference.background
    if contrast <= 0:
        return None
    hot = _hot_voxels(anchor, values, bone_core, reference, contrast, config)
    lytic, sclerotic = _ct_departures(hot, tissues, reference.marrow, config)
    lesion = _bone_part(
        values, tissues.bone, reference.background, contrast, lytic, sclerotic, config
    )
    if lytic is not None or sclerotic is None:
        lesion = lesion | _soft_part(
            values, bone_core, tissues.soft, reference.soft_background, peak, lytic, config
        )
    return _closed_component(lesion, reference.reach, tissues, seed_index, anchor, ct_crop, config)


def _tissues(hu: np.ndarray, ct_crop: sitk.Image, bone_hu: float, config: RefineConfig) -> _Tissues:
    """Read the CT: smoothed HU, the bone's own outline, soft tissue, cortex."""
    spacing = ct_crop.GetSpacing()
    sigma = [config.smooth_mm / s for s in spacing[::-1]]
    smooth = ndimage.gaussian_filter(np.asarray(hu, dtype=np.float32), sigma)
    bone = fill_holes_array(smooth >= bone_hu)
    soft = ~bone & (smooth > SOFT_TISSUE_MIN_HU)
    dense = np.asarray(hu) >= config.cortex_hu
    return _Tissues(smooth, bone, soft, _cortex(dense, bone, ct_crop, config))


def _cortex(
    dense: np.ndarray, bone: np.ndarray, ct_crop: sitk.Image, config: RefineConfig
) -> np.ndarray:
    """Find the cortex: dense components touching the bone's outer surface, and ``cortex_zone_mm``
    around them."""
    if not dense.any():
        return dense
    surface = bone & ~ndimage.binary_erosion(bone, border_value=1)
    components, _ = ndimage.label(dense)
    touching = np.unique(components[surface & dense])
    cortex = np.isin(components, touching[touching > 0])
    if config.cortex_zone_mm > 0 and cortex.any():
        cortex = sitk.GetArrayFromImage(
            dilate_mm(_as_image(cortex, ct_crop), config.cortex_zone_mm)
        ).astype(bool)
    return cortex


def _reference(
    anchor: np.ndarray,
    values: np.ndarray,
    tissues: _Tissues,
    searched: np.ndarray,
    sphere: np.ndarray,
    ct_crop: sitk.Image,
    config: RefineConfig,
) -> _Reference:
    """Take the references: normal marrow and soft tissue ``reference_inner_mm``–``reference_mm``
    from the anchor, and their SUV (marrow: median; soft tissue: ``soft_percentile``)."""
    from_anchor = ndimage.distance_transform_edt(~anchor, sampling=ct_crop.GetSpacing()[::-1])
    shell = (from_anchor > config.reference_inner_mm) & (from_anchor <= config.reference_mm)
    shell &= sphere
    marrow = _marrow_reference(tissues, from_anchor, shell, sphere, config)
    if marrow.sum() >= MIN_REFERENCE_VOXELS:
        background = float(np.median(values[marrow]))
    else:
        outside = searched & (from_anchor > config.reference_inner_mm)
        background = float(np.median(values[outside] if outside.any() else values[searched]))
    soft = tissues.soft & shell
    soft_background = background
    if soft.sum() >= MIN_REFERENCE_VOXELS:
        soft_background = float(np.percentile(values[soft], config.soft_percentile))
    reach = (from_anchor <= config.margin_mm) & sphere
    return _Reference(from_anchor, reach, marrow, background, soft_background)


def _marrow_reference(
    tissues: _Tissues,
    from_anchor: np.ndarray,
    shell: np.ndarray,
    sphere: np.ndarray,
    config: RefineConfig,
) -> np.ndarray:
    """Normal marrow (inside the bone's outline, below ``reference_max_hu``) in the shell; for
    thin bones, anywhere in the sphere beyond ``reference_inner_mm``, then the shell's bone
    with its outline."""
    inner_bone = ndimage.binary_erosion(tissues.bone, border_value=1)
    normal = tissues.smooth < config.reference_max_hu
    marrow = inner_bone & shell & normal
    if marrow.sum() < MIN_REFERENCE_VOXELS:
        marrow = inner_bone & sphere & (from_anchor > config.reference_inner_mm) & normal
    if marrow.sum() < MIN_REFERENCE_VOXELS:
        marrow = tissues.bone & shell & normal
    return marrow


def _hot_voxels(
    anchor: np.ndarray,
    values: np.ndarray,
    bone_core: np.ndarray,
    reference: _Reference,
    contrast: float,
    config: RefineConfig,
) -> np.ndarray:
    """The lesion's hottest voxels in bone, whose CT is the lesion's own: ``hot_fraction`` of the
    contrast in the anchor or, when fewer than 8 voxels reach it, half of it within 4 mm."""
    background = reference.background
    hot = anchor & bone_core & (values >= background + config.hot_fraction * contrast)
    if hot.sum() < 8:
        hot = (reference.from_anchor <= 4.0) & bone_core & (values >= background + 0.5 * contrast)
    return hot


def _ct_departures(
    hot: np.ndarray, tissues: _Tissues, marrow_ref: np.ndarray, config: RefineConfig
) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """Read the lesion's CT against the marrow: (lytic voxels, sclerotic voxels), None for a
    side the hot voxels do not show (or too little marrow or lesion to tell)."""
    if marrow_ref.sum() < MIN_REFERENCE_VOXELS or hot.sum() < 3:
        return None, None
    smooth = tissues.smooth
    marrow = float(np.median(smooth[marrow_ref]))
    spread = 1.4826 * float(np.median(np.abs(smooth[marrow_ref] - marrow)))  # robust SD
    k = min(max(config.ct_k * spread, config.ct_min_hu), config.ct_max_hu)
    levels = smooth[hot & ~tissues.cortex] if (hot & ~tissues.cortex).any() else smooth[hot]
    below, above = levels[levels < marrow - k], levels[levels > marrow + k]
    lytic = sclerotic = None
    if below.size >= config.side_share * levels.size:
        lytic = smooth < marrow - max((marrow - float(np.median(below))) / 2, 0.75 * k)
    if above.size >= config.side_share * levels.size and above.size:
        high = smooth > marrow + max((float(np.median(above)) - marrow) / 2, 0.75 * k)
        sclerotic = high & ~tissues.cortex
    return lytic, sclerotic


def _bone_part(
    values: np.ndarray,
    bone: np.ndarray,
    background: float,
    contrast: float,
    lytic: Optional[np.ndarray],
    sclerotic: Optional[np.ndarray],
    config: RefineConfig,
) -> np.ndarray:
    """Draw the lesion in bone: CT-abnormal where PET keeps ``support_fraction`` of the contrast,
    with PET's ``union_fraction`` core; where the CT shows nothing, PET's ``core_fraction`` core."""
    sides = [side for side in (lytic, sclerotic) if side is not None]
    if not sides:
        return bone & (values >= background + config.core_fraction * contrast)
    abnormal = np.logical_or.reduce(sides)
    support = values >= background + config.support_fraction * contrast
    lesion = bone & support & abnormal
    lesion |= bone & (values >= background + config.union_fraction * contrast)
    return lesion


def _soft_part(
    values: np.ndarray,
    bone_core: np.ndarray,
    soft: np.ndarray,
    soft_background: float,
    peak: float,
    lytic: Optional[np.ndarray],
    config: RefineConfig,
) -> np.ndarray:
    """Draw the lesion in soft tissue (through or in place of the cortex): PET at
    ``soft_fraction`` of the contrast over the soft tissue; for a lytic lesion also its
    CT-lytic voxels inside the closed bone mask where PET keeps ``support_fraction``."""
    soft_contrast = peak - soft_background
    part = soft & (values >= soft_background + config.soft_fraction * soft_contrast)
    if lytic is not None:
        soft_support = values >= soft_background + config.support_fraction * soft_contrast
        part |= soft & bone_core & lytic & soft_support
    return part


def _closed_component(
    lesion: np.ndarray,
    reach: np.ndarray,
    tissues: _Tissues,
    seed_index: Optional[tuple[int, int, int]],
    anchor: np.ndarray,
    ct_crop: sitk.Image,
    config: RefineConfig,
) -> Optional[np.ndarray]:
    """Tidy the lesion: cut to ``reach``, gaps closed (within reach, in bone or soft tissue),
    enclosed holes filled, the seed's component kept; None when nothing is left."""
    lesion = lesion & reach
    if config.closing_mm > 0:
        radius = [max(1, round(config.closing_mm / s)) for s in ct_crop.GetSpacing()]
        closed = sitk.BinaryMorphologicalClosing(
            _as_image(lesion, ct_crop), radius, sitk.sitkBall, 1.0, True
        )
        lesion = sitk.GetArrayFromImage(closed).astype(bool) & reach & (tissues.bone | tissues.soft)
    lesion = _component(ndimage.binary_fill_holes(lesion), seed_index, anchor)
    return lesion if lesion.any() else None
