"""Metabolic parameters per lesion on the SUV PET: SUVmax/mean/min/std, SUVpeak, MTV, TLG, the
liver reference and the lesion/liver ratio, lesion volume and CT HU statistics.

Statistics are computed on the PET's native grid: the clinical SUVmax is a native-voxel value and
interpolating the PET would lower it. The SUV image is cropped around each lesion first (a margin
of the peak-sphere radius plus one voxel, so every sphere centred in the lesion is complete or
meets a true image edge); the whole body is never processed.

A lesion mask may lie on any grid (PET, CT, a crop of either). It is mapped to the PET crop as a
per-PET-voxel coverage fraction (the mask sampled nearest-neighbour on the PET crop supersampled
≥4× per axis, then block-averaged); PET voxels with coverage ≥ 0.5 form the lesion. For a mask on
the PET grid this is exactly the mask. A lesion smaller than half a PET voxel keeps the voxel of
greatest coverage (with a logged warning).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Optional

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from BoneOligoMetLib.errors import BoneOligoMetError, GeometryError, MaskError, Progress, UnitsError
from BoneOligoMetLib.image.geometry import (
    crop_region,
    crop_to_mask,
    describe_grid,
    mask_physical_bounds,
    physical_bounds,
    require_overlap,
    resample_to_reference,
    voxel_volume_ml,
)
from BoneOligoMetLib.image.labels import binary_mask, label_regions, mask_labels
from BoneOligoMetLib.image.peak import (
    PEAK_RADIUS_MM,
    check_weighting,
    sphere_statistics,
    sphere_weights,
)
from BoneOligoMetLib.image.units import require_hu, require_suv
from BoneOligoMetLib.protocol import LIVER_SPHERE_DIAMETER_MM, MAX_LESIONS, SUV_THRESHOLD

log = logging.getLogger(__name__)

# §2.3: semi-automatic PET ROIs and MTV use an absolute threshold of SUV 2.2.
MTV_THRESHOLD_SUV = SUV_THRESHOLD
# §2.3: the physiologic liver background is read in a 3 cm sphere.
LIVER_DIAMETER_MM = LIVER_SPHERE_DIAMETER_MM
# A PET voxel belongs to the lesion when at least this fraction of it is covered by the mask.
MIN_COVERAGE = 0.5
# Supersampling of each PET voxel when a mask on another grid is mapped to the PET.
MIN_SUPERSAMPLING, MAX_SUPERSAMPLING = 4, 16
# A liver SUVmean outside this range usually means the seed is not in the liver.
PLAUSIBLE_LIVER_SUV = (0.5, 5.0)


@dataclass(frozen=True)
class LiverReference:
    """Liver background in a sphere (partial-voxel weights by default) at a seed point."""

    suv_mean: float
    suv_std: float  # weighted population standard deviation
    voxel_count: int  # PET voxels with any part inside the sphere and the image
    volume_ml: float  # sphere volume inside the PET (14.14 mL for a whole 3 cm sphere)
    seed_lps_mm: tuple[float, float, float]
    diameter_mm: float


@dataclass(frozen=True)
class LesionMetabolics:
    """Metabolic parameters of one lesion. SUV values are unitless (g/mL), volumes in mL, TLG in
    SUV·mL, HU in Hounsfield units. ``None`` where the input was not given (CT, liver)."""

    label: int
    suv_max: float
    suv_mean: float
    suv_min: float
    suv_std: float  # population standard deviation (ddof=0) over the lesion's PET voxels
    suv_peak: float  # IBSI global intensity peak (1 cm³ sphere centred on any lesion voxel)
    suv_peak_local: float  # IBSI local intensity peak (sphere centred on the SUVmax voxel)
    mtv_ml: float  # volume of lesion PET voxels with SUV ≥ threshold
    tlg: float  # SUVmean of the MTV voxels × MTV (SUV·mL); 0 when MTV is 0
    volume_ml: float  # lesion volume counted on the mask's own grid
    hu_mean: Optional[float] = None
    hu_std: Optional[float] = None  # population standard deviation
    liver_suv_mean: Optional[float] = None
    suv_max_liver_ratio: Optional[float] = None
    fdg_avid: Optional[bool] = None  # §2.3: SUVmax > liver SUVmean

    def as_row(self) -> dict[str, Any]:
        """Feature-table row: ``lesion_label`` then the values as ``met_*`` columns."""
        values = asdict(self)
        row: dict[str, Any] = {"lesion_label": values.pop("label")}
        row.update({f"met_{key}": value for key, value in values.items()})
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Optional[LesionMetabolics]:
        """The parameters back from a row of :meth:`as_row` (a feature row holds them); None
        when the row lacks one."""
        names = [f.name for f in fields(cls) if f.name != "label"]
        if any(f"met_{name}" not in row for name in names):
            return None
        return cls(label=int(row["lesion_label"]), **{n: row[f"met_{n}"] for n in names})


def _liver_reference(
    suv: sitk.Image, seed_lps_mm: Sequence[float], diameter_mm: float
) -> LiverReference:
    if len(seed_lps_mm) != 3:
        raise GeometryError(f"liver seed needs 3 coordinates (LPS mm), found {len(seed_lps_mm)}")
    seed = (float(seed_lps_mm[0]), float(seed_lps_mm[1]), float(seed_lps_mm[2]))
    try:
        stats = sphere_statistics(suv, seed, diameter_mm / 2.0, "partial", name="PET")
    except GeometryError as error:
        raise GeometryError(f"liver seed: {error}") from error
    point = ", ".join(f"{c:.1f}" for c in seed)
    if not (math.isfinite(stats.mean) and math.isfinite(stats.std)):
        # Any NaN or infinite voxel of the sphere's box makes the weighted sums non-finite.
        raise UnitsError(
            f"PET: NaN or infinite voxels in the {diameter_mm:g} mm liver sphere at "
            f"({point}) mm LPS"
        )
    if stats.mean <= 0:
        raise BoneOligoMetError(
            f"liver seed ({point}) mm LPS: SUVmean {stats.mean:.3g} in the "
            f"{diameter_mm:g} mm sphere; the seed is not in the liver"
        )
    nominal_ml = math.pi * diameter_mm**3 / 6000.0
    if stats.volume_ml < 0.9 * nominal_ml:
        log.warning(
            "liver sphere at (%s) mm LPS: only %.1f of %.1f mL lie inside the PET",
            point,
            stats.volume_ml,
            nominal_ml,
        )
    if not PLAUSIBLE_LIVER_SUV[0] <= stats.mean <= PLAUSIBLE_LIVER_SUV[1]:
        log.warning(
            "liver SUVmean %.3g at (%s) mm LPS is outside %s: check the seed",
            stats.mean,
            point,
            PLAUSIBLE_LIVER_SUV,
        )
    return LiverReference(
        suv_mean=stats.mean,
        suv_std=stats.std,
        voxel_count=stats.voxel_count,
        volume_ml=stats.volume_ml,
        seed_lps_mm=seed,
        diameter_mm=float(diameter_mm),
    )


def liver_reference(
    suv: sitk.Image, seed_lps_mm: Sequence[float], diameter_mm: float = LIVER_DIAMETER_MM
) -> LiverReference:
    """Liver background SUV in a sphere of ``diameter_mm`` (3 cm, §2.3) at an LPS seed (mm).

    Partial-voxel weights: SUVmean and std are weighted by each PET voxel's fraction inside the
    sphere; voxels beyond the image edge are left out. A seed outside the PET is a
    :class:`GeometryError` naming the point.
    """
    require_suv(suv, "PET")
    return _liver_reference(suv, seed_lps_mm, diameter_mm)


def liver_sphere(
    suv: sitk.Image, seed_lps_mm: Sequence[float], diameter_mm: float = LIVER_DIAMETER_MM
) -> LiverReference:
    """:func:`liver_reference` reading only the sphere's voxels (NaN or infinite ones there are
    an error): for callers that judged the PET's units already, e.g. on sampled slices."""
    return _liver_reference(suv, seed_lps_mm, diameter_mm)


def _aligned(mask: sitk.Image, reference: sitk.Image, tolerance: float = 1e-3) -> bool:
    """True when the mask's voxels coincide with the reference's (same grid, any extent)."""
    spacing = np.asarray(reference.GetSpacing())
    if not np.allclose(mask.GetSpacing(), spacing, rtol=tolerance, atol=0):
        return False
    if not np.allclose(mask.GetDirection(), reference.GetDirection(), atol=tolerance):
        return False
    index = np.asarray(mask.TransformPhysicalPointToContinuousIndex(reference.GetOrigin()))
    return bool(np.all(np.abs(index - np.round(index)) <= tolerance))


def _require_inside(lesion: sitk.Image, image: sitk.Image, name: str, image_name: str) -> None:
    """A lesion reaching beyond the image field would get silently truncated statistics."""
    low, high = mask_physical_bounds(lesion)
    image_low, image_high = physical_bounds(image)
    slack = 0.5 * min(image.GetSpacing())
    if np.any(low < image_low - slack) or np.any(high > image_high + slack):
        box = ", ".join(f"{a:.0f}…{b:.0f}" for a, b in zip(low, high))
        raise GeometryError(
            f"{name}: extends beyond the {image_name} field (lesion box {box} mm LPS; "
            f"{image_name} {describe_grid(image)})"
        )


def _centroid_index(lesion: sitk.Image, reference: sitk.Image) -> tuple[int, ...]:
    """Array (z, y, x) index of the reference voxel holding the lesion's centroid."""
    centroid_zyx = np.argwhere(sitk.GetArrayViewFromImage(lesion)).mean(axis=0)
    point = lesion.TransformContinuousIndexToPhysicalPoint(
        tuple(float(v) for v in centroid_zyx[::-1])
    )
    index = np.asarray(reference.TransformPhysicalPointToIndex(point)[::-1])
    return tuple(int(v) for v in np.clip(index, 0, np.asarray(reference.GetSize()[::-1]) - 1))


@functools.lru_cache(maxsize=32)
def _sphere_kernel(spacing_zyx: tuple[float, ...], radius_mm: float, weighting: str) -> np.ndarray:
    """:func:`~BoneOligoMetLib.image.peak.sphere_weights` centred on a voxel, made once per voxel
    size (every lesion of a PET, and every PET of a scanner protocol, shares it)."""
    weights = sphere_weights(spacing_zyx, radius_mm, weighting)
    weights.setflags(write=False)
    return weights


def _intensity_peaks(
    array: np.ndarray,
    roi: np.ndarray,
    spacing_zyx: tuple[float, ...],
    radius_mm: float,
    weighting: str,
) -> tuple[float, float]:
    """:func:`~BoneOligoMetLib.image.peak.intensity_peaks` (the same operations and values) with the
    sphere kernel from the cache."""
    roi = np.asarray(roi, dtype=bool)
    if not roi.any():
        raise MaskError("intensity peak of an empty ROI")
    weights = _sphere_kernel(tuple(float(s) for s in spacing_zyx), float(radius_mm), weighting)
    values = np.asarray(array, dtype=float)
    total = ndimage.correlate(values, weights, mode="constant", cval=0.0)
    norm = ndimage.correlate(np.ones_like(values), weights, mode="constant", cval=0.0)
    means = (total / norm)[roi]
    inside = values[roi]
    local = means[inside == inside.max()].max()
    return float(means.max()), float(local)


def _pet_coverage(pet_crop: sitk.Image, lesion: sitk.Image) -> np.ndarray:
    """Fraction (0–1) of each PET-crop voxel covered by the binary ``lesion`` (array order)."""
    if _aligned(lesion, pet_crop):
        on_pet = resample_to_reference(lesion, pet_crop, sitk.sitkNearestNeighbor, 0.0)
        return sitk.GetArrayFromImage(on_pet).astype(float)
    # Sub-sample spacing no coarser than the mask's finest voxel, so small masks are hit.
    region = crop_to_mask(pet_crop, lesion, 0.0)
    finest = min(lesion.GetSpacing())
    factors = [
        int(np.clip(math.ceil(s / finest - 1e-6), MIN_SUPERSAMPLING, MAX_SUPERSAMPLING))
        for s in region.GetSpacing()
    ]
    fine = sitk.Image([n * f for n, f in zip(region.GetSize(), factors)], sitk.sitkUInt8)
    fine.SetSpacing([s / f for s, f in zip(region.GetSpacing(), factors)])
    fine.SetDirection(region.GetDirection())
    fine.SetOrigin(
        region.TransformContinuousIndexToPhysicalPoint([-0.5 + 0.5 / f for f in factors])
    )
    samples = sitk.GetArrayFromImage(
        resample_to_reference(lesion, fine, sitk.sitkNearestNeighbor, 0.0, sitk.sitkUInt8)
    )
    (nz, ny, nx), (fz, fy, fx) = region.GetSize()[::-1], factors[::-1]
    block = samples.reshape(nz, fz, ny, fy, nx, fx).mean(axis=(1, 3, 5))
    coverage = np.zeros(pet_crop.GetSize()[::-1])
    start = pet_crop.TransformPhysicalPointToIndex(region.GetOrigin())[::-1]
    coverage[tuple(slice(a, a + n) for a, n in zip(start, block.shape))] = block
    if not coverage.any():
        # No sample met the mask (a lesion far smaller than a PET voxel): its centroid voxel.
        lesion_ml = np.count_nonzero(sitk.GetArrayViewFromImage(lesion)) * voxel_volume_ml(lesion)
        coverage[_centroid_index(lesion, pet_crop)] = lesion_ml / voxel_volume_ml(pet_crop)
    return coverage


def _hu_statistics(ct: sitk.Image, lesion: sitk.Image, name: str) -> tuple[float, float]:
    """HU mean and population std over the lesion on the CT grid (nearest-neighbour mask)."""
    _require_inside(lesion, ct, name, "CT")
    ct_crop = crop_to_mask(ct, lesion, 0.0)
    on_ct = sitk.GetArrayFromImage(
        resample_to_reference(lesion, ct_crop, sitk.sitkNearestNeighbor, 0.0, sitk.sitkUInt8)
    ).astype(bool)
    if not on_ct.any():
        log.warning("%s: smaller than a CT voxel; HU read at its centroid voxel", name)
        on_ct[_centroid_index(lesion, ct_crop)] = True
    hu = sitk.GetArrayViewFromImage(ct_crop)[on_ct].astype(float)
    return float(hu.mean()), float(hu.std())


def measure_binary(
    suv: sitk.Image,
    lesion: sitk.Image,
    label: int,
    ct: Optional[sitk.Image],
    liver: Optional[LiverReference],
    threshold_suv: float,
    weighting: str,
    tight: bool = False,
) -> LesionMetabolics:
    """Parameters of one binary (0/1) lesion mask (any grid), as :func:`lesion_metabolics`
    gives them, for a caller that checked the SUV (and CT) and the mask already: nothing is
    checked again. ``tight``: the mask is already cut to the box of its lesion voxels."""
    name = f"lesion {label}"
    if not tight:
        lesion = crop_to_mask(lesion, lesion, 0.0)
    volume_ml = np.count_nonzero(sitk.GetArrayViewFromImage(lesion)) * voxel_volume_ml(lesion)
    _require_inside(lesion, suv, name, "PET")
    pet_crop = crop_to_mask(suv, lesion, PEAK_RADIUS_MM + max(suv.GetSpacing()))
    coverage = _pet_coverage(pet_crop, lesion)
    roi = coverage >= MIN_COVERAGE
    if not roi.any():
        best = np.unravel_index(int(np.argmax(coverage)), coverage.shape)
        log.warning(
            "%s: no PET voxel is %.0f%% covered (lesion %.3g mL, PET voxel %.3g mL); "
            "using the voxel of greatest coverage (%.0f%%)",
            name,
            100 * MIN_COVERAGE,
            volume_ml,
            voxel_volume_ml(pet_crop),
            100 * coverage[best],
        )
        roi[best] = True
    values = sitk.GetArrayFromImage(pet_crop).astype(float)
    lesion_suv = values[roi]
    peak, peak_local = _intensity_peaks(
        values, roi, tuple(pet_crop.GetSpacing()[::-1]), PEAK_RADIUS_MM, weighting
    )
    above = lesion_suv[lesion_suv >= threshold_suv]
    mtv_ml = above.size * voxel_volume_ml(pet_crop)
    suv_max = float(lesion_suv.max())
    hu_mean, hu_std = _hu_statistics(ct, lesion, name) if ct is not None else (None, None)
    result = LesionMetabolics(
        label=int(label),
        suv_max=suv_max,
        suv_mean=float(lesion_suv.mean()),
        suv_min=float(lesion_suv.min()),
        suv_std=float(lesion_suv.std()),
        suv_peak=peak,
        suv_peak_local=peak_local,
        mtv_ml=float(mtv_ml),
        tlg=float(above.mean() * mtv_ml) if above.size else 0.0,
        volume_ml=float(volume_ml),
        hu_mean=hu_mean,
        hu_std=hu_std,
        liver_suv_mean=liver.suv_mean if liver else None,
        suv_max_liver_ratio=suv_max / liver.suv_mean if liver else None,
        fdg_avid=suv_max > liver.suv_mean if liver else None,
    )
    log.debug(  # per measurement: the rule checks and the features each measure a lesion
        "%s: SUVmax %.2f, SUVpeak %.2f, MTV %.2f mL, %d PET voxels",
        name,
        suv_max,
        peak,
        mtv_ml,
        int(roi.sum()),
    )
    return result


def lesion_metabolics(
    suv: sitk.Image,
    mask: sitk.Image,
    label: Optional[int] = None,
    *,
    ct: Optional[sitk.Image] = None,
    liver: Optional[LiverReference] = None,
    threshold_suv: float = MTV_THRESHOLD_SUV,
    weighting: str = "partial",
) -> LesionMetabolics:
    """Metabolic parameters of one lesion of ``mask`` (on any grid) on the SUV PET.

    On the PET's native grid, over the PET voxels ≥ 50 % covered by the lesion: SUVmax, mean,
    min and population std (ddof=0); SUVpeak global and local (IBSI, 1 cm³ sphere); MTV = volume
    (mL) of those voxels with SUV ≥ ``threshold_suv`` (2.2, §2.3) and TLG = their SUVmean × MTV.
    ``volume_ml`` is counted on the mask's own grid; HU mean/std (ddof=0) on the CT's grid, the
    mask resampled nearest-neighbour onto it when it lies on another grid.

    ``label`` picks the lesion in a label image; ``None`` requires a single label. ``ct`` (HU)
    adds HU mean/std; ``liver`` (from :func:`liver_reference`) adds the liver SUVmean, the
    SUVmax/liver ratio and FDG avidity. ``weighting`` is the SUVpeak sphere's voxel weighting
    (``"partial"`` or ``"centre"``, see :mod:`BoneOligoMetLib.image.peak`). An empty mask, a missing
    label or NaN in the mask is a :class:`MaskError` naming the lesion.
    """
    check_weighting(weighting)
    require_suv(suv, "PET")
    if ct is not None:
        require_hu(ct, "CT")
        require_overlap(ct, suv, ("CT", "PET"))
    if label is None:
        labels = mask_labels(mask, "lesion mask")
        if len(labels) > 1:
            raise MaskError(
                f"lesion mask: holds {len(labels)} labels {labels}; choose one lesion label"
            )
        label = labels[0]
    lesion = binary_mask(mask, label, f"lesion {label} mask")
    return measure_binary(suv, lesion, label, ct, liver, threshold_suv, weighting)


def _non_finite_by_lesion(suv: sitk.Image, lesions: sitk.Image) -> dict[int, int]:
    """{lesion label: number of NaN/infinite PET voxels in or beside it}: a PET voxel counts for
    the lesion whose label lies at its centre or one PET voxel away along an axis."""
    values = sitk.GetArrayViewFromImage(suv)
    bad = np.argwhere(~np.isfinite(values))[:, ::-1]  # (i, j, k) of each non-finite voxel
    labels = sitk.GetArrayViewFromImage(lesions)
    size = np.asarray(lesions.GetSize())
    counts: dict[int, int] = {}
    steps = [np.zeros(3)] + [sign * np.eye(3)[axis] for axis in range(3) for sign in (-1, 1)]
    for index in bad[:100_000]:  # a whole NaN image needs no lesion-by-lesion account
        touched = set()
        for step in steps:
            point = suv.TransformContinuousIndexToPhysicalPoint((index + step).tolist())
            where = np.round(lesions.TransformPhysicalPointToContinuousIndex(point)).astype(int)
            if np.all(where >= 0) and np.all(where < size):
                label = int(labels[tuple(where[::-1])])
                if label > 0:
                    touched.add(label)
        for label in touched:
            counts[label] = counts.get(label, 0) + 1
    return dict(sorted(counts.items()))


def require_suv_in_lesions(suv: sitk.Image, lesions: sitk.Image, name: str = "PET") -> None:
    """:func:`~BoneOligoMetLib.image.units.require_suv` whose NaN error names the lesions that touch
    the non-finite voxels, and how many each touches."""
    try:
        require_suv(suv, name)
    except UnitsError as error:
        if "NaN" not in str(error):
            raise
        counts = _non_finite_by_lesion(suv, lesions)
        if not counts:
            raise UnitsError(f"{error} (none in or beside a lesion)") from None
        shown = ", ".join(f"lesion {label}: {n}" for label, n in counts.items())
        raise UnitsError(f"{error}, in or beside a lesion ({shown})") from None


def metabolic_table(
    suv: sitk.Image,
    lesions: sitk.Image,
    *,
    ct: Optional[sitk.Image] = None,
    liver_seed_lps: Optional[Sequence[float]] = None,
    liver_diameter_mm: float = LIVER_DIAMETER_MM,
    threshold_suv: float = MTV_THRESHOLD_SUV,
    weighting: str = "partial",
    progress: Optional[Progress] = None,
) -> list[LesionMetabolics]:
    """Metabolic parameters of every lesion (label > 0) of a label image, in label order.

    Units are checked once on the whole SUV (and CT); the liver reference is read once at
    ``liver_seed_lps`` (LPS mm). ``progress(fraction, message)`` is called per lesion.
    """
    check_weighting(weighting)
    require_suv_in_lesions(suv, lesions)
    if ct is not None:
        require_hu(ct, "CT")
        require_overlap(ct, suv, ("CT", "PET"))
    regions = label_regions(lesions, "lesion label image")
    labels = sorted(regions)
    if len(labels) > MAX_LESIONS:
        log.warning("%d lesions: more than the 5 of an oligometastatic disease", len(labels))
    liver = None
    if liver_seed_lps is not None:
        liver = _liver_reference(suv, liver_seed_lps, liver_diameter_mm)
    results = []
    for number, label in enumerate(labels):
        if progress is not None:
            progress(number / len(labels), f"lesion {label}")
        crop, _ = crop_region(lesions, regions[label])
        lesion = binary_mask(crop, label, f"lesion {label}")
        results.append(measure_binary(suv, lesion, label, ct, liver, threshold_suv, weighting))
    if progress is not None:
        progress(1.0, f"{len(labels)} lesion(s) measured")
    return results
