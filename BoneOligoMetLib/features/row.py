"""One named feature row per lesion: radiomics of CT, PET and fused PET/CT, metabolic and clinical.

The entry point of the CLI, the cohort extraction and the Slicer module::

    case = prepare_case(ct, suv, lesions, liver_seed_lps_mm=seed)   # whole-image checks, once
    row = lesion_features(case, label=2, clinical={"age": 61}, config=ExtractionConfig())

``prepare_case`` does the work that concerns the whole images once per patient (HU and SUV
plausibility on sampled slices, PET/CT overlap, every lesion's voxel box in one pass, the liver
reference), so that a lesion costs only its crops, whose every voxel is checked when cut (see
:func:`prepare_case` for what is read where). Columns: ``lesion_label``, ``clin_*``,
``met_*``, ``ct_*``, ``pet_*``, ``petct_*`` (pyradiomics names after the image prefix, e.g.
``pet_original_glcm_Contrast``), always in this order for a given configuration.

Grids: the lesion label image may lie on any grid (the CT's, usually). Each image is cropped
around the lesion; with the packaged parameters the mask is resampled once onto the lesion's 1 mm
grid (cut to the lesion's box plus one voxel unless a filter reads around it) and CT and SUV
are interpolated onto it (see :mod:`.radiomics`); the fused image is made there;
pyradiomics prepares and checks that mask once for the three images. Metabolic parameters use
the PET's native voxels (:mod:`.metabolic`).
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import SimpleITK as sitk

from BoneOligoMetLib.deep.features import DeepFeatureExtractor
from BoneOligoMetLib.errors import BoneOligoMetError, ConfigError, MaskError, Progress
from BoneOligoMetLib.features.config import ExtractionConfig, _deep_networks_spec
from BoneOligoMetLib.features.radiomics import (
    analysis_grid,
    clamp,
    compute,
    crop_around,
    has_shape,
    onto_grid,
    reads_beyond_mask,
    shape_shared,
    tight_grid,
)
from BoneOligoMetLib.features.radiomics_params import (
    RadiomicsParams,
)
from BoneOligoMetLib.image.fusion import FusionConfig, fuse
from BoneOligoMetLib.image.geometry import Region, crop_region, require_overlap, same_grid
from BoneOligoMetLib.image.labels import label_regions
from BoneOligoMetLib.image.peak import PEAK_RADIUS_MM
from BoneOligoMetLib.image.units import require_hu, require_hu_crop, require_suv, require_suv_crop
from BoneOligoMetLib.lesions.metabolic import (
    LiverReference,
    liver_sphere,
    measure_binary,
)
from BoneOligoMetLib.protocol import MAX_LESIONS

log = logging.getLogger(__name__)

# DESIGN.md: oligometastatic disease has at most 5 bone lesions.


# --- the whole images, once per patient ---------------------------------------------------


@dataclass(frozen=True)
class PreparedCase:
    """A patient's checked CT (HU), SUV PET and lesion label image, with each lesion's box."""

    ct: sitk.Image
    suv: sitk.Image
    lesions: sitk.Image
    regions: Mapping[int, Region] = field(repr=False)  # lesion label -> voxel box (label grid)
    liver: Optional[LiverReference] = None
    name: str = "case"

    @property
    def labels(self) -> list[int]:
        return sorted(self.regions)


def prepare_case(
    ct: sitk.Image,
    suv: sitk.Image,
    lesions: sitk.Image,
    *,
    liver_seed_lps_mm: Optional[Sequence[float]] = None,
    config: Optional[ExtractionConfig] = None,
    name: str = "case",
) -> PreparedCase:
    """Check a patient's whole images once: CT in HU, PET in SUV, PET/CT and lesions overlap,
    lesion labels (one voxel box each) and, with ``liver_seed_lps_mm`` (LPS mm), the liver
    reference (a ``diameter`` sphere; §2.3). Errors name ``name`` (e.g. the patient).

    What is read where: the units are judged on sampled slices of the CT and PET
    (:mod:`BoneOligoMetLib.image.units`, ``whole=False``; a NaN met there is an error too); the
    lesion label image is read whole (every non-zero voxel must be a finite integer ≥ 0); the
    liver sphere's voxels must be finite. Each lesion's CT and PET crops, every voxel a lesion's
    features read, are checked exactly when cut (:class:`_LesionImages`): NaN or infinite
    values, and SUV below the plausible minimum, are an error naming the lesion. A NaN outside
    every crop, the liver sphere and the sampled slices changes no value and is not reported."""
    config = config or ExtractionConfig()
    try:
        # Units from sampled slices here; every voxel a lesion reads is checked in its crop.
        require_hu(ct, "CT", whole=False)
        require_suv(suv, "PET", whole=False)
        liver = None
        if liver_seed_lps_mm is not None:  # its sphere's voxels are checked there
            liver = liver_sphere(suv, liver_seed_lps_mm, config.liver_diameter_mm)
        require_overlap(ct, suv, ("CT", "PET"))
        require_overlap(ct, lesions, ("CT", "lesion label image"))
        regions = label_regions(lesions)
    except BoneOligoMetError as error:
        raise type(error)(f"{name}: {error}") from None
    if len(regions) > MAX_LESIONS:
        log.warning(
            "%s: %d lesions, more than the %d of oligometastatic disease",
            name,
            len(regions),
            MAX_LESIONS,
        )
    return PreparedCase(ct, suv, lesions, regions, liver, name)


# --- one lesion ------------------------------------------------------------------------------


def clinical_columns(clinical: Optional[Mapping[str, Any]]) -> dict[str, Any]:
    """``clin_``-prefixed columns of clinical values (a key already prefixed is kept)."""
    columns = {}
    for key, value in (clinical or {}).items():
        column = key if key.startswith("clin_") else f"clin_{key}"
        if not (value is None or isinstance(value, (str, bool, int, float, np.number))):
            raise ConfigError(f"clinical value {key!r}: expected a number or text, got {value!r}")
        columns[column] = value.item() if isinstance(value, np.generic) else value
    return columns


class _LesionImages:
    """Crops and analysis grids of one lesion, each made once and shared by the groups."""

    def __init__(self, case: PreparedCase, label: int, config: ExtractionConfig) -> None:
        self.case, self.config, self.label = case, config, label
        if label not in case.regions:
            raise MaskError(f"{case.name}: lesion label {label} not found; labels {case.labels}")
        self.name = f"{case.name} lesion {label}"
        self.region = case.regions[label]
        crop, self.mask_start = crop_region(case.lesions, self.region)
        mask = sitk.Equal(crop, float(label))  # 0/1, uint8 (SimpleITK's default)
        if mask.GetPixelID() != sitk.sitkUInt8:
            mask = sitk.Cast(mask, sitk.sitkUInt8)
        self.mask = mask
        self._crops: dict[str, sitk.Image] = {}
        self._grids: dict[tuple, sitk.Image] = {}
        self._on_grid: dict[tuple, sitk.Image] = {}
        self.shape_cache: dict[tuple, dict[str, float]] = {}
        self.pyradiomics_masks: dict[tuple, dict] = {}  # grid key -> pyradiomics' checked mask

    def crop(self, modality: str) -> sitk.Image:
        """The CT or SUV cut around the lesion, margin enough for every image that uses it."""
        if modality not in self._crops:
            image = self.case.ct if modality == "ct" else self.case.suv
            users = [i for i in self.config.images if i in (modality, "petct")]
            spacing = image.GetSpacing()
            margins = [
                self.config.params(i).margin_voxels(spacing, self.config.margin_mm) for i in users
            ]
            margins.append(tuple(math.ceil(self.config.margin_mm / s) for s in spacing))
            if modality == "pet":  # the metabolic SUVpeak sphere must fit as well
                peak = [math.ceil((PEAK_RADIUS_MM + max(spacing)) / s) + 1 for s in spacing]
                margins.append(tuple(peak))
            margin = tuple(int(v) for v in np.max(np.asarray(margins), axis=0))
            crop = crop_around(image, self.mask, margin)
            # Every voxel this lesion reads (prepare_case judged the units on a sample).
            where = f"{self.name}: {'CT' if modality == 'ct' else 'PET'} crop"
            if modality == "pet":
                require_suv_crop(crop, where)
            else:
                require_hu_crop(crop, where)
            self._crops[modality] = crop
        return self._crops[modality]

    def grid(self, params: RadiomicsParams, native: str) -> tuple[tuple, sitk.Image]:
        """(key, mask on the analysis grid): the 1 mm grid, or ``native``'s crop grid."""
        if params.spacing_mm is None:
            key: tuple = ("native", native)
            if key not in self._grids:
                reference = self.crop(native)
                mask = self.mask
                if not same_grid(mask, reference):
                    mask = sitk.Resample(
                        mask, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0.0
                    )
                if not sitk.GetArrayViewFromImage(mask).any():
                    raise MaskError(f"{self.name}: no voxel of the {native} crop in the lesion")
                self._grids[key] = mask
        else:
            # Cut to the lesion's box unless a filter reads around it (the same features).
            padded = reads_beyond_mask(params)
            key = ("resampled", params.spacing_mm, params.pad, padded)
            if key not in self._grids:
                try:
                    grid = analysis_grid(self.mask, self.mask_start, self.region, params)
                except MaskError as error:
                    raise MaskError(f"{self.name}: {error}") from None
                self._grids[key] = grid if padded else tight_grid(grid, params)
        return key, self._grids[key]

    def on_grid(self, modality: str, key: tuple, grid: sitk.Image, params: RadiomicsParams):
        cache_key = (modality, key, params.interpolator)
        if cache_key not in self._on_grid:
            self._on_grid[cache_key] = onto_grid(self.crop(modality), grid, params)
        return self._on_grid[cache_key]


def _radiomics(images: _LesionImages, kind: str) -> dict[str, float]:
    params = images.config.params(kind)
    key, grid = images.grid(params, "pet" if kind == "pet" else "ct")
    if kind == "petct":
        fusion = params.fusion or FusionConfig()
        ct = images.on_grid("ct", key, grid, params)
        pet = images.on_grid("pet", key, grid, params)
        image = fuse(ct, pet, fusion)
    else:
        image = images.on_grid(kind, key, grid, params)
    image = clamp(image, params)
    shape: dict[str, float] = {}
    share = has_shape(params) and shape_shared(params)
    shape_key = (key, json.dumps(params.pyradiomics.get("featureClass", {}).get("shape")))
    shared = images.pyradiomics_masks.setdefault(key, {})  # mask checks once per grid
    if share and shape_key in images.shape_cache:
        shape = images.shape_cache[shape_key]
        values = compute(image, grid, params, shape=False, name=images.name, shared=shared)
    else:
        values = compute(image, grid, params, shape=True, name=images.name, shared=shared)
        if share:
            shape = {k: v for k, v in values.items() if k.startswith("original_shape_")}
            images.shape_cache[shape_key] = shape
            values = {k: v for k, v in values.items() if k not in shape}
    return {f"{kind}_{name}": value for name, value in {**shape, **values}.items()}


def _metabolic(images: _LesionImages) -> dict[str, Any]:
    config, case = images.config, images.case
    # The PET crop is checked (finite, SUV) and the mask is the lesion's 0/1 box: measured as
    # lesion_metabolics would, without checking them again.
    pet_crop = images.crop("pet")
    try:
        result = measure_binary(
            pet_crop,
            images.mask,
            images.label,
            None,
            case.liver,
            config.mtv_threshold_suv,
            config.peak_weighting,
            tight=True,
        )
    except BoneOligoMetError as error:
        raise type(error)(f"{case.name}: {error}") from None
    row = {k: v for k, v in result.as_row().items() if k.startswith("met_")}
    # HU statistics on the CT grid (metabolic.py's definition; the CT crop was checked when cut).
    ct_crop = images.crop("ct")
    inside = sitk.GetArrayViewFromImage(images.mask).astype(bool)
    offset = _offset(images.mask, ct_crop)
    if offset is not None:  # the usual case: lesions drawn on the CT grid
        block = tuple(slice(o, o + n) for o, n in zip(offset[::-1], inside.shape))
        hu = sitk.GetArrayViewFromImage(ct_crop)[block][inside]
    else:
        on_ct = sitk.Resample(images.mask, ct_crop, sitk.Transform(), sitk.sitkNearestNeighbor, 0.0)
        hu = sitk.GetArrayViewFromImage(ct_crop)[sitk.GetArrayViewFromImage(on_ct).astype(bool)]
    if hu.size:
        hu = hu.astype(float)
        row["met_hu_mean"], row["met_hu_std"] = float(hu.mean()), float(hu.std())
    return row


def _offset(part: sitk.Image, whole: sitk.Image) -> Optional[tuple[int, ...]]:
    """Index (x, y, z) of ``part``'s first voxel in ``whole`` when ``part`` is a sub-block of
    ``whole``'s grid; None otherwise."""
    if not np.allclose(part.GetSpacing(), whole.GetSpacing(), rtol=1e-6) or not np.allclose(
        part.GetDirection(), whole.GetDirection(), atol=1e-6
    ):
        return None
    index = np.asarray(whole.TransformPhysicalPointToContinuousIndex(part.GetOrigin()))
    rounded = np.round(index).astype(int)
    if np.any(np.abs(index - rounded) > 1e-3) or np.any(rounded < 0):
        return None
    if np.any(rounded + np.asarray(part.GetSize()) > np.asarray(whole.GetSize())):
        return None
    return tuple(int(v) for v in rounded)


def lesion_feature_groups(
    case: PreparedCase,
    label: int,
    config: Optional[ExtractionConfig] = None,
    groups: Optional[Sequence[str]] = None,
) -> dict[str, dict[str, Any]]:
    """Feature groups (``met``, ``ct``, ``pet``, ``petct``; default: the config's) of one lesion,
    each an ordered name -> value mapping; the crops and grids are shared between groups."""
    config = config or ExtractionConfig()
    wanted = config.groups if groups is None else tuple(groups)
    for group in wanted:
        if group not in config.groups:
            raise ConfigError(f"feature group {group!r} is not in this configuration")
    images = _LesionImages(case, int(label), config)
    results: dict[str, dict[str, Any]] = {}
    for group in config.groups:
        if group not in wanted:
            continue
        if group == "met":
            results[group] = _metabolic(images)
        elif group == "dl":
            results[group] = _deep(case, int(label), config)
        else:
            results[group] = _radiomics(images, group)
    return results


@functools.lru_cache(maxsize=4)
def _deep_extractor(folder: str, stamp: str):

    return DeepFeatureExtractor.from_folder(folder)


def _deep(case: PreparedCase, label: int, config: ExtractionConfig) -> dict[str, Any]:
    """``dl_ct_*``, ``dl_pet_*`` of one lesion (:mod:`BoneOligoMetLib.deep.features`)."""
    folder = str(config.deep_model)
    stamp = json.dumps(_deep_networks_spec(folder), sort_keys=True)
    extractor = _deep_extractor(folder, stamp)
    rows = extractor.case_features(
        case.ct, case.suv, case.lesions, labels=[label], regions=case.regions, name=case.name
    )
    return rows[label]


def lesion_features(
    case: PreparedCase,
    label: int,
    *,
    clinical: Optional[Mapping[str, Any]] = None,
    config: Optional[ExtractionConfig] = None,
) -> dict[str, Any]:
    """One lesion's feature row: ``lesion_label``, ``clin_*``, ``met_*``, ``ct_*``, ``pet_*``,
    ``petct_*`` (SUV in g/mL, volumes in mL, HU; radiomics per the params files)."""
    config = config or ExtractionConfig()
    row: dict[str, Any] = {"lesion_label": int(label)}
    row.update(clinical_columns(clinical))
    for values in lesion_feature_groups(case, label, config).values():
        row.update(values)
    return row


def case_features(
    ct: sitk.Image,
    suv: sitk.Image,
    lesions: sitk.Image,
    *,
    labels: Optional[Sequence[int]] = None,
    clinical: Optional[Mapping[str, Any]] = None,
    liver_seed_lps_mm: Optional[Sequence[float]] = None,
    config: Optional[ExtractionConfig] = None,
    name: str = "case",
    progress: Optional[Progress] = None,
) -> list[dict[str, Any]]:
    """Feature rows of every lesion (or ``labels``) of one patient, in label order."""
    config = config or ExtractionConfig()
    case = prepare_case(
        ct, suv, lesions, liver_seed_lps_mm=liver_seed_lps_mm, config=config, name=name
    )
    chosen = case.labels if labels is None else [int(v) for v in labels]
    rows = []
    for number, label in enumerate(chosen):
        if progress is not None:
            progress(number / len(chosen), f"lesion {label}")
        rows.append(lesion_features(case, label, clinical=clinical, config=config))
    if progress is not None:
        progress(1.0, f"{len(chosen)} lesion(s)")
    return rows
