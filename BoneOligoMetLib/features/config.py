"""What to extract per lesion: :class:`ExtractionConfig`, its feature groups and their digests."""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Optional

from BoneOligoMetLib import __version__
from BoneOligoMetLib.errors import ConfigError, check_keys
from BoneOligoMetLib.features.radiomics_params import (
    FILTERS,
    IMAGE_KINDS,
    PACKAGED,
    RadiomicsParams,
    load_params,
)
from BoneOligoMetLib.image.fusion import FusionConfig
from BoneOligoMetLib.image.peak import WEIGHTINGS
from BoneOligoMetLib.lesions.metabolic import (
    LIVER_DIAMETER_MM,
    MTV_THRESHOLD_SUV,
)

GROUPS = ("met", *IMAGE_KINDS, "dl")  # feature groups, in column order after clin_*


@dataclass(frozen=True)
class ExtractionConfig:
    """What to extract per lesion (every number of the protocol lives in the params files).

    ``*_params``: a packaged parameter file name (``ct``, ``pet``, ``petct``, ``ct_binwidth32``)
    or a YAML path. ``filters``: extra pyradiomics image types for every image (``LoG``: sigma
    1, 3, 5 mm; ``Wavelet``). ``fusion`` overrides the petct file's fused-image definition.
    ``margin_mm``: the least crop margin around a lesion (the margin the 1 mm grid and the
    interpolation need is always added).
    """

    images: tuple[str, ...] = IMAGE_KINDS
    ct_params: str = "ct"
    pet_params: str = "pet"
    petct_params: str = "petct"
    filters: tuple[str, ...] = ()
    fusion: Optional[FusionConfig] = None
    margin_mm: float = 0.0
    metabolic: bool = True
    mtv_threshold_suv: float = MTV_THRESHOLD_SUV  # §2.3
    peak_weighting: str = "partial"
    liver_diameter_mm: float = LIVER_DIAMETER_MM  # §2.3: 3 cm sphere
    deep_model: Optional[str] = None  # folder of ct/ and pet/ networks (train-deep): dl_* columns

    def __post_init__(self) -> None:
        images = tuple(self.images)
        unknown = [i for i in images if i not in IMAGE_KINDS]
        if unknown or len(set(images)) != len(images):
            raise ConfigError(f"images {images}: choose among {', '.join(IMAGE_KINDS)}, once each")
        object.__setattr__(self, "images", tuple(i for i in IMAGE_KINDS if i in images))
        filters = tuple(self.filters)
        for name in filters:
            if name not in FILTERS:
                raise ConfigError(f"filter {name!r}: choose among {', '.join(FILTERS)}")
        object.__setattr__(self, "filters", filters)
        for image in IMAGE_KINDS:
            source = str(getattr(self, f"{image}_params"))
            if source not in PACKAGED:  # a path: absolute, so workers elsewhere find it
                source = str(Path(source).expanduser().resolve())
            object.__setattr__(self, f"{image}_params", source)
        if self.fusion is not None and not isinstance(self.fusion, FusionConfig):
            object.__setattr__(self, "fusion", FusionConfig.from_mapping(self.fusion))
        if self.peak_weighting not in WEIGHTINGS:
            raise ConfigError(
                f"peak_weighting {self.peak_weighting!r}: choose {' or '.join(WEIGHTINGS)}"
            )
        for name in ("margin_mm", "mtv_threshold_suv", "liver_diameter_mm"):
            value = float(getattr(self, name))
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name} must be a finite number ≥ 0, got {value}")
            object.__setattr__(self, name, value)
        if self.deep_model is not None:
            object.__setattr__(
                self, "deep_model", str(Path(self.deep_model).expanduser().resolve())
            )

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> ExtractionConfig:
        """From plain data (e.g. JSON); unknown keys are errors naming the closest known one."""
        known = [f.name for f in fields(cls)]
        check_keys(mapping, known, "unknown extraction setting", ConfigError)
        values = dict(mapping)
        for key in ("images", "filters"):
            if key in values:
                values[key] = tuple(values[key])
        if isinstance(values.get("fusion"), Mapping):
            values["fusion"] = FusionConfig.from_mapping(values["fusion"])
        return cls(**values)

    def as_mapping(self) -> dict[str, Any]:
        values = asdict(self)
        values["fusion"] = None if self.fusion is None else self.fusion.as_mapping()
        return values

    @property
    def groups(self) -> tuple[str, ...]:
        """Feature groups computed, in column order: ``met``, the images, ``dl`` (deep)."""
        deep = ("dl",) if self.deep_model is not None else ()
        return (("met",) if self.metabolic else ()) + self.images + deep

    def params(self, image: str) -> RadiomicsParams:
        """The validated parameters for ``image`` (``ct``, ``pet``, ``petct``), filters and
        fusion override merged in before validation. Read again when the file changes."""
        source = Path(getattr(self, f"{image}_params"))
        try:
            stat = source.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except OSError:  # a packaged name (or a missing file: load_params says so)
            stamp = None
        return _params(self, image, stamp)

    def settings_digest(self, group: str) -> str:
        """SHA-256 of the settings that decide one feature group's values, and nothing else (no
        software version): what a model bundle records to tell a changed parameter file."""
        return _sha256({**self._group_spec(group), "group": group})

    def group_digest(self, group: str, versions: Optional[Mapping[str, str]] = None) -> str:
        """SHA-256 of the settings of one feature group and the library's and pyradiomics'
        versions (``{"bone-oligomet": ..., "pyradiomics": ...}``; default: the installed ones):
        the key of a cohort extraction's stored parts, so that a new version recomputes them."""
        if versions is None:
            import radiomics as pyradiomics

            versions = {"bone-oligomet": __version__, "pyradiomics": pyradiomics.__version__}
        spec = self._group_spec(group)
        spec.update(
            group=group, version=versions["bone-oligomet"], pyradiomics=versions["pyradiomics"]
        )
        return _sha256(spec)

    def _group_spec(self, group: str) -> dict[str, Any]:
        if group == "met":
            return {
                "mtv_threshold_suv": self.mtv_threshold_suv,
                "peak_weighting": self.peak_weighting,
                "liver_diameter_mm": self.liver_diameter_mm,
            }
        if group in IMAGE_KINDS:
            # Not the crop margin: beyond the needed one it changes values by < 1e-6.
            return {"params": self.params(group).as_mapping()}
        if group == "dl" and self.deep_model is not None:
            return {"networks": _deep_networks_spec(self.deep_model)}
        raise ConfigError(f"unknown feature group {group!r}; groups: {', '.join(GROUPS)}")


@functools.lru_cache(maxsize=64)
def _params(config: ExtractionConfig, image: str, stamp: Optional[tuple]) -> RadiomicsParams:
    overrides: dict[str, Any] = {}
    if config.filters:
        overrides["imageType"] = {name: dict(FILTERS[name]) for name in config.filters}
    if image == "petct" and config.fusion is not None:
        overrides["boneOligoMet"] = {"fusion": config.fusion.as_mapping()}
    return load_params(getattr(config, f"{image}_params"), overrides or None, image=image)


def _deep_networks_spec(folder: str) -> dict[str, Any]:
    """What decides the deep features: each network's weights hash and patch settings."""
    spec = {}
    for modality in ("ct", "pet"):
        path = Path(folder) / modality / "network.json"
        if path.is_file():
            meta = json.loads(path.read_text())
            spec[modality] = [meta.get("weights_sha256"), meta.get("config", {}).get("patch")]
    if not spec:
        raise ConfigError(f"deep_model {folder}: no ct/ or pet/ network (network.json) found")
    return spec


def _sha256(spec: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
