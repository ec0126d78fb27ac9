"""Reader agreement: Dice, HD95, volume difference, and ICC on Shrout & Fleiss's example."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk

from BoneOligoMetLib.errors import BoneOligoMetError, GeometryError, MaskError
from BoneOligoMetLib.lesions.agreement import (
    compare_masks,
    dice,
    feature_icc,
    hausdorff95_mm,
    icc,
    stable_features,
    volume_difference,
)

# Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges.
SHROUT_FLEISS = [
    [9, 2, 5, 8],
    [6, 1, 3, 2],
    [8, 4, 6, 8],
    [7, 1, 2, 6],
    [10, 5, 6, 9],
    [6, 2, 4, 7],
]


def mask(array, spacing=(1.0, 1.0, 1.0)):
    image = sitk.GetImageFromArray(np.ascontiguousarray(array, dtype=np.uint8))
    image.SetSpacing(spacing)
    return image


def ball(radius_mm, spacing=(1.0, 1.0, 1.0), size=40, centre=None):
    z, y, x = np.meshgrid(*(np.arange(size) * s for s in spacing[::-1]), indexing="ij")
    c = centre or [size / 2 * s for s in spacing]
    return mask((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= radius_mm**2, spacing)


def test_icc_reproduces_shrout_and_fleiss():
    assert round(icc(SHROUT_FLEISS, "ICC(2,1)"), 2) == 0.29
    assert round(icc(SHROUT_FLEISS, "ICC(3,1)"), 2) == 0.71


def test_icc_of_identical_readers_is_one_and_of_a_constant_table_nan():
    table = np.array([[1.0, 1.0], [2.0, 2.0], [5.0, 5.0]])
    assert icc(table) == pytest.approx(1.0)
    shifted = table + np.array([0.0, 3.0])  # reader 2 reads 3 higher: consistent, not in agreement
    assert icc(shifted, "ICC(3,1)") == pytest.approx(1.0)
    assert icc(shifted, "ICC(2,1)") < 0.7
    assert math.isnan(icc(np.ones((3, 2))))


def test_icc_refuses_bad_tables():
    with pytest.raises(BoneOligoMetError, match="unknown ICC kind"):
        icc(SHROUT_FLEISS, "ICC(1,1)")
    with pytest.raises(BoneOligoMetError, match="≥ 2 targets"):
        icc([[1.0, 2.0]])
    with pytest.raises(BoneOligoMetError, match="NaN"):
        icc([[1.0, float("nan")], [2.0, 3.0]])


def test_dice_of_known_overlaps():
    a = np.zeros((10, 10, 10))
    a[2:6, 2:6, 2:6] = 1
    b = np.zeros_like(a)
    b[4:8, 2:6, 2:6] = 1  # half of a
    assert dice(mask(a), mask(a)) == 1.0
    assert dice(mask(a), mask(b)) == pytest.approx(0.5)
    c = np.zeros_like(a)
    c[7:9, 7:9, 7:9] = 1
    assert dice(mask(a), mask(c)) == 0.0


def test_hd95_of_concentric_spheres_is_the_radius_difference():
    for spacing in [(1.0, 1.0, 1.0), (0.5, 0.5, 2.0)]:
        size = 60 if spacing[0] < 1 else 40
        inner = ball(8.0, spacing, size)
        outer = ball(11.0, spacing, size)
        assert hausdorff95_mm(inner, outer) == pytest.approx(3.0, abs=max(spacing))
        assert hausdorff95_mm(inner, inner) == 0.0


def test_hd95_ignores_a_few_outlier_voxels_that_the_maximum_sees():
    a = ball(10.0)
    b_array = sitk.GetArrayFromImage(a)
    b_array[2, 2, 2] = 1  # one stray voxel far away
    b = mask(b_array)
    assert hausdorff95_mm(a, b) == 0.0
    distance = sitk.HausdorffDistanceImageFilter()
    distance.Execute(a, b)
    assert distance.GetHausdorffDistance() > 10


def test_volume_difference():
    a = np.zeros((10, 10, 10))
    a[:4, :5, :5] = 1  # 100 voxels
    b = np.zeros_like(a)
    b[:6, :5, :5] = 1  # 150 voxels
    result = volume_difference(mask(a, (2.0, 2.0, 2.0)), mask(b, (2.0, 2.0, 2.0)))
    assert result.volume_a_ml == pytest.approx(0.8)
    assert result.volume_b_ml == pytest.approx(1.2)
    assert result.difference_ml == pytest.approx(0.4)
    assert result.relative == pytest.approx(0.4)


def test_masks_on_other_grids_or_empty_are_refused():
    a = ball(5.0)
    with pytest.raises(GeometryError, match="not on one grid"):
        dice(a, ball(5.0, (2.0, 2.0, 2.0)))
    with pytest.raises(MaskError, match="reader 2: empty"):
        dice(a, mask(np.zeros((40, 40, 40))), names=("reader 1", "reader 2"))


def test_three_readers_give_three_pairs():
    readers = {"A": ball(8.0), "B": ball(9.0), "C": ball(8.0, centre=[21.0, 20.0, 20.0])}
    pairs = compare_masks(readers)
    assert [(p.reader_a, p.reader_b) for p in pairs] == [("A", "B"), ("A", "C"), ("B", "C")]
    assert all(0.7 < p.dice < 1.0 for p in pairs)
    assert pairs[0].volume.difference_ml > 0
    with pytest.raises(BoneOligoMetError, match="two or more masks"):
        compare_masks({"A": ball(8.0)})


def test_feature_icc_per_column_and_stable_features():
    rng = np.random.default_rng(0)
    true_volume = rng.uniform(1.0, 10.0, 12)
    rows = {}
    for reader in ("A", "B", "C"):
        rows[reader] = [
            {
                "lesion_label": n + 1,
                "met_volume_ml": float(v + rng.normal(0.0, 0.1)),  # reproducible
                "met_noise": float(rng.normal()),  # readers disagree completely
                "met_fdg_avid": True,  # boolean: not a feature for ICC
                "truth_type": "osteolytic",  # text: ignored
            }
            for n, v in enumerate(true_volume)
        ]
    rows["C"] = rows["C"][:-1]  # reader C skipped one lesion
    results = {r.feature: r for r in feature_icc(rows)}
    assert set(results) == {"met_volume_ml", "met_noise"}
    assert results["met_volume_ml"].icc > 0.95
    assert results["met_volume_ml"].n_lesions == 11
    assert results["met_volume_ml"].n_readers == 3
    assert results["met_volume_ml"].kind == "ICC(2,1)"
    assert results["met_noise"].icc < 0.5
    assert stable_features(list(results.values())) == ["met_volume_ml"]
    only = feature_icc(rows, prefixes=("met_vol",), kind="ICC(3,1)")
    assert [r.feature for r in only] == ["met_volume_ml"]
    with pytest.raises(BoneOligoMetError, match="no lesion_label is rated by every reader"):
        feature_icc({"A": rows["A"], "B": []})


def test_feature_icc_on_metabolic_rows_of_three_readers_masks():
    from BoneOligoMetLib.lesions.metabolic import metabolic_table

    spacing = (2.0, 2.0, 2.0)
    size = 40
    z, y, x = np.meshgrid(*(np.arange(size) * 2.0 for _ in range(3)), indexing="ij")
    pet = np.ones((size, size, size), dtype=np.float32)
    centres = [(20.0, 20.0, 20.0), (55.0, 20.0, 20.0), (20.0, 55.0, 55.0), (55.0, 55.0, 20.0)]
    for n, c in enumerate(centres):
        r = (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2
        pet[r <= (5.0 + 2.0 * n) ** 2] = 3.0 + 2.0 * n
    suv = sitk.GetImageFromArray(pet)
    suv.SetSpacing(spacing)
    rows = {}
    for reader, grow in (("A", 0.0), ("B", 1.0), ("C", -1.0)):
        labels = np.zeros_like(pet, dtype=np.uint8)
        for n, c in enumerate(centres):
            r = (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2
            labels[r <= (5.0 + 2.0 * n + grow) ** 2] = n + 1
        image = sitk.GetImageFromArray(labels)
        image.SetSpacing(spacing)
        rows[reader] = [m.as_row() for m in metabolic_table(suv, image)]
    results = {r.feature: r for r in feature_icc(rows, prefixes=("met_",))}
    assert results["met_suv_max"].icc == pytest.approx(1.0)
    assert results["met_volume_ml"].stable  # ±1 mm in radius: ICC ≈ 0.84
    assert "met_fdg_avid" not in results  # None for every reader without a liver: skipped
