"""The deep branch's settings: patch geometry, intensity normalisation, network and training.

One frozen dataclass per concern, validated on construction; ``DeepConfig.from_mapping`` refuses
unknown keys (with a "did you mean"). Presets:

- ``study`` (default): the study's training protocol (§2.4: focal loss with class weights benign
  0.3 / malignant 0.7, Adam, learning rate 1e-4 decaying, up to 1001 epochs, batch 32, 8 loader
  workers, validation every 10 epochs, early stop after 5 evaluations without improvement);
- ``tiny``: the same code path with a small net and patch, for tests and CI.

Patch geometry (ours; the study's 3D U-Net used 100×100×100 voxels at 3.0×1.37×1.37 mm for
segmentation, the classification patch is not given): a cube of 32 voxels at 2 mm, 64 mm across,
centred on the lesion's centre of mass. Bone lesions in the study measure up to about 4–5 cm, so
the patch holds the lesion and a rim of its bone; 32³ keeps CPU inference near 0.1 s per lesion.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Optional

from BoneOligoMetLib.errors import DeepConfigError, check_keys
from BoneOligoMetLib.protocol import CLASS_WEIGHTS

MODALITIES = ("ct", "pet")


def _check_keys(cls: type, mapping: Mapping[str, Any], where: str) -> None:
    check_keys(mapping, [f.name for f in fields(cls)], f"{where}: unknown setting", DeepConfigError)


@dataclass(frozen=True)
class PatchConfig:
    """A lesion-centred cube: ``size`` voxels of ``spacing_mm`` per side, axis-aligned with the
    image; CT windowed to ``ct_window_hu`` and SUV clipped to ``pet_range_suv``, both scaled to
    [0, 1] (HU and SUV keep their meaning: the scale is fixed, not per patient)."""

    size: int = 32
    spacing_mm: float = 2.0
    ct_window_hu: tuple[float, float] = (-200.0, 1800.0)  # soft tissue to cortical bone
    pet_range_suv: tuple[float, float] = (0.0, 20.0)  # covers the avid metastases (SUV 3–12)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ct_window_hu", tuple(float(v) for v in self.ct_window_hu))
        object.__setattr__(self, "pet_range_suv", tuple(float(v) for v in self.pet_range_suv))
        if self.size < 16 or self.size % 16:
            raise DeepConfigError(f"patch size must be a multiple of 16 (≥ 16), got {self.size}")
        if not self.spacing_mm > 0:
            raise DeepConfigError(f"patch spacing must be > 0 mm, got {self.spacing_mm}")
        for name in ("ct_window_hu", "pet_range_suv"):
            low, high = getattr(self, name)
            if not high > low:
                raise DeepConfigError(f"{name}: the upper bound must exceed the lower one")

    @property
    def extent_mm(self) -> float:
        return self.size * self.spacing_mm

    def intensity_range(self, modality: str) -> tuple[float, float]:
        return self.ct_window_hu if modality == "ct" else self.pet_range_suv


@dataclass(frozen=True)
class NetworkConfig:
    """``architecture``: ``basicnet`` or a MONAI 3D ResNet name; ``channels`` for BasicNet."""

    architecture: str = "basicnet"
    channels: tuple[int, ...] = (16, 32, 64, 112, 224)
    dropout: float = 0.3

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        from BoneOligoMetLib.deep.network import ARCHITECTURES

        if self.architecture not in ARCHITECTURES:
            raise DeepConfigError(
                f"unknown network {self.architecture!r}; choose one of {', '.join(ARCHITECTURES)}"
            )
        if not 0 <= self.dropout < 1:
            raise DeepConfigError(f"dropout must be in [0, 1), got {self.dropout}")

    def options(self) -> dict[str, Any]:
        if self.architecture == "basicnet":
            return {"channels": self.channels, "dropout": self.dropout}
        return {}


@dataclass(frozen=True)
class TrainConfig:
    """Training protocol (§2.4). ``class_weights``: (benign, malignant) of the focal loss;
    ``seg_weight``: weight of the deep-supervision lesion-mask loss; the learning rate decays by
    ``lr_decay`` per epoch; ``validation_fraction`` of the TRAINING patients validate."""

    epochs: int = 1001
    batch_size: int = 32
    learning_rate: float = 1e-4
    lr_decay: float = 0.995
    focal_gamma: float = 2.0
    class_weights: tuple[float, float] = CLASS_WEIGHTS
    seg_weight: float = 0.5
    validate_every: int = 10
    patience: int = 5  # evaluations without improvement before stopping
    validation_fraction: float = 0.2
    workers: int = 8
    seed: int = 0
    augment: bool = True
    flip: bool = True
    rotate_deg: float = 10.0
    intensity_jitter: float = 0.1  # ± fraction of scale and shift of the [0, 1] intensities
    mixed_precision: bool = True  # used on CUDA only

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_weights", tuple(float(w) for w in self.class_weights))
        positive = ("epochs", "batch_size", "validate_every", "patience")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise DeepConfigError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if not self.learning_rate > 0 or not 0 < self.lr_decay <= 1:
            raise DeepConfigError("learning_rate must be > 0 and lr_decay in (0, 1]")
        if len(self.class_weights) != 2 or min(self.class_weights) <= 0:
            raise DeepConfigError("class_weights: two positive weights (benign, malignant)")
        if not 0 < self.validation_fraction < 1:
            raise DeepConfigError("validation_fraction must be in (0, 1)")
        if self.workers < 0 or self.seg_weight < 0 or self.rotate_deg < 0:
            raise DeepConfigError("workers, seg_weight and rotate_deg must be ≥ 0")


@dataclass(frozen=True)
class DeepConfig:
    """Everything that defines a trained deep-feature network, saved beside its weights."""

    patch: PatchConfig = field(default_factory=PatchConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], where: str = "deep config") -> DeepConfig:
        _check_keys(cls, mapping, where)
        parts = {}
        for f in fields(cls):
            sub = mapping.get(f.name, {})
            part_cls = {"patch": PatchConfig, "network": NetworkConfig, "train": TrainConfig}[
                f.name
            ]
            _check_keys(part_cls, sub, f"{where}.{f.name}")
            parts[f.name] = part_cls(**sub)
        return cls(**parts)

    def as_mapping(self) -> dict[str, Any]:
        return asdict(self)

    def with_train(self, **changes: Any) -> DeepConfig:
        """A copy with training settings changed (e.g. ``epochs`` from the command line)."""
        _check_keys(TrainConfig, changes, "training")
        return replace(self, train=replace(self.train, **changes))


PRESETS: dict[str, dict[str, Any]] = {
    "study": {},
    "tiny": {
        "patch": {"size": 16, "spacing_mm": 4.0},
        "network": {"channels": (4, 8, 16, 16), "dropout": 0.1},
        "train": {
            "epochs": 30,
            "batch_size": 16,
            "learning_rate": 3e-3,
            "lr_decay": 0.98,
            "validate_every": 5,
            "patience": 3,
            "workers": 0,
            "rotate_deg": 0.0,
        },
    },
}


def preset(name: str = "study", overrides: Optional[Mapping[str, Any]] = None) -> DeepConfig:
    """The ``study`` or ``tiny`` configuration, optionally with nested overrides."""
    if name not in PRESETS:
        raise DeepConfigError(f"unknown deep preset {name!r}; choose one of {', '.join(PRESETS)}")
    merged: dict[str, dict[str, Any]] = {k: dict(v) for k, v in PRESETS[name].items()}
    for part, values in (overrides or {}).items():
        merged.setdefault(part, {}).update(values)
    return DeepConfig.from_mapping(merged, where=f"deep preset {name!r}")
