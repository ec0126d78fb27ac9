"""Guards that an image holds the units a computation needs (SUV, HU) and finite values.

SUV and Bq/mL differ by a factor of ~10^3–10^4, and a CT read without its rescale intercept is
shifted by +1024: both give silently wrong features, so computations check first.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from BoneOligoMetLib.errors import UnitsError

# SUVbw of FDG in a body rarely exceeds ~100 even in the bladder; activity concentrations in
# Bq/mL of a clinical scan are ~10^3–10^5. A 99.9th percentile above this is not SUV.
MAX_PLAUSIBLE_SUV = 300.0
# Air is −1000 HU; a CT whose minimum is ≥ 0 (of the body-wide image) was stored without intercept.
MAX_PLAUSIBLE_CT_MINIMUM_HU = -500.0


def _finite_range(image: sitk.Image, name: str) -> tuple[np.ndarray, float, float]:
    """Voxel array, minimum and maximum; NaN or infinite voxels are an error naming ``name``.

    min and max propagate NaN and show ±inf, so two passes decide; voxels are counted only to
    word the error.
    """
    array = sitk.GetArrayViewFromImage(image)
    if not array.size:
        return array, 0.0, 0.0
    low, high = float(array.min()), float(array.max())
    if not (np.isfinite(low) and np.isfinite(high)):
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise UnitsError(f"{name}: {bad} voxel(s) are NaN or infinite")
    return array, low, high


def require_finite(image: sitk.Image, name: str) -> np.ndarray:
    """The image's voxels as an array; NaN or infinite voxels are an error naming ``name``."""
    return _finite_range(image, name)[0]


def require_suv(image: sitk.Image, name: str = "PET") -> None:
    """Refuse a PET image that holds Bq/mL (or counts) where SUV is expected."""
    array, low, high = _finite_range(image, name)
    # The percentile (a sort of a whole-body PET) is only needed when the maximum is not plausible
    # on its own: a single hot voxel (bladder, artefact) may exceed the limit in a real SUV image.
    if high > MAX_PLAUSIBLE_SUV:
        high = float(np.percentile(array, 99.9))
        if high > MAX_PLAUSIBLE_SUV:
            raise UnitsError(
                f"{name}: values up to {high:.4g} (99.9th percentile) look like Bq/mL, not SUV; "
                f"convert with `bone-oligomet suv` first"
            )
    if low < -1.0:
        raise UnitsError(f"{name}: minimum {low:.4g} is not a plausible SUV")


def require_hu(image: sitk.Image, name: str = "CT") -> None:
    """Refuse a CT whose values cannot be Hounsfield units (no air below −500 HU)."""
    _, low, _ = _finite_range(image, name)
    if low > MAX_PLAUSIBLE_CT_MINIMUM_HU:
        raise UnitsError(
            f"{name}: minimum value {low:.4g} — a body CT in HU contains air (≈ −1000 HU); "
            f"was the rescale intercept dropped?"
        )
