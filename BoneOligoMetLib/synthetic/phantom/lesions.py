"""Sampling bone lesions: type, site, bone, position, shape, parts, CT and FDG levels.

A lesion is an analytic solid (so the CT grid and the PET activity grid see the same lesion) that
is clipped to its bone when rasterised (``lesion_render``); lytic and expansile lesions may reach
``outside_bone_mm`` beyond the bone (a broken cortex, an osteophyte, callus), recorded per lesion.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import numpy as np

from BoneOligoMetLib.synthetic.phantom.anatomy import SITES, Anatomy
from BoneOligoMetLib.synthetic.phantom.lesion_types import SUBTYPE_SUV_FACTOR, LesionType
from BoneOligoMetLib.synthetic.phantom.shapes import (
    Ellipsoid,
    EllipticCylinder,
    Lobulated,
    Shape,
    Slab,
    SmoothField,
    random_rotation,
)
from BoneOligoMetLib.synthetic.phantom.skeleton import Bone, BonePart

# A necrotic core is at least this much (HU) below the lesion's viable tissue.
NECROSIS_HU_GAP = 50.0
# Calcification is denser than any osteoblastic matrix (≤ 900 HU, lesion_types) or sclerotic
# patch: DESIGN's "> 1000 HU", drawn 1250–1600 so it stays distinct from the matrix's texture.
CALCIFICATION_HU = (1250.0, 1600.0)


@dataclass
class Lesion:
    """One lesion as drawn: solids, CT and FDG levels, and (after rasterising) its measures."""

    label: int
    kind: LesionType
    site: str
    bone: str
    bone_part: str
    centre_mm: tuple[float, float, float]
    radius_mm: float  # equivalent-sphere radius requested (before clipping to bone)
    shape: Shape
    outside_bone_mm: float  # how far the mask may reach beyond the bone (0: confined)
    hu_viable: float
    suv_viable: float  # FDG level of viable tissue before blur and noise
    ct_texture: SmoothField
    pet_texture: SmoothField
    hu_secondary: Optional[float] = None  # haemangioma dots / sclerotic patches of mixed lesions
    pattern: Optional[SmoothField] = None  # where a mixed lesion is sclerotic
    rods_xy: Optional[np.ndarray] = None  # haemangioma: vertical trabeculae (n, 2), mm
    rod_radius_mm: float = 1.2
    necrotic: Optional[Shape] = None
    hu_necrotic: float = 25.0
    necrosis_suv_ratio: float = 0.25
    calcified: Optional[Shape] = None
    hu_calcified: float = 1200.0
    suv_calcified: float = 0.6
    # measured on the CT grid once rasterised
    volume_ml: float = 0.0
    necrotic_fraction: float = 0.0
    calcified_fraction: float = 0.0

    @property
    def malignant(self) -> bool:
        return self.kind.malignant

    @property
    def breaks_cortex(self) -> bool:
        """A lytic or mixed metastasis that destroys the cortex and grows out of the bone."""
        return self.malignant and self.kind.bone_change != "osteogenic" and self.outside_bone_mm > 0


def _lognormal(rng: np.random.Generator, median: float, sigma: float) -> float:
    return float(median * math.exp(sigma * rng.standard_normal()))


def _choice(rng: np.random.Generator, items: Sequence, weights: Sequence[float]):
    w = np.asarray(weights, dtype=float)
    return items[int(rng.choice(len(items), p=w / w.sum()))]


def _sample_inside(
    rng: np.random.Generator,
    part: BonePart,
    field_low: np.ndarray,
    field_high: np.ndarray,
    depth_mm: float,
) -> Optional[np.ndarray]:
    """A random point at least ``depth_mm`` inside ``part`` and inside the field (rejection)."""
    low, high = part.shape.bounds()
    low, high = np.maximum(low, field_low), np.minimum(high, field_high)
    if np.any(high <= low):
        return None
    for _ in range(8):
        points = rng.uniform(low, high, size=(512, 3))
        sdf = part.shape.sdf(points[:, 0], points[:, 1], points[:, 2])
        good = np.flatnonzero(sdf <= -depth_mm)
        if good.size:
            return points[good[0]]
    return None


def choose_site(
    rng: np.random.Generator, kind: LesionType, available: dict[str, list[Bone]]
) -> str:
    """A site for ``kind`` among those with bones in the field (the type's own weights)."""
    sites = [s for s in kind.sites if available.get(s)]
    if sites:
        return _choice(rng, sites, [kind.sites[s] for s in sites])
    fallback = [s for s in SITES if available.get(s)]
    return _choice(rng, fallback, [1.0] * len(fallback))


def _parts_for(kind: LesionType, bone: Bone) -> list[BonePart]:
    if kind.parts:
        preferred = [p for p in bone.parts if p.kind in kind.parts]
        if preferred:
            return preferred
    return bone.parts


def sample_lesion(
    rng: np.random.Generator,
    label: int,
    kind: LesionType,
    anatomy: Anatomy,
    available: dict[str, list[Bone]],
    field_low: np.ndarray,
    field_high: np.ndarray,
    subtype: str,
    marrow_suv: float,
) -> Optional[Lesion]:
    """One lesion of ``kind`` somewhere in the bones of the field; None if no place was found."""
    site = choose_site(rng, kind, available)
    bones = available[site]
    if kind.parts:  # bones that have the part this kind of lesion lives in
        bones = [b for b in bones if any(p.kind in kind.parts for p in b.parts)] or bones
    bone = _choice(rng, bones, [sum(p.weight for p in _parts_for(kind, b)) for b in bones])
    parts = _parts_for(kind, bone)
    part = _choice(rng, parts, [p.weight for p in parts])
    inner_low, inner_high = field_low + 12.0, field_high - 12.0
    centre = _sample_inside(rng, part, inner_low, inner_high, part.cortex_mm + 1.0)
    if centre is None:
        return None

    radius = float(np.clip(_lognormal(rng, kind.radius_median_mm, kind.radius_sigma), 3.0, 22.0))
    outside = 0.0
    if rng.uniform() < kind.outside_bone_probability:
        outside = float(rng.uniform(*kind.outside_bone_mm))
    shape: Shape
    if kind.shape == "endplate":
        shape, centre, part = _endplate(rng, anatomy, bone, part, centre)
    elif kind.shape == "band":
        normal = np.asarray(part.axis) if part.axis is not None else None
        if part.kind == "body" and isinstance(part.shape, EllipticCylinder):
            c = part.shape
            z = c.centre[2] + rng.choice([-1.0, 1.0]) * (c.half_height - rng.uniform(3.0, 5.0))
            centre = np.array([c.centre[0], c.centre[1], z])
            normal = np.array([0.0, 0.0, 1.0])
        elif part.kind == "sacrum":
            normal = np.array([1.0, 0.0, 0.0])
        if normal is None:
            normal = random_rotation(rng)[:, 2]
        shape = Slab(
            tuple(centre),
            tuple(normal),
            float(rng.uniform(2.5, 4.5)),
            Ellipsoid(tuple(centre), (radius, radius, radius)),
        )
    else:
        aspect = np.exp(rng.normal(0.0, 0.15, 3))
        aspect /= np.prod(aspect) ** (1.0 / 3.0)
        spiculated = kind.shape == "spiculated"
        shape = Lobulated.random(
            rng,
            centre,
            radius * aspect,
            random_rotation(rng),
            roughness=0.10 if spiculated else float(rng.uniform(0.06, 0.18)),
            frequency=(6.0, 10.0) if spiculated else (2.0, 4.0),
            n_waves=8 if spiculated else 5,
        )

    suv = _lognormal(rng, kind.suv_median, kind.suv_sigma)
    if kind.relative_to_marrow:
        suv *= marrow_suv
    if kind.malignant:
        suv *= SUBTYPE_SUV_FACTOR[subtype]
    lesion = Lesion(
        label=label,
        kind=kind,
        site=site,
        bone=bone.name,
        bone_part=part.kind,
        centre_mm=tuple(float(c) for c in centre),  # type: ignore[arg-type]
        radius_mm=radius,
        shape=shape,
        outside_bone_mm=outside,
        hu_viable=float(rng.uniform(*kind.hu_range)),
        suv_viable=suv,
        ct_texture=SmoothField.random(rng, wavelength_mm=8.0),
        pet_texture=SmoothField.random(rng, wavelength_mm=10.0),
    )
    if kind.secondary_hu is not None:
        lesion.hu_secondary = float(rng.uniform(*kind.secondary_hu))
        if kind.name == "haemangioma":
            n_rods = max(4, int(math.pi * (1.2 * radius) ** 2 / 25.0))
            angle = rng.uniform(0, 2 * np.pi, n_rods)
            rho = 1.2 * radius * np.sqrt(rng.uniform(0, 1, n_rods))
            lesion.rods_xy = np.column_stack(
                [centre[0] + rho * np.cos(angle), centre[1] + rho * np.sin(angle)]
            )
        else:
            lesion.pattern = SmoothField.random(rng, wavelength_mm=12.0)
    if radius >= 7.0 and rng.uniform() < kind.necrosis_probability:
        fraction = rng.uniform(0.02, 0.25)
        lesion.necrotic = Lobulated.random(
            rng, centre, np.full(3, radius * fraction ** (1.0 / 3.0)), None, roughness=0.08
        )
        lesion.hu_necrotic = float(rng.uniform(10.0, 40.0))
        # A necrotic core reads distinctly lower than the viable tumour on non-contrast CT; a
        # lytic viable tissue drawn within NECROSIS_HU_GAP of it is moved up (DESIGN: lytic
        # 30–150, necrosis 10–40 HU would otherwise overlap and be ambiguous to any reader).
        lesion.hu_viable = max(lesion.hu_viable, lesion.hu_necrotic + NECROSIS_HU_GAP)
        lesion.necrosis_suv_ratio = float(rng.uniform(0.1, 0.35))  # photopenic: < 40 % of level
    if radius >= 6.0 and rng.uniform() < kind.calcification_probability:
        fraction = rng.uniform(0.02, 0.25)
        r_calc = radius * fraction ** (1.0 / 3.0)
        direction = rng.standard_normal(3)
        direction /= np.linalg.norm(direction)
        offset = direction * (radius - r_calc) * rng.uniform(0.2, 0.6)
        lesion.calcified = Ellipsoid(tuple(centre + offset), (r_calc, r_calc, r_calc))
        lesion.hu_calcified = float(rng.uniform(*CALCIFICATION_HU))
        lesion.suv_calcified = float(rng.uniform(0.4, 0.9))
    return lesion


def _endplate(
    rng: np.random.Generator, anatomy: Anatomy, bone: Bone, part: BonePart, centre: np.ndarray
) -> tuple[Shape, np.ndarray, BonePart]:
    """Degenerative sclerosis: a flat disc under a vertebral endplate or at the hip joint."""
    if bone.site == "vertebrae":
        body = next(p for p in bone.parts if p.kind == "body")
        c = body.shape
        assert isinstance(c, EllipticCylinder)
        z = c.centre[2] + rng.choice([-1.0, 1.0]) * (c.half_height - rng.uniform(2.0, 3.5))
        centre = np.array(
            [
                c.centre[0] + rng.uniform(-0.2, 0.2) * c.rx,
                c.centre[1] + rng.uniform(-0.2, 0.2) * c.ry,
                z,
            ]
        )
        radii = (c.rx * rng.uniform(0.5, 0.8), c.ry * rng.uniform(0.5, 0.8), rng.uniform(2.5, 4.5))
        return Ellipsoid(tuple(centre), radii), centre, body
    side = bone.name.split()[0]
    femur = anatomy.bone(f"{side} femur")
    head = next(p for p in femur.parts if p.kind == "head")
    assert isinstance(head.shape, Ellipsoid)
    head_centre, head_r = np.asarray(head.shape.centre), head.shape.radii[0]
    if bone.site == "pelvis":  # acetabular roof, above the joint space
        centre = head_centre + np.array([0.0, 0.0, head_r + 2.5 + rng.uniform(4.0, 6.0)])
        part = next(p for p in bone.parts if p.kind == "acetabulum")
    else:  # subchondral femoral head
        centre = head_centre + np.array([0.0, 0.0, head_r - rng.uniform(4.0, 6.0)])
        part = head
    radii = (rng.uniform(9.0, 13.0), rng.uniform(9.0, 13.0), rng.uniform(3.0, 5.0))
    return Ellipsoid(tuple(centre), radii), centre, part
