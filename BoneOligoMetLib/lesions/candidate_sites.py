"""The skeletal site of a candidate (spine, pelvis, ribs, limbs, skull, other) from landmarks that
the CT itself gives, without an atlas: the body's outline slice by slice, the lungs, the neck,
the thighs and the pelvis.

- thighs: slices where the body splits in two (below the crotch): limbs;
- head: slices above the narrowest slice of the neck: skull, except the cervical spine;
- pelvis: from the crotch up to the iliac crests (the slices where bone reaches far from the
  midline, above the thighs); below the femoral heads (``FEMORAL_HEAD_ABOVE_CROTCH_MM`` above
  the crotch) bone far from the midline is the proximal femur (limbs), and the midline within
  ``LUMBAR_BELOW_CREST_MM`` of the crests is the lumbar spine;
- spine: bone within ``SPINE_HALF_WIDTH_MM`` of the body's midline, behind its centre, between
  the pelvis and the skull;
- thorax (the lungs' slices, and 70 mm below them for the lowest ribs): bone near the midline
  in front is the sternum (other), bone off the midline ribs (scapulae and clavicles too: no
  lesion of the synthetic cohort lies there).

Approximate by design: the site in the candidates' table helps the reader; it is measured against
the generator's truth in ``bench/bench_candidates.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

SPINE_HALF_WIDTH_MM = 32.0
FEMORAL_HEAD_ABOVE_CROTCH_MM = 45.0
HIP_FROM_MIDLINE_MM = 60.0
LUMBAR_BELOW_CREST_MM = 50.0  # the midline up to 50 mm below the iliac crests is L4–L5
PELVIS_WIDE_MM = 70.0  # bone this far from the midline: pelvis (lumbar transverse processes ~45)


@dataclass
class Landmarks:
    """Slice-wise landmarks on the work grid (z indices) and per-slice body centre (mm)."""

    centre_x: np.ndarray  # (nz,) mm, the body's midline
    centre_y: np.ndarray
    crotch: int  # first slice above the thighs (-1: no thighs in the field)
    pelvis_top: int  # last slice of the pelvis (-1: none)
    neck: int  # first slice of the head (nz: no head in the field)
    lung_low: int  # lung slices (lung_low > lung_high: none)
    lung_high: int


def find_landmarks(
    hu: np.ndarray, body: np.ndarray, bone: np.ndarray, spacing_xyz, origin_xy
) -> Landmarks:
    """Landmarks of a work grid: ``hu`` (z, y, x), its body and bone masks, voxel spacing (x, y,
    z mm) and the physical x, y (mm) of voxel (0, 0) in every slice (axis-aligned grid)."""
    nz = hu.shape[0]
    sx, sy, sz = (float(v) for v in spacing_xyz)
    x = origin_xy[0] + sx * np.arange(hu.shape[2])
    y = origin_xy[1] + sy * np.arange(hu.shape[1])
    area = body.sum(axis=(1, 2)) * sx * sy / 100.0  # cm²
    weight = np.maximum(body.sum(axis=(1, 2)), 1)
    centre_x = (body.sum(axis=1) * x).sum(axis=1) / weight
    centre_y = (body.sum(axis=2) * y).sum(axis=1) / weight

    legs = np.zeros(nz, dtype=bool)
    for k in range(nz):
        if area[k] < 30.0:
            continue
        labels, count = ndimage.label(body[k])
        if count >= 2:
            sizes = np.sort(np.bincount(labels.ravel())[1:])[::-1] * sx * sy / 100.0
            legs[k] = sizes[1] >= 30.0 and sizes[1] >= 0.3 * sizes[0]
    crotch = -1
    if legs[0]:
        crotch = int(np.argmin(legs)) if not legs.all() else nz

    filled = ndimage.binary_fill_holes(body, structure=_axial())
    lungs = (hu < -400.0) & filled & ~body  # air inside the body: lungs (bowel gas is less)
    lung_area = lungs.sum(axis=(1, 2)) * sx * sy / 100.0
    lung_slices = np.flatnonzero(lung_area >= 50.0)
    lung_low, lung_high = (int(lung_slices[0]), int(lung_slices[-1])) if lung_slices.size else (
        nz, -1)  # fmt: skip
    neck = nz
    if lung_high >= 0 and lung_high + 5 < nz:
        top = min(nz, lung_high + int(250.0 / sz))
        span = area[lung_high + 1 : top]
        if span.size and span.min() < 0.5 * area[lung_high]:
            neck = lung_high + 1 + int(np.argmin(span))
    wide = np.zeros(nz, dtype=bool)
    for k in range(nz):
        columns = np.flatnonzero(bone[k].any(axis=0))
        if columns.size:
            wide[k] = np.abs(x[columns] - centre_x[k]).max() >= PELVIS_WIDE_MM
    pelvis_top = -1
    if crotch >= 0:
        k = max(crotch, 0)
        narrow = 0
        while k < min(nz, lung_low if lung_low < nz else nz):
            narrow = 0 if wide[k] else narrow + 1
            if narrow >= 3:
                break
            pelvis_top = k
            k += 1
        pelvis_top -= min(narrow, 2)
    return Landmarks(
        centre_x=centre_x,
        centre_y=centre_y,
        crotch=crotch,
        pelvis_top=pelvis_top,
        neck=neck,
        lung_low=lung_low,
        lung_high=lung_high,
    )


def _axial() -> np.ndarray:
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = ndimage.generate_binary_structure(2, 1)
    return structure


def site_of(marks: Landmarks, index, point_xy, spacing_z: float) -> str:
    """The site of the voxel ``index`` (z, y, x) whose physical x, y (mm) are ``point_xy``."""
    k = int(index[0])
    dx = float(point_xy[0] - marks.centre_x[k])
    dy = float(point_xy[1] - marks.centre_y[k])
    midline = abs(dx) <= SPINE_HALF_WIDTH_MM
    if marks.crotch >= 0 and k < marks.crotch:
        return "limbs"
    if k >= marks.neck:
        return "spine" if midline and dy > -10.0 else "skull"
    if 0 <= marks.crotch <= k <= marks.pelvis_top:
        head = marks.crotch + FEMORAL_HEAD_ABOVE_CROTCH_MM / spacing_z
        if k < head and abs(dx) >= HIP_FROM_MIDLINE_MM + 20.0:
            return "limbs"
        lumbar = k > marks.pelvis_top - LUMBAR_BELOW_CREST_MM / spacing_z
        return "spine" if lumbar and midline and dy > -10.0 else "pelvis"
    in_thorax = marks.lung_low - 70.0 / spacing_z <= k <= marks.lung_high + 10.0 / spacing_z
    if midline and dy > -10.0:
        return "spine"
    if in_thorax:
        return "other" if midline else "ribs"  # the sternum in front
    return "spine" if abs(dx) <= 1.5 * SPINE_HALF_WIDTH_MM else "other"
