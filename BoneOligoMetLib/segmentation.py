"""Semi-automatic lesion segmentation: SUV ≥ 2.2 (§2.3) region grown from a seed, within bone.

One lesion from one seed point (LPS mm):

1. CT and SUV are cropped to the seed's search sphere (``radius_mm``, 30 mm) plus the bone
   kernels' margin; the whole body is never thresholded or resampled.
2. Bone on the CT crop (:mod:`BoneOligoMetLib.bone`: HU threshold, closing, holes filled, 3 mm
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
   near the seed); the border is drawn inside that region and at most ``margin_mm`` (6 mm,
   about one PET FWHM) beyond it, in bone, by the CT where the lesion's CT departs from the
   patient's own marrow (estimated in bone 8–12 mm around the PET region) and PET still shows
   a fifth of the lesion's contrast, and elsewhere by the lesion's own PET contrast (40 % of
   its contrast over marrow). Enclosed holes are filled and the seed's component kept
   (:class:`RefineConfig`). ``method="pet"`` is the plain threshold region of step 4.

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
from typing import Callable, Optional

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from BoneOligoMetLib.bone import BoneConfig, bone_mask, dilate_mm, physical_grid
from BoneOligoMetLib.errors import BoneOligoMetError, GeometryError
from BoneOligoMetLib.geometry import (
    crop_to_physical_box,
    describe_grid,
    require_overlap,
    resample_to_reference,
    voxel_volume_ml,
)
from BoneOligoMetLib.units import require_hu, require_suv

log = logging.getLogger(__name__)

THRESHOLD_SUV = 2.2  # §2.3: absolute SUV threshold of the semi-automatic PET ROI
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
class RefineConfig:
    """The "PET and CT where borders are unclear" border (§2.3) inside the SUV ≥ 2.2 region.

    Defaults tuned on synthetic cohort seed 11 (60 patients), checked on unseen seeds.
    """

    # The true edge lies within about one PET resolution (6.5 mm FWHM) of the 2.2 iso-contour:
    # the CT may move the border this far out of the SUV ≥ 2.2 region, never further.
    margin_mm: float = 6.0
    # PET core: background + this fraction of the lesion's contrast over the marrow.
    core_fraction: float = 0.4
    # Voxels at this fraction of the contrast or more give the lesion's own CT level.
    hot_fraction: float = 0.7
    # A CT voxel joins the lesion only where PET still shows this much of the contrast.
    support_fraction: float = 0.2
    # The lesion is CT-visible when its level departs from normal marrow by ≥ ct_k robust SDs
    # and ≥ ct_min_hu; then CT voxels beyond half that departure are lesion.
    ct_k: float = 3.0
    ct_min_hu: float = 60.0
    # Normal marrow: bone 8–12 mm outside the PET region, below cortical density.
    reference_mm: float = 12.0
    reference_max_hu: float = 700.0
    smooth_mm: float = 1.0  # Gaussian σ on the CT against its noise
    closing_mm: float = 2.0  # bridges one-voxel gaps between the CT and PET parts


def _as_image(array: np.ndarray, like: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.CopyInformation(like)
    return image


def _refine_petct(
    region: np.ndarray,
    values: np.ndarray,
    hu: np.ndarray,
    bone_core: np.ndarray,
    in_bone: np.ndarray,
    searched: np.ndarray,
    seed_index: tuple[int, int, int],
    config: RefineConfig,
    ct_crop: sitk.Image,
) -> np.ndarray:
    """The lesion inside ``region`` (SUV ≥ threshold, grown from the seed) and its margin.

    Where the lesion's CT departs from the patient's own marrow (estimated in bone around the
    lesion outside the PET region), the CT draws the border in bone (within ``margin_mm`` of the
    PET region and where PET keeps ``support_fraction`` of the contrast); elsewhere (outside
    bone, or a lesion that CT does not show) the PET core (``core_fraction`` of the contrast
    over marrow) does. Gaps are closed, enclosed holes filled, the seed's component kept.
    """

    def grow(mask: np.ndarray, mm: float) -> np.ndarray:
        return sitk.GetArrayFromImage(dilate_mm(_as_image(mask, ct_crop), mm)).astype(bool)

    search = grow(region, config.margin_mm) & searched
    near = grow(region, config.margin_mm + 2.0)
    far = grow(region, config.reference_mm)
    peak = float(values[region].max())
    outside = searched & ~near
    background = float(np.median(values[outside] if outside.any() else values[searched]))
    contrast = peak - background
    core = region & (values >= background + config.core_fraction * contrast)
    sigma = [config.smooth_mm / s for s in ct_crop.GetSpacing()[::-1]]
    smooth = ndimage.gaussian_filter(np.asarray(hu, dtype=np.float32), sigma)
    reference = bone_core & far & ~near & (smooth < config.reference_max_hu)
    lesion = core
    hot = region & bone_core & (values >= background + config.hot_fraction * contrast)
    if reference.sum() >= 20 and hot.any():
        marrow = float(np.median(smooth[reference]))
        spread = 1.4826 * float(np.median(np.abs(smooth[reference] - marrow)))
        level = float(np.median(smooth[hot]))
        departure = abs(level - marrow)
        if departure >= max(config.ct_k * spread, config.ct_min_hu):
            # Same side as the lesion's level (lytic: lower), or beyond it (mixed patches).
            side = np.sign(level - marrow) * (smooth - marrow)
            abnormal = (side > departure / 2) | (np.abs(smooth - marrow) > departure)
            abnormal &= values >= background + config.support_fraction * contrast
            lesion = (search & bone_core & abnormal) | (core & ~bone_core)
    if config.closing_mm > 0:
        radius = [max(1, round(config.closing_mm / s)) for s in ct_crop.GetSpacing()]
        closed = sitk.BinaryMorphologicalClosing(
            _as_image(lesion, ct_crop), radius, sitk.sitkBall, 1.0, True
        )
        lesion = sitk.GetArrayFromImage(closed).astype(bool) & search
    lesion = ndimage.binary_fill_holes(lesion) & in_bone
    components, count = ndimage.label(lesion)
    if count == 0:
        return region
    if components[seed_index]:
        return components == components[seed_index]
    overlap = np.bincount(components[region], minlength=count + 1)
    overlap[0] = 0
    return components == int(np.argmax(overlap)) if overlap.max() else region


Progress = Callable[[float, str], None]


class SegmentationError(BoneOligoMetError):
    """No lesion could be grown from a seed (non-avid lesion, seed outside bone)."""


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
    (default :class:`~BoneOligoMetLib.bone.BoneConfig`). ``check_units=False`` skips
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
    if bone_distance > max_seed_bone_mm:
        raise SegmentationError(
            f"seed {_text(seed)} lies in soft tissue: nearest bone {bone_distance:.0f} mm away "
            f"({at_seed}); place the seed on the bone lesion"
        )
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
    if not in_bone[seed_index] and values[seed_index] >= threshold:
        focus, _ = ndimage.label((values >= threshold) & sphere)
        focus_region = focus == focus[seed_index]
        fraction = float(in_bone[focus_region].mean())
        if fraction < MIN_FOCUS_BONE_FRACTION:
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
            in_bone,
            searched,
            seed_index,
            refine or RefineConfig(),
            ct_crop,
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
    if not seeds:
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
