"""The ROI rules' thresholds in one validated config, each with the reason for its default."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

from BoneOligoMetLib.errors import BoneOligoMetError, check_keys
from BoneOligoMetLib.image.bone import (
    BoneConfig,
)
from BoneOligoMetLib.protocol import LIVER_SPHERE_DIAMETER_MM, MAX_LESIONS, PART_MIN_FRACTION

STATUSES = ("pass", "warn", "fail", "info")


@dataclass(frozen=True)
class RuleConfig:
    """Every threshold of the ROI rule checks, with the reason for its default."""

    # DESIGN: oligometastatic disease is ≤ 5 bone lesions; warn above.
    max_lesions: int = MAX_LESIONS
    # Mask fraction outside bone that warns: a lytic lesion's soft-tissue component is
    # legitimate, more than a quarter of the ROI outside bone usually is not.
    max_outside_bone_fraction: float = 0.25
    # Not a bone lesion (status "fail"; classify gives it no probability: the models know bone
    # lesions only): more than this fraction outside bone AND the median lesion voxel farther
    # than not_bone_distance_mm from any voxel ≥ the bone threshold. Both, because a lytic
    # lesion that destroyed a stretch of a thin bone (a rib, a spinous process) lies outside
    # the bone mask yet beside what is left of the bone. bench/bench_bone_domain.py: of 214
    # synthetic bone lesions (truth masks, seeds 100–229) 6 % lie mostly outside the mask (all
    # of them lesions that broke their cortex), none farther than 7.7 mm; of 650 spheres of
    # 6–15 mm in liver, spleen, kidney, lung and muscle 81 % are not bone lesions by this rule
    # (the others abut a bone, as a soft-tissue part would).
    not_bone_fraction: float = 0.5
    not_bone_distance_mm: float = 10.0
    # §2.3: necrotic / calcified parts over 10 % of the lesion volume are included.
    part_min_fraction: float = PART_MIN_FRACTION
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
    liver_diameter_mm: float = LIVER_SPHERE_DIAMETER_MM
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
