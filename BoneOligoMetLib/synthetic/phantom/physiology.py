"""Physiological FDG uptake that lies against bone: what a lesion finder must not report.

Drawn per patient (its own random stream, so the older streams and what they draw are unchanged):

- marrow: red marrow (axial skeleton, proximal femora) at the patient's marrow SUV with a smooth
  ±12 % texture; fatty (yellow) marrow in the femoral shafts (SUV 0.35–0.6, −80…0 HU); in about
  one patient in ten the red marrow is activated (after chemotherapy or G-CSF: × 1.3–1.8, and
  the spleen × 1.2), so marrow alone can pass the study's SUV 2.2;
- joints (``joints``): synovium at a soft-tissue level, and 0–3 hot joints per patient, more with
  age (degenerative lumbar facets, hips, sternoclavicular and sacroiliac joints; SUV 2–4.5);
- bowel: colon (caecum in the right iliac fossa against the ilium, sigmoid and rectum in front
  of the sacrum) and small-bowel loops; wall SUV 1.0–1.8 with hot segments up to ~5, diffuse and
  luminal uptake in the ~8 % of patients on metformin; gas and faeces in the lumen;
- urinary tract: the renal pelvis full of urine (0.4–1 × the bladder's SUV) at the kidney's
  hilum beside the lumbar spine, and ureters down to the bladder with boluses of urine.

The solids of bowel and urinary tract are fixed anatomy (scaled per patient); only their uptake
and content are drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from BoneOligoMetLib.synthetic.phantom.shapes import Capsule, Ellipsoid, Shape, SmoothField

# Centrelines (unscaled mm, x to the patient's left) and radii of the bowel.
COLON = (
    ((0, 18, 8), (0, 12, 35), (0, 8, 60), (8, -10, 80)),  # rectum
    ((8, -10, 80), (30, -25, 95), (55, -20, 105), (70, 0, 120)),  # sigmoid
    ((70, 0, 120), (100, 0, 170), (105, 5, 240), (90, -15, 290)),  # descending
    ((90, -15, 290), (50, -60, 260), (0, -75, 215), (-45, -60, 175), (-80, -25, 165)),
    ((-80, -25, 165), (-90, -5, 130), (-80, -15, 105)),  # ascending, to the caecum
)
COLON_RADII = (12.0, 13.0, 15.0, 15.0, 17.0)
CAECUM = ((-80.0, -15.0, 105.0), 22.0)
SMALL_BOWEL = (
    (-40, -50, 110), (-10, -60, 130), (20, -50, 115), (40, -40, 140), (10, -30, 160),
    (-25, -40, 150), (-45, -30, 180), (-10, -45, 195), (30, -35, 185),
)  # fmt: skip
SMALL_BOWEL_RADIUS = 11.0
BOWEL_WALL_MM = 3.0
# Renal pelvis (left; mirrored) and the ureter down to the bladder.
RENAL_PELVIS = ((52.0, 28.0, 222.0), (9.0, 7.0, 12.0))
URETER = ((50, 26, 210), (45, 22, 160), (44, 18, 120), (50, 14, 95), (56, 12, 70),
          (48, 0, 45), (22, -15, 38))  # fmt: skip
URETER_RADIUS = 2.5


def _chain(points, radius: float, scale) -> list[Shape]:
    scaled = [scale(*point) for point in points]
    return [Capsule(a, b, radius) for a, b in zip(scaled[:-1], scaled[1:])]


def bowel_shapes(ws: float, zs: float) -> tuple[list[Shape], list[Shape]]:
    """(outer tubes, lumina) of colon and small bowel: the wall is the difference."""

    def p(x, y, z):
        return (x * ws, y * ws, z * zs)

    outer: list[Shape] = []
    lumen: list[Shape] = []
    for points, radius in zip(COLON, COLON_RADII):
        outer += _chain(points, radius * ws, p)
        lumen += _chain(points, radius * ws - BOWEL_WALL_MM, p)
    centre, radius = CAECUM
    outer.append(Ellipsoid(p(*centre), (radius * ws,) * 3))
    lumen.append(Ellipsoid(p(*centre), (radius * ws - BOWEL_WALL_MM,) * 3))
    outer += _chain(SMALL_BOWEL, SMALL_BOWEL_RADIUS * ws, p)
    lumen += _chain(SMALL_BOWEL, SMALL_BOWEL_RADIUS * ws - BOWEL_WALL_MM, p)
    return outer, lumen


def urinary_shapes(ws: float, zs: float) -> tuple[list[Shape], list[Shape]]:
    """(renal pelves, ureters), both sides."""
    pelves: list[Shape] = []
    ureters: list[Shape] = []
    for side in (-1.0, 1.0):

        def p(x, y, z, side=side):
            return (side * x * ws, y * ws, z * zs)

        centre, radii = RENAL_PELVIS
        pelves.append(Ellipsoid(p(*centre), (radii[0] * ws, radii[1] * ws, radii[2] * zs)))
        ureters += _chain(URETER, URETER_RADIUS, p)
    return pelves, ureters


@dataclass
class Physiology:
    """One patient's physiological uptake beyond the per-tissue levels (see the module doc)."""

    marrow_activation: float  # × red-marrow SUV (1 unless activated)
    yellow_marrow_suv: float
    yellow_marrow_hu: float
    joint_suv: float  # synovium
    hot_joints: list[tuple[str, float]]  # (joint name, SUV)
    bowel_suv: float  # wall, before hot segments
    bowel_hot: float  # how hot the hot segments get (× wall level per unit of the field)
    metformin: bool
    renal_pelvis_fraction: float  # of the bladder's SUV
    ureter_fraction: float  # of the bladder's SUV, where a bolus is
    marrow_texture: SmoothField = field(repr=False)
    bowel_field: SmoothField = field(repr=False)
    gas_field: SmoothField = field(repr=False)
    ureter_field: SmoothField = field(repr=False)

    @classmethod
    def sample(cls, rng: np.random.Generator, age_years: float, joints: list) -> Physiology:
        activated = rng.uniform() < 0.10
        activation = float(rng.uniform(1.3, 1.8)) if activated else 1.0
        n_hot = int(rng.poisson(0.3 + 0.025 * max(age_years - 40.0, 0.0)))
        weights = np.array([joint.weight for joint in joints], dtype=float)
        chosen = rng.choice(
            len(joints), size=min(n_hot, 3), replace=False, p=weights / weights.sum()
        )
        hot = [
            (
                joints[int(i)].name,
                float(np.clip(2.8 * np.exp(0.3 * rng.standard_normal()), 2.0, 4.5)),
            )
            for i in sorted(chosen)
        ]
        metformin = bool(rng.uniform() < 0.08)
        return cls(
            marrow_activation=activation,
            yellow_marrow_suv=float(rng.uniform(0.35, 0.6)),
            yellow_marrow_hu=float(rng.uniform(-80.0, 0.0)),
            joint_suv=float(rng.uniform(0.7, 1.3)),
            hot_joints=hot,
            bowel_suv=float(rng.uniform(1.0, 1.8)) * (2.2 if metformin else 1.0),
            bowel_hot=float(np.exp(rng.normal(np.log(1.2), 0.5))),
            metformin=metformin,
            renal_pelvis_fraction=float(rng.uniform(0.4, 1.0)),
            ureter_fraction=float(rng.uniform(0.4, 1.0)),
            marrow_texture=SmoothField.random(rng, wavelength_mm=45.0),
            bowel_field=SmoothField.random(rng, wavelength_mm=50.0),
            gas_field=SmoothField.random(rng, wavelength_mm=25.0),
            ureter_field=SmoothField.random(rng, wavelength_mm=60.0),
        )

    def as_dict(self) -> dict:
        return {
            "marrow_activation": round(self.marrow_activation, 4),
            "yellow_marrow_suv": round(self.yellow_marrow_suv, 4),
            "yellow_marrow_hu": round(self.yellow_marrow_hu, 1),
            "joint_suv": round(self.joint_suv, 4),
            "hot_joints": [{"joint": name, "suv": round(suv, 4)} for name, suv in self.hot_joints],
            "bowel_suv": round(self.bowel_suv, 4),
            "bowel_hot": round(self.bowel_hot, 4),
            "metformin": self.metformin,
            "renal_pelvis_fraction": round(self.renal_pelvis_fraction, 4),
            "ureter_fraction": round(self.ureter_fraction, 4),
        }

    # Per-voxel modulation, given LPS coordinates (mm) of the voxels of one tissue.
    def marrow_factor(self, x, y, z) -> np.ndarray:
        return np.clip(1.0 + 0.12 * self.marrow_texture(x, y, z), 0.7, 1.3)

    def bowel_factor(self, x, y, z) -> np.ndarray:
        return 1.0 + self.bowel_hot * np.maximum(self.bowel_field(x, y, z) - 0.7, 0.0)

    def ureter_bolus(self, x, y, z) -> np.ndarray:
        return (self.ureter_field(x, y, z) > 0.5).astype(np.float32)

    def bowel_gas(self, x, y, z) -> np.ndarray:
        return self.gas_field(x, y, z) > 0.2
