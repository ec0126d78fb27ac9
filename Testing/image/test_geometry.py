"""PET/CT geometry: overlap checks, grid matching, PET onto the CT grid, lesion crops."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import make_image

from BoneOligoMetLib.errors import GeometryError, MaskError
from BoneOligoMetLib.image import geometry
from BoneOligoMetLib.image import labels as label_images


def test_physical_bounds_include_voxel_edges():
    image = make_image(np.zeros((2, 3, 4), np.float32), spacing=(2, 1, 5), origin=(10, 0, -5))
    low, high = geometry.physical_bounds(image)
    np.testing.assert_allclose(low, [9.0, -0.5, -7.5])
    np.testing.assert_allclose(high, [9.0 + 8.0, 2.5, 2.5])


def test_ct_and_pet_of_one_scan_overlap_fully(ct_pet_pair):
    ct, pet = ct_pet_pair
    assert geometry.require_overlap(ct, pet) == pytest.approx(1.0)


def test_disjoint_pet_is_refused_with_both_extents(ct_pet_pair):
    ct, pet = ct_pet_pair
    pet.SetOrigin((2.0, 2.0, 502.0))  # another scan range entirely
    with pytest.raises(GeometryError) as caught:
        geometry.require_overlap(ct, pet)
    message = str(caught.value)
    assert "do not overlap" in message
    assert "CT spans" in message
    assert "PET spans" in message
    assert "z 500…540" in message
    assert "\n" not in message


def test_pet_resampled_onto_ct_grid_keeps_values_and_place(ct_pet_pair):
    ct, pet = ct_pet_pair
    fused = geometry.resample_pet_to_ct(pet, ct)
    assert geometry.same_grid(fused, ct)
    assert fused.GetPixelID() == sitk.sitkFloat32
    # The hot cube spans 16–24 mm on every axis; its centre (20, 20, 20) mm is hot on the CT grid,
    # and a point 10 mm away is background.
    centre = fused.TransformPhysicalPointToIndex((20.5, 20.5, 21.0))
    assert fused[centre] == pytest.approx(8.0)
    far = fused.TransformPhysicalPointToIndex((8.5, 8.5, 9.0))
    assert fused[far] == pytest.approx(1.0)


def test_same_grid_detects_each_difference(ct_pet_pair):
    ct, _ = ct_pet_pair
    assert geometry.same_grid(ct, ct)
    moved = sitk.Image(ct)
    moved.SetOrigin((0.5, 0.5, 1.5))
    assert not geometry.same_grid(ct, moved)
    rescaled = sitk.Image(ct)
    rescaled.SetSpacing((1.0, 1.0, 2.5))
    assert not geometry.same_grid(ct, rescaled)
    rotated = sitk.Image(ct)
    rotated.SetDirection((0, 1, 0, 1, 0, 0, 0, 0, 1))
    assert not geometry.same_grid(ct, rotated)


def test_mask_on_neither_grid_is_refused_naming_grids(ct_pet_pair):
    ct, pet = ct_pet_pair
    mask = make_image(np.ones((5, 5, 5), np.uint8), spacing=(3, 3, 3))
    with pytest.raises(GeometryError) as caught:
        geometry.require_mask_grid(mask, [("CT", ct), ("PET", pet)], "lesions.nii.gz")
    message = str(caught.value)
    assert "lesions.nii.gz grid (5×5×5 voxels of 3×3×3 mm" in message
    assert "CT: 40×40×20 voxels" in message
    assert "PET: 10×10×10 voxels" in message
    on_pet = make_image(np.zeros((10, 10, 10), np.uint8), spacing=(4, 4, 4), origin=(2, 2, 2))
    assert geometry.require_mask_grid(on_pet, [("CT", ct), ("PET", pet)]) == "PET"


def test_crop_to_mask_on_other_grid_keeps_physical_place(ct_pet_pair):
    _, pet = ct_pet_pair
    lesion = np.zeros((20, 40, 40), np.uint8)
    lesion[8:10, 16:24, 16:24] = 1  # x, y 16–24 mm; z 16–20 mm on the CT grid
    mask = make_image(lesion, spacing=(1.0, 1.0, 2.0), origin=(0.5, 0.5, 1.0))
    crop = geometry.crop_to_mask(pet, mask, margin_mm=4.0)
    low, high = geometry.physical_bounds(crop)
    # Box 16–24 mm (z 16–20) grown by 4 mm, snapped outwards to whole 4 mm PET voxels.
    np.testing.assert_allclose(low, [12.0, 12.0, 12.0])
    np.testing.assert_allclose(high, [28.0, 28.0, 24.0])
    # Same voxel value at the same physical point in crop and original.
    point = (20.0, 20.0, 18.0)
    assert (
        crop[crop.TransformPhysicalPointToIndex(point)]
        == pet[pet.TransformPhysicalPointToIndex(point)]
    )


def test_crop_is_clipped_at_the_image_border(ct_pet_pair):
    _, pet = ct_pet_pair
    lesion = np.zeros((10, 10, 10), np.uint8)
    lesion[0, 0, 0] = 1
    mask = make_image(lesion, spacing=(4, 4, 4), origin=(2, 2, 2))
    crop = geometry.crop_to_mask(pet, mask, margin_mm=100.0)
    assert crop.GetSize() == pet.GetSize()
    assert crop.GetOrigin() == pet.GetOrigin()


def test_box_outside_the_image_is_an_error(ct_pet_pair):
    _, pet = ct_pet_pair
    with pytest.raises(GeometryError, match="lies outside the image"):
        geometry.crop_to_physical_box(pet, (500, 500, 500), (510, 510, 510))


def test_mask_labels_and_binary_mask():
    labels = np.zeros((4, 4, 4), np.uint8)
    labels[0, 0, 0] = 1
    labels[3, 3, 3] = 2
    mask = make_image(labels)
    assert label_images.mask_labels(mask) == [1, 2]
    second = label_images.binary_mask(mask, 2)
    assert sitk.GetArrayViewFromImage(second).sum() == 1
    assert second[3, 3, 3] == 1
    with pytest.raises(MaskError, match="holds 2 labels"):
        label_images.binary_mask(mask)
    with pytest.raises(MaskError, match="label 5 not found"):
        label_images.binary_mask(mask, 5)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (np.zeros((3, 3, 3), np.uint8), "empty"),
        (np.full((3, 3, 3), 0.5, np.float32), "non-integer"),
        (np.full((3, 3, 3), np.nan, np.float32), "NaN"),
        (np.full((3, 3, 3), -1, np.int16), "negative"),
    ],
)
def test_bad_masks_are_refused(values, message):
    with pytest.raises(MaskError, match=message):
        label_images.mask_labels(make_image(values), "lesion.nii.gz")


# --- label_regions: every lesion's box from one pass --------------------------------------------


def _shape_statistics_regions(image):
    shapes = sitk.LabelShapeStatisticsImageFilter()
    shapes.Execute(sitk.Cast(image, sitk.sitkUInt32))
    return {
        label: geometry.Region(
            shapes.GetBoundingBox(label)[:3], shapes.GetBoundingBox(label)[3:], image.GetSize()
        )
        for label in shapes.GetLabels()
    }


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.int32, np.float32, np.float64])
def test_label_regions_equal_shape_statistics(dtype):
    rng = np.random.default_rng(3)
    for _ in range(40):
        shape = tuple(int(n) for n in rng.integers(1, 14, 3))
        labels = np.zeros(shape, dtype)
        for _ in range(int(rng.integers(1, 6))):
            z, y, x = (int(rng.integers(0, n)) for n in shape)
            labels[z : z + 3, y : y + 2, x] = rng.integers(1, 5)
        image = make_image(labels)
        assert label_images.label_regions(image) == _shape_statistics_regions(image)


def test_label_regions_of_lesions_sharing_slices_far_apart():
    """Two lesions in the same slices, in different rows and columns, and one label in two
    separate places: blocks are found per run of slices, rows and columns, boxes merged."""
    labels = np.zeros((12, 40, 50), np.uint8)
    labels[3:6, 2:5, 3:7] = 1
    labels[4:7, 30:35, 40:44] = 2
    labels[9, 20, 25] = 1
    labels[4, 3, 45] = 3
    image = make_image(labels)
    regions = label_images.label_regions(image)
    assert regions == _shape_statistics_regions(image)
    assert regions[1] == geometry.Region((3, 2, 3), (23, 19, 7), (50, 40, 12))


def test_label_regions_with_large_label_values():
    labels = np.zeros((4, 5, 6), np.int32)
    labels[1, 2, 3] = 70000
    labels[2:4, 0, 0] = 5
    image = make_image(labels)
    assert label_images.label_regions(image) == _shape_statistics_regions(image)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.nan, "NaN or infinite"),
        (np.inf, "NaN or infinite"),
        (0.5, "non-integer"),
        (-2, "negative"),
    ],
)
def test_label_regions_refuses_bad_values_anywhere(value, message):
    """Every non-zero voxel is checked, wherever it lies (far from the lesions as well)."""
    labels = np.zeros((30, 20, 20), np.float32)
    labels[5:8, 5:8, 5:8] = 1
    labels[25, 17, 2] = value
    with pytest.raises(MaskError, match=f"lesions.nii.gz: .*{message}"):
        label_images.label_regions(make_image(labels), "lesions.nii.gz")


def test_label_regions_empty_and_negative_zero():
    labels = np.zeros((6, 6, 6), np.float32)
    with pytest.raises(MaskError, match=r"lesions\.nii\.gz: empty"):
        label_images.label_regions(make_image(labels), "lesions.nii.gz")
    labels[2, 2, 2] = -0.0  # a zero, whatever its sign bit
    with pytest.raises(MaskError, match="empty"):
        label_images.label_regions(make_image(labels), "lesions.nii.gz")


def test_mask_physical_bounds_is_the_box_of_every_voxel_corner():
    """8 outer corners give the box of all 64 voxel corners, on an oblique grid too."""
    angle = 0.3
    c, s = np.cos(angle), np.sin(angle)
    direction = (c, -s, 0, s, c, 0, 0, 0, 1)
    labels = np.zeros((6, 7, 8), np.uint8)
    labels[1:4, 2:6, 3:5] = 1
    mask = make_image(
        labels, spacing=(0.9, 1.3, 2.7), origin=(3.1, -7.2, 11.0), direction=direction
    )
    corners = np.array(
        [
            mask.TransformContinuousIndexToPhysicalPoint((i + di, j + dj, k + dk))
            for i in (3, 4)
            for j in (2, 5)
            for k in (1, 3)
            for di in (-0.5, 0.5)
            for dj in (-0.5, 0.5)
            for dk in (-0.5, 0.5)
        ]
    )
    low, high = geometry.mask_physical_bounds(mask)
    assert np.array_equal(low, corners.min(axis=0))
    assert np.array_equal(high, corners.max(axis=0))
