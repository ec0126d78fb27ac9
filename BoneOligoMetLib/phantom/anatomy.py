"""A female thorax–pelvis–head anatomy built from analytic solids, rasterised on any grid.

Coordinates are ITK LPS millimetres with z = 0 at the centre of the femoral heads, x towards the
patient's left, y posterior. Landmarks follow a ~160 cm woman: mid-femur z ≈ −190, iliac crest
≈ +140, T12/L1 ≈ +255, sternal notch ≈ +490, skull vertex ≈ +815. Each patient varies widths,
heights and subcutaneous fat (tied to weight).

Bones carry a cortical shell (``cortex_mm``; ≥ 2 mm so a 2 mm grid still shows it) around
cancellous bone; lesions are placed in them by ``lesions``. Paint order: body (fat, muscle),
organs, then bones: cancellous bone of any bone wins over cortex of another.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from BoneOligoMetLib.phantom.grid import Box, Grid
from BoneOligoMetLib.phantom.shapes import (
    Capsule,
    Difference,
    Ellipsoid,
    EllipticCylinder,
    Shape,
    Shell,
    sdf_in_box,
)

SITES = ("limbs", "vertebrae", "pelvis", "ribs", "skull")  # the study's Table 1


class Tissue(enum.IntEnum):
    """Labels of the tissue map (``tissues.nii.gz``)."""

    AIR = 0
    FAT = 1
    SOFT_TISSUE = 2
    LUNG = 3
    CORTICAL_BONE = 4
    CANCELLOUS_BONE = 5
    LIVER = 6
    MYOCARDIUM = 7
    BLOOD = 8
    BLADDER = 9
    BRAIN = 10
    KIDNEY = 11
    SPLEEN = 12
    CSF = 13


BONE_TISSUES = (Tissue.CORTICAL_BONE, Tissue.CANCELLOUS_BONE)


@dataclass
class BonePart:
    """One solid of a bone, its cortical thickness and how often lesions are placed in it."""

    kind: str  # "body", "arch", "rib", "wing", "head", "shaft", "vault", ...
    shape: Shape
    cortex_mm: float
    weight: float = 1.0  # relative chance a lesion of this bone starts here
    axis: Optional[tuple[float, float, float]] = None  # long axis (capsules), for bands


@dataclass
class Bone:
    name: str  # e.g. "L3", "left rib 7", "right hemipelvis"
    site: str  # one of SITES
    parts: list[BonePart]

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lows, highs = zip(*(part.shape.bounds() for part in self.parts))
        return np.min(lows, axis=0), np.max(highs, axis=0)

    def sdf_points(self, points: np.ndarray) -> np.ndarray:
        """Distance (mm) of (n, 3) points to the bone's outer surface (< 0 inside)."""
        x, y, z = points[:, 0], points[:, 1], points[:, 2]
        return np.minimum.reduce([part.shape.sdf(x, y, z) for part in self.parts])

    def sdf_box(self, box: Box) -> np.ndarray:
        out = np.full(box.shape, np.inf, dtype=np.float32)
        for part in self.parts:
            sub = box.sub(*part.shape.bounds())
            if not sub.empty:
                np.minimum(out[sub.slices], sdf_in_box(part.shape, sub), out=out[sub.slices])
        return out


@dataclass
class BodyProfile:
    """Body outline: lean (muscle) ellipse per z, with subcutaneous fat of ``fat_mm`` around it."""

    z: np.ndarray
    centre_y: np.ndarray
    semi_x: np.ndarray
    semi_y: np.ndarray
    fat_mm: float
    crotch_z: float  # below it, two thighs
    thigh_semi: tuple[float, float]
    thigh_centre: tuple[float, float]  # |x| and y of the thigh centre at the crotch
    head: Ellipsoid  # outer surface of the head (scalp)

    def lean_ellipse(self, z: float) -> tuple[float, float, float]:
        return (
            float(np.interp(z, self.z, self.centre_y)),
            float(np.interp(z, self.z, self.semi_x)),
            float(np.interp(z, self.z, self.semi_y)),
        )


@dataclass
class Anatomy:
    """One patient's body: outline, organs (tissue, solid) in paint order, bones."""

    body: BodyProfile
    organs: list[tuple[Tissue, Shape]]
    bones: list[Bone]
    heart: Ellipsoid
    myocardium_mm: float
    liver_seed_mm: tuple[float, float, float]  # deep in the liver: the reference VOI's centre

    def bones_at(self, site: str) -> list[Bone]:
        return [bone for bone in self.bones if bone.site == site]

    def bone(self, name: str) -> Bone:
        for bone in self.bones:
            if bone.name == name:
                return bone
        raise KeyError(name)

    def rasterize(self, grid: Grid) -> np.ndarray:
        """The tissue label map (uint8, (z, y, x)) of this anatomy on ``grid``."""
        labels = np.zeros(grid.shape, dtype=np.uint8)
        self._paint_body(grid, labels)
        for tissue, shape in self.organs:
            box = grid.box(*shape.bounds())
            if box.empty:
                continue
            inside = sdf_in_box(shape, box) <= 0
            labels[box.slices][inside] = tissue
        box = grid.box(*self.heart.bounds())
        if not box.empty:
            sdf = sdf_in_box(self.heart, box)
            labels[box.slices][sdf <= 0] = Tissue.MYOCARDIUM
            labels[box.slices][sdf <= -self.myocardium_mm] = Tissue.BLOOD
        for bone in self.bones:
            for part in bone.parts:
                box = grid.box(*part.shape.bounds())
                if box.empty:
                    continue
                sdf = sdf_in_box(part.shape, box)
                view = labels[box.slices]
                view[(sdf <= 0) & (view != Tissue.CANCELLOUS_BONE)] = Tissue.CORTICAL_BONE
                view[sdf <= -part.cortex_mm] = Tissue.CANCELLOUS_BONE
        return labels

    def _paint_body(self, grid: Grid, labels: np.ndarray) -> None:
        body = self.body
        x = grid.axis(0)[None, :]
        y = grid.axis(1)[:, None]
        fat = body.fat_mm
        head_low, head_high = body.head.bounds()
        for k, z in enumerate(grid.axis(2)):
            lean = np.zeros(labels.shape[1:], dtype=bool)
            outer = np.zeros_like(lean)
            if z < body.crotch_z:
                ax, ay = body.thigh_semi
                cx = body.thigh_centre[0] + 0.1 * (z - body.crotch_z)
                for side in (-1.0, 1.0):
                    lean |= _inside_ellipse(x, y, side * cx, body.thigh_centre[1], ax, ay)
                    outer |= _inside_ellipse(
                        x, y, side * cx, body.thigh_centre[1], ax + fat, ay + fat
                    )
            elif z <= body.z[-1]:
                cy, ax, ay = body.lean_ellipse(z)
                neck = z > 560.0  # thin fat over neck
                pad = 0.35 * fat if neck else fat
                lean |= _inside_ellipse(x, y, 0.0, cy, ax, ay)
                outer |= _inside_ellipse(x, y, 0.0, cy, ax + pad, ay + pad)
            if head_low[2] <= z <= head_high[2]:
                c, r = body.head.centre, body.head.radii
                scale = 1.0 - ((z - c[2]) / r[2]) ** 2
                if scale > 0:
                    s = np.sqrt(scale)
                    outer |= _inside_ellipse(x, y, c[0], c[1], r[0] * s, r[1] * s)
                    lean |= _inside_ellipse(x, y, c[0], c[1], r[0] * s - 4.0, r[1] * s - 4.0)
            plane = labels[k]
            plane[outer] = Tissue.FAT
            plane[lean] = Tissue.SOFT_TISSUE

    def body_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """LPS box (mm) around the whole body outline."""
        b = self.body
        half_x = max(float(np.max(b.semi_x)), b.thigh_centre[0] + b.thigh_semi[0]) + b.fat_mm
        cy_low = float(np.min(b.centre_y - b.semi_y))
        cy_high = float(np.max(b.centre_y + b.semi_y))
        low = np.array([-half_x, cy_low - b.fat_mm, -1e4])
        high = np.array([half_x, cy_high + b.fat_mm, 1e4])
        head_low, head_high = b.head.bounds()
        return np.minimum(low, head_low), np.maximum(high, head_high)


def _inside_ellipse(x, y, cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
    return ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 <= 1.0


# --- building one patient's anatomy ---------------------------------------------------------


@dataclass
class AnatomyParameters:
    """Per-patient variation: width and height scale, fat, bladder filling."""

    width_scale: float = 1.0
    height_scale: float = 1.0
    fat_mm: float = 15.0
    bladder_fill: float = 1.0
    extra: dict = field(default_factory=dict)

    @classmethod
    def sample(cls, rng: np.random.Generator, weight_kg: float) -> AnatomyParameters:
        fat = float(np.clip(6.0 + 0.55 * (weight_kg - 45.0), 4.0, 40.0) * rng.uniform(0.85, 1.15))
        return cls(
            width_scale=float(np.clip(rng.normal(1.0, 0.03), 0.92, 1.08)),
            height_scale=float(np.clip(rng.normal(1.0, 0.02), 0.95, 1.05)),
            fat_mm=fat,
            bladder_fill=float(rng.uniform(0.7, 1.3)),
        )


def _vertebra_levels() -> list[tuple[str, float, float, float, float, float]]:
    """(name, z centre, rx, ry, half height, y centre) from L5 up to C2 (lean, unscaled)."""
    levels = [f"L{i}" for i in range(5, 0, -1)] + [f"T{i}" for i in range(12, 0, -1)]
    levels += [f"C{i}" for i in range(7, 1, -1)]
    out = []
    z = 110.0
    previous_pitch = None
    for name in levels:
        region = name[0]
        if region == "L":
            rx, ry, hh, y, pitch = 24.0, 17.0, 13.0, 15.0, 35.0
        elif region == "T":
            t = (12 - int(name[1:])) / 11.0  # 0 at T12, 1 at T1
            rx, ry, hh = 19.0 - 5.0 * t, 15.0 - 3.0 * t, 11.0 - 3.0 * t
            y, pitch = 40.0 + 5.0 * np.sin(np.pi * t) - 10.0 * t, 24.0
        else:
            rx, ry, hh, y, pitch = 10.0, 8.0, 6.0, 12.0, 17.0
        if previous_pitch is not None:
            z += (previous_pitch + pitch) / 2.0
        previous_pitch = pitch
        out.append((name, z, rx, ry, hh, y))
    return out


def _vertebra(name, z, rx, ry, hh, y, ws) -> Bone:
    rx, ry = rx * ws, ry * ws
    canal_rx, canal_ry = (11.0 if name[0] != "T" else 9.0) * ws, 7.5 * ws
    canal_y = y + ry + canal_ry + 1.0
    body = EllipticCylinder((0.0, y, z), rx, ry, hh)
    arch = Difference(
        EllipticCylinder((0.0, canal_y, z), canal_rx + 7.0, canal_ry + 6.0, 0.8 * hh),
        EllipticCylinder((0.0, canal_y, z), canal_rx, canal_ry, hh + 5.0),
    )
    spine_len = 24.0 if name[0] != "C" else 14.0
    spinous = Capsule(
        (0.0, canal_y + canal_ry + 4.0, z),
        (0.0, canal_y + canal_ry + 4.0 + spine_len, z - (12.0 if name[0] == "T" else 4.0)),
        4.5,
    )
    span = {"L": 30.0, "T": 24.0, "C": 12.0}[name[0]]
    transverse = [
        Capsule((s * (canal_rx + 4.0), canal_y, z), (s * (canal_rx + span), canal_y + 6.0, z), 5.0)
        for s in (-1.0, 1.0)
    ]
    parts = [BonePart("body", body, 2.0, weight=6.0), BonePart("arch", arch, 2.0, weight=1.0)]
    parts += [BonePart("spinous", spinous, 2.0, weight=0.3)]
    parts += [BonePart("transverse", t, 2.0, weight=0.2) for t in transverse]
    return Bone(name, "vertebrae", parts)


RIB_SEMI_X = (50, 75, 95, 108, 118, 125, 130, 133, 133, 130, 128, 125)
RIB_SEMI_Y = (40, 60, 75, 85, 90, 90, 90, 90, 90, 90, 90, 90)
RIB_END_ANGLE = (2.4, 2.6, 2.6, 2.6, 2.6, 2.6, 2.6, 2.4, 2.3, 2.2, 1.8, 1.4)
RIB_DROP = (20, 35, 50, 60, 70, 75, 80, 80, 80, 70, 50, 35)


def _rib(number: int, side: float, vertebra: tuple, ws: float) -> Bone:
    """Rib ``number`` (1–12) on ``side`` (−1 right, +1 left) as a chain of capsules."""
    _name, z_head, rx, ry, _hh, y_body = vertebra
    a, b = RIB_SEMI_X[number - 1] * ws, RIB_SEMI_Y[number - 1] * ws
    centre_y = 75.0 - b
    start, end = 0.32, RIB_END_ANGLE[number - 1]
    radius = 5.5 if number > 1 else 5.0
    angles = np.linspace(start, end, 12)
    points = [
        (
            side * a * np.sin(phi),
            centre_y + b * np.cos(phi),
            z_head - RIB_DROP[number - 1] * ((phi - start) / (end - start)) ** 1.4,
        )
        for phi in angles
    ]
    head = (side * (rx * ws + 2.0), y_body + ry * ws * 0.6, z_head)
    chain = [head, *points]
    parts = []
    for p, q in zip(chain[:-1], chain[1:]):
        axis = np.subtract(q, p)
        axis = tuple(float(v) for v in axis / np.linalg.norm(axis))
        length = float(np.linalg.norm(np.subtract(q, p)))
        parts.append(BonePart("rib", Capsule(p, q, radius), 1.8, weight=length, axis=axis))
    side_name = "left" if side > 0 else "right"
    return Bone(f"{side_name} rib {number}", "ribs", parts)


def _hemipelvis(side: float, ws: float, zs: float, head_centre, head_r: float) -> Bone:
    s = side

    def p(x, y, z):
        return (s * x * ws, y * ws, z * zs)

    acetabulum = Difference(
        Ellipsoid(p(78, 5, 15), (22 * ws, 30 * ws, 32 * zs)),
        Ellipsoid(head_centre, (head_r + 2.5,) * 3),
    )
    long_axis = np.array([s * 80.0, -90.0, 0.0]) / np.hypot(80.0, 90.0)
    thin_axis = np.array([s * 90.0, 80.0, 0.0]) / np.hypot(80.0, 90.0)
    rotation = np.column_stack([thin_axis, long_axis, [0.0, 0.0, 1.0]])
    wing = Ellipsoid(p(85, 15, 95), (9.0, 65.0 * ws, 55.0 * zs), rotation)
    superior_ramus = Capsule(p(70, -10, 15), p(14, -55, 15), 9.0)
    symphysis = Capsule(p(11, -58, 30), p(11, -52, -10), 8.0)
    inferior_ramus = Capsule(p(12, -50, -12), p(50, -10, -40), 8.0)
    ischium = Capsule(p(75, 20, 5), p(56, 12, -42), 13.0)
    parts = [
        BonePart("acetabulum", acetabulum, 2.0, weight=3.0),
        BonePart("wing", wing, 2.0, weight=4.0),
        BonePart("ramus", superior_ramus, 2.0, weight=1.0, axis=_unit(superior_ramus)),
        BonePart("ramus", symphysis, 2.0, weight=0.5, axis=_unit(symphysis)),
        BonePart("ramus", inferior_ramus, 2.0, weight=0.8, axis=_unit(inferior_ramus)),
        BonePart("ischium", ischium, 2.0, weight=1.5, axis=_unit(ischium)),
    ]
    return Bone(f"{'left' if side > 0 else 'right'} hemipelvis", "pelvis", parts)


def _femur(side: float, ws: float, zs: float, head_centre, head_r: float) -> Bone:
    s = side

    def p(x, y, z):
        return (s * x * ws, y * ws, z * zs)

    head = Ellipsoid(head_centre, (head_r,) * 3)
    neck = Capsule(head_centre, p(130, 8, -40), 14.0 * ws)
    greater = Ellipsoid(p(142, 12, -35), (16 * ws, 20 * ws, 26 * zs))
    lesser = Ellipsoid(p(118, 18, -68), (9.0, 9.0, 9.0))
    shaft = Capsule(p(132, 8, -45), p(110, -5, -260), 14.0 * ws)
    parts = [
        BonePart("head", head, 2.0, weight=2.0),
        BonePart("neck", neck, 2.5, weight=2.0, axis=_unit(neck)),
        BonePart("trochanter", greater, 2.0, weight=2.0),
        BonePart("trochanter", lesser, 2.0, weight=0.3),
        BonePart("shaft", shaft, 5.0, weight=3.0, axis=_unit(shaft)),
    ]
    return Bone(f"{'left' if side > 0 else 'right'} femur", "limbs", parts)


def _unit(capsule: Capsule) -> tuple[float, float, float]:
    axis = np.subtract(capsule.b, capsule.a)
    return tuple(float(v) for v in axis / np.linalg.norm(axis))


def build_anatomy(params: AnatomyParameters) -> Anatomy:
    """The analytic anatomy of one patient (every site; a grid's field decides what is seen)."""
    ws, zs = params.width_scale, params.height_scale

    def p(x, y, z):
        return (x * ws, y * ws, z * zs)

    # Body outline keyframes: z, centre y, lean semi-axes x and y (mm).
    frames = np.array(
        [
            (-45, 10, 168, 95),
            (0, 10, 168, 97),
            (60, 8, 160, 100),
            (150, 5, 150, 95),
            (220, 0, 138, 95),
            (300, -5, 146, 105),
            (400, -5, 154, 115),
            (470, 0, 160, 110),
            (505, 5, 168, 98),
            (535, 10, 125, 75),
            (560, 15, 58, 55),
            (680, 15, 55, 55),
        ],
        dtype=float,
    )
    head = Ellipsoid(p(0, 5, 728), (76 * ws, 94 * ws, 92 * zs))
    body = BodyProfile(
        z=frames[:, 0] * zs,
        centre_y=frames[:, 1] * ws,
        semi_x=frames[:, 2] * ws,
        semi_y=frames[:, 3] * ws,
        fat_mm=params.fat_mm,
        crotch_z=-45.0 * zs,
        thigh_semi=(62.0 * ws, 66.0 * ws),
        thigh_centre=(108.0 * ws, 5.0 * ws),
        head=head,
    )

    bladder_scale = params.bladder_fill ** (1.0 / 3.0)
    heart = Ellipsoid(p(22, -45, 390), (55 * ws, 45 * ws, 55 * zs))
    organs: list[tuple[Tissue, Shape]] = [
        (Tissue.LUNG, Ellipsoid(p(-72, -5, 440), (55 * ws, 80 * ws, 140 * zs))),
        (Tissue.LUNG, Ellipsoid(p(72, -5, 445), (55 * ws, 80 * ws, 135 * zs))),
        (Tissue.LIVER, Ellipsoid(p(-50, -10, 255), (80 * ws, 85 * ws, 75 * zs))),
        (Tissue.SPLEEN, Ellipsoid(p(92, 40, 275), (32 * ws, 28 * ws, 50 * zs))),
        (Tissue.KIDNEY, Ellipsoid(p(-70, 45, 220), (27 * ws, 25 * ws, 55 * zs))),
        (Tissue.KIDNEY, Ellipsoid(p(70, 45, 230), (27 * ws, 25 * ws, 55 * zs))),
        (Tissue.BLOOD, Capsule(p(15, 25, 470), p(5, 5, 150), 11.0 * ws)),
        (Tissue.BLOOD, Capsule(p(15, 25, 470), p(5, -30, 492), 12.0 * ws)),
        (Tissue.BLOOD, Capsule(p(5, -30, 492), p(5, -35, 420), 13.0 * ws)),
        (
            Tissue.BLADDER,
            Ellipsoid(
                p(0, -35, 55),
                (40 * ws * bladder_scale, 32 * ws * bladder_scale, 30 * zs * bladder_scale),
            ),
        ),
        (Tissue.CSF, Ellipsoid(p(0, 5, 730), (64 * ws, 82 * ws, 78 * zs))),
        (Tissue.BRAIN, Ellipsoid(p(0, 5, 732), (60 * ws, 78 * ws, 74 * zs))),
    ]

    bones: list[Bone] = []
    levels = _vertebra_levels()
    for name, z, rx, ry, hh, y in levels:
        bones.append(_vertebra(name, z * zs, rx, ry, hh * zs, y * ws, ws))
    by_name = {level[0]: level for level in levels}
    for number in range(1, 13):
        name, z, rx, ry, hh, y = by_name[f"T{number}"]
        for side in (-1.0, 1.0):
            bones.append(_rib(number, side, (name, z * zs, rx, ry, hh, y * ws), ws))
    head_r = 22.0 * ws
    for side in (-1.0, 1.0):
        head_centre = p(side * 92, 0, 0)
        bones.append(_hemipelvis(side, ws, zs, head_centre, head_r))
        bones.append(_femur(side, ws, zs, head_centre, head_r))
    sacrum_rotation = np.column_stack(
        [[1.0, 0.0, 0.0], [0.0, np.cos(0.5), np.sin(0.5)], [0.0, -np.sin(0.5), np.cos(0.5)]]
    )
    sacrum = Ellipsoid(p(0, 50, 62), (46 * ws, 17 * ws, 45 * zs), sacrum_rotation)
    bones.append(Bone("sacrum", "pelvis", [BonePart("sacrum", sacrum, 2.0, weight=1.0)]))
    sternum = Ellipsoid(p(0, -103, 405), (16 * ws, 7 * ws, 80 * zs))
    bones.append(Bone("sternum", "sternum", [BonePart("sternum", sternum, 1.8)]))
    for side in (-1.0, 1.0):
        name = "left" if side > 0 else "right"
        clavicle = [
            Capsule(p(side * 15, -85, 490), p(side * 75, -72, 500), 7.0),
            Capsule(p(side * 75, -72, 500), p(side * 135, -25, 505), 7.0),
        ]
        thin = np.array([side * 0.45, 0.89, 0.0])
        thin /= np.linalg.norm(thin)
        rotation = np.column_stack([thin, np.cross([0.0, 0.0, 1.0], thin), [0.0, 0.0, 1.0]])
        scapula = Ellipsoid(p(side * 85, 75, 440), (6.0, 45 * ws, 70 * zs), rotation)
        bones.append(
            Bone(
                f"{name} shoulder girdle",
                "shoulder",
                [BonePart("clavicle", c, 2.0) for c in clavicle]
                + [BonePart("scapula", scapula, 2.0)],
            )
        )
    vault = Shell(Ellipsoid(p(0, 5, 730), (68 * ws, 86 * ws, 82 * zs)), 7.0)
    bones.append(Bone("skull", "skull", [BonePart("vault", vault, 2.0)]))
    return Anatomy(
        body=body,
        organs=organs,
        bones=bones,
        heart=heart,
        myocardium_mm=10.0,
        liver_seed_mm=p(-50, -10, 255),
    )


def bones_in_field(
    anatomy: Anatomy, low: Sequence[float], high: Sequence[float], margin_mm: float = 15.0
) -> list[Bone]:
    """Bones with some part well inside the LPS box [low, high] (mm)."""
    low = np.asarray(low, dtype=float) + margin_mm
    high = np.asarray(high, dtype=float) - margin_mm
    found = []
    for bone in anatomy.bones:
        b_low, b_high = bone.bounds()
        if np.all(b_high > low) and np.all(b_low < high):
            found.append(bone)
    return found
