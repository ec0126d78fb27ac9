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
from dataclasses import dataclass
from typing import Optional

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from BoneOligoMetLib.errors import MaskError, Progress
from BoneOligoMetLib.image.bone import (
    bone_mask,
)
from BoneOligoMetLib.image.geometry import (
    crop_region,
    require_mask_grid,
    require_overlap,
    voxel_volume_ml,
)
from BoneOligoMetLib.image.geometry import resample_to_reference as _resample
from BoneOligoMetLib.image.labels import label_regions, mask_labels
from BoneOligoMetLib.image.units import require_finite, require_hu
from BoneOligoMetLib.lesions.metabolic import LesionMetabolics, metabolic_table
from BoneOligoMetLib.lesions.parts import LesionParts, lesion_parts
from BoneOligoMetLib.lesions.rule_config import RuleConfig

log = logging.getLogger(__name__)


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
    measured: Optional[Mapping[int, LesionMetabolics]] = None,
) -> RuleReport:
    """All rule checks of a lesion label image on the CT grid, with each lesion's parts.

    ``ct`` in HU, ``suv`` in SUV, ``lesions`` labels 1..n on the CT grid; ``liver_seed_lps``
    (LPS mm) adds the FDG-avidity check. ``progress(fraction, message)`` is called per lesion.

    ``measured``: every lesion's metabolic parameters, measured already on this SUV with this
    liver seed and ``config.liver_diameter_mm`` (``classify`` has them from the features): the
    rules then use them instead of measuring again, and check the SUV voxels they read
    around each lesion instead of the whole PET.
    """
    require_hu(ct, "CT")
    require_overlap(ct, suv, ("CT", "PET"))
    require_mask_grid(lesions, [("CT", ct)], "lesion label image")
    regions = label_regions(lesions, "lesion label image")
    labels = sorted(regions)
    if measured is None:
        # SUVmax (native PET voxels) and avidity per lesion; checks the SUV units once.
        metabolics = metabolic_table(
            suv, lesions, liver_seed_lps=liver_seed_lps, liver_diameter_mm=config.liver_diameter_mm
        )
    else:
        lacking = [label for label in labels if label not in measured]
        if lacking:
            raise MaskError(f"lesion label image: no metabolic parameters of lesions {lacking}")
        metabolics = [measured[label] for label in labels]
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
        if measured is not None:  # the whole PET was not checked: what this lesion reads is
            require_finite(suv_crop, f"lesion {label}: PET around the lesion")
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
