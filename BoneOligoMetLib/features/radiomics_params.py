"""pyradiomics parameter files: the packaged ones or your YAML, with overrides, validated.

Parameter files are pyradiomics YAML (``setting``, ``imageType``, ``featureClass``) plus an
optional ``boneOligoMet`` section of our own:

- ``image``: ``ct``, ``pet`` or ``petct``: the image the file is meant for (checked when used);
- ``intensityRange: [low, high]``: the protocol's "absolute rescale" (HU, SUV): intensities are
  clamped to it after resampling, so fixed-width bins count from a fixed floor;
- ``fusion: {alpha, ctRangeHU, suvRange}``: the fused image's definition (``petct`` only; see
  :mod:`BoneOligoMetLib.image.fusion`).

The packaged files (``BoneOligoMetLib/data/params``) follow the study (§2.5): ``ct``, ``pet``,
``petct``, ``ct_binwidth32`` and ``ibsi1_phantom``. Every file, and every override merged into
it, is validated with pyradiomics' own schema (pykwalify) and ours before use: nothing reaches
pyradiomics as an unvalidated keyword (pyradiomics' ``**kwargs`` skip its schema; we never use
them).
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import SimpleITK as sitk

from BoneOligoMetLib.errors import BoneOligoMetError, ParamsError
from BoneOligoMetLib.image.fusion import FusionConfig

PACKAGED = ("ct", "pet", "petct", "ct_binwidth32", "ibsi1_phantom")


IMAGE_KINDS = ("ct", "pet", "petct")


OUR_SECTION = "boneOligoMet"


OUR_KEYS = ("image", "intensityRange", "fusion")


PYRADIOMICS_SECTIONS = ("setting", "imageType", "featureClass", "voxelSetting")


# Filtered image types that ExtractionConfig / --filters can add, with their arguments.
FILTERS: dict[str, dict[str, Any]] = {"LoG": {"sigma": [1.0, 3.0, 5.0]}, "Wavelet": {}}


# pyradiomics' defaults for the settings we read ourselves.
DEFAULT_PAD = 5


DEFAULT_INTERPOLATOR = "sitkBSpline"


# Native voxels of crop beyond the grid: the cubic B-spline prefilter (pole −0.268) carries the
# crop edge into the image as 0.268^n, 1e-6 after 10 voxels; 2 of them are the kernel's support.
SPLINE_MARGIN_VOXELS = 10


Source = Union[str, Path, Mapping[str, Any]]


def params_path(name: str) -> Path:
    """Path of a packaged parameter file (``ct``, ``pet``, ``petct``, ``ct_binwidth32``, ...)."""
    if name not in PACKAGED:
        close = difflib.get_close_matches(name, PACKAGED, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ParamsError(
            f"no packaged parameter file {name!r}{hint} (packaged: {', '.join(PACKAGED)})"
        )
    return Path(str(resources.files("BoneOligoMetLib") / "data" / "params" / f"{name}.yaml"))


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ParamsError(f"{path}: cannot read ({error.strerror or error})") from None
    except yaml.YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML ({' '.join(str(error).split())})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping at the top, got {type(data).__name__}")
    return data


def merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in, section by section (one level of keys deep)."""
    merged = copy.deepcopy(dict(base))
    for section, values in overrides.items():
        if isinstance(values, Mapping) and isinstance(merged.get(section), Mapping):
            merged[section] = {**merged[section], **copy.deepcopy(dict(values))}
        else:
            merged[section] = copy.deepcopy(values)
    return merged


def _validate_pyradiomics(data: dict[str, Any], source: str) -> dict[str, Any]:
    """``data`` checked against pyradiomics' schema (pykwalify), as pyradiomics itself does."""
    import pykwalify.core
    from pykwalify.errors import PyKwalifyException
    from radiomics import getParameterValidationFiles

    # pykwalify logs every schema error before raising: our message carries them instead.
    logging.getLogger("pykwalify").setLevel(logging.CRITICAL)
    schema_file, schema_functions = getParameterValidationFiles()
    try:
        with warnings.catch_warnings():  # pykwalify loads the schema functions with imp
            warnings.simplefilter("ignore", DeprecationWarning)
            core = pykwalify.core.Core(
                source_data=copy.deepcopy(data),
                schema_files=[schema_file],
                extensions=[schema_functions],
            )
        core.validate(raise_exception=True)
    except PyKwalifyException as error:
        problems = [line.strip(" -.") for line in str(error.msg).splitlines()[1:]]
        raise ParamsError(f"{source}: {'; '.join(problems) or error.msg}") from None
    except (ValueError, TypeError) as error:  # pyradiomics' schema functions
        raise ParamsError(f"{source}: {error}") from None
    if data.get("setting", {}).get("normalize"):
        raise ParamsError(
            f"{source}: normalize is not supported: it rescales by the whole image's mean and "
            "SD, which a lesion crop changes; HU and SUV are absolute units"
        )
    spacing = data.get("setting", {}).get("resampledPixelSpacing")
    if spacing is not None and len(spacing) != 3:
        raise ParamsError(f"{source}: resampledPixelSpacing needs 3 values, got {spacing}")
    return data


def _validate_ours(section: Any, source: str) -> tuple[Optional[str], Any, Any]:
    if section is None:
        return None, None, None
    if not isinstance(section, Mapping):
        raise ParamsError(f"{source}: {OUR_SECTION} must be a mapping")
    for key in section:
        if key not in OUR_KEYS:
            close = difflib.get_close_matches(str(key), OUR_KEYS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(OUR_KEYS)}"
            raise ParamsError(f"{source}: unknown key {OUR_SECTION}.{key}{hint}")
    image = section.get("image")
    if image is not None and image not in IMAGE_KINDS:
        raise ParamsError(
            f"{source}: {OUR_SECTION}.image {image!r} is not one of {', '.join(IMAGE_KINDS)}"
        )
    intensity_range = section.get("intensityRange")
    if intensity_range is not None:
        try:
            low, high = (float(v) for v in intensity_range)
        except (TypeError, ValueError):
            raise ParamsError(
                f"{source}: {OUR_SECTION}.intensityRange must be [low, high], "
                f"got {intensity_range!r}"
            ) from None
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ParamsError(f"{source}: {OUR_SECTION}.intensityRange needs low < high")
        intensity_range = (low, high)
    fusion = section.get("fusion")
    if fusion is not None:
        if image not in (None, "petct"):
            raise ParamsError(f"{source}: {OUR_SECTION}.fusion belongs to a petct file")
        if not isinstance(fusion, Mapping):
            raise ParamsError(f"{source}: {OUR_SECTION}.fusion must be a mapping")
        try:
            fusion = FusionConfig.from_mapping(fusion, source)
        except ParamsError:
            raise
        except BoneOligoMetError as error:
            raise ParamsError(f"{source}: {error}") from None
    return image, intensity_range, fusion


@dataclass(frozen=True)
class RadiomicsParams:
    """A validated parameter set for one image: pyradiomics' part and ours."""

    source: str  # file path or a description of where the parameters came from
    pyradiomics: dict[str, Any] = field(repr=False)  # setting / imageType / featureClass
    image: Optional[str] = None  # ct, pet or petct when the file says
    intensity_range: Optional[tuple[float, float]] = None  # clamp (HU, SUV) after resampling
    fusion: Optional[FusionConfig] = None  # petct only

    @property
    def settings(self) -> dict[str, Any]:
        return self.pyradiomics.get("setting", {})

    @property
    def spacing_mm(self) -> Optional[tuple[float, float, float]]:
        """Target voxel spacing (mm), or None when the file does not resample."""
        spacing = self.settings.get("resampledPixelSpacing")
        return None if spacing is None else tuple(float(s) for s in spacing)  # type: ignore[return-value]

    @property
    def pad(self) -> int:
        return int(self.settings.get("padDistance", DEFAULT_PAD))

    @property
    def interpolator(self) -> int:
        value = self.settings.get("interpolator", DEFAULT_INTERPOLATOR)
        return getattr(sitk, value) if isinstance(value, str) else int(value)

    def as_mapping(self) -> dict[str, Any]:
        """Everything that decides the features, as plain data (the digest's input)."""
        ours: dict[str, Any] = {}
        if self.image is not None:
            ours["image"] = self.image
        if self.intensity_range is not None:
            ours["intensityRange"] = list(self.intensity_range)
        if self.fusion is not None:
            ours["fusion"] = self.fusion.as_mapping()
        return {**self.pyradiomics, **({OUR_SECTION: ours} if ours else {})}

    @property
    def digest(self) -> str:
        """SHA-256 of the effective parameters (comments and layout of the file do not count)."""
        text = json.dumps(self.as_mapping(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def margin_voxels(
        self, native_spacing_mm: Sequence[float], minimum_mm: float = 0.0
    ) -> tuple[int, int, int]:
        """Crop margin (voxels per axis) around the lesion's box for an image of
        ``native_spacing_mm``: the resampled grid's padding, plus enough voxels that the cubic
        B-spline (whose prefilter spans the whole crop) sees the crop edge damped below 1e-5,
        and at least ``minimum_mm``."""
        native = np.asarray(native_spacing_mm, dtype=float)
        target = np.asarray(self.spacing_mm or native, dtype=float)
        target = np.where(target == 0, native, target)
        grid = np.ceil((self.pad + 1) * target / native)
        needed = grid + SPLINE_MARGIN_VOXELS
        return tuple(int(v) for v in np.maximum(needed, np.ceil(minimum_mm / native)))


def load_params(
    source: Source,
    overrides: Optional[Mapping[str, Any]] = None,
    image: Optional[str] = None,
) -> RadiomicsParams:
    """Read and validate a parameter set.

    ``source``: a packaged name (``"ct"``, ``"pet"``, ``"petct"``, ``"ct_binwidth32"``,
    ``"ibsi1_phantom"``), a YAML path, or a mapping. ``overrides`` (same layout, e.g.
    ``{"setting": {"binWidth": 32}}``) are merged in section by section *before* validation.
    ``image``: the image kind the parameters will be used for; a file made for another is an
    error.
    """
    if isinstance(source, Mapping):
        data, name = copy.deepcopy(dict(source)), "parameters"
    else:
        text = str(source)
        looks_like_name = "/" not in text and not text.endswith((".yaml", ".yml", ".json"))
        path = params_path(text) if looks_like_name and not Path(text).is_file() else Path(text)
        if not path.is_file():
            raise ParamsError(
                f"{path}: parameter file not found (or a packaged name: {', '.join(PACKAGED)})"
            )
        data, name = _read_yaml(path), str(path)
    if overrides:
        data = merge(data, overrides)
        name += " (with overrides)"
    unknown = [k for k in data if k not in (*PYRADIOMICS_SECTIONS, OUR_SECTION)]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), (*PYRADIOMICS_SECTIONS, OUR_SECTION))
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ParamsError(f"{name}: unknown section {unknown[0]!r}{hint}")
    ours = data.pop(OUR_SECTION, None)
    declared, intensity_range, fusion = _validate_ours(ours, name)
    if image is not None and declared is not None and declared != image:
        raise ParamsError(f"{name}: made for the {declared} image, used for the {image} image")
    if image == "petct" and fusion is None:
        fusion = FusionConfig()
    pyradiomics_part = _validate_pyradiomics(data, name)
    return RadiomicsParams(name, pyradiomics_part, declared or image, intensity_range, fusion)
