"""Training one modality's deep-feature network (paper §2.4) and checking it on validation
patients: focal loss (class weights 0.3 / 0.7, γ = 2) plus ``seg_weight`` × a deep-supervision
lesion-mask loss, Adam with an exponential learning-rate decay, and early stopping on the
validation AUC (ties: lower validation loss). CUDA with mixed precision when present, else the
CPU; seeded, and reproducible on the CPU for a given seed and thread count.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from BoneOligoMetLib.deep.config import DeepConfig
from BoneOligoMetLib.deep.data import PatchSet, augmentation, dataset
from BoneOligoMetLib.deep.infer import select_device
from BoneOligoMetLib.errors import Progress, TrainingError

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Python, NumPy and torch seeds (MONAI's ``set_determinism``) and deterministic kernels."""
    import torch
    from monai.utils import set_determinism

    set_determinism(seed=seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def binary_metrics(labels: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    """AUC, and accuracy, sensitivity and specificity at probability 0.5."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels).astype(int)
    predicted = (np.asarray(probability) >= 0.5).astype(int)
    positives, negatives = labels == 1, labels == 0
    out = {
        "auc": float(roc_auc_score(labels, probability))
        if positives.any() and negatives.any()
        else float("nan"),
        "accuracy": float(np.mean(predicted == labels)),
        "sensitivity": float(np.mean(predicted[positives] == 1)) if positives.any() else math.nan,
        "specificity": float(np.mean(predicted[negatives] == 0)) if negatives.any() else math.nan,
    }
    return out


@dataclass
class TrainResult:
    """The best network (eval mode, on the CPU), its history and how training ended."""

    model: Any
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_validation: dict[str, float] = field(default_factory=dict)
    epochs_run: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    device: str = "cpu"

    def summary(self) -> dict[str, Any]:
        return {
            "best_epoch": self.best_epoch,
            "best_validation": self.best_validation,
            "epochs_run": self.epochs_run,
            "stopped_early": self.stopped_early,
            "seconds": round(self.seconds, 2),
            "seconds_per_epoch": round(self.seconds / max(1, self.epochs_run), 3),
            "device": self.device,
        }


def _losses(config: DeepConfig, device):
    """MONAI's ``FocalLoss`` on the two logits plus ``seg_weight`` × ``DeepSupervisionLoss`` over
    Dice + cross-entropy on the lesion mask (the target shrunk to each head's size)."""
    import torch
    from monai.losses import DeepSupervisionLoss, DiceCELoss, FocalLoss

    train = config.train
    focal = FocalLoss(
        to_onehot_y=True, use_softmax=True, gamma=train.focal_gamma, weight=train.class_weights
    )
    segmentation = DeepSupervisionLoss(DiceCELoss(sigmoid=True), weight_mode="exp")

    def loss(output: dict, labels, masks) -> torch.Tensor:
        value = focal(output["logits"].float(), labels[:, None])
        if train.seg_weight > 0 and output["segmentation"]:
            heads = [s.float() for s in output["segmentation"]]
            value = value + train.seg_weight * segmentation(heads, masks)
        return value

    return loss


def _loader(data, batch_size: int, shuffle: bool, workers: int, seed: int):
    import torch
    from monai.data import DataLoader

    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        data,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=workers,
        generator=generator,
        persistent_workers=workers > 0,
    )


def _evaluate(model, patches: PatchSet, modality: str, index, loss_fn, device, batch_size):
    import torch

    model.eval()
    probabilities, losses = [], []
    data = dataset(patches, modality, index)
    with torch.inference_mode():
        for batch in _loader(data, batch_size, False, 0, 0):
            images = batch["image"].to(device)
            n = images.shape[0]
            # A batch of one takes PyTorch's reference 3D convolution on the CPU (oneDNN only
            # from some batch size up), ~8× slower: pad it to two and drop the copy's output
            # (batch norm is in eval mode, so rows do not interact).
            if n == 1 and device.type == "cpu":
                images = images.expand(2, *images.shape[1:])
            output = model(images)
            output = {
                "logits": output["logits"][:n],
                "segmentation": [s[:n] for s in output["segmentation"]],
            }
            labels, masks = batch["label"].to(device), batch["mask"].to(device)
            losses.append(float(loss_fn(output, labels, masks)) * n)
            probabilities.append(torch.softmax(output["logits"].float(), 1)[:, 1].cpu().numpy())
    probability = np.concatenate(probabilities)
    metrics = binary_metrics(patches.labels[index], probability)
    metrics["loss"] = float(np.sum(losses) / len(index))
    return metrics


def _better(metrics: dict, best: Optional[dict]) -> bool:
    """Higher validation AUC, or the same AUC with a lower validation loss."""
    if best is None:
        return True
    auc, best_auc = metrics["auc"], best["auc"]
    if math.isnan(auc) or math.isnan(best_auc):
        return not math.isnan(auc) or (math.isnan(best_auc) and metrics["loss"] < best["loss"])
    if auc > best_auc + 1e-9:
        return True
    return abs(auc - best_auc) <= 1e-9 and metrics["loss"] < best["loss"] - 1e-6


def _check_split(patches: PatchSet, train_index: np.ndarray, validation_index: np.ndarray) -> None:
    """Both sets hold both classes, and no patient is in both."""
    for name, index in (("training", train_index), ("validation", validation_index)):
        if len(np.unique(patches.labels[index])) < 2:
            raise TrainingError(f"the {name} lesions hold one class only; more patients needed")
    if set(patches.patients[train_index]) & set(patches.patients[validation_index]):
        raise TrainingError("a patient is in both the training and the validation set")


def _transfer(model, init_state: dict) -> None:
    """Load the tensors of ``init_state`` that fit ``model`` (e.g. a checkpoint of the other
    modality or another cohort); a checkpoint that shares no tensor with it is a mistake."""
    own = model.state_dict()
    fitting = {
        k: v for k, v in init_state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)
    }
    if not fitting:
        raise TrainingError("--init: no tensor of the checkpoint fits this network")
    log.info("--init: %d of %d tensors transferred", len(fitting), len(own))
    try:
        model.load_state_dict(fitting, strict=False)
    except RuntimeError as error:
        message = str(error).splitlines()[0]
        raise TrainingError(
            f"--init: the checkpoint does not fit this network ({message})"
        ) from None


def _train_epoch(model, loader, loss_fn, optimiser, scaler, device, amp: bool) -> float:
    """One pass over the training lesions; their mean loss."""
    import torch

    model.train()
    total, seen = 0.0, 0
    for batch in loader:
        images = batch["image"].to(device)
        labels, masks = batch["label"].to(device), batch["mask"].to(device)
        if images.shape[0] < 2:  # batch norm needs two samples in training mode
            continue
        optimiser.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            output = model(images)
            loss = loss_fn(output, labels, masks)
        scaler.scale(loss).backward()
        scaler.step(optimiser)
        scaler.update()
        total += float(loss.detach()) * images.shape[0]
        seen += images.shape[0]
    return total / max(1, seen)


def train_network(
    patches: PatchSet,
    modality: str,
    config: DeepConfig,
    train_index: Sequence[int],
    validation_index: Sequence[int],
    *,
    device: Optional[str] = None,
    init_state: Optional[dict] = None,
    progress: Optional[Progress] = None,
) -> TrainResult:
    """Train one modality's network on ``train_index`` rows, validating on
    ``validation_index`` (rows of other patients of the training set)."""
    import torch

    from BoneOligoMetLib.deep.network import build_network

    train_index, validation_index = np.asarray(train_index), np.asarray(validation_index)
    _check_split(patches, train_index, validation_index)
    settings = config.train
    seed_everything(settings.seed)
    target = select_device(device)
    model = build_network(config.network.architecture, **config.network.options())
    if init_state is not None:
        _transfer(model, init_state)
    model.to(target)
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimiser, gamma=settings.lr_decay)
    amp = settings.mixed_precision and target.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    loss_fn = _losses(config, target)
    loader = _loader(
        dataset(patches, modality, train_index, augmentation(settings)),
        settings.batch_size,
        True,
        settings.workers,
        settings.seed,
    )
    result = TrainResult(model, device=str(target))
    best_state, best, bad = None, None, 0
    start = time.perf_counter()
    for epoch in range(1, settings.epochs + 1):
        train_loss = _train_epoch(model, loader, loss_fn, optimiser, scaler, target, amp)
        scheduler.step()
        row: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": train_loss,
            "learning_rate": scheduler.get_last_lr()[0],
        }
        if epoch % settings.validate_every == 0 or epoch == settings.epochs:
            metrics = _evaluate(
                model, patches, modality, validation_index, loss_fn, target, settings.batch_size
            )
            row.update({f"val_{k}": v for k, v in metrics.items()})
            if _better(metrics, best):
                best, bad = metrics, 0
                best_state = copy.deepcopy(model.state_dict())
                result.best_epoch = epoch
            else:
                bad += 1
            log.info("%s epoch %d: %s", modality, epoch, row)
        result.history.append(row)
        if progress is not None:
            progress(epoch / settings.epochs, f"{modality} epoch {epoch}: loss {train_loss:.3f}")
        if bad >= settings.patience:
            result.stopped_early = True
            break
    result.epochs_run = epoch
    result.seconds = time.perf_counter() - start
    if best_state is not None:
        model.load_state_dict(best_state)
    result.best_validation = best or {}
    result.model = model.to("cpu").eval()
    return result


def plot_history(history: Sequence[dict[str, Any]], path, title: str = "") -> None:
    """Training loss per epoch and validation loss/AUC per evaluation, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot(epochs, [row["train_loss"] for row in history], label="training loss")
    evaluated = [row for row in history if "val_loss" in row]
    if evaluated:
        left.plot(
            [r["epoch"] for r in evaluated],
            [r["val_loss"] for r in evaluated],
            "o-",
            label="validation loss",
        )
        right.plot(
            [r["epoch"] for r in evaluated],
            [r["val_auc"] for r in evaluated],
            "o-",
            label="validation AUC",
        )
        right.plot(
            [r["epoch"] for r in evaluated],
            [r["val_accuracy"] for r in evaluated],
            "s--",
            label="validation accuracy",
        )
    left.set_xlabel("epoch")
    left.legend()
    right.set_xlabel("epoch")
    right.set_ylim(0, 1.02)
    right.legend(loc="lower right")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
