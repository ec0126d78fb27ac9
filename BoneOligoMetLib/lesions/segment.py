"""Semi-automatic lesion segmentation: SUV ≥ 2.2 (§2.3) region grown from a seed, within bone.

One lesion from one seed point (LPS mm):

1. CT and SUV are cropped to the seed's search sphere (``radius_mm``, 30 mm) plus the bone
   kernels' margin; the whole body is never thresholded or resampled.
2. Bone on the CT crop (:mod:`BoneOligoMetLib.image.bone`: HU threshold, closing, holes filled, 3 mm
   dilation so a lytic lesion that broke the cortex is kept).
3. The SUV crop is resampled onto the CT crop (``mapping="linear"``: the SUV ≥ threshold region
   is the trilinear iso-surface, smoother than PET voxel blocks; ``"nearest"``: each CT voxel
   takes its PET voxel's value, i.e. PET-voxel membership mapped to the CT grid).
4. Candidates: CT voxels with SUV ≥ threshold, in bone, within the sphere. The lesion is the
   face-connected component containing the seed, or, when the seed voxel is below threshold,
   the component nearest to it. The sphere also bounds the growth; a region that reaches it is
   flagged (``reaches_radius``): increase the radius.

5. ``method="petct"`` (the default; §2.3 "use PET and CT where borders are unclear"): SUV ≥ 2.2
   defines the search region (the component above, so no lesion exists without a voxel ≥ 2.2
   near the seed); its part inside bone proper nearest the seed is the anchor (a faint lesion's
   2.2 region may run on along a liver beside a rib). The border is drawn within
   ``margin_mm`` (12 mm) of the anchor (:class:`RefineConfig`):

   - the lesion's CT (its hottest voxels) against the patient's own marrow 8–14 mm around it:
     a lytic and/or a sclerotic departure (both: a mixed lesion) makes the CT draw the border
     in bone where PET keeps a fifth of the lesion's contrast over marrow, joined by PET's
     half-contrast core (a mixed lesion's parts that read like marrow); cortex (≥ 1000 HU
     on the bone's surface) is not sclerosis;
   - a lesion the CT does not show: PET's core at 40 % of its contrast over marrow (about the
     half-maximum edge of a blurred lesion), the border that 2.2 misses on faint lesions;
   - soft tissue outside the bone's own outline (a lytic lesion through or in place of the
     cortex): PET at 40 % of the contrast over the surrounding soft tissue (its 90th
     percentile, so a liver beside a rib does not join), and CT-lytic voxels inside the
     closed bone mask where PET keeps a fifth of that contrast;
   - gaps closed, enclosed holes (necrotic cores, calcifications) filled, the seed's
     component kept.

   ``method="pet"`` is the plain threshold region of step 4.

A hot seed farther than 10 mm from bone is accepted when a quarter of its SUV ≥ 2.2 focus lies
in bone (a lytic lesion that destroyed its bone around the seed); otherwise it lies in soft
tissue and is refused.

The threshold is absolute (SUV 2.2, §2.3: the default, the study's protocol) or relative
(``relative=0.41``: 41 % of the local SUVmax; with ``background=True`` 41 % of the contrast over
the marrow; ``floor_suv`` bounds it from below). With PET blur (≈ 6.5 mm FWHM) a fixed 2.2
grows a hot small lesion well beyond its edge and shrinks a faint one; on the synthetic cohort
``relative=0.4, background=True, floor_suv=2.2`` follows the true edge far better (see
``bench/bench_segment.py``). SUVmax reported is the hottest native PET voxel whose CT voxels the
region covers (the PET is not interpolated for it).

No voxel over the threshold is a :class:`SegmentationError` giving the local SUVmax: a
non-avid sclerotic metastasis is real and must be delineated by hand. A seed in soft tissue,
or on an FDG-avid focus that lies outside bone, is a :class:`SegmentationError` too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from BoneOligoMetLib.errors import GeometryError, Progress, SegmentationError
from BoneOligoMetLib.image.bone import (
    BoneConfig,
    bone_mask,
    dilate_mm,
    physical_grid,
)
from BoneOligoMetLib.image.geometry import (
    crop_to_physical_box,
    describe_grid,
    require_overlap,
    resample_to_reference,
    voxel_volume_ml,
)
from BoneOligoMetLib.image.units import require_hu, require_suv
from BoneOligoMetLib.lesions.refine import RefineConfig, _refine_petct
from BoneOligoMetLib.protocol import SUV_THRESHOLD

log = logging.getLogger(__name__)

THRESHOLD_SUV = SUV_THRESHOLD  # §2.3: absolute SUV threshold of the semi-automatic PET ROI
SEARCH_RADIUS_MM = 30.0
RELATIVE_THRESHOLD = 0.41  # the common "41 % of SUVmax" alternative (EANM)
# A seed farther than this from bone is in soft tissue (a reader clicks on the lesion).
MAX_SEED_BONE_DISTANCE_MM = 10.0
# A hot focus at a seed outside bone with less than this fraction inside bone is soft tissue
# (a node beside bone spills a little into it; a lytic lesion whose centre lies where it
# destroyed the cortex keeps a third or more of its hot region in bone).
MIN_FOCUS_BONE_FRACTION = 0.25
# When the seed voxel is below threshold, the nearest region must come this close to the seed:
# a reader clicks on the lesion, and a hot region 20 mm away is another structure.
MAX_GAP_MM = 10.0
MAPPINGS = ("linear", "nearest")
METHODS = ("petct", "pet")


@dataclass(frozen=True)
class SegmentedLesion:
    """One lesion grown from a seed: a 0/1 mask on a CT crop (physical geometry kept)."""

    seed_lps_mm: tuple[float, float, float]
    mask: sitk.Image
    threshold_suv: float
    suv_max: float  # hottest native PET voxel covered by the region
    voxel_count: int  # CT voxels
    volume_ml: float
    seed_distance_mm: float  # 0 when the seed lies in the region
    reaches_radius: bool  # the region touches the search sphere: it may be cut off
    seconds: float


@dataclass(frozen=True)
class SeedOutcome:
    """What became of one seed of :func:`segment_lesions`."""

    seed_lps_mm: tuple[float, float, float]
    label: Optional[int]  # None when the seed failed
    lesion: Optional[SegmentedLesion]
    error: Optional[str] = None
    merged: bool = False  # the region overlapped an earlier seed's lesion and joined it


@dataclass(frozen=True)
class Segmentation:
    """Labels 1..n on the full CT grid, and one outcome per seed in seed order."""

    labels: sitk.Image
    seeds: list[SeedOutcome]


def _text(point: Sequence[float]) -> str:
    return "(" + ", ".join(f"{c:.1f}" for c in point) + ") mm LPS"


def _require_inside(image: sitk.Image, point: tuple[float, float, float], name: str) -> None:
    index = np.asarray(image.TransformPhysicalPointToContinuousIndex(point))
    if np.any(index < -0.5) or np.any(index > np.asarray(image.GetSize()) - 0.5):
        raise GeometryError(f"seed {_text(point)} lies outside the {name} ({describe_grid(image)})")


def _crops(
    ct: sitk.Image, suv: sitk.Image, seed: tuple[float, float, float], margin_mm: float
) -> tuple[sitk.Image, sitk.Image]:
    low = np.asarray(seed) - margin_mm
    high = np.asarray(seed) + margin_mm
    ct_crop = crop_to_physical_box(ct, low, high)
    pet_margin = max(suv.GetSpacing())  # one more PET voxel for the interpolation at the edge
    return ct_crop, crop_to_physical_box(suv, low - pet_margin, high + pet_margin)


def _relative_threshold(
    relative: float, local_max: float, background: Optional[float], floor_suv: Optional[float]
) -> float:
    """``relative`` × SUVmax, or of the contrast over ``background``; never below the floor."""
    if not 0.0 < relative < 1.0:
        raise SegmentationError(f"relative threshold {relative} must lie between 0 and 1")
    if not local_max > 0:
        raise SegmentationError("relative threshold: no bone near the seed to take SUVmax from")
    if background is None:
        threshold = relative * local_max
    else:
        threshold = background + relative * (local_max - background)
    return max(threshold, floor_suv) if floor_suv is not None else threshold


def segment_lesion(
    ct: sitk.Image,
    suv: sitk.Image,
    seed_lps_mm: Sequence[float],
    *,
    radius_mm: float = SEARCH_RADIUS_MM,
    threshold_suv: float = THRESHOLD_SUV,
    relative: Optional[float] = None,
    background: bool = False,
    floor_suv: Optional[float] = None,
    mapping: str = "linear",
    method: str = "petct",
    refine: Optional[RefineConfig] = None,
    bone: Optional[BoneConfig] = None,
    max_seed_bone_mm: float = MAX_SEED_BONE_DISTANCE_MM,
    max_gap_mm: float = MAX_GAP_MM,
    check_units: bool = True,
) -> SegmentedLesion:
    """Grow one lesion from ``seed_lps_mm`` (LPS mm): SUV ≥ ``threshold_suv`` within bone.

    ``ct`` in HU, ``suv`` in SUV (any grids that overlap). ``relative`` (e.g. 0.41) replaces the
    absolute threshold by that fraction of the local SUVmax (the hottest native PET voxel in bone
    within ``max_gap_mm`` of the seed); with ``background`` it is that fraction of the contrast
    over the marrow (median SUV in bone within the sphere): background + relative × (SUVmax −
    background); ``floor_suv`` (e.g. 2.2) bounds a relative threshold from below, so a faint
    lesion does not flood the marrow. ``bone`` sets the bone mask
    (default :class:`~BoneOligoMetLib.image.bone.BoneConfig`). ``check_units=False`` skips
    the whole-image unit checks (done once by :func:`segment_lesions`).
    """
    started = time.perf_counter()
    bone = BoneConfig() if bone is None else bone
    if method not in METHODS:
        raise SegmentationError(f"method {method!r}: choose one of {', '.join(METHODS)}")
    if method == "petct" and relative is not None:
        raise SegmentationError("method 'petct' sets its own border: use relative with 'pet'")
    if mapping not in MAPPINGS:
        raise SegmentationError(f"mapping {mapping!r}: choose one of {', '.join(MAPPINGS)}")
    if len(seed_lps_mm) != 3:
        raise GeometryError(f"seed needs 3 coordinates (LPS mm), found {len(seed_lps_mm)}")
    seed = (float(seed_lps_mm[0]), float(seed_lps_mm[1]), float(seed_lps_mm[2]))
    if check_units:
        require_hu(ct, "CT")
        require_suv(suv, "PET")
        require_overlap(ct, suv, ("CT", "PET"))
    _require_inside(ct, seed, "CT")
    _require_inside(suv, seed, "PET")
    margin = radius_mm + bone.closing_mm + bone.dilation_mm + 2 * max(ct.GetSpacing())
    ct_crop, pet_crop = _crops(ct, suv, seed, margin)

    bone_core = bone_mask(ct_crop, bone)
    in_bone = sitk.GetArrayFromImage(dilate_mm(bone_core, bone.dilation_mm)).astype(bool)
    x, y, z = physical_grid(ct_crop)
    distance = np.sqrt((x - seed[0]) ** 2 + (y - seed[1]) ** 2 + (z - seed[2]) ** 2)
    sphere = distance <= radius_mm
    native = sitk.GetArrayFromImage(
        resample_to_reference(pet_crop, ct_crop, sitk.sitkNearestNeighbor, 0.0, sitk.sitkFloat32)
    )
    seed_index = ct_crop.TransformPhysicalPointToIndex(seed)[::-1]
    seed_hu = float(sitk.GetArrayViewFromImage(ct_crop)[seed_index])
    seed_suv = float(native[seed_index])
    at_seed = f"HU {seed_hu:.0f}, SUV {seed_suv:.2f} at the seed"

    searched = in_bone & sphere
    if not searched.any():
        raise SegmentationError(
            f"seed {_text(seed)}: no bone within {radius_mm:g} mm of the seed ({at_seed}); "
            "place the seed on the bone lesion"
        )
    bone_distance = float(distance[searched].min())
    gap = min(max_gap_mm, radius_mm)
    near = searched & (distance <= gap)
    local_max = float(native[near].max()) if near.any() else float("nan")
    if relative is None:
        threshold = float(threshold_suv)
    else:
        # Background: the typical (median) marrow SUV in bone within the search sphere.
        marrow = float(np.median(native[searched])) if background else None
        threshold = _relative_threshold(relative, local_max, marrow, floor_suv)
    if mapping == "linear":
        values = sitk.GetArrayFromImage(
            resample_to_reference(pet_crop, ct_crop, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        )
        if not (values[searched] >= threshold).any():
            values = native  # a focus of one or two PET voxels can vanish under interpolation
    else:
        values = native
    fraction = None  # of the hot focus at a seed outside bone, the share in bone
    if not in_bone[seed_index] and values[seed_index] >= threshold:
        focus, _ = ndimage.label((values >= threshold) & sphere)
        fraction = float(in_bone[focus == focus[seed_index]].mean())
    if bone_distance > max_seed_bone_mm and (
        fraction is None or fraction < MIN_FOCUS_BONE_FRACTION
    ):
        raise SegmentationError(
            f"seed {_text(seed)} lies in soft tissue: nearest bone {bone_distance:.0f} mm away "
            f"({at_seed}); place the seed on the bone lesion"
        )
    if bone_distance > max_seed_bone_mm:
        # A hot seed far inside a lesion that destroyed its bone: its region starts where
        # bone remains.
        gap = min(bone_distance + max_gap_mm, radius_mm)
    if fraction is not None and fraction < MIN_FOCUS_BONE_FRACTION:
        raise SegmentationError(
            f"seed {_text(seed)} lies on an FDG-avid focus outside bone ({fraction:.0%} of "
            f"it in bone, {at_seed}): a soft-tissue focus, not a bone lesion (or a lesion that "
            "destroyed its bone: delineate manually)"
        )
    candidates = (values >= threshold) & searched
    if not (candidates & (distance <= gap)).any():
        where = f"{radius_mm:g} mm"
        if candidates.any():
            nearest_mm = float(distance[candidates].min())
            where = f"{gap:g} mm (the nearest is {nearest_mm:.0f} mm away)"
        raise SegmentationError(
            f"seed {_text(seed)}: no voxel with SUV ≥ {threshold:.2f} in bone within {where}; "
            f"local SUVmax {local_max:.2f}, {at_seed}; delineate manually (a non-avid "
            "sclerotic metastasis is possible)"
        )

    components, _ = ndimage.label(candidates)
    if components[seed_index]:
        chosen, seed_distance = components[seed_index], 0.0
    else:
        masked = np.where(candidates, distance, np.inf)
        nearest = np.unravel_index(int(np.argmin(masked)), masked.shape)
        chosen, seed_distance = components[nearest], float(masked[nearest])
    region = components == chosen
    if method == "petct":
        region = _refine_petct(
            region,
            values,
            sitk.GetArrayViewFromImage(ct_crop),
            sitk.GetArrayViewFromImage(bone_core).astype(bool),
            searched,
            sphere,
            seed_index,
            refine or RefineConfig(),
            ct_crop,
            bone.threshold_hu,
        )
    edge = radius_mm - max(ct.GetSpacing())
    reaches = bool((distance[region] > edge).any())
    if reaches:  # flagged in the result (the CLI notes it)
        log.info(
            "seed %s: the region reaches the %g mm search radius and may be cut off",
            _text(seed),
            radius_mm,
        )
    mask = sitk.GetImageFromArray(region.astype(np.uint8))
    mask.CopyInformation(ct_crop)
    count = int(region.sum())
    result = SegmentedLesion(
        seed_lps_mm=seed,
        mask=mask,
        threshold_suv=threshold,
        suv_max=float(native[region].max()),
        voxel_count=count,
        volume_ml=count * voxel_volume_ml(ct),
        seed_distance_mm=seed_distance,
        reaches_radius=reaches,
        seconds=time.perf_counter() - started,
    )
    log.info(
        "seed %s: %d voxels, %.2f mL, SUVmax %.2f (threshold %.2f)",
        _text(seed),
        count,
        result.volume_ml,
        result.suv_max,
        threshold,
    )
    return result


def _paste(labels: np.ndarray, ct: sitk.Image, lesion: SegmentedLesion, next_label: int):
    """Write ``lesion`` into the full label array; (label used, merged with an earlier one)."""
    start = ct.TransformPhysicalPointToIndex(lesion.mask.GetOrigin())[::-1]
    region = sitk.GetArrayViewFromImage(lesion.mask).astype(bool)
    window = labels[tuple(slice(a, a + n) for a, n in zip(start, region.shape))]
    existing = window[region]
    if existing.any():
        label = int(np.bincount(existing[existing > 0]).argmax())
        window[region & (window == 0)] = label
        return label, True
    window[region] = next_label
    return next_label, False


def segment_lesions(
    ct: sitk.Image,
    suv: sitk.Image,
    seeds: Sequence[Sequence[float]],
    *,
    skip_failed: bool = False,
    progress: Optional[Progress] = None,
    **options,
) -> Segmentation:
    """One lesion per seed (LPS mm), as labels 1..n on the full CT grid.

    ``options`` are :func:`segment_lesion`'s keywords. A seed whose region overlaps an earlier
    lesion joins it (``merged``; two seeds on one lesion give one label). A failing seed raises
    its :class:`SegmentationError`, or with ``skip_failed`` is recorded with its message.
    """
    require_hu(ct, "CT")
    require_suv(suv, "PET")
    require_overlap(ct, suv, ("CT", "PET"))
    seeds = [tuple(float(c) for c in point) for point in seeds]  # a list, or an (n, 3) array
    if len(seeds) == 0:
        raise SegmentationError("no seed point given")
    dtype = np.uint8 if len(seeds) < 256 else np.uint16
    labels = np.zeros(ct.GetSize()[::-1], dtype=dtype)
    outcomes: list[SeedOutcome] = []
    next_label = 1
    for number, point in enumerate(seeds):
        if progress is not None:
            progress(number / len(seeds), f"seed {number + 1}")
        seed = tuple(float(c) for c in point)
        try:
            lesion = segment_lesion(ct, suv, seed, check_units=False, **options)
        except SegmentationError as error:
            if not skip_failed:
                raise
            log.info("seed %d: %s", number + 1, error)  # recorded in its outcome
            outcomes.append(SeedOutcome(seed, None, None, str(error)))  # type: ignore[arg-type]
            continue
        label, merged = _paste(labels, ct, lesion, next_label)
        if merged:
            log.info("seed %d: its region overlaps lesion %d; merged", number + 1, label)
        else:
            next_label += 1
        outcomes.append(SeedOutcome(lesion.seed_lps_mm, label, lesion, None, merged))
    if progress is not None:
        progress(1.0, f"{next_label - 1} lesion(s) segmented")
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(ct)
    return Segmentation(image, outcomes)
