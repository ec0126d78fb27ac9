"""Patient-level splits: no patient's lesions on both sides of a split.

The study split 312 lesions 7:3 (218/94) without saying whether by patient; lesions of one patient
share the scanner, the injection and often the disease, so a lesion split can leak a patient into
both sides. Here every split is grouped by patient and stratified by the lesion label
(scikit-learn's ``StratifiedGroupKFold``), with a fixed seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from BoneOligoMetLib.errors import SplitError
from BoneOligoMetLib.protocol import TEST_FRACTION


def _check(labels: np.ndarray, groups: np.ndarray, name: str) -> None:
    if labels.shape != groups.shape or labels.ndim != 1:
        raise SplitError(f"{name}: labels and patient ids must be two equal-length lists")
    if len(np.unique(labels)) < 2:
        raise SplitError(f"{name}: only one class among {labels.size} lesions; cannot stratify")


def patient_split(
    labels: Sequence[int],
    patients: Sequence[str],
    test_fraction: float = TEST_FRACTION,
    seed: int = 0,
    name: str = "split",
) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) lesion indices with about ``test_fraction`` of the lesions in ``test``,
    grouped by patient and stratified by label (folds of ``StratifiedGroupKFold`` with 10 folds
    when possible: 0.3 → 3 folds of 10; fewer folds when a class or the patients are few)."""
    from sklearn.model_selection import StratifiedGroupKFold

    y = np.asarray(labels).astype(int)
    groups = np.asarray([str(p) for p in patients])
    _check(y, groups, name)
    if not 0 < test_fraction < 1:
        raise SplitError(f"{name}: test fraction must be in (0, 1), got {test_fraction}")
    n_patients = len(np.unique(groups))
    n_splits = min(10, n_patients, int(np.bincount(y).min()))
    n_test = max(1, round(test_fraction * n_splits))
    if n_splits < 2 or n_test >= n_splits:
        raise SplitError(f"{name}: {n_patients} patient(s) are too few for a {test_fraction} split")
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    test = np.concatenate([fold for _, fold in list(folds.split(y, y, groups))[:n_test]])
    test = np.sort(test)
    train = np.setdiff1d(np.arange(y.size), test)
    for side, index in (("training", train), ("test", test)):
        if len(np.unique(y[index])) < 2:
            raise SplitError(f"{name}: the {side} side has one class only; more patients needed")
    return train, test


def patient_folds(
    labels: Sequence[int], patients: Sequence[str], k: int = 5, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` (train, test) folds grouped by patient and stratified by label."""
    from sklearn.model_selection import StratifiedGroupKFold

    y = np.asarray(labels).astype(int)
    groups = np.asarray([str(p) for p in patients])
    _check(y, groups, "folds")
    if len(np.unique(groups)) < k:
        raise SplitError(f"folds: {len(np.unique(groups))} patients for {k} folds")
    folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(np.sort(a), np.sort(b)) for a, b in folds.split(y, y, groups)]
