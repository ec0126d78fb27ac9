"""The study's ROI rules (§2.3) as checks with numbers, for any lesion label image on the CT grid.

Per lesion: holes inside the mask (the whole lesion is to be included), the fraction of the mask
outside bone (minimise non-lesion tissue), the necrotic and calcified parts (included when they
occupy > 10 % of the lesion volume, negligible otherwise), FDG avidity against the liver
(SUVmax > liver SUVmean, §2.3), and the slice of largest area (§2.3's "largest layer").
Per patient: the lesion count (oligometastatic: ≤ 5).

Every check is a :class:`RuleCheck` (value, threshold, status, message, unit) that the CLI prints
as a table and the Slicer panel shows. All thresholds live in one :class:`RuleConfig`, each
with the reason for its default.

Parts are measured inside the mask and in the holes it encloses, so a photopenic core that an
SUV threshold left out is found and can be added with :func:`include_parts`; calcified voxels are
also searched in a thin ring around the mask, except those connected to the bone surface
(cortex, as dense as calcification). A part's fraction is its volume over that of the lesion
with the part added.

Necrosis is decided by CT. On the synthetic cohort (PET resolution 6.5 mm FWHM) necrotic cores
of 3–6 mm radius, whose true uptake is 10–35 % of the viable tissue, read at 50–90 % of the
lesion SUVmax, as the viable rim does: DESIGN's "< 40 % of SUVmax" finds almost none of them.
The soft-tissue HU of the core, clearly below the viable tissue's HU, does; where the viable
tissue is itself near soft-tissue density (lytic lesions of 30–70 HU) neither modality can tell
them apart. Calcification needs HU both above 1000 and well above the lesion's own density.

The necrotic core is found in three steps (:func:`necrotic_core`):

1. The viable tissue's HU: the lesion's voxels that are not core candidates, restricted to the
   soft ones (< ``necrosis_viable_hu_max``) when those above the necrotic range are a fair
   share of them (a mixed lesion's sclerotic patches or a calcification would otherwise set
   it; an osteoblastic lesion has none and is its own reference). It starts at their upper
   quartile and is then re-estimated as their median with the candidates of the previous
   round left out: the lesion's plain median, which a large core pulls down, under-measured
   cores of 18–42 % of the lesion.
2. Candidates: voxels enclosed by the mask with HU in [``necrosis_hu_min``,
   ``necrosis_hu_max``] and ≥ ``necrosis_hu_contrast`` below the viable HU.
3. Cores: connected candidate regions of at least ``necrosis_min_ml`` whose median HU lies
   ≥ ``necrosis_core_contrast`` below the viable HU. The viable tissue's texture and noise
   leave scattered voxels, and blobs where the texture is low, just under the voxel
   threshold; their median sits just under it too, while a core (uniform, 10–40 HU, ≥ 50 HU
   below the viable tissue on the generator) has its median far below. The voxel threshold
   can then sit close to the viable tissue, so that the core's noisy voxels are all kept.
4. The cores grow into the enclosed voxels connected to them whose HU lies below half-way
   between the cores' median HU and the viable HU (and ≥ ``necrosis_core_contrast`` below
   the viable HU): the border of a blurred step, so the core's partial-volume edge, which reads
   above ``necrosis_hu_max`` (up to ~70 HU in a lytic lesion, several hundred inside an
   osteoblastic matrix), is kept (``necrosis_grow``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Callable, Optional

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from BoneOligoMetLib.bone import (
    BoneConfig,
    bone_mask,
    cortex_connected,
    dilate_mm,
    fill_holes_array,
)
from BoneOligoMetLib.errors import BoneOligoMetError, check_keys
from BoneOligoMetLib.geometry import (
    crop_region,
    label_regions,
    mask_labels,
    require_mask_grid,
    require_overlap,
    voxel_volume_ml,
)
from BoneOligoMetLib.geometry import resample_to_reference as _resample
from BoneOligoMetLib.metabolic import metabolic_table
from BoneOligoMetLib.units import require_hu

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]
STATUSES = ("pass", "warn", "fail", "info")


@dataclass(frozen=True)
class RuleConfig:
    """Every threshold of the ROI rule checks, with the reason for its default."""

    # DESIGN: oligometastatic disease is ≤ 5 bone lesions; warn above.
    max_lesions: int = 5
    # Mask fraction outside bone that warns: a lytic lesion's soft-tissue component is
    # legitimate, more than a quarter of the ROI outside bone usually is not.
    max_outside_bone_fraction: float = 0.25
    # Not a bone lesion (status "fail"; classify gives it no probability: the models know bone
    # lesions only): more than this fraction outside bone AND the median lesion voxel farther
    # than not_bone_distance_mm from any voxel ≥ the bone threshold. Both, because a lytic
    # lesion that destroyed a stretch of a thin bone (a rib, a spinous process) lies outside
    # the bone mask yet beside what is left of the bone. bench/bench_bone_domain.py: of 214
    # synthetic bone lesions (truth masks, seeds 100–229) 7 % lie mostly outside the mask, none
    # farther than 7.7 mm; of 650 spheres of 6–15 mm in liver, spleen, kidney, lung and muscle
    # 80 % are not bone lesions by this rule (the others abut a bone, as a soft-tissue part would).
    not_bone_fraction: float = 0.5
    not_bone_distance_mm: float = 10.0
    # §2.3: necrotic / calcified parts over 10 % of the lesion volume are included.
    part_min_fraction: float = 0.10
    # A part counts as "inside the ROI" when what lies outside is below this lesion fraction.
    part_outside_tolerance: float = 0.01
    # Necrotic core (DESIGN: soft tissue 10–40 HU, photopenic); the steps are in the module
    # docstring. Voxels: HU in −20…45 (10–40 widened by ~1 SD of CT noise) AND ≥
    # ``necrosis_hu_contrast`` below the viable tissue's HU AND SUV below
    # ``necrosis_suv_fraction`` × the lesion SUVmax. DESIGN's 40 % assumes a PET that resolves
    # the core; at 6.5 mm FWHM a core of 3–6 mm radius reads at 50–90 % of SUVmax, like the
    # viable rim, so the default 1.0 switches the PET condition off and the CT decides.
    necrosis_suv_fraction: float = 1.0
    necrosis_hu_min: float = -20.0
    necrosis_hu_max: float = 45.0
    # Voxel contrast to the viable HU. 30 keeps a core's voxels up to ≥ 2 noise SDs above its
    # own HU (generator gap ≥ 50 HU, CT noise 5–9 HU on small patients) and still excludes a
    # lytic lesion whose viable tissue is near soft-tissue density as a whole; what it lets in
    # from the viable tissue's low tail the core test below removes. (It was 40 against the
    # lesion's median HU: cores lost their noisier voxels.)
    necrosis_hu_contrast: float = 30.0
    # A connected candidate region is a core when its median HU is ≥ this below the viable HU
    # (the core's own HU is ≥ 50 below; a texture blob's median sits near the voxel threshold)
    # and it holds ≥ necrosis_min_ml (0.03 mL: 3 voxels of 2 × 2 × 3.3 mm; smaller regions are
    # noise, and a core that small is under 2 % of any lesion that can hold a core).
    necrosis_core_contrast: float = 45.0
    necrosis_min_ml: float = 0.03
    # Grow each core to the half-way HU between it and the viable tissue (step 4): the core's
    # edge voxels share their volume with the viable tissue and read above necrosis_hu_max
    # (up to ~70 HU on the synthetic cohort, far more inside an osteoblastic matrix).
    necrosis_grow: bool = True
    # The viable HU is measured on the lesion's voxels below this (soft tissue and lytic
    # matrix; DESIGN: lytic 30–150 HU, mixed lesions' sclerotic patches 400–900) when those
    # between necrosis_hu_max and this are at least necrosis_viable_min_share of its
    # non-candidate voxels; otherwise on all of them (an osteoblastic lesion, 450–900 HU, is
    # its own reference: its only soft voxels are its core, which must not become it).
    necrosis_viable_hu_max: float = 300.0
    necrosis_viable_min_share: float = 0.25
    # Calcification (DESIGN: > 1000 HU): above 1000 HU AND ≥ 300 HU above the lesion's median
    # HU, i.e. "areas of higher density within or around" the lesion (§2.3). Without the
    # contrast, a bone island (900–1800 HU) or a dense osteoblastic matrix reads as calcified.
    calcification_hu: float = 1000.0
    calcification_hu_contrast: float = 300.0
    # Parts the ROI left out are searched this far around it (calcified) or in its holes.
    neighbourhood_mm: float = 3.0
    # §2.3: the liver reference is a 3 cm sphere.
    liver_diameter_mm: float = 30.0
    # Bone mask (see BoneOligoMetLib.bone).
    bone_threshold_hu: float = BoneConfig.threshold_hu
    bone_closing_mm: float = BoneConfig.closing_mm
    bone_dilation_mm: float = BoneConfig.dilation_mm

    def __post_init__(self) -> None:
        for name in (
            "max_outside_bone_fraction",
            "not_bone_fraction",
            "part_min_fraction",
            "necrosis_suv_fraction",
            "necrosis_viable_min_share",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise BoneOligoMetError(f"RuleConfig.{name} = {getattr(self, name)}: not in 0…1")
        if self.necrosis_hu_min >= self.necrosis_hu_max:
            raise BoneOligoMetError(
                f"RuleConfig: necrosis_hu_min {self.necrosis_hu_min} ≥ "
                f"necrosis_hu_max {self.necrosis_hu_max}"
            )
        if self.necrosis_core_contrast < self.necrosis_hu_contrast:
            raise BoneOligoMetError(
                f"RuleConfig: necrosis_core_contrast {self.necrosis_core_contrast} < "
                f"necrosis_hu_contrast {self.necrosis_hu_contrast}: no region could pass"
            )
        if self.necrosis_min_ml < 0:
            raise BoneOligoMetError(f"RuleConfig.necrosis_min_ml = {self.necrosis_min_ml} < 0")

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> RuleConfig:
        """A config from a dict (e.g. YAML/JSON); unknown keys are errors that suggest a name."""
        check_keys(values, [f.name for f in fields(cls)], "RuleConfig: unknown key")
        return cls(**values)  # type: ignore[arg-type]

    @property
    def bone(self) -> BoneConfig:
        return BoneConfig(self.bone_threshold_hu, self.bone_closing_mm, self.bone_dilation_mm)


@dataclass(frozen=True)
class RuleCheck:
    """One rule on one lesion (``lesion=None``: the patient)."""

    rule: str
    lesion: Optional[int]
    value: Optional[float]
    threshold: Optional[float]
    status: str  # "pass" | "warn" | "fail" | "info"
    message: str
    unit: str = ""


@dataclass(frozen=True)
class LargestSlice:
    """The slice of the CT's third (axial) axis where the lesion's area is largest."""

    index: int  # slice index k in the full CT
    z_mm: float  # LPS z of that slice
    area_mm2: float


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


@dataclass(frozen=True)
class RuleReport:
    """All checks, and per lesion the parts and largest slice (for include_parts, Slicer)."""

    checks: list[RuleCheck]
    parts: dict[int, LesionParts]
    largest: dict[int, LargestSlice]


def largest_slice(labels: sitk.Image, label: int) -> LargestSlice:
    """Axial slice (CT third axis) with the most voxels of ``label``; its z (mm) and area."""
    array = sitk.GetArrayViewFromImage(labels) == label
    counts = array.sum(axis=(1, 2))
    k = int(np.argmax(counts))
    j, i = np.argwhere(array[k])[0]
    z = labels.TransformIndexToPhysicalPoint((int(i), int(j), k))[2]
    sx, sy = labels.GetSpacing()[:2]
    return LargestSlice(k, float(z), float(counts[k] * sx * sy))


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


def _part_check(parts: LesionParts, part: str, config: RuleConfig) -> RuleCheck:
    fraction = parts.fraction(part)
    outside = getattr(parts, f"{part}_outside_ml")
    outside_fraction = outside / (parts.lesion_volume_ml + outside)
    text = f"{fraction:.1%} {part}"
    if fraction <= config.part_min_fraction:
        status, message = "pass", f"{text}: ≤ {config.part_min_fraction:.0%}, negligible"
    elif outside_fraction <= config.part_outside_tolerance:
        status, message = "pass", f"{text}: > {config.part_min_fraction:.0%}, inside the ROI"
    else:
        status = "warn"
        message = (
            f"{text}: > {config.part_min_fraction:.0%} and {outside:.2f} mL of it outside the "
            "ROI; add it (include_parts / --include-parts)"
        )
    return RuleCheck(part, parts.label, fraction, config.part_min_fraction, status, message)


def _hole_check(mask: np.ndarray, label: int, voxel_ml: float) -> RuleCheck:
    holes = ndimage.binary_fill_holes(mask) & ~mask
    _, count = ndimage.label(holes)
    volume = float(holes.sum()) * voxel_ml
    if count == 0:
        return RuleCheck("holes", label, 0.0, 0.0, "pass", "no hole inside the mask", "mL")
    message = (
        f"{count} hole(s), {volume:.2f} mL enclosed by the mask; the whole lesion (§2.3) "
        "includes them: fill_holes / --fill-holes"
    )
    return RuleCheck("holes", label, volume, 0.0, "warn", message, "mL")


def _median_bone_distance_mm(mask: np.ndarray, dense: np.ndarray, spacing_zyx) -> float:
    """Median distance (mm) from the mask's voxels to the nearest voxel of ``dense`` (bone by
    HU alone, no closing); infinite when the crop holds no such voxel."""
    if not dense.any():
        return math.inf
    distance = ndimage.distance_transform_edt(~dense, sampling=spacing_zyx)
    return float(np.median(distance[mask]))


def _outside_bone_check(
    mask: np.ndarray,
    bone: np.ndarray,
    dense: np.ndarray,
    spacing_zyx: Sequence[float],
    label: int,
    config: RuleConfig,
) -> RuleCheck:
    """The fraction of the mask outside the bone mask; "fail" when it is not a bone lesion
    (see :attr:`RuleConfig.not_bone_fraction`). ``dense``: voxels ≥ the bone threshold."""
    fraction = float((mask & ~bone).sum()) / float(mask.sum())
    limit = config.max_outside_bone_fraction
    if fraction <= limit:
        status, message = "pass", f"{fraction:.1%} of the mask outside bone (≤ {limit:.0%})"
        return RuleCheck("outside_bone", label, fraction, limit, status, message)
    if fraction > config.not_bone_fraction:
        distance = _median_bone_distance_mm(mask, dense, spacing_zyx)
        if distance > config.not_bone_distance_mm:
            near = "no bone near it" if math.isinf(distance) else (
                f"half of it over {distance:.0f} mm from bone"
            )  # fmt: skip
            message = f"{fraction:.0%} of the mask outside bone, {near}: not a bone lesion"
            return RuleCheck("outside_bone", label, fraction, limit, "fail", message)
    message = (
        f"{fraction:.1%} of the mask outside bone (> {limit:.0%}): a soft-tissue component, "
        "or non-lesion tissue to remove"
    )
    return RuleCheck("outside_bone", label, fraction, limit, "warn", message)


def count_check(count: int, config: RuleConfig = RuleConfig()) -> RuleCheck:
    """Patient-level lesion count against the oligometastatic limit (≤ 5)."""
    if count > config.max_lesions:
        status = "warn"
        message = (
            f"{count} lesions: more than {config.max_lesions}, not oligometastatic as the "
            "study defined it"
        )
    else:
        status, message = "pass", f"{count} lesion(s): oligometastatic (≤ {config.max_lesions})"
    return RuleCheck("lesion_count", None, float(count), float(config.max_lesions), status, message)


def assess_lesions(
    ct: sitk.Image,
    suv: sitk.Image,
    lesions: sitk.Image,
    *,
    liver_seed_lps: Optional[Sequence[float]] = None,
    config: RuleConfig = RuleConfig(),
    progress: Optional[Progress] = None,
) -> RuleReport:
    """All rule checks of a lesion label image on the CT grid, with each lesion's parts.

    ``ct`` in HU, ``suv`` in SUV, ``lesions`` labels 1..n on the CT grid; ``liver_seed_lps``
    (LPS mm) adds the FDG-avidity check. ``progress(fraction, message)`` is called per lesion.
    """
    require_hu(ct, "CT")
    require_overlap(ct, suv, ("CT", "PET"))
    require_mask_grid(lesions, [("CT", ct)], "lesion label image")
    regions = label_regions(lesions, "lesion label image")
    labels = sorted(regions)
    # SUVmax (native PET voxels) and avidity per lesion; checks the SUV units once.
    metabolics = metabolic_table(
        suv, lesions, liver_seed_lps=liver_seed_lps, liver_diameter_mm=config.liver_diameter_mm
    )
    margin_mm = config.neighbourhood_mm + config.bone_closing_mm
    margin = [int(np.ceil(margin_mm / s)) + 1 for s in lesions.GetSpacing()]
    checks = [count_check(len(labels), config)]
    parts: dict[int, LesionParts] = {}
    largest: dict[int, LargestSlice] = {}
    for number, (label, measured) in enumerate(zip(labels, metabolics)):
        if progress is not None:
            progress(number / len(labels), f"lesion {label}")
        ct_crop, _ = crop_region(ct, regions[label], margin)
        label_crop, start = crop_region(lesions, regions[label], margin)
        mask = sitk.GetArrayViewFromImage(label_crop) == label
        suv_crop = _resample(suv, ct_crop, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        bone = bone_mask(ct_crop, config.bone)
        in_bone = sitk.GetArrayViewFromImage(bone).astype(bool)
        checks.append(_hole_check(mask, label, voxel_volume_ml(ct)))
        dense = sitk.GetArrayViewFromImage(ct_crop) >= config.bone_threshold_hu
        spacing = ct_crop.GetSpacing()[::-1]
        checks.append(_outside_bone_check(mask, in_bone, dense, spacing, label, config))
        found = lesion_parts(ct_crop, suv_crop, mask, label, measured.suv_max, config)
        parts[label] = found
        checks.append(_part_check(found, "necrotic", config))
        checks.append(_part_check(found, "calcified", config))
        if measured.liver_suv_mean is not None:
            avid = bool(measured.fdg_avid)
            checks.append(
                RuleCheck(
                    "fdg_avid",
                    label,
                    measured.suv_max,
                    measured.liver_suv_mean,
                    "pass" if avid else "warn",
                    f"SUVmax {measured.suv_max:.2f} {'>' if avid else '≤'} liver SUVmean "
                    f"{measured.liver_suv_mean:.2f}: "
                    f"{'FDG-avid' if avid else 'not FDG-avid'} (§2.3)",
                    "SUV",
                )
            )
        slice_ = largest_slice(label_crop, label)
        slice_ = LargestSlice(slice_.index + start[2], slice_.z_mm, slice_.area_mm2)
        largest[label] = slice_
        checks.append(
            RuleCheck(
                "largest_slice",
                label,
                slice_.area_mm2,
                None,
                "info",
                f"largest area {slice_.area_mm2:.0f} mm² on axial slice {slice_.index} "
                f"(z = {slice_.z_mm:.1f} mm)",
                "mm²",
            )
        )
    if progress is not None:
        progress(1.0, f"{len(labels)} lesion(s) checked")
    return RuleReport(checks, parts, largest)


def check_lesions(
    ct: sitk.Image,
    suv: sitk.Image,
    lesions: sitk.Image,
    *,
    liver_seed_lps: Optional[Sequence[float]] = None,
    config: RuleConfig = RuleConfig(),
    progress: Optional[Progress] = None,
) -> list[RuleCheck]:
    """The rule checks of :func:`assess_lesions` (patient-level count first, then per lesion)."""
    report = assess_lesions(
        ct, suv, lesions, liver_seed_lps=liver_seed_lps, config=config, progress=progress
    )
    return report.checks


def fill_holes(lesions: sitk.Image) -> sitk.Image:
    """Each lesion label with its 3D holes filled (voxels of other lesions are left alone)."""
    array = sitk.GetArrayFromImage(lesions)
    for label in mask_labels(lesions, "lesion label image"):
        mask = array == label
        holes = ndimage.binary_fill_holes(mask) & ~mask & (array == 0)
        array[holes] = label
    result = sitk.GetImageFromArray(array)
    result.CopyInformation(lesions)
    return result


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
