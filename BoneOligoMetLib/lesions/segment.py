"""Semi-automatic lesion segmentation (§2.3): from a seed point a reader placed on a bone lesion,
the region of SUV ≥ 2.2 (or a relative threshold) within bone, its border drawn by PET and CT
(``method="petct"``, :mod:`BoneOligoMetLib.lesions.refine`) or by the threshold alone (``"pet"``).
Only a sphere around the seed is cropped and searched, never the whole body. A seed that finds
no avid bone lesion (a non-avid sclerotic metastasis, a seed in soft tissue or on an FDG-avid
focus outside bone) is a :class:`SegmentationError` that says what was found, so the reader
delineates that lesion by hand. :func:`segment_lesion` grows one lesion as a sequence of named
steps; :func:`segment_lesions` writes many into labels 1..n on the CT grid.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
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
class SegmentConfig:
    """How :func:`segment_lesion` grows a lesion from its seed (its keywords build one)."""

    # The search sphere around the seed (mm): it bounds the growth; a region that reaches it is
    # flagged (``reaches_radius``): increase the radius.
    radius_mm: float = SEARCH_RADIUS_MM
    threshold_suv: float = THRESHOLD_SUV  # §2.3: the absolute threshold, unless ``relative``
    # ``relative`` (e.g. 0.41) replaces the absolute threshold by that fraction of the local
    # SUVmax, with ``background`` by that fraction of the contrast over the marrow; ``floor_suv``
    # (e.g. 2.2) bounds it from below, so a faint lesion does not flood the marrow. With PET blur
    # (≈ 6.5 mm FWHM) a fixed 2.2 grows a hot small lesion well beyond its edge and shrinks a
    # faint one; on the synthetic cohort ``relative=0.4, background=True, floor_suv=2.2`` follows
    # the true edge far better (``bench/bench_segment.py``). Only with ``method="pet"``.
    relative: Optional[float] = None
    background: bool = False
    floor_suv: Optional[float] = None
    # SUV on the CT grid: "linear" (the SUV ≥ threshold region is the trilinear iso-surface,
    # smoother than PET voxel blocks) or "nearest" (each CT voxel takes its PET voxel's value).
    mapping: str = "linear"
    # "petct" (§2.3 "use PET and CT where borders are unclear": the threshold region anchors a
    # border drawn by PET and CT, :class:`RefineConfig`) or "pet" (the threshold region itself).
    method: str = "petct"
    refine: RefineConfig = field(default_factory=RefineConfig)
    # The CT bone mask (HU threshold, closing, dilation).
    bone: BoneConfig = field(default_factory=BoneConfig)
    max_seed_bone_mm: float = MAX_SEED_BONE_DISTANCE_MM
    max_gap_mm: float = MAX_GAP_MM

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise SegmentationError(f"method {self.method!r}: choose one of {', '.join(METHODS)}")
        if self.method == "petct" and self.relative is not None:
            raise SegmentationError("method 'petct' sets its own border: use relative with 'pet'")
        if self.mapping not in MAPPINGS:
            raise SegmentationError(
                f"mapping {self.mapping!r}: choose one of {', '.join(MAPPINGS)}"
            )


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


@dataclass(frozen=True, eq=False)
class _Neighbourhood:
    """The seed's search sphere on a CT crop: bone, distances and native PET on the crop's grid."""

    seed: tuple[float, float, float]
    ct_crop: sitk.Image
    pet_crop: sitk.Image
    bone_core: np.ndarray  # the bone mask before its dilation
    in_bone: np.ndarray  # the dilated bone mask
    distance: np.ndarray  # mm from the seed
    sphere: np.ndarray  # within radius_mm of the seed
    searched: np.ndarray  # in bone, within the sphere
    native: np.ndarray  # SUV of each CT voxel's PET voxel
    seed_index: tuple[int, int, int]  # (z, y, x) on the crop
    bone_distance_mm: float  # from the seed to the nearest searched voxel
    at_seed: str  # "HU …, SUV … at the seed", for messages


def _text(point: Sequence[float]) -> str:
    return "(" + ", ".join(f"{c:.1f}" for c in point) + ") mm LPS"


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

    ``ct`` in HU, ``suv`` in SUV (any grids that overlap). The other keywords are
    :class:`SegmentConfig`'s fields (``refine`` and ``bone`` None: their defaults).
    ``check_units=False`` skips the whole-image unit checks (done once by :func:`segment_lesions`).
    """
    started = time.perf_counter()
    config = SegmentConfig(
        radius_mm=radius_mm,
        threshold_suv=threshold_suv,
        relative=relative,
        background=background,
        floor_suv=floor_suv,
        mapping=mapping,
        method=method,
        refine=RefineConfig() if refine is None else refine,
        bone=BoneConfig() if bone is None else bone,
        max_seed_bone_mm=max_seed_bone_mm,
        max_gap_mm=max_gap_mm,
    )
    seed = _checked_seed(ct, suv, seed_lps_mm, check_units)
    near = _around_seed(ct, suv, seed, config)
    threshold, local_max = _threshold(near, config)
    values = _pet_on_ct(near, threshold, config.mapping)
    gap = _seed_gap(near, values, threshold, config)
    region, seed_distance = _grow_region(near, values, threshold, gap, local_max, config.radius_mm)
    if config.method == "petct":
        region = _refine_petct(
            region,
            values,
            sitk.GetArrayViewFromImage(near.ct_crop),
            near.bone_core,
            near.searched,
            near.sphere,
            near.seed_index,
            config.refine,
            near.ct_crop,
            config.bone.threshold_hu,
        )
    return _result(ct, near, region, threshold, seed_distance, config.radius_mm, started)


def _checked_seed(
    ct: sitk.Image, suv: sitk.Image, seed_lps_mm: Sequence[float], check_units: bool
) -> tuple[float, float, float]:
    """Check the request: the seed (LPS mm) lies inside both images, in HU and SUV."""
    if len(seed_lps_mm) != 3:
        raise GeometryError(f"seed needs 3 coordinates (LPS mm), found {len(seed_lps_mm)}")
    seed = (float(seed_lps_mm[0]), float(seed_lps_mm[1]), float(seed_lps_mm[2]))
    if check_units:
        require_hu(ct, "CT")
        require_suv(suv, "PET")
        require_overlap(ct, suv, ("CT", "PET"))
    _require_inside(ct, seed, "CT")
    _require_inside(suv, seed, "PET")
    return seed


def _require_inside(image: sitk.Image, point: tuple[float, float, float], name: str) -> None:
    index = np.asarray(image.TransformPhysicalPointToContinuousIndex(point))
    if np.any(index < -0.5) or np.any(index > np.asarray(image.GetSize()) - 0.5):
        raise GeometryError(f"seed {_text(point)} lies outside the {name} ({describe_grid(image)})")


def _around_seed(
    ct: sitk.Image, suv: sitk.Image, seed: tuple[float, float, float], config: SegmentConfig
) -> _Neighbourhood:
    """Locate the bone around the seed: crops, bone mask, search sphere, native PET on the crop.

    CT and SUV are cropped to the sphere plus the bone kernels' margin. Bone is
    :func:`~BoneOligoMetLib.image.bone.bone_mask` dilated by ``bone.dilation_mm``, so a lytic
    lesion that broke the cortex is kept. No bone within the sphere: :class:`SegmentationError`.
    """
    bone = config.bone
    margin = config.radius_mm + bone.closing_mm + bone.dilation_mm + 2 * max(ct.GetSpacing())
    ct_crop, pet_crop = _crops(ct, suv, seed, margin)
    bone_core = bone_mask(ct_crop, bone)
    in_bone = sitk.GetArrayFromImage(dilate_mm(bone_core, bone.dilation_mm)).astype(bool)
    x, y, z = physical_grid(ct_crop)
    distance = np.sqrt((x - seed[0]) ** 2 + (y - seed[1]) ** 2 + (z - seed[2]) ** 2)
    sphere = distance <= config.radius_mm
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
            f"seed {_text(seed)}: no bone within {config.radius_mm:g} mm of the seed ({at_seed}); "
            "place the seed on the bone lesion"
        )
    return _Neighbourhood(
        seed=seed,
        ct_crop=ct_crop,
        pet_crop=pet_crop,
        bone_core=sitk.GetArrayViewFromImage(bone_core).astype(bool),
        in_bone=in_bone,
        distance=distance,
        sphere=sphere,
        searched=searched,
        native=native,
        seed_index=seed_index,
        bone_distance_mm=float(distance[searched].min()),
        at_seed=at_seed,
    )


def _crops(
    ct: sitk.Image, suv: sitk.Image, seed: tuple[float, float, float], margin_mm: float
) -> tuple[sitk.Image, sitk.Image]:
    low = np.asarray(seed) - margin_mm
    high = np.asarray(seed) + margin_mm
    ct_crop = crop_to_physical_box(ct, low, high)
    pet_margin = max(suv.GetSpacing())  # one more PET voxel for the interpolation at the edge
    return ct_crop, crop_to_physical_box(suv, low - pet_margin, high + pet_margin)


def _threshold(near: _Neighbourhood, config: SegmentConfig) -> tuple[float, float]:
    """Set the threshold: (SUV threshold, local SUVmax).

    The local SUVmax is the hottest native PET voxel in bone within ``max_gap_mm`` of the seed
    (nan when there is none); a relative threshold's background is the marrow's median SUV in
    bone within the sphere.
    """
    gap = min(config.max_gap_mm, config.radius_mm)
    close = near.searched & (near.distance <= gap)
    local_max = float(near.native[close].max()) if close.any() else float("nan")
    if config.relative is None:
        return float(config.threshold_suv), local_max
    marrow = float(np.median(near.native[near.searched])) if config.background else None
    return _relative_threshold(config.relative, local_max, marrow, config.floor_suv), local_max


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


def _pet_on_ct(near: _Neighbourhood, threshold: float, mapping: str) -> np.ndarray:
    """Map the SUV onto the CT crop's grid by ``mapping`` (SUV, float32)."""
    if mapping != "linear":
        return near.native
    values = sitk.GetArrayFromImage(
        resample_to_reference(near.pet_crop, near.ct_crop, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    )
    if not (values[near.searched] >= threshold).any():
        return near.native  # a focus of one or two PET voxels can vanish under interpolation
    return values


def _seed_gap(
    near: _Neighbourhood, values: np.ndarray, threshold: float, config: SegmentConfig
) -> float:
    """Judge the seed's place: refuse one in soft tissue; how far (mm) the region may start.

    A seed farther than ``max_seed_bone_mm`` from bone is accepted when at least
    ``MIN_FOCUS_BONE_FRACTION`` of its hot focus lies in bone (a lytic lesion that destroyed its
    bone around the seed): its region starts where bone remains. A hot focus at a seed outside
    bone that lies mostly outside bone is a soft-tissue focus.
    """
    fraction = None  # of the hot focus at a seed outside bone, the share in bone
    seed_index = near.seed_index
    if not near.in_bone[seed_index] and values[seed_index] >= threshold:
        focus, _ = ndimage.label((values >= threshold) & near.sphere)
        fraction = float(near.in_bone[focus == focus[seed_index]].mean())
    far = near.bone_distance_mm > config.max_seed_bone_mm
    if far and (fraction is None or fraction < MIN_FOCUS_BONE_FRACTION):
        raise SegmentationError(
            f"seed {_text(near.seed)} lies in soft tissue: nearest bone "
            f"{near.bone_distance_mm:.0f} mm away ({near.at_seed}); place the seed on the bone "
            "lesion"
        )
    if fraction is not None and fraction < MIN_FOCUS_BONE_FRACTION:
        raise SegmentationError(
            f"seed {_text(near.seed)} lies on an FDG-avid focus outside bone ({fraction:.0%} of "
            f"it in bone, {near.at_seed}): a soft-tissue focus, not a bone lesion (or a lesion "
            "that destroyed its bone: delineate manually)"
        )
    if far:
        return min(near.bone_distance_mm + config.max_gap_mm, config.radius_mm)
    return min(config.max_gap_mm, config.radius_mm)


def _grow_region(
    near: _Neighbourhood,
    values: np.ndarray,
    threshold: float,
    gap: float,
    local_max: float,
    radius_mm: float,
) -> tuple[np.ndarray, float]:
    """Grow the PET region: (mask on the crop, seed distance in mm, 0 when the seed is in it).

    Candidates are voxels with SUV ≥ ``threshold`` in bone within the sphere; the region is the
    face-connected component holding the seed or, when the seed is below threshold, the one
    nearest to it, within ``gap``. None there is a :class:`SegmentationError` giving the local
    SUVmax: a non-avid sclerotic metastasis is real and must be delineated by hand.
    """
    candidates = (values >= threshold) & near.searched
    if not (candidates & (near.distance <= gap)).any():
        where = f"{radius_mm:g} mm"
        if candidates.any():
            nearest_mm = float(near.distance[candidates].min())
            where = f"{gap:g} mm (the nearest is {nearest_mm:.0f} mm away)"
        raise SegmentationError(
            f"seed {_text(near.seed)}: no voxel with SUV ≥ {threshold:.2f} in bone within "
            f"{where}; local SUVmax {local_max:.2f}, {near.at_seed}; delineate manually (a "
            "non-avid sclerotic metastasis is possible)"
        )
    components, _ = ndimage.label(candidates)
    if components[near.seed_index]:
        return components == components[near.seed_index], 0.0
    masked = np.where(candidates, near.distance, np.inf)
    nearest = np.unravel_index(int(np.argmin(masked)), masked.shape)
    return components == components[nearest], float(masked[nearest])


def _result(
    ct: sitk.Image,
    near: _Neighbourhood,
    region: np.ndarray,
    threshold: float,
    seed_distance: float,
    radius_mm: float,
    started: float,
) -> SegmentedLesion:
    """Build the result: the region as a mask on the CT crop, its volume and SUVmax.

    SUVmax is the hottest native PET voxel whose CT voxels the region covers (the PET is not
    interpolated for it).
    """
    edge = radius_mm - max(ct.GetSpacing())
    reaches = bool((near.distance[region] > edge).any())
    if reaches:  # flagged in the result (the CLI notes it)
        log.info(
            "seed %s: the region reaches the %g mm search radius and may be cut off",
            _text(near.seed),
            radius_mm,
        )
    mask = sitk.GetImageFromArray(region.astype(np.uint8))
    mask.CopyInformation(near.ct_crop)
    count = int(region.sum())
    result = SegmentedLesion(
        seed_lps_mm=near.seed,
        mask=mask,
        threshold_suv=threshold,
        suv_max=float(near.native[region].max()),
        voxel_count=count,
        volume_ml=count * voxel_volume_ml(ct),
        seed_distance_mm=seed_distance,
        reaches_radius=reaches,
        seconds=time.perf_counter() - started,
    )
    log.info(
        "seed %s: %d voxels, %.2f mL, SUVmax %.2f (threshold %.2f)",
        _text(near.seed),
        count,
        result.volume_ml,
        result.suv_max,
        threshold,
    )
    return result


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
