"""Training the CT and PET deep-feature networks on a cohort manifest, end to end: the patient
split (test patients never seen in training or validation), one network per modality, its check
on the test patients (its own head, and its deep features alone in a logistic regression), and
the saved networks and summary. It sits above :mod:`.train` because it uses the models' patient
split.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from BoneOligoMetLib.deep.config import MODALITIES, DeepConfig
from BoneOligoMetLib.deep.data import PatchSet, cohort_patches
from BoneOligoMetLib.deep.infer import run_batches
from BoneOligoMetLib.deep.model_io import WEIGHTS, save_network
from BoneOligoMetLib.deep.train import TrainResult, binary_metrics, plot_history, train_network
from BoneOligoMetLib.errors import BoneOligoMetError, Progress
from BoneOligoMetLib.io.tables import write_csv
from BoneOligoMetLib.models.splits import patient_split
from BoneOligoMetLib.protocol import TEST_FRACTION

log = logging.getLogger(__name__)


def _init_state(path: Optional[Union[str, Path]], modality: str):
    """A state dict from ``--init``: a network folder (or a parent holding ``ct/``/``pet/``),
    or a ``.safetensors`` file."""
    if path is None:
        return None
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_dir() and (path / modality / WEIGHTS).is_file():
        path = path / modality
    if path.is_dir():
        path = path / WEIGHTS
    if not path.is_file():
        raise BoneOligoMetError(f"--init {path}: no such weights file")
    return {k: v.float() for k, v in load_file(str(path)).items()}


def _deep_features_auc(train_x, train_y, test_x, test_y) -> dict[str, float]:
    """The deep features alone: z-score + L2 logistic regression on the training lesions."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    model.fit(train_x, train_y)
    score = model.predict_proba(test_x)[:, 1]
    return {"test_auc": float(roc_auc_score(test_y, score)), "n_features": int(train_x.shape[1])}


def _write_split(path: Path, patches: PatchSet, sets: dict[str, np.ndarray]) -> None:
    name = np.empty(len(patches), dtype=object)
    for label, index in sets.items():
        name[index] = label
    rows = [
        {"patient_id": patient, "lesion_label": lesion, "label": label, "set": side}
        for patient, lesion, label, side in zip(
            patches.patients, patches.lesion_labels, patches.labels, name
        )
    ]
    write_csv(rows, path, ("patient_id", "lesion_label", "label", "set"))


def _write_history(path: Path, history: Sequence[dict[str, Any]]) -> None:
    write_csv(history, path, list(dict.fromkeys(key for row in history for key in row)))


def _split(
    patches: PatchSet, config: DeepConfig, test_fraction: float, split_seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(training side, fit, validation, test) rows: test patients grouped and stratified, then
    the validation patients from the training side."""
    if test_fraction > 0:
        train, test = patient_split(patches.labels, patches.patients, test_fraction, split_seed)
    else:
        train, test = np.arange(len(patches)), np.asarray([], dtype=int)
    inner_train, inner_validation = patient_split(
        patches.labels[train],
        patches.patients[train],
        config.train.validation_fraction,
        split_seed + 1,
        name="validation split",
    )
    return train, train[inner_train], train[inner_validation], test


def _counts(patches: PatchSet, sets: dict[str, np.ndarray]) -> dict[str, Any]:
    """Lesions and patients per set, for the summary."""
    return {
        "lesions": {side: int(index.size) for side, index in sets.items()},
        "patients": {side: len(set(patches.patients[index])) for side, index in sets.items()},
    }


def _feature_scaling(model, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The network's deep features of the training side (fit + validation patients, never
    test) and their z-score mean and SD."""
    _, features = run_batches(model, images)
    mean, std = features.mean(axis=0), features.std(axis=0)
    std[std < 1e-8] = 1.0
    return features, mean, std


def _test_results(
    model,
    patches: PatchSet,
    modality: str,
    train: np.ndarray,
    test: np.ndarray,
    scaling: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """On the test patients: the network's own head, and its deep features alone in a logistic
    regression fitted on the training side; with the z-scored training and test features."""
    features, mean, std = scaling
    probability, test_raw = run_batches(model, patches.images[modality][test])
    head = binary_metrics(patches.labels[test], probability)
    train_z, test_z = (features - mean) / std, (test_raw - mean) / std
    alone = _deep_features_auc(train_z, patches.labels[train], test_z, patches.labels[test])
    return {"test_head": head, "test_features": alone}, train_z, test_z


def _save_modality(
    folder: Path,
    result: TrainResult,
    config: DeepConfig,
    modality: str,
    entry: dict[str, Any],
    scaling: tuple[np.ndarray, np.ndarray, np.ndarray],
    half: bool,
) -> None:
    """The network (weights, network.json with its feature scaling), history.csv and curve.png."""
    _, mean, std = scaling
    save_network(
        folder,
        result.model,
        config,
        modality,
        feature_mean=mean,
        feature_std=std,
        summary={**entry, "history": result.history},
        half=half,
    )
    _write_history(folder / "history.csv", result.history)
    plot_history(result.history, folder / "curve.png", f"{modality.upper()} network")


def train_deep(
    manifest: Union[str, Path],
    out_dir: Union[str, Path],
    config: DeepConfig,
    *,
    modalities: Sequence[str] = MODALITIES,
    test_fraction: float = TEST_FRACTION,
    split_seed: int = 0,
    device: Optional[str] = None,
    init: Optional[Union[str, Path]] = None,
    patch_workers: int = 1,
    half: bool = False,
    progress: Optional[Progress] = None,
) -> dict[str, Any]:
    """Train one network per modality; returns (and writes) the summary. Writes::

    out_dir/split.csv        patient_id, lesion_label, label, set (train / validation / test)
    out_dir/ct/, out_dir/pet/  weights.safetensors, network.json, history.csv, curve.png
    out_dir/summary.json     per modality: training summary, held-out test metrics of the
                             network's own head; and the deep features alone (CT, PET, and
                             the pre-fused CT+PET vector) in a logistic regression fitted on
                             the training patients, evaluated on the test patients
    out_dir/cache/           the cohort's patches (reused by later runs)
    """

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for modality in modalities:
        if modality not in MODALITIES:
            raise BoneOligoMetError(f"modality must be one of {MODALITIES}, got {modality!r}")
    patches = cohort_patches(manifest, config.patch, cache_dir=out / "cache", workers=patch_workers)
    train, fit, validation, test = _split(patches, config, test_fraction, split_seed)
    sets = {"train": fit, "validation": validation, "test": test}
    _write_split(out / "split.csv", patches, sets)
    summary: dict[str, Any] = {
        "manifest": Path(manifest).name,  # no machine path: bundles travel
        **_counts(patches, sets),
        "modalities": {},
    }
    train_features, test_features = [], []
    for number, modality in enumerate(modalities):

        def report(fraction: float, message: str, number: int = number) -> None:
            if progress is not None:
                progress((number + fraction) / len(modalities), message)

        result = train_network(
            patches,
            modality,
            config,
            fit,
            validation,
            device=device,
            init_state=_init_state(init, modality),
            progress=report,
        )
        scaling = _feature_scaling(result.model, patches.images[modality][train])
        entry: dict[str, Any] = {"training": result.summary()}
        if test.size:
            held_out, train_z, test_z = _test_results(
                result.model, patches, modality, train, test, scaling
            )
            entry.update(held_out)
            train_features.append(train_z)
            test_features.append(test_z)
        _save_modality(out / modality, result, config, modality, entry, scaling, half)
        summary["modalities"][modality] = entry
    if len(test_features) > 1:
        summary["pre_fusion_test_features"] = _deep_features_auc(
            np.hstack(train_features), patches.labels[train],
            np.hstack(test_features), patches.labels[test],
        )  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
