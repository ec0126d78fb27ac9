"""A trained network on disk: ``weights.safetensors`` + ``network.json``; loading never unpickles.

``network.json`` holds everything needed to rebuild and use the net: the modality, the
architecture and its options, the patch geometry and intensity scaling, the training settings and
summary (history, best epoch, validation and test metrics), the deep features' names with the
training set's mean and SD for z-normalisation, the parameter count, the weights' SHA-256 and the
library versions. The weights are read with ``safetensors`` (tensors only, no code) into a net
built from the JSON; a missing, extra or mis-shaped tensor is an error naming the file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from BoneOligoMetLib import __version__
from BoneOligoMetLib.deep.config import MODALITIES, DeepConfig
from BoneOligoMetLib.deep.infer import select_device
from BoneOligoMetLib.errors import ModelFileError
from BoneOligoMetLib.io.files import file_sha256

WEIGHTS = "weights.safetensors"
CONFIG = "network.json"
FORMAT = "bone-oligomet-network/1"


@dataclass
class LoadedNetwork:
    """A network ready for inference, with what it needs to turn patches into features."""

    model: Any  # torch.nn.Module, in eval mode
    config: DeepConfig
    modality: str
    feature_names: list[str]
    feature_mean: np.ndarray
    feature_std: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    folder: str = ""

    def normalise(self, features: np.ndarray) -> np.ndarray:
        """z-scores with the training set's statistics."""
        return (features - self.feature_mean) / self.feature_std


def feature_names(modality: str, n: int) -> list[str]:
    return [f"dl_{modality}_{i:03d}" for i in range(n)]


def save_network(
    folder: Union[str, Path],
    model,
    config: DeepConfig,
    modality: str,
    *,
    feature_mean: Sequence[float],
    feature_std: Sequence[float],
    summary: Optional[Mapping[str, Any]] = None,
    half: bool = False,
) -> Path:
    """Write ``model``'s weights (float16 when ``half``) and its JSON description."""
    import monai
    import torch
    from safetensors.torch import save_file

    from BoneOligoMetLib.deep.network import count_parameters

    if modality not in MODALITIES:
        raise ModelFileError(f"modality must be one of {MODALITIES}, got {modality!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().to("cpu").contiguous()
        if half and tensor.is_floating_point():
            tensor = tensor.half()
        state[name] = tensor
    # No safetensors metadata: its header keeps metadata in a hash map whose order changes from
    # process to process, so the same weights would hash differently (network.json holds it).
    save_file(state, str(folder / WEIGHTS))
    mean = [float(v) for v in feature_mean]
    std = [float(v) for v in feature_std]
    description = {
        "format": FORMAT,
        "modality": modality,
        "config": config.as_mapping(),
        "parameters": count_parameters(model),
        "feature_layer": "penultimate max pooling, global average (BasicNet); last stage (ResNet)",
        "feature_names": feature_names(modality, len(mean)),
        "feature_mean": mean,
        "feature_std": std,
        "weights_dtype": "float16" if half else "float32",
        "weights_sha256": file_sha256(folder / WEIGHTS),
        "summary": dict(summary or {}),
        "versions": {
            "bone-oligomet": __version__,
            "torch": torch.__version__,
            "monai": monai.__version__,
        },
    }
    (folder / CONFIG).write_text(json.dumps(description, indent=2) + "\n")
    return folder


def load_network(folder: Union[str, Path], device: Optional[str] = None) -> LoadedNetwork:
    """Rebuild the net from ``network.json`` and read its safetensors weights (no unpickling)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from BoneOligoMetLib.deep.network import build_network

    folder = Path(folder)
    config_path, weights_path = folder / CONFIG, folder / WEIGHTS
    for path in (config_path, weights_path):
        if not path.is_file():
            raise ModelFileError(f"{path}: missing (a network folder holds {CONFIG} and {WEIGHTS})")
    try:
        description = json.loads(config_path.read_text())
    except ValueError as error:
        raise ModelFileError(f"{config_path}: not valid JSON ({error})") from None
    if description.get("format") != FORMAT:
        raise ModelFileError(
            f"{config_path}: format {description.get('format')!r}, expected {FORMAT!r}"
        )
    if file_sha256(weights_path) != description.get("weights_sha256"):
        raise ModelFileError(f"{weights_path}: SHA-256 differs from the one in {CONFIG}")
    config = DeepConfig.from_mapping(description["config"], where=str(config_path))
    modality = description["modality"]
    model = build_network(config.network.architecture, **config.network.options())
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError) as error:
        raise ModelFileError(f"{weights_path}: not a safetensors file ({error})") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    shapes = [
        k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    if missing or extra or shapes:
        raise ModelFileError(
            f"{weights_path}: does not fit the {config.network.architecture} in {CONFIG} "
            f"(missing {missing[:3]}, unexpected {extra[:3]}, other shape {shapes[:3]})"
        )
    state = {k: v.to(expected[k].dtype) for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    model.to(select_device(device)).eval()
    mean = np.asarray(description["feature_mean"], dtype=np.float64)
    std = np.asarray(description["feature_std"], dtype=np.float64)
    if mean.shape != std.shape or len(description["feature_names"]) != mean.size:
        raise ModelFileError(f"{config_path}: feature names, mean and SD differ in length")
    return LoadedNetwork(
        model,
        config,
        modality,
        list(description["feature_names"]),
        mean,
        std,
        description,
        str(folder),
    )
