"""The lesion types of the synthetic cohort and their CT / FDG distributions (tuned; see README).

Numbers start from DESIGN.md's "Typical appearances" table and the study's cohort (§2.1, Table 1:
312 lesions, 107 benign; sites limbs 21 %, vertebrae 24 %, pelvis 24 %, ribs 22 %, skull 8 %;
osteolytic 38 %, osteogenic 44 %, mixed 17 %). ``suv_median``/``suv_sigma`` describe the
lognormal FDG level of the lesion's viable tissue before the scanner's blur and noise; the SUVmax a
reader measures is lower in small lesions (partial volume) and noisier. They were tuned so that
SUVmax alone separates benign from malignant with an AUC of about 0.85 on a 200-patient cohort:
good but imperfect, as clinically (avid fractures and fibrous dysplasia, faint sclerotic
metastases).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

BONE_CHANGES = ("osteolytic", "osteogenic", "mixed")
SUBTYPES = {"HR+": 0.65, "HER2+": 0.20, "triple-negative": 0.15}  # share of patients
# Triple-negative and HER2+ metastases are on average more FDG-avid than HR+ ones.
SUBTYPE_SUV_FACTOR = {"HR+": 1.0, "HER2+": 1.1, "triple-negative": 1.25}
BENIGN_FRACTION = 0.34  # 107 / 312
# Lesions per patient: mean ≈ 1.6 (the study: 312 / 207 = 1.5); 6–7 exercise the ≤5 rule.
LESION_COUNT_PROBABILITIES = {1: 0.68, 2: 0.18, 3: 0.07, 4: 0.03, 5: 0.02, 6: 0.01, 7: 0.01}


@dataclass(frozen=True)
class LesionType:
    """How one kind of lesion looks: frequency, sites, size, shape, CT and FDG distributions."""

    name: str
    malignant: bool
    bone_change: str
    frequency: float  # within its class (benign or malignant)
    sites: dict[str, float]  # relative frequency per site (see anatomy.SITES)
    shape: str  # "blob", "spiculated", "endplate", "band"
    radius_median_mm: float  # equivalent-sphere radius before clipping to bone
    radius_sigma: float  # lognormal
    hu_range: tuple[float, float]  # viable matrix HU, uniform per lesion
    hu_texture: float  # SD of the smooth HU texture inside the lesion
    suv_median: float  # lognormal viable FDG level (SUV); × marrow SUV if relative_to_marrow
    suv_sigma: float
    relative_to_marrow: bool = False
    necrosis_probability: float = 0.0
    calcification_probability: float = 0.0
    outside_bone_probability: float = 0.0  # cortex broken / expansile / osteophyte / callus
    outside_bone_mm: tuple[float, float] = (0.0, 0.0)
    secondary_hu: Optional[tuple[float, float]] = None  # dense dots / sclerotic patches
    parts: dict[str, float] = field(default_factory=dict)  # preferred bone parts per kind

    @property
    def label(self) -> int:
        return int(self.malignant)


LESION_TYPES: dict[str, LesionType] = {
    t.name: t
    for t in (
        LesionType(
            name="osteolytic_metastasis",
            malignant=True,
            bone_change="osteolytic",
            frequency=0.45,
            sites={"vertebrae": 0.20, "pelvis": 0.25, "ribs": 0.25, "limbs": 0.20, "skull": 0.10},
            shape="blob",
            radius_median_mm=9.0,
            radius_sigma=0.3,
            hu_range=(30.0, 150.0),
            hu_texture=15.0,
            suv_median=6.0,
            suv_sigma=0.45,
            necrosis_probability=0.35,
            calcification_probability=0.05,
            outside_bone_probability=0.6,
            outside_bone_mm=(2.0, 5.0),
        ),
        LesionType(
            name="osteoblastic_metastasis",
            malignant=True,
            bone_change="osteogenic",
            frequency=0.35,
            sites={"vertebrae": 0.22, "pelvis": 0.28, "ribs": 0.22, "limbs": 0.20, "skull": 0.08},
            shape="blob",
            radius_median_mm=9.0,
            radius_sigma=0.3,
            hu_range=(450.0, 900.0),  # matrix; calcification is denser (≥ 1250 HU)
            hu_texture=80.0,
            suv_median=3.4,
            suv_sigma=0.45,
            necrosis_probability=0.05,
            calcification_probability=0.35,
        ),
        LesionType(
            name="mixed_metastasis",
            malignant=True,
            bone_change="mixed",
            frequency=0.20,
            sites={"vertebrae": 0.20, "pelvis": 0.26, "ribs": 0.25, "limbs": 0.20, "skull": 0.09},
            shape="blob",
            radius_median_mm=10.0,
            radius_sigma=0.3,
            hu_range=(50.0, 150.0),
            hu_texture=15.0,
            suv_median=4.6,
            suv_sigma=0.45,
            necrosis_probability=0.25,
            calcification_probability=0.25,
            outside_bone_probability=0.3,
            outside_bone_mm=(1.5, 3.0),
            secondary_hu=(500.0, 900.0),
        ),
        LesionType(
            name="haemangioma",
            malignant=False,
            bone_change="osteolytic",
            frequency=0.25,
            sites={"vertebrae": 0.85, "skull": 0.10, "pelvis": 0.05},
            shape="blob",
            radius_median_mm=9.0,
            radius_sigma=0.25,
            hu_range=(-50.0, 50.0),
            hu_texture=15.0,
            suv_median=1.3,
            suv_sigma=0.25,
            secondary_hu=(300.0, 600.0),
            parts={"body": 1.0, "vault": 1.0, "wing": 1.0, "acetabulum": 1.0},
        ),
        LesionType(
            name="bone_island",
            malignant=False,
            bone_change="osteogenic",
            frequency=0.20,
            sites={"pelvis": 0.35, "limbs": 0.30, "vertebrae": 0.25, "ribs": 0.10},
            shape="spiculated",
            radius_median_mm=5.0,
            radius_sigma=0.3,
            hu_range=(900.0, 1800.0),
            hu_texture=60.0,
            suv_median=0.8,
            suv_sigma=0.15,
            relative_to_marrow=True,
        ),
        LesionType(
            name="degenerative_change",
            malignant=False,
            bone_change="osteogenic",
            frequency=0.25,
            sites={"vertebrae": 0.50, "pelvis": 0.25, "limbs": 0.25},
            shape="endplate",
            radius_median_mm=9.0,
            radius_sigma=0.2,
            hu_range=(400.0, 900.0),
            hu_texture=80.0,
            suv_median=2.5,
            suv_sigma=0.35,
            outside_bone_probability=0.4,
            outside_bone_mm=(2.0, 4.0),
            parts={"body": 1.0, "acetabulum": 1.0, "head": 1.0},
        ),
        LesionType(
            name="healing_fracture",
            malignant=False,
            bone_change="osteogenic",
            frequency=0.15,
            sites={"ribs": 0.60, "pelvis": 0.25, "vertebrae": 0.15},
            shape="band",
            radius_median_mm=12.0,
            radius_sigma=0.2,
            hu_range=(400.0, 800.0),
            hu_texture=60.0,
            suv_median=3.8,
            suv_sigma=0.40,
            calcification_probability=0.10,
            outside_bone_probability=0.5,
            outside_bone_mm=(1.5, 3.0),
            parts={"rib": 1.0, "ramus": 1.0, "sacrum": 1.0, "body": 1.0},
        ),
        LesionType(
            name="fibrous_dysplasia",
            malignant=False,
            bone_change="mixed",
            frequency=0.15,
            sites={"ribs": 0.35, "limbs": 0.30, "skull": 0.20, "pelvis": 0.15},
            shape="blob",
            radius_median_mm=11.0,
            radius_sigma=0.25,
            hu_range=(150.0, 350.0),
            hu_texture=40.0,
            suv_median=3.0,
            suv_sigma=0.40,
            outside_bone_probability=0.7,
            outside_bone_mm=(1.5, 3.0),
        ),
    )
}


def types_of_class(malignant: bool) -> list[LesionType]:
    return [t for t in LESION_TYPES.values() if t.malignant == malignant]


def lesion_type(name: str) -> LesionType:
    try:
        return LESION_TYPES[name]
    except KeyError:
        raise ValueError(
            f"unknown lesion type {name!r}; choose one of {', '.join(LESION_TYPES)}"
        ) from None
