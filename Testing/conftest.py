"""Shared pytest fixtures: small analytic PET/CT cases whose answers are known by construction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Verdicts the library caches (bundle checks) go to a folder of the test run, not ~/.cache."""
    import os

    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if previous is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = previous


def make_image(
    array_kji: np.ndarray,
    spacing=(1.0, 1.0, 1.0),
    origin=(0.0, 0.0, 0.0),
    direction=(1, 0, 0, 0, 1, 0, 0, 0, 1),
) -> sitk.Image:
    """A SimpleITK image from a (k, j, i) array with the given LPS geometry."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(array_kji))
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(float(o) for o in origin))
    image.SetDirection(tuple(float(d) for d in direction))
    return image


@pytest.fixture
def ct_pet_pair():
    """A CT (1×1×2 mm, HU) and a PET (4 mm, SUV) over the same 40 mm cube, with a hot cube."""
    ct_array = np.full((20, 40, 40), -1000.0, dtype=np.float32)
    ct_array[:, 5:35, 5:35] = 40.0  # soft tissue block
    ct = make_image(ct_array, spacing=(1.0, 1.0, 2.0), origin=(0.5, 0.5, 1.0))
    pet_array = np.full((10, 10, 10), 1.0, dtype=np.float32)
    pet_array[4:6, 4:6, 4:6] = 8.0  # 8 mm hot cube centred at 20 mm
    pet = make_image(pet_array, spacing=(4.0, 4.0, 4.0), origin=(2.0, 2.0, 2.0))
    return ct, pet


@pytest.fixture
def shared_data() -> Path:
    path = SHARED / "data"
    if not path.is_dir():
        pytest.fail(f"{path} is missing: CI runs with ../shared beside the checkout")
    return path
