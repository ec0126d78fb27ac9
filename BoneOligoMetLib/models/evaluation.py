"""Evaluation of one model on one set of lesions (§3.3–3.6, Tables 2–4): AUC with its DeLong
CI (bootstrap too when asked), sensitivity, specificity, accuracy, precision, F1 with CIs, AP,
Brier and calibration, at the threshold chosen on the training lesions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Optional, Union

import numpy as np

from BoneOligoMetLib.models.fit import ModelConfig
from BoneOligoMetLib.models.groups import classifier_name, group_name
from BoneOligoMetLib.models.stats import (
    auc_ci_bootstrap,
    auc_ci_delong,
    binary_metrics,
    calibration,
)


@dataclass(frozen=True)
class Evaluation:
    """One model × classifier on one set of lesions ("train", "train_oof", "test", "cv",
    "external"): AUC with its DeLong CI (and bootstrap CI when asked), metrics at the training
    threshold with CIs, calibration."""

    model: str
    classifier: str
    set: str
    n_lesions: int
    n_patients: Optional[int]  # None when the patients were not given
    n_malignant: int
    auc: Any  # stats.AucCI (DeLong)
    auc_bootstrap: Any  # stats.AucCI or None
    metrics: Any  # stats.BinaryMetrics at the training threshold
    calibration: Any  # stats.Calibration or None
    threshold_note: str = ""

    def as_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "model": self.model,
            "model_name": group_name(self.model),
            "classifier": self.classifier,
            "classifier_name": classifier_name(self.classifier),
            "set": self.set,
            "n_lesions": self.n_lesions,
            "n_patients": self.n_patients,
            "n_malignant": self.n_malignant,
            "auc": self.auc.auc,
            "auc_low": self.auc.low,
            "auc_high": self.auc.high,
            "auc_ci": self.auc.method,
        }
        if self.auc_bootstrap is not None:
            row["auc_boot_low"] = self.auc_bootstrap.low
            row["auc_boot_high"] = self.auc_bootstrap.high
        row.update(self.metrics.as_row())
        row["threshold_note"] = self.threshold_note
        return row


def evaluate(
    y: Sequence[int],
    probability: Sequence[float],
    threshold: Union[float, Sequence[float]],
    *,
    model: str,
    classifier: str,
    set_name: str,
    patients: Optional[Sequence[str]] = None,
    config: Optional[ModelConfig] = None,
    seed: int = 0,
) -> Evaluation:
    """AUC (DeLong CI; bootstrap too when ``config.bootstrap``), sensitivity, specificity,
    accuracy, precision, F1 with CIs, AP and Brier at ``threshold`` — chosen on training data.
    ``threshold`` per lesion (k-fold CV: each lesion its fold's threshold) is allowed; the
    metrics then count each lesion's own call, ``metrics.threshold`` is their median."""

    config = config or ModelConfig()
    y = np.asarray(y, dtype=int)
    p = np.asarray(probability, dtype=float)
    thresholds = np.broadcast_to(np.asarray(threshold, dtype=float), p.shape)
    auc = auc_ci_delong(y, p, config.level)
    boot = None
    if config.bootstrap:
        boot = auc_ci_bootstrap(y, p, config.level, n_boot=config.n_boot, random_state=seed)
    note = ""
    if np.ptp(thresholds) == 0:
        metrics = binary_metrics(
            y, p, float(thresholds[0]), level=config.level, n_boot=config.n_boot, random_state=seed
        )
    else:  # per-lesion thresholds: dichotomise p − t at 0, then AP and Brier on p itself
        shifted = binary_metrics(
            y, p - thresholds, 0.0, level=config.level, n_boot=config.n_boot, random_state=seed
        )
        on_p = binary_metrics(y, p, 0.5, level=config.level, n_boot=1, random_state=seed)
        metrics = replace(
            shifted,
            threshold=float(np.median(thresholds)),
            average_precision=on_p.average_precision,
            brier=on_p.brier,
        )
        note = "per-fold training thresholds (median shown)"
    curve = None
    if p.min() >= 0.0 and p.max() <= 1.0:
        curve = calibration(y, p, n_bins=5 if y.size < 100 else 10)
    return Evaluation(
        model=model,
        classifier=classifier,
        set=set_name,
        n_lesions=int(y.size),
        n_patients=len(set(patients)) if patients is not None else None,
        n_malignant=int(y.sum()),
        auc=auc,
        auc_bootstrap=boot,
        metrics=metrics,
        calibration=curve,
        threshold_note=note,
    )
