"""Spherical volumes of interest on a voxel grid: the IBSI intensity peak (SUVpeak) and the
reference sphere (e.g. the liver's 3 cm VOI).

A sphere is a kernel of per-voxel weights in millimetres, so anisotropic voxels (e.g. 2×2×4 mm)
give the same physical sphere. Two weightings:

- ``"partial"``: each voxel weighs the fraction of its volume inside the sphere. The fraction is
  exact along the first array axis (the chord of the sphere through a voxel column) and sampled
  ``SUBSAMPLES``² times across the other two, so the weights sum to the sphere's volume (in
  voxels) within ~0.01 % whatever the voxel size.
- ``"centre"``: a voxel weighs 1 when its centre lies within the radius, else 0 (the wording of
  IBSI 1, §3.2 "local intensity features").

A mean over a sphere is normalised by the weights that fall inside the image: voxels outside the
image contribute nothing (neither to the sum nor to the weight).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from BoneOligoMetLib.errors import GeometryError, MaskError
from BoneOligoMetLib.image.geometry import describe_grid, voxel_volume_ml

# IBSI 1: the peak sphere has a volume of 1 cm³, radius (3 / (4π))^(1/3) cm ≈ 6.2035 mm.
PEAK_VOLUME_ML = 1.0
PEAK_RADIUS_MM = 10.0 * (3.0 * PEAK_VOLUME_ML / (4.0 * math.pi)) ** (1.0 / 3.0)
WEIGHTINGS = ("partial", "centre")
# Sub-samples per axis across a voxel for partial weights (the third axis is exact).
SUBSAMPLES = 20


def check_weighting(weighting: str) -> str:
    """``weighting`` if it is one of :data:`WEIGHTINGS`; a ValueError listing them otherwise."""
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown sphere weighting {weighting!r}; choose one of {WEIGHTINGS}")
    return weighting


def sphere_weights(
    spacing_zyx: Sequence[float],
    radius_mm: float = PEAK_RADIUS_MM,
    weighting: str = "partial",
    centre_offset_zyx: Sequence[float] = (0.0, 0.0, 0.0),
    subsamples: int = SUBSAMPLES,
) -> np.ndarray:
    """Weights (0–1) of the voxels around a sphere centre, in array (z, y, x) order.

    The kernel has an odd size per axis; its middle voxel is the voxel nearest the centre, which
    sits ``centre_offset_zyx`` voxels (each within ±0.5) from that voxel's centre.
    ``spacing_zyx`` is the voxel size in mm in array order.
    """
    check_weighting(weighting)
    spacing = np.asarray(spacing_zyx, dtype=float)
    offset = np.asarray(centre_offset_zyx, dtype=float)
    half = [math.ceil(radius_mm / s + 0.5 + abs(o)) for s, o in zip(spacing, offset)]
    # Voxel-centre coordinates (mm) relative to the sphere centre, per axis.
    axes = [(np.arange(-h, h + 1) - o) * s for h, o, s in zip(half, offset, spacing)]
    z, y, x = axes
    if weighting == "centre":
        distance2 = z[:, None, None] ** 2 + y[None, :, None] ** 2 + x[None, None, :] ** 2
        return (distance2 <= radius_mm**2).astype(float)
    sub = (np.arange(subsamples) + 0.5) / subsamples - 0.5
    ys = (y[:, None] + sub[None, :] * spacing[1]).ravel()
    xs = (x[:, None] + sub[None, :] * spacing[2]).ravel()
    # Half-length of the sphere's chord along z through each (y, x) sub-sample.
    chord = np.sqrt(np.clip(radius_mm**2 - (ys[:, None] ** 2 + xs[None, :] ** 2), 0.0, None))
    low = (z - spacing[0] / 2)[:, None, None]
    high = (z + spacing[0] / 2)[:, None, None]
    inside = np.clip(np.minimum(high, chord) - np.maximum(low, -chord), 0.0, None) / spacing[0]
    shape = (z.size, y.size, subsamples, x.size, subsamples)
    return inside.reshape(shape).mean(axis=(2, 4))


def sphere_mean_image(
    array: np.ndarray,
    spacing_zyx: Sequence[float],
    radius_mm: float = PEAK_RADIUS_MM,
    weighting: str = "partial",
) -> np.ndarray:
    """Mean of ``array`` over the sphere centred on each voxel (a normalised correlation).

    Voxels beyond the array's edges count as outside the image. On a crop, means are right only
    where the sphere stays inside the crop or meets a true image edge.
    """
    weights = sphere_weights(spacing_zyx, radius_mm, weighting)
    values = np.asarray(array, dtype=float)
    total = ndimage.correlate(values, weights, mode="constant", cval=0.0)
    norm = ndimage.correlate(np.ones_like(values), weights, mode="constant", cval=0.0)
    return total / norm


def intensity_peaks(
    array: np.ndarray,
    roi: np.ndarray,
    spacing_zyx: Sequence[float],
    radius_mm: float = PEAK_RADIUS_MM,
    weighting: str = "partial",
) -> tuple[float, float]:
    """IBSI global and local intensity peaks (e.g. SUVpeak) of the ROI ``roi`` (boolean array).

    Global: the highest sphere mean centred on any ROI voxel. Local: the sphere mean centred on
    the ROI's maximum-intensity voxel; when several voxels share the maximum, the highest of their
    means. The spheres take image voxels inside or outside the ROI, so both are defined for ROIs
    smaller than the sphere.
    """
    roi = np.asarray(roi, dtype=bool)
    if not roi.any():
        raise MaskError("intensity peak of an empty ROI")
    means = sphere_mean_image(array, spacing_zyx, radius_mm, weighting)[roi]
    values = np.asarray(array)[roi]
    local = means[values == values.max()].max()
    return float(means.max()), float(local)


@dataclass(frozen=True)
class SphereStatistics:
    """Weighted intensity statistics over a sphere (weights as in :func:`sphere_weights`)."""

    mean: float
    std: float  # weighted population standard deviation
    voxel_count: int  # voxels of non-zero weight inside the image
    volume_ml: float  # sum of weights × voxel volume: the sphere's volume inside the image


def sphere_statistics(
    image: sitk.Image,
    centre_lps_mm: Sequence[float],
    radius_mm: float,
    weighting: str = "partial",
    name: str = "image",
) -> SphereStatistics:
    """Weighted mean and std of ``image`` over a sphere at an LPS point (mm), on its own grid.

    The centre may lie anywhere in the image (not only on a voxel centre); a centre outside the
    image is a :class:`GeometryError` naming the point.
    """
    centre = tuple(float(c) for c in centre_lps_mm)
    size_zyx = np.asarray(image.GetSize()[::-1])
    index = np.asarray(image.TransformPhysicalPointToContinuousIndex(centre)[::-1])
    if np.any(index < -0.5) or np.any(index > size_zyx - 0.5):
        point = ", ".join(f"{c:.1f}" for c in centre)
        raise GeometryError(
            f"point ({point}) mm LPS lies outside the {name} ({describe_grid(image)})"
        )
    nearest = np.round(index).astype(int)
    weights = sphere_weights(image.GetSpacing()[::-1], radius_mm, weighting, index - nearest)
    half = (np.asarray(weights.shape) - 1) // 2
    low, high = nearest - half, nearest + half + 1
    clipped_low, clipped_high = np.maximum(low, 0), np.minimum(high, size_zyx)
    inside = tuple(slice(a, b) for a, b in zip(clipped_low, clipped_high))
    kernel = tuple(slice(a, b) for a, b in zip(clipped_low - low, clipped_high - low))
    values = sitk.GetArrayViewFromImage(image)[inside].astype(float)
    weights = weights[kernel]
    total = float(weights.sum())
    mean = float((weights * values).sum() / total)
    std = math.sqrt(float((weights * (values - mean) ** 2).sum() / total))
    return SphereStatistics(
        mean=mean,
        std=std,
        voxel_count=int(np.count_nonzero(weights)),
        volume_ml=total * voxel_volume_ml(image),
    )
