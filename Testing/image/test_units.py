"""Unit guards: Bq/mL where SUV is needed, CT without its intercept, NaN voxels."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_image

from BoneOligoMetLib.errors import UnitsError
from BoneOligoMetLib.image import units


def test_suv_image_passes_and_bq_per_ml_is_refused():
    suv = np.full((4, 4, 4), 1.5, np.float32)
    suv[1, 1, 1] = 12.0
    units.require_suv(make_image(suv))
    with pytest.raises(UnitsError, match="look like Bq/mL"):
        units.require_suv(make_image(suv * 5000.0), "pet.nii.gz")


def test_nan_voxels_are_counted_and_named():
    suv = np.ones((4, 4, 4), np.float32)
    suv[0, 0, :2] = np.nan
    with pytest.raises(UnitsError, match=r"pet.nii.gz: 2 voxel\(s\) are NaN"):
        units.require_suv(make_image(suv), "pet.nii.gz")


def test_ct_without_intercept_is_refused():
    hu = np.full((4, 4, 4), -1000.0, np.float32)
    hu[2:, 2:, 2:] = 400.0
    units.require_hu(make_image(hu))
    with pytest.raises(UnitsError, match="rescale intercept"):
        units.require_hu(make_image(hu + 1024.0), "ct.nii.gz")


def test_one_hot_voxel_above_the_limit_is_still_suv():
    """A single very hot voxel (bladder, artefact) does not make an SUV image look like Bq/mL."""
    suv = np.full((10, 10, 10), 1.5, np.float32)
    suv[5, 5, 5] = 2000.0
    units.require_suv(make_image(suv))


def test_infinite_voxels_are_refused():
    suv = np.ones((4, 4, 4), np.float32)
    suv[1, 2, 3] = np.inf
    with pytest.raises(UnitsError, match=r"1 voxel\(s\) are NaN or infinite"):
        units.require_suv(make_image(suv), "pet.nii.gz")


# --- the sampled scope (whole=False) and crops -------------------------------------------------


def _body(nz=96, ny=24, nx=24, value=1.5):
    """A body-sized volume: more voxels than the sample, so sampling is in effect."""
    array = np.full((nz, ny, nx), value, np.float32)
    assert units.sample_slices(array).size < array.size
    return array


def _sampled(shape):
    """Boolean array: True where sample_slices reads."""
    index = np.arange(int(np.prod(shape))).reshape(shape)
    read = np.zeros(index.size, bool)
    read[units.sample_slices(index).ravel()] = True
    return read.reshape(shape)


def test_sample_is_evenly_spread_and_small_images_are_read_whole():
    read = _sampled((96, 24, 24))
    slices = np.flatnonzero(read.any(axis=(1, 2)))
    assert len(slices) <= units.SAMPLE_SLICES
    assert slices[0] < 3  # spread over the whole length
    assert slices[-1] > 92
    assert read.sum() < read.size / 8
    assert _sampled((4, 4, 4)).all()


def test_bq_per_ml_is_refused_from_the_sample():
    suv = _body()
    suv[40, 10, 10] = 2000.0  # one hot voxel is still SUV
    units.require_suv(make_image(suv), whole=False)
    with pytest.raises(UnitsError, match=r"pet.nii.gz: .*sampled slices\) look like Bq/mL"):
        units.require_suv(make_image(suv * 5000.0), "pet.nii.gz", whole=False)
    negative = _body()
    negative[units.sample_slices(np.arange(negative.shape[0]))] = -50.0
    with pytest.raises(UnitsError, match="not a plausible SUV"):
        units.require_suv(make_image(negative), whole=False)


def test_nan_in_the_sample_is_refused_nan_elsewhere_is_left_to_the_crops():
    suv = _body()
    read = _sampled(suv.shape)
    inside = tuple(int(v) for v in np.argwhere(read)[5])
    outside = tuple(int(v) for v in np.argwhere(~read)[5])
    with_nan = suv.copy()
    with_nan[inside] = np.nan
    with pytest.raises(UnitsError, match=r"pet.nii.gz: 1 voxel\(s\) are NaN or infinite"):
        units.require_suv(make_image(with_nan), "pet.nii.gz", whole=False)
    unread = suv.copy()
    unread[outside] = np.inf
    units.require_suv(make_image(unread), whole=False)  # not read here...
    with pytest.raises(UnitsError, match="NaN or infinite"):
        units.require_suv(make_image(unread))  # ...but by the whole-image check
    with pytest.raises(UnitsError, match=r"crop: 1 voxel\(s\) are NaN"):
        units.require_suv_crop(make_image(unread[outside[0] : outside[0] + 2]), "crop")


def test_crop_check_refuses_nan_and_negative_suv():
    crop = np.full((3, 3, 3), 2.0, np.float32)
    units.require_suv_crop(make_image(crop), "lesion 1: PET crop")
    crop[1, 1, 1] = -3.0
    with pytest.raises(UnitsError, match="lesion 1: PET crop: minimum -3 is not a plausible SUV"):
        units.require_suv_crop(make_image(crop), "lesion 1: PET crop")
    crop[1, 1, 1] = np.nan
    with pytest.raises(UnitsError, match=r"lesion 1: PET crop: 1 voxel\(s\) are NaN"):
        units.require_suv_crop(make_image(crop), "lesion 1: PET crop")


@pytest.mark.parametrize("whole", [True, False])
@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_ct_verdict_is_the_whole_images_in_both_scopes(whole, dtype):
    """Air only in slices the sample skips: the whole image is read before refusing."""
    hu = np.full((96, 24, 24), 40, dtype)
    read = _sampled(hu.shape)
    hu[tuple(int(v) for v in np.argwhere(~read)[0])] = -1000
    units.require_hu(make_image(hu), whole=whole)
    with pytest.raises(UnitsError, match=r"ct\.nii\.gz: minimum value 24 .* rescale intercept"):
        units.require_hu(make_image(hu + 1024), "ct.nii.gz", whole=whole)


def test_float_ct_nan_outside_the_sample_only_in_the_whole_scope():
    hu = np.full((96, 24, 24), -1000.0, np.float32)
    read = _sampled(hu.shape)
    hu[tuple(int(v) for v in np.argwhere(~read)[0])] = np.nan
    units.require_hu(make_image(hu), whole=False)  # air in the sample settles the units
    with pytest.raises(UnitsError, match=r"CT: 1 voxel\(s\) are NaN"):
        units.require_hu(make_image(hu))
    with pytest.raises(UnitsError, match="NaN"):
        units.require_finite(make_image(hu), "CT")


def test_integer_images_are_finite_without_reading():
    assert units.require_finite(make_image(np.zeros((2, 2, 2), np.int16)), "CT").shape == (2, 2, 2)


@pytest.mark.parametrize("whole", [True, False])
@pytest.mark.parametrize("scale", [10.0, 1000.0])
def test_scaled_ct_is_refused(whole, scale):
    """A CT scaled ×10 or ×1000 still has air below −500, but air spread far below −1024."""
    rng = np.random.default_rng(0)
    hu = (-1000.0 + rng.normal(0, 20, (96, 24, 24))).astype(np.float32)
    hu[:, 8:16, 8:16] = 400.0
    units.require_hu(make_image(hu), whole=whole)
    with pytest.raises(UnitsError, match=r"ct\.nii\.gz: values (down|up) to .* outside what a CT"):
        units.require_hu(make_image(hu * scale), "ct.nii.gz", whole=whole)


@pytest.mark.parametrize("padding", [-3024, -2048, -32768])
def test_padding_outside_the_field_of_view_is_accepted(padding):
    hu = np.full((96, 24, 24), -1000, np.int16)
    hu[:, 8:16, 8:16] = 1200
    hu[:, :, :3] = padding  # the corners of a round field of view
    units.require_hu(make_image(hu))
    units.require_hu(make_image(hu), whole=False)
    hu[:, :, 0] = -5000 - np.arange(24)  # spread values below the limit are not padding
    with pytest.raises(UnitsError, match="values down to -50"):
        units.require_hu(make_image(hu))


def test_metal_is_a_ct_value_but_a_million_is_not():
    hu = np.full((4, 4, 4), -1000.0, np.float32)
    hu[1, 1, 1] = 25000.0  # extended-scale metal
    units.require_hu(make_image(hu))
    units.require_hu_crop(make_image(hu), "lesion 1: CT crop")
    hu[1, 1, 1] = 3.0e6
    with pytest.raises(UnitsError, match=r"lesion 1: CT crop: values up to 3e\+06 HU"):
        units.require_hu_crop(make_image(hu), "lesion 1: CT crop")
    hu[1, 1, 1] = np.nan
    with pytest.raises(UnitsError, match=r"lesion 1: CT crop: 1 voxel\(s\) are NaN"):
        units.require_hu_crop(make_image(hu), "lesion 1: CT crop")
