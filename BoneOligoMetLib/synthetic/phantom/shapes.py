"""Analytic solids as signed distance functions (mm; < 0 inside) in LPS physical space.

Shapes are sampled on any grid, so the CT grid and the finer PET activity grid see the same body
and the same lesions. Distances are exact for spheres, capsules and planes and a first-order
approximation for ellipsoids (exact on the surface, good within a few mm of it), which is all a
cortical shell of 1–3 mm needs. Unions evaluate each part only inside its own bounding box.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from BoneOligoMetLib.synthetic.phantom.grid import Box

Vector = Sequence[float]


def rotation_matrix(axis: Vector, angle_rad: float) -> np.ndarray:
    """Rotation by ``angle_rad`` about ``axis`` (Rodrigues); columns are the rotated unit axes."""
    u = np.asarray(axis, dtype=float)
    u = u / np.linalg.norm(u)
    k = np.array([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]])
    return np.eye(3) + np.sin(angle_rad) * k + (1 - np.cos(angle_rad)) * (k @ k)


def frame_from_axis(axis: Vector) -> np.ndarray:
    """A rotation whose third column is the unit vector ``axis`` (the other two are arbitrary)."""
    w = np.asarray(axis, dtype=float)
    w = w / np.linalg.norm(w)
    helper = np.array([1.0, 0.0, 0.0]) if abs(w[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(helper, w)
    u /= np.linalg.norm(u)
    return np.column_stack([u, np.cross(w, u), w])


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random rotation matrix."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _local(x, y, z, centre: Vector, rotation: Optional[np.ndarray]):
    dx, dy, dz = x - centre[0], y - centre[1], z - centre[2]
    if rotation is None:
        return dx, dy, dz
    r = rotation
    return (
        r[0, 0] * dx + r[1, 0] * dy + r[2, 0] * dz,
        r[0, 1] * dx + r[1, 1] * dy + r[2, 1] * dz,
        r[0, 2] * dx + r[1, 2] * dy + r[2, 2] * dz,
    )


def _ellipse_distance(k0, k1, fallback: float):
    """First-order distance k0 (k0 − 1) / k1 of the normalised radius k0 and gradient norm k1."""
    out = np.full(np.broadcast(k0, k1).shape, -fallback, dtype=float)
    np.divide(k0 * (k0 - 1.0), k1, out=out, where=k1 > 1e-12)
    return out


def _rotated_half_extent(radii: Vector, rotation: Optional[np.ndarray]) -> np.ndarray:
    radii = np.asarray(radii, dtype=float)
    if rotation is None:
        return radii
    return np.sqrt(((rotation * radii[None, :]) ** 2).sum(axis=1))


class Shape:
    """A solid: ``sdf(x, y, z)`` (mm, broadcasting) and an LPS bounding box."""

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def sdf(self, x, y, z) -> np.ndarray:
        raise NotImplementedError


@dataclass
class Ellipsoid(Shape):
    centre: Vector
    radii: Vector
    rotation: Optional[np.ndarray] = None  # columns: the local axes in LPS

    def bounds(self):
        half = _rotated_half_extent(self.radii, self.rotation)
        c = np.asarray(self.centre, dtype=float)
        return c - half, c + half

    def sdf(self, x, y, z):
        q = _local(x, y, z, self.centre, self.rotation)
        r = self.radii
        k0 = np.sqrt((q[0] / r[0]) ** 2 + (q[1] / r[1]) ** 2 + (q[2] / r[2]) ** 2)
        k1 = np.sqrt((q[0] / r[0] ** 2) ** 2 + (q[1] / r[1] ** 2) ** 2 + (q[2] / r[2] ** 2) ** 2)
        return _ellipse_distance(k0, k1, min(r))


@dataclass
class EllipticCylinder(Shape):
    """An elliptic cylinder along z (a vertebral body): semi-axes ``rx``, ``ry``, half height."""

    centre: Vector
    rx: float
    ry: float
    half_height: float

    def bounds(self):
        c = np.asarray(self.centre, dtype=float)
        half = np.array([self.rx, self.ry, self.half_height])
        return c - half, c + half

    def sdf(self, x, y, z):
        qx, qy = x - self.centre[0], y - self.centre[1]
        k0 = np.sqrt((qx / self.rx) ** 2 + (qy / self.ry) ** 2)
        k1 = np.sqrt((qx / self.rx**2) ** 2 + (qy / self.ry**2) ** 2)
        radial = _ellipse_distance(k0, k1, min(self.rx, self.ry))
        return np.maximum(radial, np.abs(z - self.centre[2]) - self.half_height)


@dataclass
class Capsule(Shape):
    """All points within ``radius`` of the segment a–b."""

    a: Vector
    b: Vector
    radius: float

    def bounds(self):
        a, b = np.asarray(self.a, dtype=float), np.asarray(self.b, dtype=float)
        return np.minimum(a, b) - self.radius, np.maximum(a, b) + self.radius

    def sdf(self, x, y, z):
        a, b = np.asarray(self.a, dtype=float), np.asarray(self.b, dtype=float)
        ab = b - a
        px, py, pz = x - a[0], y - a[1], z - a[2]
        t = np.clip((px * ab[0] + py * ab[1] + pz * ab[2]) / float(ab @ ab), 0.0, 1.0)
        return np.sqrt((px - t * ab[0]) ** 2 + (py - t * ab[1]) ** 2 + (pz - t * ab[2]) ** 2) - (
            self.radius
        )


@dataclass
class Slab(Shape):
    """Points within ``half_thickness`` of the plane through ``centre`` with unit ``normal``.

    Unbounded: only useful intersected with a bounded shape (its ``limit``).
    """

    centre: Vector
    normal: Vector
    half_thickness: float
    limit: Shape

    def bounds(self):
        return self.limit.bounds()

    def sdf(self, x, y, z):
        n = np.asarray(self.normal, dtype=float)
        n = n / np.linalg.norm(n)
        c = self.centre
        plane = np.abs((x - c[0]) * n[0] + (y - c[1]) * n[1] + (z - c[2]) * n[2])
        return np.maximum(plane - self.half_thickness, self.limit.sdf(x, y, z))


@dataclass
class Shell(Shape):
    """A shell of ``thickness`` centred on the surface of ``shape`` (e.g. the skull vault)."""

    shape: Shape
    thickness: float

    def bounds(self):
        low, high = self.shape.bounds()
        return low - self.thickness / 2, high + self.thickness / 2

    def sdf(self, x, y, z):
        return np.abs(self.shape.sdf(x, y, z)) - self.thickness / 2


@dataclass
class Difference(Shape):
    """``keep`` minus ``remove``."""

    keep: Shape
    remove: Shape

    def bounds(self):
        return self.keep.bounds()

    def sdf(self, x, y, z):
        return np.maximum(self.keep.sdf(x, y, z), -self.remove.sdf(x, y, z))


@dataclass
class Intersection(Shape):
    """Points inside every one of ``parts`` (e.g. a curved shell cut to an outline)."""

    parts: list[Shape] = field(default_factory=list)

    def bounds(self):
        lows, highs = zip(*(part.bounds() for part in self.parts))
        return np.max(lows, axis=0), np.min(highs, axis=0)

    def sdf(self, x, y, z):
        out = self.parts[0].sdf(x, y, z)
        for part in self.parts[1:]:
            out = np.maximum(out, part.sdf(x, y, z))
        return out


@dataclass
class Union(Shape):
    parts: list[Shape] = field(default_factory=list)

    def bounds(self):
        lows, highs = zip(*(part.bounds() for part in self.parts))
        return np.min(lows, axis=0), np.max(highs, axis=0)

    def sdf(self, x, y, z):
        return np.minimum.reduce([part.sdf(x, y, z) for part in self.parts])


@dataclass
class Lobulated(Shape):
    """An ellipsoid whose radius is modulated by a few random waves over the direction sphere.

    ``amplitudes`` (fractions of the radius), ``directions`` (unit vectors), ``frequencies`` and
    ``phases`` define ``bump(u) = Σ a cos(f u·w + φ)``; high frequencies give a spiculated margin.
    """

    centre: Vector
    radii: Vector
    rotation: Optional[np.ndarray]
    amplitudes: np.ndarray
    directions: np.ndarray
    frequencies: np.ndarray
    phases: np.ndarray

    @classmethod
    def random(
        cls,
        rng: np.random.Generator,
        centre: Vector,
        radii: Vector,
        rotation: Optional[np.ndarray],
        roughness: float = 0.12,
        frequency: tuple[float, float] = (2.0, 4.0),
        n_waves: int = 5,
    ) -> Lobulated:
        directions = rng.standard_normal((n_waves, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        return cls(
            centre=tuple(float(c) for c in centre),
            radii=tuple(float(r) for r in radii),
            rotation=rotation,
            amplitudes=rng.uniform(0.3, 1.0, n_waves) * roughness / np.sqrt(n_waves / 2.0),
            directions=directions,
            frequencies=rng.uniform(frequency[0], frequency[1], n_waves),
            phases=rng.uniform(0, 2 * np.pi, n_waves),
        )

    def max_scale(self) -> float:
        return 1.0 + float(np.abs(self.amplitudes).sum())

    def bounds(self):
        half = _rotated_half_extent(np.asarray(self.radii) * self.max_scale(), self.rotation)
        c = np.asarray(self.centre, dtype=float)
        return c - half, c + half

    def sdf(self, x, y, z):
        q = _local(x, y, z, self.centre, self.rotation)
        r = self.radii
        u = [q[0] / r[0], q[1] / r[1], q[2] / r[2]]
        rho = np.sqrt(u[0] ** 2 + u[1] ** 2 + u[2] ** 2)
        inv = 1.0 / np.maximum(rho, 1e-9)
        bump = 0.0
        for a, w, f, p in zip(self.amplitudes, self.directions, self.frequencies, self.phases):
            bump = bump + a * np.cos(f * (u[0] * w[0] + u[1] * w[1] + u[2] * w[2]) * inv + p)
        return (rho - 1.0 - bump) * min(r)


@dataclass
class SmoothField:
    """A smooth random texture of zero mean and unit variance: a sum of random plane waves.

    Analytic, so it is the same function of position on every grid.
    """

    wavevectors: np.ndarray  # (n, 3), rad/mm
    phases: np.ndarray  # (n,)

    @classmethod
    def random(
        cls, rng: np.random.Generator, wavelength_mm: float, n_waves: int = 8
    ) -> SmoothField:
        directions = rng.standard_normal((n_waves, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        lengths = wavelength_mm * rng.uniform(0.7, 1.4, n_waves)
        return cls(directions * (2 * np.pi / lengths)[:, None], rng.uniform(0, 2 * np.pi, n_waves))

    def __call__(self, x, y, z) -> np.ndarray:
        total = 0.0
        for k, p in zip(self.wavevectors, self.phases):
            total = total + np.cos(k[0] * x + k[1] * y + k[2] * z + p)
        return total * np.sqrt(2.0 / len(self.phases))


def sdf_in_box(shape: Shape, box: Box) -> np.ndarray:
    """``shape``'s signed distance (float32, mm) on every voxel of ``box``.

    A union is evaluated part by part inside each part's bounding box (+inf elsewhere).
    """
    if isinstance(shape, Union):
        out = np.full(box.shape, np.inf, dtype=np.float32)
        for part in shape.parts:
            low, high = part.bounds()
            sub = box.sub(low, high)
            if sub.empty:
                continue
            np.minimum(out[sub.slices], sdf_in_box(part, sub), out=out[sub.slices])
        return out
    return np.broadcast_to(shape.sdf(box.x, box.y, box.z), box.shape).astype(np.float32)
