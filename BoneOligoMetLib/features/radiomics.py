"""Radiomics of one image around one lesion with pyradiomics: crop, then resample, then compute.

Crop, then resample: each image is cut to the lesion's box plus a margin, and the 1 mm grid is
computed as pyradiomics' ``resampleImage`` does on the whole image (aligned to the whole mask's
voxel grid, the lesion's box plus ``padDistance``), so features do not depend on the crop. The
mask is resampled once (nearest neighbour) and each image is interpolated onto that one grid:
a PET on its own grid and a CT-grid lesion mask meet on the 1 mm grid without the PET being
interpolated twice, and the CT, PET and fused images share the same voxels of interest. Unless
a filtered image type needs the padding, that grid is then cut to the lesion's box plus one voxel
(pyradiomics computes the original image's features on the box only), so the images are
interpolated only there; and pyradiomics' mask preparation and checks run once per lesion for
the images that share the grid (:func:`compute` with ``shared``).
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import numpy as np
import SimpleITK as sitk

from BoneOligoMetLib.errors import MaskError
from BoneOligoMetLib.features.radiomics_params import RadiomicsParams
from BoneOligoMetLib.image.geometry import (
    Region,
    crop_region,
    crop_to_physical_box,
    mask_physical_bounds,
    same_grid,
)
from BoneOligoMetLib.image.labels import binary_mask

log = logging.getLogger(__name__)


# --- crops and the analysis grid -----------------------------------------------------------


def crop_around(image: sitk.Image, lesion: sitk.Image, margin_voxels: Sequence[int]) -> sitk.Image:
    """``image`` cut to the physical box of ``lesion``'s voxels (any grid) grown by
    ``margin_voxels`` of ``image`` per axis, as float32; geometry kept."""
    low, high = mask_physical_bounds(lesion)
    extent = np.asarray(margin_voxels, dtype=float) * np.asarray(image.GetSpacing())
    direction = np.abs(np.asarray(image.GetDirection()).reshape(3, 3))
    margin = direction @ extent  # image axes onto LPS axes (oblique grids: a larger box)
    crop = crop_to_physical_box(image, low - margin, high + margin)
    return crop if crop.GetPixelID() == sitk.sitkFloat32 else sitk.Cast(crop, sitk.sitkFloat32)


def analysis_grid(
    mask: sitk.Image, mask_start: Sequence[int], region: Region, params: RadiomicsParams
) -> sitk.Image:
    """The binary lesion mask (``mask``: a crop of the whole mask whose first voxel is the whole
    mask's ``mask_start``; lesion voxels 1) on the grid pyradiomics' ``resampleImage`` would make
    from the whole mask.

    Without resampling in ``params`` the mask is returned as it is.
    """
    spacing = params.spacing_mm
    if spacing is None:
        return mask
    native = np.asarray(mask.GetSpacing())
    target = np.where(np.asarray(spacing) == 0, native, spacing)
    target = np.where(np.asarray(region.size) == 1, native, target)  # one slice: keep
    low = np.asarray(region.start)
    size = np.asarray(region.size)
    parent = np.asarray(region.parent_size)
    pad = params.pad
    if np.allclose(native, target):  # pyradiomics crops instead (cropToTumorMask)
        first = np.maximum(low - pad, 0)
        last = np.minimum(low + size - 1 + pad, parent - 1)
        origin_index = first.astype(float)
        new_size = last - first + 1
    else:
        ratio = native / target
        first = np.maximum(np.floor((low - 0.5) * ratio - pad), 0)
        last = np.minimum(np.ceil((low + size - 0.5) * ratio + pad), np.ceil(parent * ratio) - 1)
        new_size = (last - first + 1).astype(int)
        origin_index = 0.5 * (target - native) / native + first / ratio
    # Index p of the whole mask is index p − mask_start of the crop.
    origin = mask.TransformContinuousIndexToPhysicalPoint(
        tuple(float(v) for v in origin_index - np.asarray(mask_start))
    )
    grid = sitk.Image([int(n) for n in new_size], sitk.sitkUInt8)
    grid.SetSpacing([float(s) for s in target])
    grid.SetDirection(mask.GetDirection())
    grid.SetOrigin(origin)
    on_grid = sitk.Resample(mask, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0.0)
    if not sitk.GetArrayViewFromImage(on_grid).any():
        raise MaskError("lesion mask vanishes on the resampled grid (smaller than a voxel)")
    return on_grid


def reads_beyond_mask(params: RadiomicsParams) -> bool:
    """True when a filtered image type (LoG, Wavelet, ...) is enabled: a filter reads voxels
    around the lesion, so the analysis grid keeps pyradiomics' ``padDistance``. The original
    image's features (shape included) read only the box of the mask's voxels: pyradiomics crops
    image and mask to it before computing them."""
    return any(name != "Original" for name in _extractor(params, False).enabledImagetypes)


def tight_grid(grid_mask: sitk.Image, params: RadiomicsParams) -> sitk.Image:
    """The mask on its analysis grid, cut to the box of its voxels and one voxel around it
    when nothing reads further (:func:`reads_beyond_mask`): the same features (pyradiomics
    crops to the box), and the images are interpolated only about where features are computed
    (the interpolated value at a point does not depend on the extent of the output grid). The
    voxel around keeps background in the mask wherever the full grid has some: pyradiomics
    refuses a mask without any."""
    if reads_beyond_mask(params):
        return grid_mask
    array = sitk.GetArrayViewFromImage(grid_mask)
    bounds = []
    for axis, n in zip((2, 1, 0), grid_mask.GetSize()):  # x, y, z
        other = tuple(a for a in range(3) if a != axis)
        used = np.flatnonzero(np.any(array, axis=other))
        if not used.size:
            return grid_mask
        bounds.append((max(int(used[0]) - 1, 0), min(int(used[-1]) + 2, n)))
    if all(low == 0 and high == n for (low, high), n in zip(bounds, grid_mask.GetSize())):
        return grid_mask
    return sitk.RegionOfInterest(
        grid_mask, [high - low for low, high in bounds], [low for low, _ in bounds]
    )


def onto_grid(image: sitk.Image, grid: sitk.Image, params: RadiomicsParams) -> sitk.Image:
    """``image`` (a crop covering the grid) interpolated onto ``grid`` as float32."""
    if same_grid(image, grid):
        return sitk.Cast(image, sitk.sitkFloat32)
    return sitk.Resample(image, grid, sitk.Transform(), params.interpolator, 0.0, sitk.sitkFloat32)


def clamp(image: sitk.Image, params: RadiomicsParams) -> sitk.Image:
    """``image`` clamped to the parameters' ``intensityRange`` (unchanged without one)."""
    if params.intensity_range is None:
        return image
    low, high = params.intensity_range
    if image.GetPixelID() == sitk.sitkFloat32:
        values = sitk.GetArrayViewFromImage(image)
        if values.size and values.min() >= low and values.max() <= high:
            return image  # nothing to clamp: the same voxels
    return sitk.Clamp(image, sitk.sitkFloat32, float(low), float(high))


# --- pyradiomics ----------------------------------------------------------------------------

_EXTRACTORS: dict[tuple[str, bool], Any] = {}


def _extractor(params: RadiomicsParams, shape: bool):
    """A pyradiomics extractor for prepared (resampled, cropped) images; cached per process."""
    key = (params.digest, shape)
    if key not in _EXTRACTORS:
        from radiomics import featureextractor

        # pyradiomics logs INFO for every feature class; only its warnings are worth seeing.
        logging.getLogger("radiomics").setLevel(logging.WARNING)
        with warnings.catch_warnings():  # pykwalify loads the schema functions with imp
            warnings.simplefilter("ignore", DeprecationWarning)
            extractor = featureextractor.RadiomicsFeatureExtractor(
                copy.deepcopy(params.pyradiomics)
            )
        # The images come resampled onto the lesion's grid (analysis_grid/onto_grid): the same
        # resampleImage arithmetic, done once per lesion for all three images.
        extractor.settings["resampledPixelSpacing"] = None
        extractor.settings["additionalInfo"] = False
        if not shape:
            extractor.enabledFeatures.pop("shape", None)
        _EXTRACTORS[key] = extractor
    return _EXTRACTORS[key]


def has_shape(params: RadiomicsParams) -> bool:
    classes = params.pyradiomics.get("featureClass")
    return not classes or "shape" in classes


# Settings under which pyradiomics' execute() only loads the mask, checks it, and computes shape
# and the image types' features on crops to the mask's box (what _execute_shared repeats).
_NOT_SHARED_SETTINGS = ("resegmentRange", "preCrop", "normalize", "additionalInfo", "voxelBased")
# The settings that checkMask / getMask read.
_MASK_SETTINGS = ("minimumROIDimensions", "minimumROISize", "correctMask", "geometryTolerance")


def _shareable(settings: Mapping[str, Any]) -> bool:
    if any(settings.get(key) for key in _NOT_SHARED_SETTINGS):
        return False
    return settings.get("resampledPixelSpacing") is None or settings.get("interpolator") is None


def _execute_shared(extractor, image: sitk.Image, mask: sitk.Image, shared: dict) -> dict:
    """``extractor.execute(image, mask, label=1)`` for images that share one mask on one grid:
    the mask is cast, checked and its box found once (pyradiomics' getMask and checkMask, whose
    result depends on the mask and these settings only), then each image goes through the
    same steps as in execute (shape, image types, crop to the box, feature classes)."""
    from radiomics import imageoperations

    settings = extractor.settings.copy()
    settings["label"] = 1
    tolerance = settings.get("geometryTolerance")
    if tolerance is not None:  # as execute() does (its module-level cache of it is gone in 3.1)
        sitk.ProcessObject.SetGlobalDefaultCoordinateTolerance(float(tolerance))
        sitk.ProcessObject.SetGlobalDefaultDirectionTolerance(float(tolerance))
    key = tuple(json.dumps(settings.get(k), default=str) for k in _MASK_SETTINGS)
    if key not in shared:
        checked = imageoperations.getMask(mask, **settings)
        box, corrected = imageoperations.checkMask(image, checked, **settings)
        shared[key] = (checked if corrected is None else corrected, box)
    checked, box = shared[key]
    size = np.asarray(checked.GetSize())
    whole_box = bool(np.all(box[0::2] == 0) and np.all(box[1::2] == size - 1))
    result: dict[str, Any] = {}
    if any(name.startswith("shape") for name in extractor.enabledFeatures):
        result.update(extractor.computeShape(image, checked, box, **settings))
    for image_type, custom in extractor.enabledImagetypes.items():
        arguments = {**settings, **custom}
        derived = getattr(imageoperations, f"get{image_type}Image")(image, checked, **arguments)
        for derived_image, type_name, kwargs in derived:
            if whole_box:  # cropping to the box would copy the images unchanged
                cropped, cropped_mask = derived_image, checked
            else:
                cropped, cropped_mask = imageoperations.cropToTumorMask(
                    derived_image, checked, box, padDistance=0
                )
            result.update(extractor.computeFeatures(cropped, cropped_mask, type_name, **kwargs))
    return result


def compute(
    image: sitk.Image,
    mask: sitk.Image,
    params: RadiomicsParams,
    shape: bool = True,
    name: str = "lesion",
    shared: Optional[dict] = None,
) -> dict[str, float]:
    """pyradiomics features of ``image`` in ``mask`` (1 = lesion), both on one grid already.

    ``shared``: a dict kept with ``mask`` by a caller that computes several images in it (one
    per mask): pyradiomics' mask preparation and checks are then done once, not per image;
    the values are those of ``execute``. Returns pyradiomics' names
    (``original_firstorder_Mean``, ...) in its order, as floats.
    """
    extractor = _extractor(params, shape)
    try:
        if shared is not None and _shareable(extractor.settings):
            result = _execute_shared(extractor, image, mask, shared)
        else:
            result = extractor.execute(image, mask, label=1)
    except (ValueError, AssertionError) as error:  # pyradiomics' ROI checks
        raise MaskError(f"{name}: pyradiomics refused the ROI ({error})") from None
    return {
        key: float(value) for key, value in result.items() if not key.startswith("diagnostics_")
    }


def shape_shared(params: RadiomicsParams) -> bool:
    """Shape features depend on the mask only, unless re-segmentation changes it per image."""
    settings = params.settings
    return settings.get("resegmentRange") is None or not settings.get("resegmentShape", False)


def extract_image_features(
    image: sitk.Image,
    mask: sitk.Image,
    params: RadiomicsParams,
    label: Optional[int] = None,
    margin_mm: float = 0.0,
    prefix: str = "",
    name: str = "lesion",
) -> dict[str, float]:
    """Radiomics of one image in one lesion of a label image, the project's extraction path.

    The lesion (``label`` of ``mask``; ``None`` requires a single label) is cut out with a margin
    (at least what the 1 mm grid and the interpolation need), the mask is put on the analysis
    grid, the image interpolated onto it and clamped to the parameters' intensity range, and
    pyradiomics computes the features. A mask on another grid than the image is fine when the
    parameters resample; without resampling it is mapped to the image's voxels (nearest
    neighbour). Names get ``prefix``.
    """
    lesion = binary_mask(mask, label, name)
    box = sitk.LabelShapeStatisticsImageFilter()
    box.Execute(lesion)
    bounds = box.GetBoundingBox(1)
    region = Region(tuple(bounds[:3]), tuple(bounds[3:]), tuple(lesion.GetSize()))
    lesion_crop, lesion_start = crop_region(lesion, region)
    margin = params.margin_voxels(image.GetSpacing(), margin_mm)
    image_crop = crop_around(image, lesion_crop, margin)
    if params.spacing_mm is None:
        grid_mask = lesion_crop
        if not same_grid(lesion_crop, image_crop):
            grid_mask = sitk.Resample(
                lesion_crop, image_crop, sitk.Transform(), sitk.sitkNearestNeighbor, 0.0
            )
    else:
        grid_mask = tight_grid(analysis_grid(lesion_crop, lesion_start, region, params), params)
    on_grid = clamp(onto_grid(image_crop, grid_mask, params), params)
    features = compute(on_grid, grid_mask, params, name=name)
    return {f"{prefix}{key}": value for key, value in features.items()}
