"""The patches of a cohort manifest, cut once and cached, and the training dataset over them.

``cohort_patches(manifest, patch_config)`` cuts every lesion's CT, PET and mask patches (in
parallel over patients) and caches them in one ``.npz`` file whose name is a hash of the inputs
(each file's path, size and modification time) and the patch settings: training the CT and the
PET net, or rerunning, reads the cache. ``np.load(..., allow_pickle=False)``: the cache holds
arrays only. Lesions without a ``label`` in the manifest cannot train and are refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from BoneOligoMetLib.deep.config import MODALITIES, PatchConfig, TrainConfig
from BoneOligoMetLib.deep.patches import lesion_patches
from BoneOligoMetLib.errors import BoneOligoMetError, Progress
from BoneOligoMetLib.io.files import case_fingerprint
from BoneOligoMetLib.io.manifest import read_case_images, read_manifest
from BoneOligoMetLib.lesions.dicom_labels import read_case_lesions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PatchSet:
    """Patches of many lesions: ``images[modality]`` (N, S, S, S) float32 in [0, 1], ``masks``
    (N, S, S, S) uint8, ``labels`` (N,) 0 benign / 1 malignant, ``patients`` and
    ``lesion_labels`` (N,) identifying each row."""

    images: dict[str, np.ndarray]
    masks: np.ndarray
    labels: np.ndarray
    patients: np.ndarray
    lesion_labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.size)

    def subset(self, index: np.ndarray) -> PatchSet:
        return PatchSet(
            {m: a[index] for m, a in self.images.items()},
            self.masks[index],
            self.labels[index],
            self.patients[index],
            self.lesion_labels[index],
        )


def _case_patches(case, config: PatchConfig) -> list[tuple[int, dict, np.ndarray]]:
    import SimpleITK as sitk

    ct, suv = read_case_images(case)
    out = []
    for path in sorted({lesion.lesions for lesion in case.lesions}):
        lesions = read_case_lesions(case, path, ct)
        if lesions.GetPixelID() not in (sitk.sitkUInt8, sitk.sitkUInt16, sitk.sitkUInt32):
            lesions = sitk.Cast(lesions, sitk.sitkUInt32)
        labels = [e.lesion_label for e in case.lesions if e.lesions == path]
        for patch in lesion_patches(ct, suv, lesions, config, labels=labels, name=case.name):
            out.append((patch.label, dict(patch.images), patch.mask))
    return out


def _fingerprint(manifest, config: PatchConfig) -> str:

    spec = {
        "manifest": str(Path(manifest.path).resolve()),
        "cases": [case_fingerprint(case.inputs) for case in manifest.cases],
        "lesions": [
            [case.patient_id, e.lesion_label, e.truth]
            for case in manifest.cases
            for e in case.lesions
        ],
        "patch": asdict(config),
        "format": 1,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def cohort_patches(
    manifest_path: Union[str, Path],
    config: PatchConfig,
    *,
    cache_dir: Optional[Union[str, Path]] = None,
    workers: int = 1,
    progress: Optional[Progress] = None,
) -> PatchSet:
    """Every labelled lesion's patches, in manifest order (cached in ``cache_dir``)."""

    manifest = read_manifest(manifest_path)
    if not manifest.has_truth:
        raise BoneOligoMetError(f"{manifest_path}: no 'label' column; training needs the truth")
    for case in manifest.cases:
        for entry in case.lesions:
            if entry.truth not in (0, 1):
                raise BoneOligoMetError(
                    f"{manifest_path}: {case.name} lesion {entry.lesion_label}: label must be "
                    f"0 (benign) or 1 (malignant), got {entry.truth!r}"
                )
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"patches-{_fingerprint(manifest, config)}.npz"
        if cache.is_file():
            with np.load(cache, allow_pickle=False) as data:
                log.info("patches from %s", cache)
                return PatchSet(
                    {m: data[f"image_{m}"] for m in MODALITIES},
                    data["masks"],
                    data["labels"],
                    data["patients"],
                    data["lesion_labels"],
                )
    rows: list[tuple[str, int, int, dict, np.ndarray]] = []
    cases = list(manifest.cases)
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = pool.map(_case_patches, cases, [config] * len(cases))
            pairs: Any = zip(cases, results)
            rows = _collect(pairs, len(cases), progress)
    else:
        pairs = ((case, _case_patches(case, config)) for case in cases)
        rows = _collect(pairs, len(cases), progress)
    patch_set = PatchSet(
        {m: np.stack([r[3][m] for r in rows]) for m in MODALITIES},
        np.stack([r[4] for r in rows]),
        np.asarray([r[2] for r in rows], dtype=np.int64),
        np.asarray([r[0] for r in rows]),
        np.asarray([r[1] for r in rows], dtype=np.int64),
    )
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(
            partial,
            **{f"image_{m}": a for m, a in patch_set.images.items()},
            masks=patch_set.masks,
            labels=patch_set.labels,
            patients=patch_set.patients,
            lesion_labels=patch_set.lesion_labels,
        )
        os.replace(partial, cache)
    return patch_set


def _collect(pairs, n_cases: int, progress: Optional[Progress]):
    rows = []
    for done, (case, patches) in enumerate(pairs, start=1):
        truth = {e.lesion_label: int(e.truth) for e in case.lesions}
        for label, images, mask in patches:
            rows.append((case.patient_id, label, truth[label], images, mask))
        if progress is not None:
            progress(done / n_cases, f"{case.name}: {len(patches)} lesion(s)")
    return rows


def augmentation(config: TrainConfig):
    """MONAI dictionary transforms on ``image`` and ``mask``: flips on the three axes, a small
    rotation (mask nearest-neighbour) and an intensity scale and shift of the image."""
    from monai import transforms as mt

    steps: list = []
    if config.augment:
        if config.flip:
            steps += [mt.RandFlipd(("image", "mask"), prob=0.5, spatial_axis=a) for a in range(3)]
        if config.rotate_deg > 0:
            angle = float(np.deg2rad(config.rotate_deg))
            steps.append(
                mt.RandRotated(
                    ("image", "mask"),
                    range_x=angle,
                    range_y=angle,
                    range_z=angle,
                    prob=0.5,
                    mode=("bilinear", "nearest"),
                    padding_mode="border",
                )
            )
        if config.intensity_jitter > 0:
            jitter = config.intensity_jitter
            steps += [
                mt.RandScaleIntensityd("image", factors=jitter, prob=0.5),
                mt.RandShiftIntensityd("image", offsets=jitter, prob=0.5),
            ]
    steps.append(mt.ToTensord(("image", "mask"), track_meta=False))
    return mt.Compose(steps)


def dataset(patches: PatchSet, modality: str, index: Sequence[int], transform=None):
    """A MONAI ``Dataset`` of dicts (image (1, S, S, S), mask (1, S, S, S), label) for
    ``index``; ``transform`` from :func:`augmentation` (None: tensors only)."""
    from monai.data import Dataset
    from monai.transforms import ToTensord

    items = [
        {
            "image": patches.images[modality][i][None],
            "mask": patches.masks[i][None].astype(np.float32),
            "label": int(patches.labels[i]),
        }
        for i in index
    ]
    return Dataset(items, transform or ToTensord(("image", "mask"), track_meta=False))
