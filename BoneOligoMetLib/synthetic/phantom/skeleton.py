"""The skeleton: vertebrae C2–L5, 12 pairs of ribs, hemipelves and sacrum, proximal femora,
sternum, shoulder girdles and the skull vault, as analytic solids with a cortical shell.

Lean (fat-free) sizes of a ~160 cm woman in LPS mm, z = 0 at the femoral heads; ``ws`` and
``zs`` scale widths and heights per patient. Each bone lists the parts lesions may start in and
how often (``BonePart.weight``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from BoneOligoMetLib.synthetic.phantom.grid import Box
from BoneOligoMetLib.synthetic.phantom.shapes import (
    Capsule,
    Difference,
    Ellipsoid,
    EllipticCylinder,
    Shape,
    Shell,
    sdf_in_box,
)


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


def build_skeleton(ws: float, zs: float) -> list[Bone]:
    """Every bone of the model, widths scaled by ``ws`` and heights by ``zs``."""

    def p(x, y, z):
        return (x * ws, y * ws, z * zs)

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
    return bones
