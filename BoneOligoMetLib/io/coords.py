"""The one place that converts between Slicer's RAS and ITK's LPS physical coordinates.

Slicer (MRML) works in RAS (x = Right, y = Anterior, z = Superior); ITK, SimpleITK, DICOM and the
NIfTI files ITK writes describe physical points in LPS (x = Left, y = Posterior, z = Superior).
The two differ by the sign of x and y. Everything in ``BoneOligoMetLib`` is LPS; only the Slicer
module (and CLI options documented as RAS) convert, through these functions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# diag(-1, -1, 1): its own inverse, so the same matrix maps RAS->LPS and LPS->RAS.
RAS_LPS_FLIP = np.diag([-1.0, -1.0, 1.0])


def ras_to_lps(point: Sequence[float]) -> tuple[float, float, float]:
    """A physical point (mm) from Slicer RAS to ITK LPS."""
    x, y, z = (float(v) for v in point)
    return (-x, -y, z)


def lps_to_ras(point: Sequence[float]) -> tuple[float, float, float]:
    """A physical point (mm) from ITK LPS to Slicer RAS."""
    return ras_to_lps(point)


def ras_to_lps_points(points: np.ndarray) -> np.ndarray:
    """An (N, 3) array of RAS points (mm) to LPS; also works LPS -> RAS."""
    points = np.asarray(points, dtype=float)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"expected an (N, 3) array of points, found shape {points.shape}")
    return points @ RAS_LPS_FLIP


lps_to_ras_points = ras_to_lps_points


def ijk_to_lps_matrix(
    origin: Sequence[float], spacing: Sequence[float], direction: Sequence[float]
) -> np.ndarray:
    """4×4 homogeneous matrix from voxel index (i, j, k) to LPS mm, from ITK geometry."""
    matrix = np.eye(4)
    matrix[:3, :3] = np.asarray(direction, dtype=float).reshape(3, 3) @ np.diag(spacing)
    matrix[:3, 3] = origin
    return matrix


def ijk_to_ras_matrix(
    origin: Sequence[float], spacing: Sequence[float], direction: Sequence[float]
) -> np.ndarray:
    """4×4 IJK→RAS matrix (what ``vtkMRMLVolumeNode.SetIJKToRASMatrix`` takes) from ITK geometry."""
    flip = np.eye(4)
    flip[:3, :3] = RAS_LPS_FLIP
    return flip @ ijk_to_lps_matrix(origin, spacing, direction)


def itk_geometry_from_ijk_to_ras(
    ijk_to_ras: np.ndarray,
) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """ITK (origin, spacing, direction) in LPS from a 4×4 IJK→RAS matrix (Slicer volume node)."""
    ijk_to_ras = np.asarray(ijk_to_ras, dtype=float)
    if ijk_to_ras.shape != (4, 4):
        raise ValueError(f"expected a 4x4 IJK-to-RAS matrix, found shape {ijk_to_ras.shape}")
    ijk_to_lps = RAS_LPS_FLIP @ ijk_to_ras[:3, :3]
    spacing = np.linalg.norm(ijk_to_lps, axis=0)
    if np.any(spacing <= 0):
        raise ValueError(f"IJK-to-RAS matrix has a zero-length axis: spacing {spacing}")
    direction = ijk_to_lps / spacing
    origin = RAS_LPS_FLIP @ ijk_to_ras[:3, 3]
    return (
        tuple(float(v) for v in origin),
        tuple(float(v) for v in spacing),
        tuple(float(v) for v in direction.ravel()),
    )


def image_from_array(array_kji: np.ndarray, ijk_to_ras: np.ndarray):
    """A SimpleITK image from a Slicer-style voxel array (k, j, i order) and its IJK→RAS matrix.

    This is what ``slicer.util.arrayFromVolume(node)`` and ``node.GetIJKToRASMatrix`` give.
    """
    import SimpleITK as sitk

    origin, spacing, direction = itk_geometry_from_ijk_to_ras(ijk_to_ras)
    image = sitk.GetImageFromArray(np.ascontiguousarray(array_kji))
    image.SetOrigin(origin)
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    return image


def array_from_image(image) -> tuple[np.ndarray, np.ndarray]:
    """The voxel array (k, j, i order) and 4×4 IJK→RAS matrix of a SimpleITK image, as
    ``slicer.util.addVolumeFromArray(array, ijkToRAS=matrix)`` takes them."""
    import SimpleITK as sitk

    matrix = ijk_to_ras_matrix(image.GetOrigin(), image.GetSpacing(), image.GetDirection())
    return sitk.GetArrayFromImage(image), matrix
