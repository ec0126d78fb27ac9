"""Guards that an image holds the units a computation needs (SUV, HU) and finite values.

SUV and Bq/mL differ by a factor of ~10^3–10^4, and a CT read without its rescale intercept is
shifted by +1024: both give silently wrong features, so computations check first.

Two scopes. ``whole=True`` (the default) reads every voxel: NaN or infinite voxels anywhere are
an error and the unit verdict is the whole image's. ``whole=False`` is for callers that read
only parts of a large image (the per-lesion extraction reads lesion crops and the liver sphere)
and check those parts exactly with :func:`require_finite`: the unit verdict then comes from a
sample (every :data:`SAMPLE_ROW_STEP`-th row of :data:`SAMPLE_SLICES` evenly spaced slices; a
small image whole), which in a whole-body scan holds ~10^5 body voxels; NaN met in the sample is
still an error. The CT verdict is the same in both scopes (the sample only decides when it finds
air; otherwise every voxel is read).
"""

from __future__ import annotations

import math

import numpy as np
import SimpleITK as sitk

from BoneOligoMetLib.errors import UnitsError

# SUVbw of FDG in a body rarely exceeds ~100 even in the bladder; activity concentrations in
# Bq/mL of a clinical scan are ~10^3–10^5. A 99.9th percentile above this is not SUV.
MAX_PLAUSIBLE_SUV = 300.0
# SUV is ≥ 0 up to reconstruction noise.
MIN_PLAUSIBLE_SUV = -1.0
# Air is −1000 HU; a CT whose minimum is ≥ 0 (of the body-wide image) was stored without intercept.
MAX_PLAUSIBLE_CT_MINIMUM_HU = -500.0
# What a CT holds: air −1000 HU (noise reaches ~ −1100), dense cortex and contrast < 3000 HU,
# metal up to ~ 31,000 HU on extended-scale reconstructions (16-bit storage). Below the lower
# limit only the one padding value outside the field of view is accepted (GE −3024, others
# −2048, −32768): a constant, unlike air scaled by 10 or 1000, whose noise spreads it.
MIN_PLAUSIBLE_HU = -3100.0
MAX_PLAUSIBLE_HU = 32767.0
# whole=False: the unit verdict reads every SAMPLE_ROW_STEP-th row of this many evenly spaced
# slices (at most): ~1/40 of a whole-body CT, still ~10^6 voxels.
SAMPLE_SLICES = 32
SAMPLE_ROW_STEP = 4


def _can_hold_nan(array: np.ndarray) -> bool:
    return array.dtype.kind in "fc"


def _count_non_finite(array: np.ndarray) -> int:
    return int(np.count_nonzero(~np.isfinite(array)))


def _finite_range(image: sitk.Image, name: str) -> tuple[np.ndarray, float, float]:
    """Voxel array, minimum and maximum; NaN or infinite voxels are an error naming ``name``.

    min and max propagate NaN and show ±inf, so two passes decide; voxels are counted only to
    word the error.
    """
    array = sitk.GetArrayViewFromImage(image)
    if not array.size:
        return array, 0.0, 0.0
    low, high = float(array.min()), float(array.max())
    if not (math.isfinite(low) and math.isfinite(high)):
        raise UnitsError(f"{name}: {_count_non_finite(array)} voxel(s) are NaN or infinite")
    return array, low, high


def sample_slices(array: np.ndarray) -> np.ndarray:
    """A view of every :data:`SAMPLE_ROW_STEP`-th row of at most :data:`SAMPLE_SLICES` evenly
    spaced slices (first array axis) of a 3D ``array``; the whole array when it is no larger
    than the sample would be."""
    if array.ndim != 3 or array.size <= SAMPLE_SLICES * array.shape[2] * SAMPLE_ROW_STEP:
        return array
    step = max(1, math.ceil(array.shape[0] / SAMPLE_SLICES))
    return array[step // 2 :: step, SAMPLE_ROW_STEP // 2 :: SAMPLE_ROW_STEP]


def _sample_range(image: sitk.Image, name: str) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(whole array, sampled slices, sample minimum, sample maximum); a NaN or infinite voxel
    in the sample is an error (counted over the whole image to word it)."""
    array = sitk.GetArrayViewFromImage(image)
    sample = sample_slices(array)
    if not sample.size:
        return array, sample, 0.0, 0.0
    low, high = float(sample.min()), float(sample.max())
    if not (math.isfinite(low) and math.isfinite(high)):
        raise UnitsError(f"{name}: {_count_non_finite(array)} voxel(s) are NaN or infinite")
    return array, sample, low, high


def require_finite(image: sitk.Image, name: str) -> np.ndarray:
    """The image's voxels as an array; NaN or infinite voxels are an error naming ``name``.

    Integer images cannot hold them and are not read.
    """
    array = sitk.GetArrayViewFromImage(image)
    if _can_hold_nan(array):
        _finite_range(image, name)
    return array


def require_suv(image: sitk.Image, name: str = "PET", *, whole: bool = True) -> None:
    """Refuse a PET image that holds Bq/mL (or counts) where SUV is expected, or NaN.

    ``whole=False``: judge the units on sampled slices (see the module's docstring); the caller
    checks the voxels it reads with :func:`require_finite`.
    """
    if whole:
        array, low, high = _finite_range(image, name)
        sample = array
    else:
        array, sample, low, high = _sample_range(image, name)
    # The percentile (a sort) is only needed when the maximum is not plausible on its own: a
    # single hot voxel (bladder, artefact) may exceed the limit in a real SUV image.
    if high > MAX_PLAUSIBLE_SUV:
        high = float(np.percentile(sample, 99.9))
        if high > MAX_PLAUSIBLE_SUV:
            where = "99.9th percentile" if whole else "99.9th percentile of sampled slices"
            raise UnitsError(
                f"{name}: values up to {high:.4g} ({where}) look like Bq/mL, not SUV; "
                f"convert with `bone-oligomet suv` first"
            )
    if low < MIN_PLAUSIBLE_SUV:
        raise UnitsError(f"{name}: minimum {low:.4g} is not a plausible SUV")


def require_suv_crop(image: sitk.Image, name: str) -> None:
    """Every voxel of a PET crop finite and ≥ the plausible SUV minimum (the parts of a PET
    whose units were judged on a sample, :func:`require_suv` with ``whole=False``)."""
    _, low, _ = _finite_range(image, name)
    if low < MIN_PLAUSIBLE_SUV:
        raise UnitsError(f"{name}: minimum {low:.4g} is not a plausible SUV")


def _require_hu_range(values: np.ndarray, low: float, high: float, name: str) -> None:
    """Values within what a CT holds (:data:`MIN_PLAUSIBLE_HU` … :data:`MAX_PLAUSIBLE_HU`);
    below the lower limit only one value, the padding outside the field of view, may occur."""
    hint = "a CT in Hounsfield units holds −1024 (air) … ~31,000 (metal); was it scaled?"
    if high > MAX_PLAUSIBLE_HU:
        raise UnitsError(f"{name}: values up to {high:.6g} HU are outside what a CT holds ({hint})")
    if low < MIN_PLAUSIBLE_HU:
        below = values[values < MIN_PLAUSIBLE_HU]
        if not np.all(below == low):  # not a constant padding value
            second = float(below[below != low].min())
            raise UnitsError(
                f"{name}: values down to {second:.6g} HU (besides the padding {low:.6g}) are "
                f"outside what a CT holds ({hint})"
            )


def require_hu(image: sitk.Image, name: str = "CT", *, whole: bool = True) -> None:
    """Refuse a CT whose values cannot be Hounsfield units, or NaN: no air below −500 HU (the
    rescale intercept dropped), or values outside what a CT holds (a scaled image).

    Air found in sampled slices settles the intercept question (the image's minimum is lower
    still); otherwise every voxel is read. The range is judged on what was read (a scaled CT
    is scaled everywhere). ``whole=False`` leaves a float CT's NaN outside the sample to the
    caller's :func:`require_finite` on what it reads (an integer CT holds none).
    """
    array = sitk.GetArrayViewFromImage(image)
    if whole and _can_hold_nan(array):
        values, low, high = _finite_range(image, name)
    else:
        _, values, low, high = _sample_range(image, name)
        if low > MAX_PLAUSIBLE_CT_MINIMUM_HU:
            values, low, high = _finite_range(image, name)
    if low > MAX_PLAUSIBLE_CT_MINIMUM_HU:
        raise UnitsError(
            f"{name}: minimum value {low:.4g} — a body CT in HU contains air (≈ −1000 HU); "
            f"was the rescale intercept dropped?"
        )
    _require_hu_range(values, low, high, name)


def require_hu_crop(image: sitk.Image, name: str) -> None:
    """Every voxel of a CT crop finite and within what a CT holds (the parts of a CT whose
    units were judged on a sample, :func:`require_hu` with ``whole=False``)."""
    array = sitk.GetArrayViewFromImage(image)
    if not array.size:
        return
    if _can_hold_nan(array):
        _, low, high = _finite_range(image, name)
    else:
        low, high = float(array.min()), float(array.max())
    _require_hu_range(array, low, high, name)
