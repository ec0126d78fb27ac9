"""The CT bone mask: threshold, closing, hole filling (3D and per slice), dilation in mm."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from BoneOligoMetLib.errors import BoneOligoMetError
from BoneOligoMetLib.image.bone import (
    BoneConfig,
    bone_mask,
    bone_search_mask,
    cortex_connected,
    dilate_mm,
    erode_mm,
    fill_holes_array,
    nearest_voxel_distance_mm,
    physical_grid,
    physical_points,
    radius_in_voxels,
)


def image(array, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=None):
    result = sitk.GetImageFromArray(np.ascontiguousarray(array))
    result.SetSpacing(spacing)
    result.SetOrigin(origin)
    if direction is not None:
        result.SetDirection(direction)
    return result


def hollow_block(shape=(30, 40, 40), cortex=2, marrow_hu=250.0):
    """Soft tissue (40 HU) with a bone block: 1200 HU cortex around marrow."""
    ct = np.full(shape, 40.0, dtype=np.float32)
    ct[5:25, 8:32, 8:32] = 1200.0
    ct[5 + cortex : 25 - cortex, 8 + cortex : 32 - cortex, 8 + cortex : 32 - cortex] = marrow_hu
    return ct


def test_marrow_and_a_lytic_cavity_inside_the_cortex_are_bone():
    ct = hollow_block(marrow_hu=60.0)  # fatty marrow below the threshold: a closed 3D hole
    ct[12:18, 16:24, 16:24] = 80.0  # lytic lesion inside
    bone = sitk.GetArrayFromImage(bone_mask(image(ct), BoneConfig(closing_mm=0))).astype(bool)
    assert bone[5:25, 8:32, 8:32].all()
    assert not bone[:, :, :6].any()  # soft tissue stays out
    assert bone.sum() == 20 * 24 * 24


def test_tubes_cut_open_by_the_crop_are_filled_slice_by_slice():
    ct = np.full((20, 40, 40), 40.0, dtype=np.float32)
    ct[:, 10:30, 10:30] = 1200.0  # a shaft along z, open at both crop faces
    ct[:, 13:27, 13:27] = 30.0  # its medullary canal
    assert not fill_holes_array(ct > 150, slices=False)[:, 13:27, 13:27].any()  # open in 3D
    bone = sitk.GetArrayFromImage(bone_mask(image(ct), BoneConfig(closing_mm=0))).astype(bool)
    assert bone[:, 13:27, 13:27].all()  # but a closed ring in every axial slice
    rib = np.full((20, 40, 40), 40.0, dtype=np.float32)
    rib[8:14, 15:21, :] = 1200.0  # a "rib" along x: a ring in every sagittal slice
    rib[10:12, 17:19, :] = 30.0
    bone = sitk.GetArrayFromImage(bone_mask(image(rib), BoneConfig(closing_mm=0))).astype(bool)
    assert bone[10:12, 17:19, :].all()


def test_closing_bridges_a_cortex_broken_by_a_lytic_lesion():
    ct = hollow_block()
    lesion = np.zeros_like(ct, dtype=bool)
    lesion[10:20, 8:18, 8:18] = True  # lytic lesion that destroyed a 10 mm stretch of an edge
    ct[lesion] = 80.0
    without = sitk.GetArrayFromImage(bone_mask(image(ct), BoneConfig(closing_mm=0))).astype(bool)
    assert without[lesion].mean() < 0.5
    with_closing = sitk.GetArrayFromImage(bone_mask(image(ct))).astype(bool)
    assert with_closing[lesion].mean() > 0.75  # all but the rounded-off outer edge of the notch
    assert not with_closing[:, :, :5].any()


def test_search_mask_is_dilated_by_millimetres_on_anisotropic_grids():
    ct = hollow_block()
    spacing = (0.5, 0.5, 2.0)
    bone = bone_mask(image(ct, spacing), BoneConfig(closing_mm=0))
    search = bone_search_mask(image(ct, spacing), BoneConfig(closing_mm=0, dilation_mm=2.0))
    grown = sitk.GetArrayFromImage(search).astype(int) - sitk.GetArrayFromImage(bone)
    assert grown.min() == 0
    row = grown[15, 20]  # along x: 2 mm = 4 voxels of 0.5 mm
    assert row[4:8].all()
    assert not row[:4].any()
    column = grown[:, 20, 20]  # along z: 2 mm = 1 voxel of 2 mm
    assert column[4]
    assert column[25]
    assert not column[3]
    assert not column[26]


def test_radius_in_voxels_per_axis():
    assert radius_in_voxels(image(np.zeros((2, 2, 2)), (0.5, 1.0, 3.27)), 3.0) == [6, 3, 1]


def test_erode_keeps_bone_cut_by_the_image_border():
    mask = np.zeros((10, 10, 10), dtype=np.uint8)
    mask[:, :, :5] = 1  # touches three faces of the image
    eroded = sitk.GetArrayFromImage(erode_mm(image(mask), 1.0))
    assert eroded[:, :, :4].all()
    assert not eroded[:, :, 4].any()
    assert sitk.GetArrayFromImage(dilate_mm(image(mask), 0.0)).sum() == mask.sum()


def test_fill_holes_array_3d_only_or_per_slice():
    tube = np.zeros((6, 9, 9), dtype=bool)
    tube[:, 2:7, 2:7] = True
    tube[:, 4, 4] = False
    assert not fill_holes_array(tube, slices=False)[:, 4, 4].any()
    assert fill_holes_array(tube)[:, 4, 4].all()


def test_cortex_is_the_dense_part_connected_to_the_bone_surface():
    ct = hollow_block()
    ct[14:17, 18:22, 18:22] = 1400.0  # a calcification inside the marrow
    dense = ct > 1000
    cortex = cortex_connected(image(ct), dense, 150.0)
    assert cortex[5, 20, 20]
    assert cortex[15, 8, 20]
    assert not cortex[15, 20, 20]


def test_physical_coordinates_follow_spacing_origin_and_direction():
    direction = (0, -1, 0, 1, 0, 0, 0, 0, 1)  # rotated in-plane
    im = image(np.zeros((3, 4, 5), np.float32), (0.5, 2.0, 3.0), (10.0, -5.0, 7.0), direction)
    x, y, z = physical_grid(im)
    for k, j, i in [(0, 0, 0), (2, 3, 4), (1, 2, 3)]:
        expected = im.TransformIndexToPhysicalPoint((i, j, k))
        assert (x[k, j, i], y[k, j, i], z[k, j, i]) == pytest.approx(expected)
        assert physical_points(im, np.array([[k, j, i]]))[0] == pytest.approx(expected)


def test_nearest_voxel_distance():
    mask = np.zeros((5, 5, 5), dtype=np.uint8)
    mask[2, 2, 4] = 1
    distance, index = nearest_voxel_distance_mm(image(mask, (2.0, 2.0, 2.0)), (0.0, 4.0, 4.0))
    assert distance == pytest.approx(8.0)
    assert index == (2, 2, 4)
    assert nearest_voxel_distance_mm(image(mask * 0), (0, 0, 0))[0] == float("inf")


def test_config_refuses_negative_radii():
    with pytest.raises(BoneOligoMetError, match="must be ≥ 0"):
        BoneConfig(dilation_mm=-1.0)
