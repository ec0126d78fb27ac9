"""Features of a candidate focus: what tells a bone lesion from physiology against bone.

Computed for all foci at once by gathering voxels at fixed offsets (no per-focus crops): on the
PET work grid (SUV, the marrow around, rings of soft tissue and of any tissue, the focus's size
and its share in bone, the spill of a hot organ next to it) and on the full-resolution CT (the
HU within 5 mm against the marrow 8–14 mm around: lytic, sclerotic; bone around; the distance to
soft tissue; the narrowest non-bone run through it with bone at both ends, which a joint space
has and a lesion does not).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from BoneOligoMetLib.lesions.candidate_maps import WorkMaps

FEATURES = (
    "log_suv",  # the focus's SUV
    "log_over_local",  # SUV / the marrow around it
    "log_over_patient",  # SUV / the patient's marrow
    "spill_ratio",  # the SUV a hot organ next to it would give there (PET blur) / SUV
    "log_excess_over_local",  # (SUV − that spill) / the local marrow
    "ring_mean_ratio",  # mean SUV 6–12 mm around / SUV (a blob: low; an organ: ~1)
    "ring_soft_max_ratio",  # hottest soft tissue 6–12 mm around / SUV (an organ beside: ≥ 1)
    "far_max_ratio",  # hottest voxel 12–24 mm around / SUV (bladder, brain, heart nearby)
    "far_soft_max_ratio",
    "log_focus_ml",  # voxels ≥ half-way from the marrow to the SUV within 12 mm
    "focus_bone_fraction",  # of the focus, the share in bone
    "peak_in_bone",  # the focus's voxel in the filled bone
    "peak_in_closed_bone",  # ... in the bone closed by 11 mm (a lytic lesion through the cortex)
    "ring_bone_fraction",  # of the voxels 6–12 mm around, the share in (closed) bone
    "peak_bone_fraction",  # its CT share ≥ 150 HU
    "coarse_departure",  # its mean HU − the local marrow's, /100
    "ball_hu_median",  # full-resolution CT within 5 mm, /100
    "ball_hu_p10",
    "ball_hu_p90",
    "ball_bone_fraction",  # ≥ 150 HU
    "ball_soft_fraction",  # −50 … 120 HU
    "ball_air_fraction",  # < −200 HU: gas, lung
    "departure",  # ball median − the marrow 8–14 mm around (100–700 HU), /100
    "sclerotic_fraction",  # ball voxels ≥ that marrow + 200 HU (below 2000)
    "lytic_fraction",  # ball voxels between −50 HU and that marrow − 120 HU
    "shell_bone_fraction",  # CT 8–14 mm around at ≥ 150 HU (a hole in bone: high)
    "soft_distance",  # mm to the nearest CT voxel below 100 HU (≤ 12; cortex: small)
    "gap_mm",  # narrowest run of non-bone through the focus with bone on both ends (joint: ~3)
    "from_ct",  # found by the CT search (no PET focus there)
)


def _offsets(spacing_zyx: np.ndarray, r_low: float, r_high: float) -> np.ndarray:
    """Integer (z, y, x) offsets of the voxels whose centres lie r_low…r_high mm away."""
    extent = np.ceil(r_high / spacing_zyx).astype(int)
    axes = [np.arange(-e, e + 1) for e in extent]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    distance = np.linalg.norm(grid * spacing_zyx, axis=1)
    return grid[(distance >= r_low) & (distance <= r_high)]


def _gather(array: np.ndarray, points: np.ndarray, offsets: np.ndarray, fill):
    """``array`` at every point + offset: (n, m), ``fill`` outside the array."""
    index = points[:, None, :] + offsets[None, :, :]
    shape = np.asarray(array.shape)
    inside = np.all((index >= 0) & (index < shape), axis=-1)
    clipped = np.clip(index, 0, shape - 1)
    values = array[clipped[..., 0], clipped[..., 1], clipped[..., 2]]
    return np.where(inside, values, fill)


def _masked(values: np.ndarray, mask: np.ndarray, how: str, empty: float) -> np.ndarray:
    """Row-wise max / mean / median of ``values`` where ``mask`` (``empty`` for none)."""
    out = np.full(values.shape[0], empty, dtype=np.float64)
    any_ = mask.any(axis=1)
    if how == "max":
        out[any_] = np.where(mask, values, -np.inf).max(axis=1)[any_]
    elif how == "mean":
        count = mask.sum(axis=1)
        out[any_] = (np.where(mask, values, 0.0).sum(axis=1) / np.maximum(count, 1))[any_]
    else:
        filled = np.where(mask, values, np.nan).astype(np.float64)
        out[any_] = np.nanmedian(filled[any_], axis=1) if any_.any() else out[any_]
    return out


def candidate_features(
    maps: WorkMaps, ct: sitk.Image, points: np.ndarray, from_ct: np.ndarray
) -> np.ndarray:
    """The :data:`FEATURES` (n, len(FEATURES)) of the foci at ``points`` (PET-crop voxels)."""
    n = points.shape[0]
    if n == 0:
        return np.zeros((0, len(FEATURES)))
    spacing = np.asarray(maps.grid.GetSpacing())[::-1]
    s = maps.suv
    near = _gather(s, points, _offsets(spacing, 0.0, 4.0), 0.0)
    suv = near.max(axis=1)  # the voxel itself for a PET peak; the focus's top for a CT region
    local = maps.marrow_suv[tuple(points.T)].astype(np.float64)
    soft = maps.soft
    spill = maps.spill[tuple(points.T)].astype(np.float64)
    ring = _offsets(spacing, 6.0, 12.0)
    ring_suv = _gather(s, points, ring, 0.0)
    ring_body = _gather(maps.body, points, ring, False)
    ring_soft = _gather(soft, points, ring, False)
    far = _offsets(spacing, 12.0, 24.0)
    far_suv = _gather(s, points, far, 0.0)
    far_soft = _gather(soft, points, far, False)
    ball = _offsets(spacing, 0.0, 12.0)
    ball_suv = _gather(s, points, ball, 0.0)
    ball_bone = _gather(maps.bone, points, ball, False)
    half = ((suv + local) / 2.0)[:, None]
    focus = ball_suv >= half
    floor = np.maximum(suv, 1e-3)
    features = {
        "log_suv": np.log(floor),
        "log_over_local": np.log(floor / np.maximum(local, 0.1)),
        "log_over_patient": np.log(floor / max(maps.patient_marrow_suv, 0.1)),
        "spill_ratio": spill / floor,
        "log_excess_over_local": np.log(np.maximum(suv - spill, 0.05) / np.maximum(local, 0.1)),
        "ring_mean_ratio": _masked(ring_suv, ring_body, "mean", 0.0) / floor,
        "ring_soft_max_ratio": _masked(ring_suv, ring_soft, "max", 0.0) / floor,
        "far_max_ratio": far_suv.max(axis=1) / floor,
        "far_soft_max_ratio": _masked(far_suv, far_soft, "max", 0.0) / floor,
        "log_focus_ml": np.log1p(focus.sum(axis=1) * maps.voxel_ml),
        "focus_bone_fraction": (focus & ball_bone).sum(axis=1) / np.maximum(focus.sum(axis=1), 1),
        "peak_in_bone": maps.bone[tuple(points.T)].astype(float),
        "peak_in_closed_bone": maps.closed_bone[tuple(points.T)].astype(float),
        "ring_bone_fraction": _masked(
            _gather(maps.closed_bone, points, ring, False).astype(float), ring_body, "mean", 0.0
        ),
        "peak_bone_fraction": maps.bone_fraction[tuple(points.T)].astype(float),
        "coarse_departure": (maps.hu - maps.marrow_hu)[tuple(points.T)] / 100.0,
    }
    features.update(_ct_features(maps, ct, points))
    features["from_ct"] = from_ct.astype(float)
    return np.column_stack([features[name] for name in FEATURES])


def _ct_features(maps: WorkMaps, ct: sitk.Image, points: np.ndarray) -> dict[str, np.ndarray]:
    """Full-resolution CT around each focus (no resampling: gathers from the CT array)."""
    hu = sitk.GetArrayViewFromImage(ct)
    physical = [maps.point(p) for p in points]
    index = np.array(
        [ct.TransformPhysicalPointToIndex(tuple(float(c) for c in q))[::-1] for q in physical]
    )
    spacing = np.asarray(ct.GetSpacing())[::-1]
    gap = _gap_mm(hu, ct, np.asarray(physical, dtype=float))
    ball = _gather(hu, index, _offsets(spacing, 0.0, 5.0), -1000).astype(np.float64)
    shell = _gather(hu, index, _offsets(spacing, 8.0, 14.0), -1000).astype(np.float64)
    around = _offsets(spacing, 0.0, 12.0)
    distance = np.linalg.norm(around * spacing, axis=1)
    low = _gather(hu, index, around, -1000) < 100
    soft_distance = np.where(low, distance[None, :], 12.0).min(axis=1)
    marrow_mask = (shell >= 100.0) & (shell <= 700.0)
    marrow = _masked(shell, marrow_mask, "median", np.nan)
    fallback = np.nanmedian(marrow) if np.isfinite(marrow).any() else 250.0
    marrow = np.where(marrow_mask.sum(axis=1) >= 10, marrow, fallback)
    median = np.median(ball, axis=1)
    return {
        "ball_hu_median": median / 100.0,
        "ball_hu_p10": np.percentile(ball, 10, axis=1) / 100.0,
        "ball_hu_p90": np.percentile(ball, 90, axis=1) / 100.0,
        "ball_bone_fraction": (ball >= 150.0).mean(axis=1),
        "ball_soft_fraction": ((ball >= -50.0) & (ball < 120.0)).mean(axis=1),
        "ball_air_fraction": (ball < -200.0).mean(axis=1),
        "departure": (median - marrow) / 100.0,
        "sclerotic_fraction": ((ball >= marrow[:, None] + 200.0) & (ball < 2000.0)).mean(axis=1),
        "lytic_fraction": ((ball >= -50.0) & (ball <= marrow[:, None] - 120.0)).mean(axis=1),
        "shell_bone_fraction": (shell >= 150.0).mean(axis=1),
        "soft_distance": soft_distance,
        "gap_mm": gap,
    }


def _directions() -> np.ndarray:
    """The 13 directions of a voxel's 26 neighbours, one per opposite pair (unit vectors)."""
    grid = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), -1).reshape(-1, 3)
    half = grid[[tuple(g) > (0, 0, 0) for g in grid]].astype(float)
    return half / np.linalg.norm(half, axis=1, keepdims=True)


def _gap_mm(hu: np.ndarray, ct: sitk.Image, points_lps: np.ndarray, reach_mm: float = 15.0):
    """For each point: the narrowest run of CT below 200 HU through it that has bone at both
    ends within ``reach_mm`` (0 when the point is in dense bone; 30 when nowhere): a joint
    space is ~3 mm, a lytic lesion wider, soft tissue beside one bone has no far end."""
    matrix = np.asarray(ct.GetDirection()).reshape(3, 3) * np.asarray(ct.GetSpacing())
    to_index = np.linalg.inv(matrix)  # LPS mm -> continuous (x, y, z) index
    origin = np.asarray(ct.GetOrigin())
    steps = np.arange(1.0, reach_mm + 0.5, 1.0)
    shape = np.asarray(hu.shape)
    centre = ((points_lps - origin) @ to_index.T)[:, ::-1]  # (n, 3) z, y, x
    result = np.full(len(points_lps), 30.0)
    inside = np.all((np.rint(centre) >= 0) & (np.rint(centre) < shape), axis=1)
    at = np.clip(np.rint(centre).astype(int), 0, shape - 1)
    in_bone = inside & (hu[at[:, 0], at[:, 1], at[:, 2]] >= 200)
    for direction in _directions():
        step = (to_index @ direction)[::-1]
        ends = []
        for sign in (1.0, -1.0):
            samples = centre[:, None, :] + sign * steps[None, :, None] * step[None, None, :]
            index = np.rint(samples).astype(int)
            valid = np.all((index >= 0) & (index < shape), axis=-1)
            index = np.clip(index, 0, shape - 1)
            bone = valid & (hu[index[..., 0], index[..., 1], index[..., 2]] >= 200)
            first = np.where(bone.any(axis=1), steps[np.argmax(bone, axis=1)], np.inf)
            ends.append(first)
        result = np.minimum(result, ends[0] + ends[1])
    return np.where(in_bone, 0.0, result)
