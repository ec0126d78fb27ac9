"""Running a network: the device (CUDA when present) and batched inference."""

from __future__ import annotations

from typing import Optional

import numpy as np

from BoneOligoMetLib.errors import TrainingError


def select_device(device: Optional[str] = None):
    """``cuda`` when available (or asked for), else ``cpu``; ``auto``/None choose."""
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    text = str(device)
    if not (text == "cpu" or text == "cuda" or (text.startswith("cuda:") and text[5:].isdigit())):
        raise TrainingError(f"device {text!r}: choose auto, cpu, cuda or cuda:N")
    if text.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError(f"device {text}: no CUDA device is available here (use cpu or auto)")
    return torch.device(text)


def _padded_batches(model, images: np.ndarray, device, batch_size: int):
    """(batch on ``device``, real rows) for inference; a CPU batch of one is padded to two."""
    import torch

    for start in range(0, len(images), batch_size):
        batch = torch.as_tensor(np.asarray(images[start : start + batch_size]))[:, None]
        n = batch.shape[0]
        if n == 1 and device.type == "cpu":  # see the module docstring
            batch = batch.expand(2, *batch.shape[1:])
        yield batch.to(device, torch.float32), n


def run_batches(model, images: np.ndarray, device=None, batch_size: int = 16):
    """(probability of malignancy (N,), deep features (N, F)) for patches (N, S, S, S)."""
    import torch

    device = device or next(model.parameters()).device
    model.eval()
    probabilities, features = [], []
    with torch.inference_mode():
        for batch, n in _padded_batches(model, images, device, batch_size):
            output = model(batch)
            probabilities.append(torch.softmax(output["logits"].float(), 1)[:n, 1].cpu().numpy())
            features.append(output["features"].float()[:n].cpu().numpy())
    return np.concatenate(probabilities), np.concatenate(features).astype(np.float64)


def run_features(model, images: np.ndarray, device=None, batch_size: int = 16) -> np.ndarray:
    """Deep features (N, F) only: the encoder up to the penultimate max pooling."""
    import torch

    device = device or next(model.parameters()).device
    model.eval()
    with torch.inference_mode():
        out = [
            model.features(batch).float()[:n].cpu().numpy()
            for batch, n in _padded_batches(model, images, device, batch_size)
        ]
    return np.concatenate(out).astype(np.float64)
