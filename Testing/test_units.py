"""Unit guards: Bq/mL where SUV is needed, CT without its intercept, NaN voxels."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_image

from BoneOligoMetLib import units
from BoneOligoMetLib.errors import UnitsError


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
