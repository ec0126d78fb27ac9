"""Agreement between readers: overlap of their masks of one lesion, and feature reliability.

Three readers delineated each lesion in the study (§2.3). Mask agreement: Dice, the 95th
percentile Hausdorff distance (mm) and the volume difference, for every pair of readers.
Feature agreement: the intraclass correlation of each feature across readers (Shrout & Fleiss
1979), so features that readers cannot reproduce are dropped before modelling.

ICC forms (Shrout & Fleiss 1979; McGraw & Wong 1996 names):

- ``"ICC(2,1)"``: two-way random effects, absolute agreement, single reader. Readers are a sample
  of all readers and a reader's systematic offset counts as disagreement. The default: a
  feature kept for a model must not depend on who delineated.
- ``"ICC(3,1)"``: two-way mixed effects, consistency, single reader. Readers are fixed; a
  constant offset between readers does not count.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import SimpleITK as sitk

from BoneOligoMetLib.errors import BoneOligoMetError, GeometryError, MaskError
from BoneOligoMetLib.image.geometry import describe_grid, same_grid, voxel_volume_ml

log = logging.getLogger(__name__)

ICC_KINDS = ("ICC(2,1)", "ICC(3,1)")
# Koo & Li 2016: ICC ≥ 0.75 is "good" reliability; the usual cut for radiomics features.
STABLE_ICC = 0.75
# Columns that identify a row rather than measure a lesion.
KEY_COLUMNS = ("patient_id", "lesion_id", "lesion_label", "reader")


def _binary(mask: sitk.Image, name: str) -> sitk.Image:
    binary = sitk.Cast(mask > 0, sitk.sitkUInt8)
    if not sitk.GetArrayViewFromImage(binary).any():
        raise MaskError(f"{name}: empty (no voxel > 0)")
    return binary


def _pair(a: sitk.Image, b: sitk.Image, names: tuple[str, str]) -> tuple[sitk.Image, sitk.Image]:
    if not same_grid(a, b):
        raise GeometryError(
            f"{names[0]} ({describe_grid(a)}) and {names[1]} ({describe_grid(b)}) are not on one "
            "grid; resample one onto the other first"
        )
    return _binary(a, names[0]), _binary(b, names[1])


def dice(a: sitk.Image, b: sitk.Image, names: tuple[str, str] = ("mask A", "mask B")) -> float:
    """Dice coefficient 2|A∩B| / (|A|+|B|) of two masks (non-zero = inside) on one grid."""
    a, b = _pair(a, b, names)
    measures = sitk.LabelOverlapMeasuresImageFilter()
    measures.Execute(a, b)
    return float(measures.GetDiceCoefficient())


def _surface_distances(source: sitk.Image, target: sitk.Image) -> np.ndarray:
    """Distances (mm) from each surface voxel of ``source`` to the surface of ``target``."""
    source_surface = sitk.GetArrayFromImage(sitk.LabelContour(source, False)).astype(bool)
    target_surface = sitk.LabelContour(target, False)
    # Distance to the nearest surface voxel centre of target (0 on its surface).
    distance = sitk.SignedMaurerDistanceMap(
        target_surface, insideIsPositive=False, squaredDistance=False, useImageSpacing=True
    )
    return np.abs(sitk.GetArrayViewFromImage(distance)[source_surface])


def hausdorff95_mm(
    a: sitk.Image, b: sitk.Image, names: tuple[str, str] = ("mask A", "mask B")
) -> float:
    """Symmetric 95th-percentile Hausdorff distance (mm) between two masks' surfaces.

    Surfaces are the masks' boundary voxels (face connectivity); the result is the larger of the
    two directed 95th percentiles of surface-voxel-to-surface distances (as MONAI computes it).
    """
    a, b = _pair(a, b, names)
    forward = float(np.percentile(_surface_distances(a, b), 95))
    backward = float(np.percentile(_surface_distances(b, a), 95))
    return max(forward, backward)


@dataclass(frozen=True)
class VolumeDifference:
    volume_a_ml: float
    volume_b_ml: float
    difference_ml: float  # b − a
    relative: float  # |b − a| / mean(a, b)


def volume_difference(a: sitk.Image, b: sitk.Image) -> VolumeDifference:
    """Volumes (mL) of two masks (each on its own grid) and their difference (mL, relative)."""
    volumes = []
    for mask, name in ((a, "mask A"), (b, "mask B")):
        count = int(np.count_nonzero(sitk.GetArrayFromImage(_binary(mask, name))))
        volumes.append(count * voxel_volume_ml(mask))
    va, vb = volumes
    return VolumeDifference(va, vb, vb - va, abs(vb - va) / ((va + vb) / 2.0))


@dataclass(frozen=True)
class PairAgreement:
    """Agreement of two readers' masks of one lesion."""

    reader_a: str
    reader_b: str
    dice: float
    hausdorff95_mm: float
    volume: VolumeDifference


def compare_masks(masks: Mapping[str, sitk.Image]) -> list[PairAgreement]:
    """Every pair of readers' masks (reader name → mask, all on one grid) of one lesion."""
    if len(masks) < 2:
        raise BoneOligoMetError(f"reader agreement needs two or more masks, got {len(masks)}")
    results = []
    for (name_a, a), (name_b, b) in itertools.combinations(masks.items(), 2):
        names = (f"reader {name_a}", f"reader {name_b}")
        results.append(
            PairAgreement(
                name_a,
                name_b,
                dice(a, b, names),
                hausdorff95_mm(a, b, names),
                volume_difference(a, b),
            )
        )
    return results


def icc(table: Any, kind: str = "ICC(2,1)") -> float:
    """Intraclass correlation of an (n targets × k readers) table (Shrout & Fleiss 1979).

    ``kind``: ``"ICC(2,1)"`` (two-way random, absolute agreement) or ``"ICC(3,1)"`` (two-way
    mixed, consistency). NaN when the targets do not vary at all (0/0). Missing values are an
    error: drop incomplete targets first.
    """
    if kind not in ICC_KINDS:
        raise BoneOligoMetError(f"unknown ICC kind {kind!r}; choose one of {', '.join(ICC_KINDS)}")
    x = np.asarray(table, dtype=float)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise BoneOligoMetError(f"ICC needs ≥ 2 targets × ≥ 2 readers, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise BoneOligoMetError("ICC table holds NaN or infinite values")
    n, k = x.shape
    grand = x.mean()
    ss_rows = k * float(((x.mean(axis=1) - grand) ** 2).sum())  # between targets
    ss_cols = n * float(((x.mean(axis=0) - grand) ** 2).sum())  # between readers
    ss_error = float(((x - grand) ** 2).sum()) - ss_rows - ss_cols
    bms = ss_rows / (n - 1)
    jms = ss_cols / (k - 1)
    ems = ss_error / ((n - 1) * (k - 1))
    if kind == "ICC(2,1)":
        denominator = bms + (k - 1) * ems + k * (jms - ems) / n
    else:
        denominator = bms + (k - 1) * ems
    if not denominator > 0:  # every value equal
        return float("nan")
    return (bms - ems) / denominator


@dataclass(frozen=True)
class FeatureICC:
    feature: str
    icc: float  # NaN when the feature does not vary across lesions
    kind: str
    n_lesions: int
    n_readers: int

    @property
    def stable(self) -> bool:
        return bool(self.icc >= STABLE_ICC)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def feature_icc(
    rows_by_reader: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    kind: str = "ICC(2,1)",
    key: str = "lesion_label",
    prefixes: Optional[Sequence[str]] = None,
) -> list[FeatureICC]:
    """ICC across readers of every numeric feature of per-lesion feature rows.

    ``rows_by_reader``: reader name → that reader's rows (dicts such as
    ``LesionMetabolics.as_row()``), matched across readers by the ``key`` column (e.g.
    ``"lesion_label"``, or ``"lesion_id"`` across patients). Features are the numeric columns
    every reader has, limited to names starting with ``prefixes`` (e.g. ``("met_", "ct_")``)
    when given. Lesions missing for a reader or with a missing value are left out of that
    feature (with a log line).
    """
    if len(rows_by_reader) < 2:
        raise BoneOligoMetError(f"feature ICC needs two or more readers, got {len(rows_by_reader)}")
    by_key: dict[str, dict[Any, Mapping[str, Any]]] = {}
    for reader, rows in rows_by_reader.items():
        indexed = {}
        for row in rows:
            if key not in row:
                raise BoneOligoMetError(f"reader {reader}: a row has no {key!r} column")
            indexed[row[key]] = row
        by_key[reader] = indexed
    readers = list(by_key)
    lesions = sorted(set.intersection(*(set(rows) for rows in by_key.values())), key=str)
    if not lesions:
        raise BoneOligoMetError(f"feature ICC: no {key} is rated by every reader")
    if len(lesions) < len(set.union(*(set(rows) for rows in by_key.values()))):
        log.info("feature ICC: %d lesion(s) rated by every reader", len(lesions))
    columns = set.intersection(
        *(set(row) for rows in by_key.values() for row in rows.values())
    ) - set(KEY_COLUMNS)
    if prefixes is not None:
        columns = {c for c in columns if c.startswith(tuple(prefixes))}
    results = []
    for column in sorted(columns):
        values = [[by_key[r][lesion][column] for r in readers] for lesion in lesions]
        complete = [row for row in values if all(_is_number(v) for v in row)]
        if not complete and values:
            continue  # not a numeric feature (text, booleans)
        complete = [row for row in complete if all(math.isfinite(float(v)) for v in row)]
        if len(complete) < len(values):
            log.info(
                "feature %s: %d lesion(s) with missing values left out",
                column,
                len(values) - len(complete),
            )
        if len(complete) < 2:
            continue
        results.append(FeatureICC(column, icc(complete, kind), kind, len(complete), len(readers)))
    return results


def stable_features(results: Sequence[FeatureICC], min_icc: float = STABLE_ICC) -> list[str]:
    """Names of the features whose ICC reaches ``min_icc`` (0.75, "good", Koo & Li 2016)."""
    return [r.feature for r in results if r.icc >= min_icc]
