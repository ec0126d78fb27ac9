"""The fused PET/CT image whose radiomics make the ``petct_*`` features.

The study extracts features from "fused PET/CT images" (§2.5) without saying how they were fused.
Ours is a voxel-wise blend of the normalised CT and the normalised SUV, on one grid:

    petct = α · clip((HU − HU_lo) / (HU_hi − HU_lo), 0, 1)
          + (1 − α) · clip((SUV − SUV_lo) / (SUV_hi − SUV_lo), 0, 1)

with α = 0.5, HU −1000…3000 and SUV 0…50 by default (the protocol's CT and PET rescale ranges),
so petct is dimensionless in [0, 1] and its discretisation (``petct.yaml``) is a fixed bin width
on a fixed range, like the CT's and the PET's. The grid is the CT's (the lesion's 1 mm analysis
grid in feature extraction, where both images are interpolated onto it first).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk

from BoneOligoMetLib.errors import BoneOligoMetError
from BoneOligoMetLib.image.geometry import resample_to_reference, same_grid

# Names of the fusion keys in a params YAML (``boneOligoMet: fusion: {...}``).
YAML_KEYS = ("alpha", "ctRangeHU", "suvRange")


def _range(value: Any, name: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise BoneOligoMetError(f"fusion {name}: expected [low, high], got {value!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise BoneOligoMetError(f"fusion {name}: expected finite low < high, got [{low}, {high}]")
    return low, high


@dataclass(frozen=True)
class FusionConfig:
    """Weights and normalisation ranges of the fused PET/CT image (see the module docstring)."""

    alpha: float = 0.5  # weight of the normalised CT; 1 − alpha for the normalised SUV
    ct_range_hu: tuple[float, float] = (-1000.0, 3000.0)
    suv_range: tuple[float, float] = (0.0, 50.0)

    def __post_init__(self) -> None:
        alpha = float(self.alpha)
        if not 0.0 <= alpha <= 1.0:
            raise BoneOligoMetError(f"fusion alpha must lie in [0, 1], got {self.alpha!r}")
        object.__setattr__(self, "alpha", alpha)
        object.__setattr__(self, "ct_range_hu", _range(self.ct_range_hu, "ctRangeHU"))
        object.__setattr__(self, "suv_range", _range(self.suv_range, "suvRange"))

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], source: str = "fusion") -> FusionConfig:
        """From the YAML form ``{alpha, ctRangeHU, suvRange}``; unknown keys are errors."""
        import difflib

        unknown = [key for key in mapping if key not in YAML_KEYS]
        if unknown:
            key = unknown[0]
            close = difflib.get_close_matches(str(key), YAML_KEYS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(YAML_KEYS)}"
            raise BoneOligoMetError(f"{source}: unknown fusion key {key!r}{hint}")
        defaults = cls()
        return cls(
            alpha=mapping.get("alpha", defaults.alpha),
            ct_range_hu=mapping.get("ctRangeHU", defaults.ct_range_hu),
            suv_range=mapping.get("suvRange", defaults.suv_range),
        )

    def as_mapping(self) -> dict[str, Any]:
        """The YAML form (inverse of :meth:`from_mapping`)."""
        return {
            "alpha": self.alpha,
            "ctRangeHU": list(self.ct_range_hu),
            "suvRange": list(self.suv_range),
        }


def _normalised(array: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """(array − low) / (high − low) clipped to [0, 1], as a new float32 array."""
    low, high = value_range
    out = np.subtract(array, low, dtype=np.float32)
    out *= np.float32(1.0 / (high - low))
    return np.clip(out, 0.0, 1.0, out=out)


def fuse(ct: sitk.Image, suv: sitk.Image, config: FusionConfig = FusionConfig()) -> sitk.Image:
    """The fused PET/CT image (dimensionless, 0–1) on the CT's grid.

    ``ct`` in HU, ``suv`` in SUV; an SUV image on another grid is resampled linearly onto the CT
    grid first (0 outside the PET field). Geometry is the CT's.
    """
    if not same_grid(ct, suv):
        suv = resample_to_reference(suv, ct, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    fused = _normalised(sitk.GetArrayViewFromImage(ct), config.ct_range_hu)
    fused *= np.float32(config.alpha)
    pet_part = _normalised(sitk.GetArrayViewFromImage(suv), config.suv_range)
    pet_part *= np.float32(1.0 - config.alpha)
    fused += pet_part
    image = sitk.GetImageFromArray(fused)
    image.CopyInformation(ct)
    return image
