"""The search for candidate foci on a coarse copy of the study (steps 1–3 of ``candidates``).

1. maps on the PET grid, cropped to the body: the CT's mean HU and bone fraction per PET voxel
   (block means of the CT, never the whole CT resampled); the bone (HU ≥ 150, closed by one
   voxel, holes up to a vertebral body's filled in 3D and in axial slices: marrow, lytic lesions
   and fatty femoral shafts inside their cortex, not the brain inside the skull), the bone closed
   by 11 mm (a lytic lesion through its cortex is in it), its interior; the patient's marrow as
   smooth maps of SUV and HU (normalised convolution over the interior, outliers left out,
   σ 20 mm); and the spill of hot soft tissue into its surroundings (``_organ_spill``);
2. PET foci: local maxima of the SUV at or in bone that reach the study's SUV 2.2 above the
   marrow around them, or stand ≥ 1.3 × above it (SUV ≥ 1.5); beside a hot organ, local maxima of
   what its spill leaves; closer than 10 mm, one focus (the highest over its marrow kept);
3. CT departures: connected regions of the bone's interior ≥ 200 HU above the marrow around them
   (≥ 0.2 mL, none of the PET foci within 10 mm): the non-avid sclerotic metastasis.
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


class CandidateError(BoneOligoMetError):
    """The images do not allow a search (no body, no bone in the PET field)."""


@dataclass(frozen=True)
class CandidateConfig:
    """Parameters of the search (SUV, HU, mm, mL). Defaults tuned on synthetic cohort seed 1701."""

    threshold_suv: float = 2.2  # §2.3: the study's absolute threshold
    bone_hu: float = 150.0  # cancellous bone and denser (bone.py's threshold)
    body_hu: float = -500.0
    marrow_sigma_mm: float = 20.0  # the local marrow reference
    peak_over_marrow: float = 1.3  # a focus below 2.2 must be this much above the local marrow
    peak_floor_suv: float = 1.5
    merge_mm: float = 10.0  # peaks closer than this are one focus
    sclerotic_hu: float = 200.0  # departure from the local marrow (HU) of a sclerotic region
    min_ct_ml: float = 0.2
    max_hole_ml: float = 60.0  # a hole of bone filled as marrow (a vertebral body ~15 mL) ...
    max_hole_cm2: float = 25.0  # ... or in an axial slice; not the brain inside the skull
    closing_mm: float = 11.0  # bridges a cortex broken by a lytic lesion (bone.py: 10 mm)
    hot_organ_suv: float = 2.5  # soft tissue this hot (and ≥ 2 × marrow) spills into bone
    pet_fwhm_mm: float = 6.5  # the PET's resolution, for that spill (a clinical PET: 5–8 mm)
    max_peaks: int = 600  # PET peaks looked at, highest over their marrow first


@dataclass
class WorkMaps:
    """The coarse maps of one patient on (a body crop of) the PET grid, arrays (z, y, x)."""

    grid: sitk.Image  # the crop's geometry (its voxels are the SUV)
    suv: np.ndarray
    hu: np.ndarray  # mean CT HU per PET voxel
    bone_fraction: np.ndarray  # share of the voxel's CT at ≥ bone_hu
    body: np.ndarray
    bone: np.ndarray  # filled bone
    closed_bone: np.ndarray  # bone closed by ~11 mm: lytic lesions through the cortex inside
    interior: np.ndarray
    soft: np.ndarray  # soft tissue: in the body, not bone (closed, + one voxel), not lung
    spill: np.ndarray  # SUV expected from hot organs next to each voxel (PET blur)
    marrow_suv: np.ndarray  # local marrow SUV (smooth map)
    marrow_hu: np.ndarray
    patient_marrow_suv: float  # the patient's median marrow SUV
    patient_marrow_hu: float
    hu_spread: float  # robust SD of the interior's HU around the local marrow

    def point(self, index: Sequence[int]) -> tuple[float, float, float]:
        """LPS mm of a (z, y, x) voxel of the crop (continuous indices allowed)."""
        zyx = [float(v) for v in index]
        return self.grid.TransformContinuousIndexToPhysicalPoint(zyx[::-1])

    @property
    def voxel_ml(self) -> float:
        return float(np.prod(self.grid.GetSpacing())) / 1000.0


def _body_box(body: np.ndarray, pad: int) -> tuple[slice, slice, slice]:
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        present = np.flatnonzero(body.any(axis=other))
        if present.size == 0:
            raise CandidateError("no body in the CT within the PET field (nothing above −500 HU)")
        box.append(slice(max(int(present[0]) - pad, 0), int(present[-1]) + pad + 1))
    return tuple(box)  # type: ignore[return-value]


_AXIAL = np.zeros((3, 3, 3), dtype=bool)
_AXIAL[1] = ndimage.generate_binary_structure(2, 1)


def _fill_small_holes(mask: np.ndarray, max_voxels: float, structure) -> np.ndarray:
    """``mask`` with its holes of at most ``max_voxels`` filled (3D, or per axial slice with
    ``_AXIAL``): marrow and lytic lesions inside their cortex, not the brain inside the skull."""
    holes = ndimage.binary_fill_holes(mask, structure) & ~mask
    labels, count = ndimage.label(holes, structure)
    if count == 0:
        return mask
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    small = sizes <= max_voxels
    small[0] = False
    return mask | small[labels]


def _gaussian(array: np.ndarray, sigma_mm: float, spacing_xyz) -> np.ndarray:
    """Recursive Gaussian (cost independent of σ, multi-threaded) of a float32 array."""
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.SetSpacing(tuple(float(v) for v in spacing_xyz))
    return sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(image, sigma_mm))


def _smooth_reference(values: np.ndarray, mask: np.ndarray, sigma_mm: float, spacing_xyz):
    """Normalised convolution: the Gaussian-weighted mean of ``values`` over ``mask``."""
    weight = _gaussian(mask.astype(np.float32), sigma_mm, spacing_xyz)
    total = _gaussian(np.where(mask, values, 0.0), sigma_mm, spacing_xyz)
    out = np.full(values.shape, np.nan, dtype=np.float32)
    np.divide(total, weight, out=out, where=weight > 1e-3)
    return out


def _robust_reference(values, mask, sigma, spacing, k: float, floor: float):
    """Local reference of ``values`` over ``mask``, recomputed once without the outliers
    (beyond k robust SDs, at least ``floor``): lesions do not raise their own background."""
    first = _smooth_reference(values, mask, sigma, spacing)
    residual = (values - first)[mask & np.isfinite(first)]
    spread = 0.0
    if residual.size:
        spread = 1.4826 * float(np.median(np.abs(residual - np.median(residual))))
    keep = mask & np.isfinite(first) & (np.abs(values - first) <= max(k * spread, floor))
    second = _smooth_reference(values, keep, sigma, spacing)
    filled = np.where(np.isfinite(second), second, first)
    return filled, spread


def _organ_spill(values, soft, marrow_suv: float, spacing_xyz, config: CandidateConfig):
    """The SUV each voxel receives from hot soft tissue next to it (bladder, brain, heart,
    kidneys, bowel) through the PET's blur: an organ's edge is where it falls to half its
    level nearby, and beyond it the level falls as a Gaussian edge (erfc) of the PET's FWHM."""
    from scipy.special import erfc

    hot = soft & (values >= max(config.hot_organ_suv, 2.0 * marrow_suv))
    if not hot.any():
        return np.zeros_like(values)
    sampling = tuple(float(v) for v in spacing_xyz[::-1])
    plateau = ndimage.maximum_filter(np.where(hot, values, 0.0), size=7)
    edge = hot & (values >= 0.5 * plateau)
    distance, nearest = ndimage.distance_transform_edt(~edge, sampling=sampling,
                                                       return_indices=True)  # fmt: skip
    level = plateau[tuple(nearest)]
    half_voxel = 0.5 * float(min(spacing_xyz))
    sigma = config.pet_fwhm_mm / 2.3548
    beyond = np.maximum(distance - half_voxel, 0.0) / (sigma * np.sqrt(2.0))
    return (level * 0.5 * erfc(beyond)).astype(np.float32)


def work_maps(ct: sitk.Image, suv: sitk.Image, config: CandidateConfig) -> WorkMaps:
    """The coarse maps (see the module docstring, step 1)."""
    shrink = [max(1, round(p / c)) for p, c in zip(suv.GetSpacing(), ct.GetSpacing())]
    # Block means of the CT (never the whole CT as floats): HU, and the share ≥ bone_hu in %.
    hu_image = sitk.Resample(
        sitk.BinShrink(ct, shrink), suv, sitk.Transform(), sitk.sitkLinear, -1000.0,
        sitk.sitkFloat32,
    )  # fmt: skip
    percent = sitk.BinShrink(sitk.Cast(ct >= config.bone_hu, sitk.sitkUInt8) * 100, shrink)
    fraction_image = sitk.Resample(
        percent, suv, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32
    )
    hu = sitk.GetArrayFromImage(hu_image)
    body = hu > config.body_hu
    box = _body_box(body, pad=3)
    hu, body = hu[box], body[box]
    fraction = sitk.GetArrayFromImage(fraction_image)[box] / np.float32(100.0)
    grid = suv[box[2], box[1], box[0]]
    values = sitk.GetArrayFromImage(grid).astype(np.float32)

    raw = (hu >= config.bone_hu) | (fraction >= 0.5)
    closed = ndimage.binary_closing(raw, iterations=1, border_value=0)
    voxel_ml = float(np.prod(grid.GetSpacing())) / 1000.0
    bone = raw | _fill_small_holes(closed, config.max_hole_ml / voxel_ml, None)
    area_mm2 = float(np.prod(grid.GetSpacing()[:2]))
    bone |= _fill_small_holes(closed, config.max_hole_cm2 * 100.0 / area_mm2, _AXIAL)
    if not bone.any():
        raise CandidateError("no bone in the CT within the PET field (nothing at ≥ 150 HU)")
    radius = [max(1, round(config.closing_mm / sp)) for sp in grid.GetSpacing()]
    closed_image = sitk.BinaryMorphologicalClosing(
        sitk.GetImageFromArray(bone.astype(np.uint8)), radius, sitk.sitkBall, 1.0, True
    )
    closed_bone = sitk.GetArrayFromImage(closed_image).astype(bool) | bone
    interior = ndimage.binary_erosion(bone, iterations=1) & body
    if interior.sum() < 50:
        interior = bone & body
    spacing, sigma = grid.GetSpacing(), config.marrow_sigma_mm
    red = interior & (hu > 100.0)
    patient_marrow_suv = float(np.median(values[red])) if red.any() else float(
        np.median(values[interior]))  # fmt: skip
    patient_marrow_hu = float(np.median(hu[red])) if red.any() else float(np.median(hu[interior]))
    marrow_suv, _ = _robust_reference(values, interior, sigma, spacing, 3.0, 0.3)
    marrow_hu, spread = _robust_reference(hu, interior, sigma, spacing, 3.0, 60.0)
    marrow_suv = np.where(np.isfinite(marrow_suv), marrow_suv, patient_marrow_suv)
    marrow_hu = np.where(np.isfinite(marrow_hu), marrow_hu, patient_marrow_hu)
    soft = body & ~ndimage.binary_dilation(closed_bone, iterations=1) & (hu > -300.0)
    spill = _organ_spill(values, soft, patient_marrow_suv, spacing, config)
    return WorkMaps(
        grid=grid,
        suv=values,
        hu=hu,
        bone_fraction=fraction,
        body=body,
        bone=bone,
        closed_bone=closed_bone,
        interior=interior,
        soft=soft,
        spill=spill,
        marrow_suv=marrow_suv.astype(np.float32),
        marrow_hu=marrow_hu.astype(np.float32),
        patient_marrow_suv=patient_marrow_suv,
        patient_marrow_hu=patient_marrow_hu,
        hu_spread=spread,
    )


def _suppress(points: np.ndarray, order: np.ndarray, spacing: np.ndarray, radius_mm: float):
    """Greedy non-maximum suppression: ``points`` (n, 3 voxel indices) in ``order``; a point
    within ``radius_mm`` of a kept one is dropped."""
    from scipy.spatial import cKDTree

    if points.shape[0] == 0:
        return points
    ordered = points[order]
    tree = cKDTree(ordered * spacing)
    kept = np.ones(len(ordered), dtype=bool)
    for i in range(len(ordered)):
        if kept[i]:
            for j in tree.query_ball_point(ordered[i] * spacing, radius_mm):
                if j > i:
                    kept[j] = False
    return ordered[kept]


def pet_peaks(maps: WorkMaps, config: CandidateConfig) -> np.ndarray:
    """Voxel indices (n, 3; z, y, x) of the FDG foci at or in bone (step 2), hottest over
    their marrow first."""
    s = maps.suv
    local_max = s >= ndimage.maximum_filter(s, size=3, mode="nearest")
    near_bone = ndimage.binary_dilation(maps.closed_bone, iterations=1) & maps.body
    marrow = np.maximum(maps.marrow_suv, 0.1)
    over = s / marrow
    hot = ((s >= config.threshold_suv) & (over >= 1.1)) | (
        (over >= config.peak_over_marrow) & (s >= config.peak_floor_suv)
    )
    # Beside a hot organ a lesion may be no maximum of the SUV, only of what the organ's
    # spill leaves (brain against the skull, bladder against the pubis).
    excess = s - maps.spill
    local_excess = excess >= ndimage.maximum_filter(excess, size=3, mode="nearest")
    beside = (maps.spill >= 0.3 * s) & (s >= config.threshold_suv)
    beside &= excess >= config.peak_over_marrow * marrow
    found = (local_max & hot) | (local_excess & beside)
    points = np.argwhere(found & near_bone & ~maps.soft)
    contrast = (np.maximum(excess, 0.0) - maps.marrow_suv)[tuple(points.T)]
    order = np.argsort(-contrast, kind="stable")[: config.max_peaks * 3]
    spacing = np.asarray(maps.grid.GetSpacing())[::-1]
    kept = _suppress(points, order, spacing, config.merge_mm)
    return kept[: config.max_peaks]


def ct_regions(maps: WorkMaps, config: CandidateConfig) -> list[tuple[np.ndarray, tuple]]:
    """(voxel index, (box slices, mask in the box)) of the sclerotic CT departures (step 3),
    the index at the region's largest departure."""
    departure = maps.hu - maps.marrow_hu
    mask = maps.interior & (departure >= config.sclerotic_hu)
    components, count = ndimage.label(mask)
    found = []
    if count == 0:
        return found
    min_voxels = max(1, int(np.ceil(config.min_ct_ml / maps.voxel_ml)))
    sizes = np.bincount(components.ravel(), minlength=count + 1)
    for label, box in enumerate(ndimage.find_objects(components), start=1):
        if sizes[label] < min_voxels:
            continue
        region = components[box] == label
        strength = np.where(region, departure[box], -np.inf)
        index = np.unravel_index(int(np.argmax(strength)), region.shape)
        found.append((np.add(index, [b.start for b in box]), (box, region)))
    return found


def collect_foci(maps: WorkMaps, config: CandidateConfig):
    """PET peaks and the sclerotic CT regions with no PET peak within ``merge_mm``:
    (points (n, 3) crop voxels, from_ct (n,) bool, CT regions (box, mask) by candidate)."""
    from scipy.spatial import cKDTree

    peaks = pet_peaks(maps, config)
    spacing = np.asarray(maps.grid.GetSpacing())[::-1]
    points = [tuple(int(v) for v in p) for p in peaks]
    from_ct = [False] * len(points)
    regions: dict[int, tuple] = {}
    tree = cKDTree(peaks * spacing) if len(peaks) else None
    for index, region in ct_regions(maps, config):
        if tree is not None and tree.query_ball_point(np.asarray(index) * spacing, config.merge_mm):
            continue
        regions[len(points)] = region
        points.append(tuple(int(v) for v in index))
        from_ct.append(True)
    return np.asarray(points, dtype=int).reshape(-1, 3), np.asarray(from_ct, dtype=bool), regions
