"""RAS <-> LPS: the one conversion between Slicer and ITK, checked against ITK's own geometry."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from BoneOligoMetLib.io import coords


def _oblique_image() -> sitk.Image:
    image = sitk.Image([5, 6, 7], sitk.sitkFloat32)
    image.SetSpacing((0.98, 1.2, 3.27))
    image.SetOrigin((-250.0, 120.5, -830.0))
    angle = np.deg2rad(12.0)
    rotation = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    )
    image.SetDirection(tuple(rotation.ravel()))
    return image


def test_point_flip_is_x_and_y_sign():
    assert coords.ras_to_lps((10.0, -20.0, 30.0)) == (-10.0, 20.0, 30.0)
    assert coords.lps_to_ras(coords.ras_to_lps((1.5, 2.5, -3.5))) == (1.5, 2.5, -3.5)
    points = np.array([[1.0, 2.0, 3.0], [-4.0, 5.0, -6.0]])
    np.testing.assert_array_equal(
        coords.ras_to_lps_points(points), [[-1.0, -2.0, 3.0], [4.0, -5.0, -6.0]]
    )
    np.testing.assert_array_equal(
        coords.lps_to_ras_points(coords.ras_to_lps_points(points)), points
    )
    with pytest.raises(ValueError, match="N, 3"):
        coords.ras_to_lps_points(np.zeros((3,)))


def test_ijk_to_ras_matrix_agrees_with_itk_physical_points():
    image = _oblique_image()
    matrix = coords.ijk_to_ras_matrix(image.GetOrigin(), image.GetSpacing(), image.GetDirection())
    for index in [(0, 0, 0), (4, 5, 6), (2, 1, 3)]:
        lps = image.TransformIndexToPhysicalPoint(index)
        ras = matrix @ np.array([*index, 1.0])
        np.testing.assert_allclose(ras[:3], coords.lps_to_ras(lps), atol=1e-9)


def test_geometry_round_trip_through_ijk_to_ras():
    image = _oblique_image()
    matrix = coords.ijk_to_ras_matrix(image.GetOrigin(), image.GetSpacing(), image.GetDirection())
    origin, spacing, direction = coords.itk_geometry_from_ijk_to_ras(matrix)
    np.testing.assert_allclose(origin, image.GetOrigin(), atol=1e-9)
    np.testing.assert_allclose(spacing, image.GetSpacing(), atol=1e-12)
    np.testing.assert_allclose(direction, image.GetDirection(), atol=1e-12)


def test_image_array_round_trip_keeps_voxels_and_geometry():
    image = _oblique_image()
    values = np.arange(5 * 6 * 7, dtype=np.float32).reshape(7, 6, 5)
    filled = sitk.GetImageFromArray(values)
    filled.CopyInformation(image)
    array, matrix = coords.array_from_image(filled)
    assert array.shape == (7, 6, 5)  # Slicer's arrayFromVolume order: k, j, i
    back = coords.image_from_array(array, matrix)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), values)
    np.testing.assert_allclose(back.GetOrigin(), image.GetOrigin(), atol=1e-9)
    np.testing.assert_allclose(back.GetSpacing(), image.GetSpacing(), atol=1e-12)
    np.testing.assert_allclose(back.GetDirection(), image.GetDirection(), atol=1e-12)
    # A voxel keeps its physical place: RAS of voxel (i=4, j=1, k=2) from the matrix is the
    # flipped LPS that ITK gives for the same index.
    ras = matrix @ np.array([4, 1, 2, 1.0])
    np.testing.assert_allclose(
        coords.ras_to_lps(ras[:3]), back.TransformIndexToPhysicalPoint((4, 1, 2)), atol=1e-9
    )


def test_zero_spacing_matrix_is_refused():
    matrix = np.eye(4)
    matrix[0, 0] = 0.0
    with pytest.raises(ValueError, match="zero-length"):
        coords.itk_geometry_from_ijk_to_ras(matrix)
