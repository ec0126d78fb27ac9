"""Joints and costal cartilages: the soft tissue between bones, where physiological FDG uptake
sits right against bone (synovitis, degenerative facet joints) without being a bone lesion.

A joint is a small solid around the gap between two bones. It is painted as ``JOINT`` tissue
before the bones, so after them only the gap and the capsule around it remain: the 2.5 mm hip
joint space around the femoral head and a sleeve along the femoral neck, the sacroiliac joint
between the sacral ala and the ilium, the facet joints between two levels' articular columns, and
the sternoclavicular joints. ``focus`` is where an inflamed or degenerative joint is hot: the
part of it that is not bone gets the joint's FDG level (``physiology``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from BoneOligoMetLib.synthetic.phantom.shapes import Capsule, Ellipsoid, Shape, Union
from BoneOligoMetLib.synthetic.phantom.skeleton import Bone

# Where the costal cartilage of ribs 1–10 meets the sternum (or the cartilage above: the costal
# margin), left side, unscaled mm.
CARTILAGE_ENDS = {
    1: (24.0, -76.0, 503.0),
    2: (18.0, -86.0, 478.0),
    3: (16.0, -90.0, 452.0),
    4: (16.0, -94.0, 426.0),
    5: (16.0, -97.0, 400.0),
    6: (15.0, -100.0, 375.0),
    7: (12.0, -103.0, 352.0),
    8: (38.0, -100.0, 340.0),
    9: (62.0, -92.0, 318.0),
    10: (84.0, -82.0, 292.0),
}
CARTILAGE_RADIUS_MM = 4.5


@dataclass
class Joint:
    """One joint: the solid painted as joint tissue, and where it is hot when inflamed."""

    name: str  # e.g. "left hip", "L4/L5 right facet"
    kind: str  # hip, sacroiliac, facet, sternoclavicular
    space: Shape
    focus: Ellipsoid
    weight: float  # relative chance it is the hot one (degenerative / inflamed)


def costal_cartilages(bones: list[Bone], ws: float, zs: float) -> list[Shape]:
    """Costal cartilages from the front end of ribs 1–10 to the sternum or the costal margin."""
    shapes: list[Shape] = []
    for bone in bones:
        if bone.site != "ribs":
            continue
        number = int(bone.name.split()[-1])
        if number not in CARTILAGE_ENDS:
            continue
        side = 1.0 if bone.name.startswith("left") else -1.0
        end = bone.parts[-1].shape.b  # type: ignore[attr-defined]
        x, y, z = CARTILAGE_ENDS[number]
        shapes.append(Capsule(tuple(end), (side * x * ws, y * ws, z * zs), CARTILAGE_RADIUS_MM))
    return shapes


def _part(bone: Bone, kind: str, index: int = 0) -> Shape:
    return [p.shape for p in bone.parts if p.kind == kind][index]


def _facet(name: str, centre: tuple, column_radius: float, weight: float) -> Joint:
    """A facet joint at ``centre``: its space 1.5 mm beyond the articular column's radius and 5 mm
    high, its hot focus 6 mm around the centre."""
    space = Ellipsoid(centre, (column_radius + 1.5, column_radius + 1.5, 5.0))
    return Joint(name, "facet", space, Ellipsoid(centre, (6.0, 6.0, 6.0)), weight=weight)


def build_joints(bones: list[Bone], ws: float, zs: float) -> list[Joint]:
    """The joints of ``bones``: hips, sacroiliac, facet (L1–S1 and thoracic), sternoclavicular."""
    by_name = {bone.name: bone for bone in bones}
    joints: list[Joint] = []
    for side_name, side in (("left", 1.0), ("right", -1.0)):
        femur = by_name[f"{side_name} femur"]
        head = _part(femur, "head")
        neck = _part(femur, "neck")
        assert isinstance(head, Ellipsoid)
        assert isinstance(neck, Capsule)
        radius = float(head.radii[0])
        space = Union(
            [
                Ellipsoid(head.centre, (radius + 4.0,) * 3),
                Capsule(neck.a, neck.b, neck.radius + 4.0),
            ]
        )
        focus = Ellipsoid(head.centre, (radius + 6.0,) * 3)
        joints.append(Joint(f"{side_name} hip", "hip", space, focus, weight=2.5))

        ala = [p.shape for p in by_name["sacrum"].parts if p.shape.centre[0] * side > 20.0]
        ilium = _part(by_name[f"{side_name} hemipelvis"], "wing", -1)  # the sacroiliac part
        assert isinstance(ala[0], Ellipsoid)
        assert isinstance(ilium, Ellipsoid)
        centre = (np.asarray(ala[0].centre) + np.asarray(ilium.centre)) / 2.0
        centre[2] = ala[0].centre[2]
        space_si = Ellipsoid(tuple(centre), (9.0 * ws, 16.0 * ws, 26.0 * zs))
        focus_si = Ellipsoid(tuple(centre), (7.0 * ws, 12.0 * ws, 18.0 * zs))
        joints.append(Joint(f"{side_name} sacroiliac", "sacroiliac", space_si, focus_si, 0.8))

        sc = (side * 21.0 * ws, -81.0 * ws, 510.0 * zs)
        joints.append(
            Joint(
                f"{side_name} sternoclavicular",
                "sternoclavicular",
                Ellipsoid(sc, (6.0, 7.0, 7.0)),
                Ellipsoid(sc, (7.0, 7.0, 8.0)),
                weight=1.0,
            )
        )
    levels = [b for b in bones if b.site == "vertebrae"]  # L5 upwards, in build order
    for lower, upper in zip(levels[:-1], levels[1:]):
        if upper.name[0] == "C":
            break
        lumbar = lower.name[0] == "L"
        for index, side_name in enumerate(("right", "left")):
            below = _part(lower, "facet", index)
            above = _part(upper, "facet", index)
            assert isinstance(below, Capsule)
            assert isinstance(above, Capsule)
            top = np.asarray(below.b) + np.array([0.0, 0.0, below.radius])
            bottom = np.asarray(above.a) - np.array([0.0, 0.0, above.radius])
            centre = tuple((top + bottom) / 2.0)
            name = f"{upper.name}/{lower.name} {side_name} facet"
            joints.append(_facet(name, centre, below.radius, 0.6 if lumbar else 0.1))
    # The lumbosacral facets: L5's columns on the sacrum's first segment.
    l5 = by_name["L5"]
    for index, side_name in enumerate(("right", "left")):
        below = _part(l5, "facet", index)
        assert isinstance(below, Capsule)
        centre = tuple(np.asarray(below.a) - np.array([0.0, 0.0, below.radius + 1.5]))
        joints.append(_facet(f"L5/S1 {side_name} facet", centre, below.radius, 0.8))
    return joints
