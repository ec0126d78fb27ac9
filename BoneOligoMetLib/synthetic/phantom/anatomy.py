"""A female thorax–pelvis–head anatomy built from analytic solids, rasterised on any grid.

Coordinates are ITK LPS millimetres with z = 0 at the centre of the femoral heads, x towards the
patient's left, y posterior. Landmarks follow a ~160 cm woman: mid-femur z ≈ −190, iliac crest
≈ +140, T12/L1 ≈ +255, sternal notch ≈ +490, skull vertex ≈ +815. Each patient varies widths,
heights and subcutaneous fat (tied to weight).

Bones carry a cortical shell (``cortex_mm``; ≥ 2 mm so a 2 mm grid still shows it) around
cancellous bone (red marrow; fatty yellow marrow in the femoral shafts); lesions are placed in them
by ``lesions``. Paint order: body (fat, muscle), bowel, organs, costal cartilages, heart, joint
spaces (over fat and muscle only), then bones: marrow of any bone wins over cortex of another.
Bowel, urinary tract and joints are where physiological uptake lies against bone (``physiology``,
``joints``).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from BoneOligoMetLib.synthetic.phantom.grid import Grid
from BoneOligoMetLib.synthetic.phantom.joints import Joint, build_joints, costal_cartilages
from BoneOligoMetLib.synthetic.phantom.physiology import bowel_shapes, urinary_shapes
from BoneOligoMetLib.synthetic.phantom.shapes import Capsule, Ellipsoid, Shape, sdf_in_box
from BoneOligoMetLib.synthetic.phantom.skeleton import Bone, BonePart, build_skeleton

SITES = ("limbs", "vertebrae", "pelvis", "ribs", "skull")  # the study's Table 1
__all__ = [
    "BONE_TISSUES",
    "MARROW_TISSUES",
    "SITES",
    "Anatomy",
    "Bone",
    "BonePart",
    "Joint",
    "Tissue",
    "build_anatomy",
]


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
    CARTILAGE = 14  # costal cartilage
    YELLOW_MARROW = 15  # fatty marrow of the femoral shafts
    JOINT = 16  # synovium and joint fluid
    BOWEL_WALL = 17
    BOWEL_CONTENT = 18  # gas and faeces
    RENAL_PELVIS = 19  # urine in the kidney's collecting system
    URETER = 20


MARROW_TISSUES = (Tissue.CANCELLOUS_BONE, Tissue.YELLOW_MARROW)
BONE_TISSUES = (Tissue.CORTICAL_BONE, *MARROW_TISSUES)
JOINT_OVER = (Tissue.FAT, Tissue.SOFT_TISSUE)  # what a joint space may be painted over


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
    joints: list[Joint] = field(default_factory=list)

    def bones_at(self, site: str) -> list[Bone]:
        return [bone for bone in self.bones if bone.site == site]

    def bone(self, name: str) -> Bone:
        for bone in self.bones:
            if bone.name == name:
                return bone
        raise KeyError(name)

    def joint(self, name: str) -> Joint:
        for joint in self.joints:
            if joint.name == name:
                return joint
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
        for joint in self.joints:
            box = grid.box(*joint.space.bounds())
            if box.empty:
                continue
            view = labels[box.slices]
            view[(sdf_in_box(joint.space, box) <= 0) & np.isin(view, JOINT_OVER)] = Tissue.JOINT
        for bone in self.bones:
            for part in bone.parts:
                box = grid.box(*part.shape.bounds())
                if box.empty:
                    continue
                sdf = sdf_in_box(part.shape, box)
                view = labels[box.slices]
                view[(sdf <= 0) & ~np.isin(view, MARROW_TISSUES)] = Tissue.CORTICAL_BONE
                marrow = Tissue.YELLOW_MARROW if part.yellow_marrow else Tissue.CANCELLOUS_BONE
                view[sdf <= -part.cortex_mm] = marrow
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
    bones = build_skeleton(ws, zs)
    bowel, lumina = bowel_shapes(ws, zs)
    pelves, ureters = urinary_shapes(ws, zs)
    organs: list[tuple[Tissue, Shape]] = [(Tissue.BOWEL_WALL, shape) for shape in bowel]
    organs += [(Tissue.BOWEL_CONTENT, shape) for shape in lumina]
    organs += [
        (Tissue.LUNG, Ellipsoid(p(-72, -5, 440), (55 * ws, 80 * ws, 140 * zs))),
        (Tissue.LUNG, Ellipsoid(p(72, -5, 445), (55 * ws, 80 * ws, 135 * zs))),
        (Tissue.LIVER, Ellipsoid(p(-50, -10, 255), (80 * ws, 85 * ws, 75 * zs))),
        (Tissue.SPLEEN, Ellipsoid(p(92, 40, 275), (32 * ws, 28 * ws, 50 * zs))),
        (Tissue.KIDNEY, Ellipsoid(p(-70, 45, 220), (27 * ws, 25 * ws, 55 * zs))),
        (Tissue.KIDNEY, Ellipsoid(p(70, 45, 230), (27 * ws, 25 * ws, 55 * zs))),
        *[(Tissue.RENAL_PELVIS, shape) for shape in pelves],
        *[(Tissue.URETER, shape) for shape in ureters],
        # aorta: descending in front and left of the vertebral bodies, arch, ascending; IVC
        (Tissue.BLOOD, Capsule(p(18, 30, 470), p(24, 18, 380), 11.0 * ws)),
        (Tissue.BLOOD, Capsule(p(24, 18, 380), p(16, -22, 110), 11.0 * ws)),
        (Tissue.BLOOD, Capsule(p(18, 30, 470), p(5, -30, 492), 12.0 * ws)),
        (Tissue.BLOOD, Capsule(p(5, -30, 492), p(5, -35, 420), 13.0 * ws)),
        (Tissue.BLOOD, Capsule(p(-22, -12, 110), p(-24, 5, 250), 10.0 * ws)),
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
    organs += [(Tissue.CARTILAGE, shape) for shape in costal_cartilages(bones, ws, zs)]
    return Anatomy(
        body=body,
        organs=organs,
        bones=bones,
        heart=heart,
        myocardium_mm=10.0,
        liver_seed_mm=p(-50, -10, 255),
        joints=build_joints(bones, ws, zs),
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
