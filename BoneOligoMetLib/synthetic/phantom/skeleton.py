"""The skeleton: vertebrae C2–L5, 12 pairs of ribs, hemipelves and sacrum, proximal femora,
sternum, shoulder girdles and the skull vault, as analytic solids with a cortical shell.

Recognisable on axial, coronal and sagittal slices: vertebral bodies with pedicles, laminae,
spinous and transverse processes and facet columns that meet the next level's at a joint; iliac
wings as curved plates (a piece of a bowl) with a thick crest and sacroiliac part; a curved,
tapering sacrum whose alae meet the ilia; femoral heads in their acetabula; ribs as curved tubes;
manubrium, sternal body and xiphoid (costal cartilages and joints: ``joints``).

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
    Intersection,
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
    yellow_marrow: bool = False  # fatty marrow (an adult's femoral shaft), not red marrow


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


# Sagittal curve of the vertebral bodies' centres (y, mm, posterior positive) at each level:
# lumbar lordosis, thoracic kyphosis, cervical lordosis, without steps between regions.
SPINE_Y = {
    "L5": 17.0, "L4": 13.0, "L3": 12.0, "L2": 15.0, "L1": 21.0,
    "T12": 28.0, "T11": 34.0, "T10": 38.0,
}  # fmt: skip


def _vertebra_levels() -> list[tuple[str, float, float, float, float, float, float]]:
    """(name, z centre, rx, ry, half height, y centre, pitch) from L5 up to C2 (lean, unscaled)."""
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
        y = SPINE_Y.get(name, y)
        if previous_pitch is not None:
            z += (previous_pitch + pitch) / 2.0
        previous_pitch = pitch
        out.append((name, z, rx, ry, hh, y, pitch))
    return out


# Per region: canal half width and depth, pedicle / lamina / facet radius, transverse process
# span and backward sweep, spinous process length and drop (mm, lean).
_POSTERIOR = {
    "L": dict(canal=(11.0, 8.0), pedicle=4.5, lamina=3.8, facet=4.5, span=28.0, back=3.0,
              spine=(24.0, 4.0), spine_r=4.5),
    "T": dict(canal=(8.5, 7.5), pedicle=3.8, lamina=3.5, facet=3.8, span=22.0, back=12.0,
              spine=(26.0, 14.0), spine_r=3.8),
    "C": dict(canal=(10.0, 6.5), pedicle=3.0, lamina=3.0, facet=3.5, span=11.0, back=0.0,
              spine=(14.0, 4.0), spine_r=3.0),
}  # fmt: skip
FACET_GAP_MM = 3.0  # the facet joint space between two levels


def _vertebra(name, z, rx, ry, hh, y, pitch, ws) -> Bone:
    """A vertebral body and its posterior elements: pedicles, laminae, spinous process,
    transverse processes and articular (facet) columns that meet the next levels' at joints."""
    shape = _POSTERIOR[name[0]]
    rx, ry = rx * ws, ry * ws
    canal_rx, canal_ry = shape["canal"][0] * ws, shape["canal"][1] * ws
    canal_y = y + ry + canal_ry  # the canal's front is the body's back
    r_ped, r_lam, r_fac = shape["pedicle"], shape["lamina"], shape["facet"]
    px = canal_rx + 0.8 * r_ped  # pedicles frame the canal
    junction_y = canal_y + 0.2 * canal_ry  # pedicle meets lamina, transverse and facets
    spine_base = (0.0, canal_y + canal_ry + 0.6 * r_lam, z - 0.15 * hh)
    length, drop = shape["spine"]
    body = EllipticCylinder((0.0, y, z), rx, ry, hh)
    parts = [BonePart("body", body, 2.0, weight=6.0)]
    half_facet = max(pitch / 2.0 - FACET_GAP_MM / 2.0 - r_fac, 1.0)
    for s in (-1.0, 1.0):
        for dz in (-0.35 * hh, 0.35 * hh):  # pedicles and laminae are plates about as tall
            pedicle = Capsule(  # as the body: two rods each
                (s * px, y + ry - 4.0, z + 0.1 * hh + dz), (s * px, junction_y, z + dz), r_ped
            )
            lamina = Capsule(
                (s * px, junction_y, z + dz), (0.0, spine_base[1], spine_base[2] + dz), r_lam
            )
            parts += [
                BonePart("pedicle", pedicle, 2.0, weight=0.2, axis=_unit(pedicle)),
                BonePart("lamina", lamina, 2.0, weight=0.08, axis=_unit(lamina)),
            ]
        transverse = Capsule(
            (s * px, junction_y, z),
            (s * (px + shape["span"] * ws), junction_y + shape["back"], z),
            min(r_ped, 4.5),
        )
        facet = Capsule(
            (s * (px + 1.0), junction_y + 2.0, z - half_facet),
            (s * (px + 1.0), junction_y + 2.0, z + half_facet),
            r_fac,
        )
        parts += [
            BonePart("transverse", transverse, 2.0, weight=0.2, axis=_unit(transverse)),
            BonePart("facet", facet, 2.0, weight=0.1, axis=_unit(facet)),
        ]
    spinous = Capsule(spine_base, (0.0, spine_base[1] + length, z - drop), shape["spine_r"])
    parts.append(BonePart("spinous", spinous, 2.0, weight=0.3, axis=_unit(spinous)))
    return Bone(name, "vertebrae", parts)


RIB_SEMI_X = (52, 75, 95, 108, 118, 125, 130, 133, 133, 130, 128, 125)
RIB_SEMI_Y = (68, 75, 82, 85, 90, 90, 90, 90, 90, 90, 90, 90)
RIB_END_ANGLE = (2.5, 2.6, 2.6, 2.6, 2.6, 2.6, 2.6, 2.4, 2.3, 2.2, 1.8, 1.4)
RIB_DROP = (20, 35, 50, 60, 70, 75, 80, 80, 80, 70, 50, 35)
RIB_Y0 = 75.0  # posterior reach of the rib ellipses (mm)


def _rib_end(number: int, side: float, z_head: float, ws: float) -> tuple[float, float, float]:
    a, b = RIB_SEMI_X[number - 1] * ws, RIB_SEMI_Y[number - 1] * ws
    phi = RIB_END_ANGLE[number - 1]
    return (side * a * np.sin(phi), RIB_Y0 - b + b * np.cos(phi), z_head - RIB_DROP[number - 1])


def _rib(number: int, side: float, vertebra: tuple, ws: float) -> Bone:
    """Rib ``number`` (1–12) on ``side`` (−1 right, +1 left) as a chain of capsules."""
    z_head, rx, ry, y_body = vertebra[1], vertebra[2], vertebra[3], vertebra[5]
    a, b = RIB_SEMI_X[number - 1] * ws, RIB_SEMI_Y[number - 1] * ws
    centre_y = RIB_Y0 - b
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


# The iliac wing is a piece of a bowl (the greater pelvis): an ellipsoidal shell around a centre
# in front of the sacrum, cut to a fan-shaped outline; in an axial slice a gently curved band from
# the sacroiliac joint forward and out to the anterior superior iliac spine.
ILIAC_BOWL_CENTRE = (-7.0, -51.0, 160.0)  # of the left wing (x mirrored for the right)
ILIAC_BOWL_RADII = (131.0, 131.0, 200.0)
ILIAC_PLATE_MM = 8.0  # the thin iliac fossa: 2 mm cortex either side of 4 mm marrow
ILIAC_MID = (np.radians(37.0), 88.0)  # the fan's centre: angle on the bowl, height (mm)
ILIAC_FAN = (58.0, 56.0)  # the fan's half extent along the bowl and up (mm)


def _bowl_point(side: float, theta: float, z: float) -> tuple[float, float, float]:
    """A point (unscaled mm) on the left or right iliac bowl at angle ``theta`` and height ``z``."""
    cx, cy, cz = ILIAC_BOWL_CENTRE
    radius = ILIAC_BOWL_RADII[0] * np.sqrt(max(1.0 - ((z - cz) / ILIAC_BOWL_RADII[2]) ** 2, 0.0))
    return (side * (cx + radius * np.cos(theta)), cy + radius * np.sin(theta), z)


def _bowl_frame(side: float, theta: float) -> np.ndarray:
    """Columns: along the bowl (horizontal), out of it (radial), up."""
    radial = np.array([side * np.cos(theta), np.sin(theta), 0.0])
    along = np.array([-side * np.sin(theta), np.cos(theta), 0.0])
    return np.column_stack([along, radial, [0.0, 0.0, 1.0]])


def _hemipelvis(side: float, ws: float, zs: float, head_centre, head_r: float) -> Bone:
    """Ilium (curved wing, thick crest, sacroiliac part), acetabulum, pubic rami, ischium."""
    s = side

    def p(x, y, z):
        return (s * x * ws, y * ws, z * zs)

    def q(point):  # a point already mirrored to this side, scaled
        return (point[0] * ws, point[1] * ws, point[2] * zs)

    acetabulum = Difference(
        Ellipsoid(p(78, 5, 15), (22 * ws, 30 * ws, 32 * zs)),
        Ellipsoid(head_centre, (head_r + 2.5,) * 3),
    )
    cx, cy, cz = ILIAC_BOWL_CENTRE
    bowl = Ellipsoid(
        q((s * cx, cy, cz)), (ILIAC_BOWL_RADII[0] * ws, ILIAC_BOWL_RADII[1] * ws,
                              ILIAC_BOWL_RADII[2] * zs)
    )  # fmt: skip
    theta_mid, z_mid = ILIAC_MID
    half_along, half_up = ILIAC_FAN
    outline = Ellipsoid(
        q(_bowl_point(s, theta_mid, z_mid)),
        (half_along * ws, 30.0, half_up * zs),
        _bowl_frame(s, theta_mid),
    )
    wing = Intersection([Shell(bowl, ILIAC_PLATE_MM), outline])
    radius_mid = float(np.hypot(*np.subtract(_bowl_point(1.0, theta_mid, z_mid)[:2], (cx, cy))))
    crest_points = []
    for t in np.linspace(-0.88, 0.88, 9) * half_along:  # along the bowl, − forward
        z_top = z_mid + half_up * np.sqrt(1.0 - (t / half_along) ** 2) - 4.0
        crest_points.append(q(_bowl_point(s, theta_mid + t / radius_mid, z_top)))
    crest = [
        BonePart("wing", Capsule(a, b, 6.0), 2.0, weight=0.15, axis=_unit(Capsule(a, b, 6.0)))
        for a, b in zip(crest_points[:-1], crest_points[1:])
    ]
    # The thick sacroiliac part of the ilium (auricular surface, posterior spines).
    theta_si = np.radians(57.0)
    sacroiliac = Ellipsoid(q(_bowl_point(s, theta_si, 90.0)), (18.0 * ws, 12.0 * ws, 30.0 * zs),
                           _bowl_frame(s, theta_si))  # fmt: skip
    superior_ramus = Capsule(p(70, -10, 15), p(14, -55, 15), 9.0)
    symphysis = Capsule(p(11, -58, 30), p(11, -52, -10), 8.0)
    inferior_ramus = Capsule(p(12, -50, -12), p(50, -10, -40), 8.0)
    ischium = Capsule(p(75, 20, 5), p(56, 12, -42), 13.0)
    parts = [
        BonePart("acetabulum", acetabulum, 2.0, weight=3.0),
        BonePart("wing", wing, 2.0, weight=3.0),
        *crest,
        BonePart("wing", sacroiliac, 2.0, weight=1.5),
        BonePart("ramus", superior_ramus, 2.0, weight=1.0, axis=_unit(superior_ramus)),
        BonePart("ramus", symphysis, 2.0, weight=0.5, axis=_unit(symphysis)),
        BonePart("ramus", inferior_ramus, 2.0, weight=0.8, axis=_unit(inferior_ramus)),
        BonePart("ischium", ischium, 2.0, weight=1.5, axis=_unit(ischium)),
    ]
    return Bone(f"{'left' if side > 0 else 'right'} hemipelvis", "pelvis", parts)


# Sacral segments S1–S5 and the coccyx along the sacrum's curve (concave forwards): centre
# (y, z), half width, half depth, half height (unscaled mm).
SACRAL_SEGMENTS = (
    (20.0, 78.0, 24.0, 15.0, 12.0),
    (32.0, 58.0, 36.0, 12.0, 11.0),
    (44.0, 42.0, 28.0, 10.0, 9.0),
    (54.0, 28.0, 19.0, 8.0, 8.0),
    (61.0, 17.0, 13.0, 6.5, 7.0),
    (67.0, 6.0, 7.0, 5.0, 6.0),
)


def _sacrum(ws: float, zs: float) -> Bone:
    """The sacrum (five fused segments on a curve, alae that meet the ilia) and the coccyx."""
    parts = []
    centres = [(y * ws, z * zs) for y, z, *_ in SACRAL_SEGMENTS]
    for i, (y, z, half_x, half_y, half_z) in enumerate(SACRAL_SEGMENTS):
        before = centres[max(i - 1, 0)]
        after = centres[min(i + 1, len(centres) - 1)]
        tilt = np.arctan2(before[0] - after[0], before[1] - after[1])  # forward lean of the curve
        rotation = np.column_stack(
            [[1.0, 0.0, 0.0], [0.0, np.cos(tilt), -np.sin(tilt)], [0.0, np.sin(tilt), np.cos(tilt)]]
        )
        shape = Ellipsoid((0.0, y * ws, z * zs), (half_x * ws, half_y * ws, half_z * zs), rotation)
        parts.append(BonePart("sacrum", shape, 2.0, weight=half_x * half_y / 300.0))
    for side in (-1.0, 1.0):  # the alae: the sacrum's side of the sacroiliac joints
        ala = Ellipsoid((side * 34.0 * ws, 40.0 * ws, 78.0 * zs), (18.0 * ws, 16.0 * ws, 18.0 * zs))
        parts.append(BonePart("sacrum", ala, 2.0, weight=0.8))
    return Bone("sacrum", "pelvis", parts)


def _sternum(ws: float, zs: float) -> Bone:
    """Manubrium, body (leaning forward downwards) and xiphoid."""

    def p(x, y, z):
        return (x * ws, y * ws, z * zs)

    lean = np.arctan2(18.0, 123.0)  # the body's top is 18 mm behind its bottom
    rotation = np.column_stack(
        [[1.0, 0.0, 0.0], [0.0, np.cos(lean), -np.sin(lean)], [0.0, np.sin(lean), np.cos(lean)]]
    )
    manubrium = Ellipsoid(p(0, -80, 497), (26 * ws, 7 * ws, 19 * zs))
    body = Ellipsoid(p(0, -97, 412), (16 * ws, 7 * ws, 64 * zs), rotation)
    xiphoid = Capsule(p(0, -106, 348), p(0, -103, 325), 4.0)
    return Bone(
        "sternum",
        "sternum",
        [
            BonePart("manubrium", manubrium, 1.8),
            BonePart("sternum", body, 1.8),
            BonePart("xiphoid", xiphoid, 1.5, weight=0.1),
        ],
    )


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
        BonePart("shaft", shaft, 5.0, weight=3.0, axis=_unit(shaft), yellow_marrow=True),
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
    for name, z, rx, ry, hh, y, pitch in levels:
        bones.append(_vertebra(name, z * zs, rx, ry, hh * zs, y * ws, pitch * zs, ws))
    by_name = {level[0]: level for level in levels}
    for number in range(1, 13):
        name, z, rx, ry, hh, y, pitch = by_name[f"T{number}"]
        for side in (-1.0, 1.0):
            bones.append(_rib(number, side, (name, z * zs, rx, ry, hh, y * ws), ws))
    head_r = 22.0 * ws
    for side in (-1.0, 1.0):
        head_centre = p(side * 92, 0, 0)
        bones.append(_hemipelvis(side, ws, zs, head_centre, head_r))
        bones.append(_femur(side, ws, zs, head_centre, head_r))
    bones.append(_sacrum(ws, zs))
    bones.append(_sternum(ws, zs))
    for side in (-1.0, 1.0):
        name = "left" if side > 0 else "right"
        clavicle = [
            Capsule(p(side * 28, -82, 512), p(side * 75, -72, 508), 7.0),
            Capsule(p(side * 75, -72, 508), p(side * 135, -25, 508), 7.0),
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
