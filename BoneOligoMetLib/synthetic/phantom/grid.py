"""Axis-aligned voxel grids in ITK LPS millimetres, and boxes of voxels inside them.

The phantom is built from analytic shapes in physical space; a grid only decides where they are
sampled. Arrays are indexed (z, y, x) like ``SimpleITK.GetArrayFromImage``; a voxel's index
(i, j, k) has its centre at ``origin + (i, j, k) × spacing`` (identity direction).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import numpy as np
import SimpleITK as sitk


@dataclass(frozen=True)
class Box:
    """A block of a grid: array slices (z, y, x) and the voxel-centre coordinates (mm) on each axis.

    ``x``, ``y``, ``z`` are shaped for broadcasting against a (z, y, x) array.
    """

    slices: tuple[slice, slice, slice]
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.z.shape[0], self.y.shape[1], self.x.shape[2])

    @property
    def empty(self) -> bool:
        return min(self.shape) <= 0

    def sub(self, low: Sequence[float], high: Sequence[float]) -> Box:
        """The part of this box whose voxel centres lie in the LPS box [low, high] (mm)."""
        ranges = []
        for coords, lo, hi in zip(
            (self.z.ravel(), self.y.ravel(), self.x.ravel()),
            (low[2], low[1], low[0]),
            (high[2], high[1], high[0]),
        ):
            start = int(np.searchsorted(coords, lo, side="left"))
            stop = int(np.searchsorted(coords, hi, side="right"))
            ranges.append(slice(start, max(start, stop)))
        zs, ys, xs = ranges
        return Box(
            slices=(zs, ys, xs),
            x=self.x[:, :, xs],
            y=self.y[:, ys, :],
            z=self.z[zs, :, :],
        )


@dataclass(frozen=True)
class Grid:
    """``size`` (nx, ny, nz) voxels of ``spacing`` mm; voxel 0 is centred at ``origin`` (LPS)."""

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]

    @classmethod
    def centred(
        cls,
        size: Sequence[int],
        spacing: Sequence[float],
        centre_xy: Sequence[float],
        z_first: float,
    ) -> Grid:
        """A grid centred on ``centre_xy`` in-plane whose first slice is at ``z_first`` (mm)."""
        size3 = tuple(int(n) for n in size)
        spacing3 = tuple(float(s) for s in spacing)
        origin = tuple(
            float(centre_xy[axis]) - (size3[axis] - 1) * spacing3[axis] / 2.0 for axis in (0, 1)
        )
        return cls(size3, spacing3, (origin[0], origin[1], float(z_first)))  # type: ignore[arg-type]

    @property
    def shape(self) -> tuple[int, int, int]:
        """The (z, y, x) array shape."""
        return (self.size[2], self.size[1], self.size[0])

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    def axis(self, axis: int) -> np.ndarray:
        """Voxel-centre coordinates (mm) along ``axis`` (0 = x, 1 = y, 2 = z)."""
        return self.origin[axis] + self.spacing[axis] * np.arange(self.size[axis], dtype=float)

    def full_box(self) -> Box:
        return Box(
            slices=(slice(0, self.size[2]), slice(0, self.size[1]), slice(0, self.size[0])),
            x=self.axis(0)[None, None, :],
            y=self.axis(1)[None, :, None],
            z=self.axis(2)[:, None, None],
        )

    def box(self, low: Sequence[float], high: Sequence[float]) -> Box:
        """The voxels whose centres lie in the LPS box [low, high] (mm), clipped to the grid."""
        return self.full_box().sub(low, high)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """LPS box (mm) of the voxel centres."""
        low = np.asarray(self.origin, dtype=float)
        return low, low + np.asarray(self.spacing) * (np.asarray(self.size) - 1)

    def subdivided(self, factors: Sequence[int]) -> Grid:
        """The grid whose voxels split each of these into ``factors`` (x, y, z) equal parts."""
        factors3 = [int(f) for f in factors]
        spacing = tuple(s / f for s, f in zip(self.spacing, factors3))
        origin = tuple(o - s / 2.0 + t / 2.0 for o, s, t in zip(self.origin, self.spacing, spacing))
        size = tuple(n * f for n, f in zip(self.size, factors3))
        return Grid(size, spacing, origin)  # type: ignore[arg-type]

    def crop(self, start: Sequence[int], size: Sequence[int]) -> Grid:
        """The sub-grid of ``size`` voxels starting at index ``start`` (x, y, z)."""
        origin = tuple(o + s * i for o, s, i in zip(self.origin, self.spacing, start))
        return Grid(tuple(int(n) for n in size), self.spacing, origin)  # type: ignore[arg-type]

    def index_range(
        self, low: Sequence[float], high: Sequence[float], pad: int = 0
    ) -> tuple[list[int], list[int]]:
        """(start, size) in voxels of the index block whose centres span [low, high], padded."""
        start, size = [], []
        for axis in range(3):
            lo = int(np.floor((low[axis] - self.origin[axis]) / self.spacing[axis])) - pad
            hi = int(np.ceil((high[axis] - self.origin[axis]) / self.spacing[axis])) + pad
            lo, hi = max(lo, 0), min(hi, self.size[axis] - 1)
            start.append(lo)
            size.append(max(hi - lo + 1, 0))
        return start, size

    def same_as(self, other: Grid, tolerance_mm: float = 1e-6) -> bool:
        return (
            self.size == other.size
            and np.allclose(self.spacing, other.spacing, atol=tolerance_mm)
            and np.allclose(self.origin, other.origin, atol=tolerance_mm)
        )

    def image(self, array_zyx: np.ndarray, pixel_type: Optional[int] = None) -> sitk.Image:
        """A SimpleITK image of ``array_zyx`` on this grid (LPS, identity direction)."""
        if tuple(array_zyx.shape) != self.shape:
            raise ValueError(f"array shape {array_zyx.shape} is not the grid's {self.shape}")
        image = sitk.GetImageFromArray(np.ascontiguousarray(array_zyx))
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        if pixel_type is not None:
            image = sitk.Cast(image, pixel_type)
        return image

    @classmethod
    def of_image(cls, image: sitk.Image) -> Grid:
        """The grid of an axis-aligned image (direction must be identity)."""
        if not np.allclose(image.GetDirection(), np.eye(3).ravel(), atol=1e-6):
            raise ValueError("the phantom works on axis-aligned (identity-direction) images only")
        return cls(tuple(image.GetSize()), tuple(image.GetSpacing()), tuple(image.GetOrigin()))

    def describe(self) -> str:
        size = "×".join(str(n) for n in self.size)
        spacing = "×".join(f"{s:.4g}" for s in self.spacing)
        return f"{size} voxels of {spacing} mm"
