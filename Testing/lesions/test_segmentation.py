"""Seeded SUV ≥ 2.2 segmentation within bone (§2.3), on an analytic PET/CT case whose answer is
known by construction, then on generated synthetic patients.

The analytic case (``bone_case``) is shared with ``test_roi_rules.py``: a bone block with a
3 mm cortex, a hot lytic sphere that breaks the cortex, a hot lesion with a necrotic core, one
with a calcified rim, a non-avid sclerotic lesion, two hot soft-tissue foci and a liver.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass

import numpy as np
import pytest
import SimpleITK as sitk

from BoneOligoMetLib.cli import main
from BoneOligoMetLib.errors import GeometryError, SegmentationError, UnitsError
from BoneOligoMetLib.io.coords import lps_to_ras
from BoneOligoMetLib.io.images import read_image, write_image
from BoneOligoMetLib.lesions.agreement import dice
from BoneOligoMetLib.lesions.segment import segment_lesion, segment_lesions

# --- the analytic case ------------------------------------------------------------------------

CT_SPACING = (1.0, 1.0, 2.0)
PET_SPACING = (2.0, 2.0, 2.0)
FIELD_MM = (140.0, 90.0, 100.0)
BONE_BOX = ((20.0, 100.0), (20.0, 60.0), (10.0, 90.0))
CORTEX_MM = 3.0
LYTIC = ((26.0, 40.0, 50.0), 8.0)  # breaks the cortex at x = 20 and reaches 2 mm beyond it
NECROTIC = ((55.0, 40.0, 25.0), 9.0, 5.0)  # core of radius 5: 17 % of the lesion
CALCIFIED = ((55.0, 40.0, 75.0), 9.0, 8.0)  # rim from 8 to 9 mm: 30 % of the lesion
SCLEROTIC = ((88.0, 40.0, 50.0), 6.0)  # 900 HU, SUV 1.6: not avid
FOCUS_NEAR = ((108.0, 40.0, 15.0), 4.0)  # soft-tissue focus 8 mm from bone
FOCUS_FAR = ((128.0, 40.0, 50.0), 4.0)  # soft-tissue focus 28 mm from bone
LIVER_BOX = ((104.0, 140.0), (60.0, 90.0), (55.0, 100.0))
LIVER_SEED = (122.0, 75.0, 78.0)
LIVER_SUV = 2.0


@dataclass(frozen=True)
class BoneCase:
    ct: sitk.Image  # HU, 1×1×2 mm
    pet: sitk.Image  # SUV, 2 mm, no blur: the lesion's SUV plateau is exact
    truth: sitk.Image  # labels 1 lytic, 2 necrotic, 3 calcified, 4 sclerotic (CT grid)
    true_necrotic_fraction: float
    true_calcified_fraction: float


def _centres(spacing):
    sizes = [round(f / s) for f, s in zip(FIELD_MM, spacing)]
    axes = [(np.arange(n) + 0.5) * s for n, s in zip(sizes, spacing)]
    z, y, x = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    return x, y, z


def _ball(points, centre, radius):
    x, y, z = points
    return (x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2 <= radius**2


def _box(points, box):
    return np.logical_and.reduce([(v >= lo) & (v < hi) for v, (lo, hi) in zip(points, box)])


def _regions(spacing):
    points = _centres(spacing)
    bone = _box(points, BONE_BOX)
    depth = np.minimum.reduce([np.minimum(v - lo, hi - v) for v, (lo, hi) in zip(points, BONE_BOX)])
    return {
        "x": points[0],
        "bone": bone,
        "cortex": bone & (depth < CORTEX_MM),
        "liver": _box(points, LIVER_BOX),
        "lytic": _ball(points, *LYTIC),
        "necrotic": _ball(points, *NECROTIC[:2]),
        "core": _ball(points, NECROTIC[0], NECROTIC[2]),
        "calcified": _ball(points, *CALCIFIED[:2]),
        "inner": _ball(points, CALCIFIED[0], CALCIFIED[2]),
        "sclerotic": _ball(points, *SCLEROTIC),
        "focus_near": _ball(points, *FOCUS_NEAR),
        "focus_far": _ball(points, *FOCUS_FAR),
    }


def _image(array, spacing):
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing(spacing)
    image.SetOrigin(tuple(s / 2 for s in spacing))  # voxel centres at (i + 0.5) × spacing
    return image


@functools.lru_cache(maxsize=1)
def bone_case() -> BoneCase:
    """The analytic PET/CT case (built once; treat its images as read-only)."""
    c = _regions(CT_SPACING)
    ct = np.full(c["x"].shape, 40.0, dtype=np.float32)  # soft tissue
    ct[c["x"] < 3.0] = -1000.0  # air at one side: a CT in HU has some
    ct[c["liver"]] = 58.0
    ct[c["bone"]] = 250.0
    ct[c["cortex"]] = 1200.0
    ct[c["lytic"]] = 80.0
    ct[c["necrotic"]] = 80.0
    ct[c["core"]] = 25.0
    ct[c["calcified"]] = 1400.0
    ct[c["inner"]] = 100.0
    ct[c["sclerotic"]] = 900.0
    p = _regions(PET_SPACING)
    pet = np.full(p["x"].shape, 1.0, dtype=np.float32)
    pet[p["liver"]] = LIVER_SUV
    pet[p["bone"]] = 1.2
    pet[p["cortex"]] = 0.8
    pet[p["lytic"]] = 6.0
    pet[p["necrotic"]] = 6.0
    pet[p["core"]] = 0.8
    pet[p["calcified"]] = 1.5
    pet[p["inner"]] = 5.0
    pet[p["sclerotic"]] = 1.6
    pet[p["focus_near"] | p["focus_far"]] = 5.0
    truth = np.zeros(c["x"].shape, dtype=np.uint8)
    for label, key in enumerate(("lytic", "necrotic", "calcified", "sclerotic"), start=1):
        truth[c[key]] = label
    return BoneCase(
        ct=_image(ct, CT_SPACING),
        pet=_image(pet, PET_SPACING),
        truth=_image(truth, CT_SPACING),
        true_necrotic_fraction=float(c["core"].sum() / c["necrotic"].sum()),
        true_calcified_fraction=float((c["calcified"] & ~c["inner"]).sum() / c["calcified"].sum()),
    )


def on_ct(mask: sitk.Image, ct: sitk.Image) -> sitk.Image:
    """A crop's mask pasted onto the full CT grid."""
    return sitk.Resample(mask, ct, sitk.Transform(), sitk.sitkNearestNeighbor, 0.0)


def truth_mask(case: BoneCase, label: int) -> sitk.Image:
    return sitk.Cast(sitk.Equal(case.truth, label), sitk.sitkUInt8)


# --- one seed ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mapping", ["linear", "nearest"])
def test_lytic_lesion_that_breaks_the_cortex_is_segmented_whole(mapping):
    case = bone_case()
    lesion = segment_lesion(case.ct, case.pet, LYTIC[0], mapping=mapping)
    assert dice(on_ct(lesion.mask, case.ct), truth_mask(case, 1)) >= 0.85
    assert lesion.suv_max == pytest.approx(6.0)
    assert lesion.threshold_suv == pytest.approx(2.2)
    assert lesion.seed_distance_mm == 0.0
    assert not lesion.reaches_radius
    expected_ml = 4 / 3 * math.pi * LYTIC[1] ** 3 / 1000
    assert lesion.volume_ml == pytest.approx(expected_ml, rel=0.35)
    assert lesion.voxel_count * 2.0 / 1000 == pytest.approx(lesion.volume_ml)
    assert lesion.mask.GetSpacing() == case.ct.GetSpacing()  # a crop of the CT grid


def test_mask_is_a_crop_around_the_seed_not_the_whole_image():
    case = bone_case()
    lesion = segment_lesion(case.ct, case.pet, LYTIC[0], radius_mm=20)
    assert all(n < N for n, N in zip(lesion.mask.GetSize(), case.ct.GetSize()))


def test_seed_on_a_photopenic_core_takes_the_nearest_hot_region():
    case = bone_case()
    lesion = segment_lesion(case.ct, case.pet, NECROTIC[0], method="pet")
    assert 3.0 <= lesion.seed_distance_mm <= 6.0  # the core's radius is 5 mm
    mask = sitk.GetArrayFromImage(on_ct(lesion.mask, case.ct)).astype(bool)
    core = _regions(CT_SPACING)["core"]
    assert mask[core].mean() < 0.2  # the photopenic core is (mostly) left out: a hole
    # PET+CT (the default) fills the enclosed core: the whole lesion (§2.3).
    whole = segment_lesion(case.ct, case.pet, NECROTIC[0])
    whole_mask = sitk.GetArrayFromImage(on_ct(whole.mask, case.ct)).astype(bool)
    assert whole_mask[core].mean() > 0.8


def test_small_radius_flags_a_cut_off_region():
    case = bone_case()
    lesion = segment_lesion(case.ct, case.pet, LYTIC[0], radius_mm=5)
    assert lesion.reaches_radius


def test_relative_threshold_is_a_fraction_of_the_local_suvmax():
    case = bone_case()
    lesion = segment_lesion(case.ct, case.pet, LYTIC[0], method="pet", relative=0.41)
    assert lesion.threshold_suv == pytest.approx(0.41 * 6.0)
    with pytest.raises(SegmentationError, match="between 0 and 1"):
        segment_lesion(case.ct, case.pet, LYTIC[0], method="pet", relative=41)


def test_non_avid_sclerotic_lesion_gives_the_manual_delineation_message():
    case = bone_case()
    with pytest.raises(SegmentationError) as error:
        segment_lesion(case.ct, case.pet, SCLEROTIC[0])
    message = str(error.value)
    assert "local SUVmax 1.60" in message
    assert "SUV ≥ 2.20" in message
    assert "(88.0, 40.0, 50.0) mm LPS" in message
    assert "delineate manually (a non-avid sclerotic metastasis is possible)" in message
    assert "\n" not in message


def test_soft_tissue_focus_next_to_bone_is_refused():
    case = bone_case()
    with pytest.raises(SegmentationError, match=r"focus outside bone.*not a bone lesion"):
        segment_lesion(case.ct, case.pet, FOCUS_NEAR[0])


def test_seed_in_soft_tissue_far_from_bone_is_refused():
    case = bone_case()
    with pytest.raises(SegmentationError, match=r"lies in soft tissue: nearest bone 2\d mm"):
        segment_lesion(case.ct, case.pet, FOCUS_FAR[0])


def test_no_bone_within_the_radius():
    case = bone_case()
    with pytest.raises(SegmentationError, match="no bone within 10 mm of the seed"):
        segment_lesion(case.ct, case.pet, FOCUS_FAR[0], radius_mm=10)


def test_hot_region_beyond_the_gap_is_not_taken_for_the_lesion():
    case = bone_case()
    seed = (26.0, 40.0, 68.0)  # in bone, 18 mm above the lytic lesion's centre (10 mm edge)
    with pytest.raises(SegmentationError, match=r"within 5 mm \(the nearest is \d+ mm away\)"):
        segment_lesion(case.ct, case.pet, seed, max_gap_mm=5)
    lesion = segment_lesion(case.ct, case.pet, seed, max_gap_mm=15)
    assert 5.0 < lesion.seed_distance_mm <= 15.0


def test_seed_outside_the_images():
    case = bone_case()
    with pytest.raises(GeometryError, match="outside the CT"):
        segment_lesion(case.ct, case.pet, (500.0, 40.0, 50.0))


def test_bq_per_ml_pet_is_refused():
    case = bone_case()
    with pytest.raises(UnitsError, match="Bq/mL"):
        segment_lesion(case.ct, case.pet * 5000.0, LYTIC[0])


# --- several seeds ----------------------------------------------------------------------------


def test_several_seeds_give_labels_on_the_full_ct_grid():
    case = bone_case()
    calls = []
    result = segment_lesions(
        case.ct,
        case.pet,
        [LYTIC[0], NECROTIC[0], CALCIFIED[0]],
        progress=lambda f, m: calls.append(f),
    )
    assert result.labels.GetSize() == case.ct.GetSize()
    assert result.labels.GetOrigin() == case.ct.GetOrigin()
    array = sitk.GetArrayFromImage(result.labels)
    assert set(np.unique(array)) == {0, 1, 2, 3}
    assert [o.label for o in result.seeds] == [1, 2, 3]
    for label in (1, 3):
        assert (
            dice(sitk.Cast(result.labels == label, sitk.sitkUInt8), truth_mask(case, label)) > 0.8
        )
    assert calls[0] == 0.0
    assert calls[-1] == 1.0


def test_two_seeds_on_one_lesion_are_merged(caplog):
    case = bone_case()
    near_centre = (LYTIC[0][0] + 3.0, LYTIC[0][1], LYTIC[0][2])
    with caplog.at_level(logging.INFO, logger="BoneOligoMetLib.lesions.segment"):
        result = segment_lesions(case.ct, case.pet, [LYTIC[0], near_centre])
    assert [o.label for o in result.seeds] == [1, 1]
    assert result.seeds[1].merged
    assert set(np.unique(sitk.GetArrayFromImage(result.labels))) == {0, 1}
    assert "merged" in caplog.text


def test_failed_seed_raises_or_is_recorded():
    case = bone_case()
    with pytest.raises(SegmentationError, match="delineate manually"):
        segment_lesions(case.ct, case.pet, [LYTIC[0], SCLEROTIC[0]])
    result = segment_lesions(case.ct, case.pet, [LYTIC[0], SCLEROTIC[0]], skip_failed=True)
    assert result.seeds[1].label is None
    assert "delineate manually" in result.seeds[1].error
    assert set(np.unique(sitk.GetArrayFromImage(result.labels))) == {0, 1}


# --- command ----------------------------------------------------------------------------------


@pytest.fixture
def case_files(tmp_path):
    case = bone_case()
    return (
        write_image(case.ct, tmp_path / "ct.nii.gz"),
        write_image(case.pet, tmp_path / "suv.nii.gz"),
    )


def _seed_argument(point):
    return "--seed=" + ",".join(f"{c:g}" for c in point)


def test_segment_command_writes_labels_and_reports_failures(case_files, tmp_path, capsys):
    ct, pet = case_files
    out = tmp_path / "lesions.nii.gz"
    argv = ["segment", "--ct", str(ct), "--pet", str(pet), "-o", str(out)]
    argv += [_seed_argument(LYTIC[0]), _seed_argument(SCLEROTIC[0])]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "SUVmax" in captured.out
    assert "wrote 1 lesion(s)" in captured.out
    assert "seed 2:" in captured.err
    assert "delineate manually" in captured.err
    labels = read_image(out)
    assert labels.GetSize() == bone_case().ct.GetSize()
    assert set(np.unique(sitk.GetArrayFromImage(labels))) == {0, 1}


def test_segment_command_takes_ras_seeds(case_files, tmp_path, capsys):
    ct, pet = case_files
    out = tmp_path / "lesions.nii.gz"
    seed = _seed_argument(lps_to_ras(LYTIC[0]))
    assert main(["segment", "--ct", str(ct), "--pet", str(pet), seed, "--ras", "-o", str(out)]) == 0
    assert "26.0,40.0,50.0" in capsys.readouterr().out


def test_segment_command_with_no_lesion_exits_2(case_files, tmp_path, capsys):
    ct, pet = case_files
    out = tmp_path / "lesions.nii.gz"
    argv = ["segment", "--ct", str(ct), "--pet", str(pet), _seed_argument(SCLEROTIC[0])]
    assert main([*argv, "-o", str(out)]) == 2
    assert "no lesion segmented" in capsys.readouterr().err
    assert not out.exists()


# --- generated patients -----------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def generated(seed: int, lesion_types: tuple[str, ...]):
    """A small synthetic patient with these lesion types (cached: ~1 s to generate)."""
    from BoneOligoMetLib.synthetic.phantom import generate_patient

    return generate_patient(seed, "small", lesion_types=list(lesion_types))


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize(
    "options",
    [{}, {"method": "pet", "relative": 0.4, "background": True, "floor_suv": 2.2}],
    ids=["petct", "pet-rel"],
)
def test_avid_lesions_of_generated_patients_overlap_the_truth(seed, options):
    """A regression check on two patients with lytic metastases; the distribution over a
    cohort (where the fixed 2.2 often over- or under-segments) is in bench/bench_segment.py."""
    patient = generated(seed, ("osteolytic_metastasis", "osteolytic_metastasis"))
    seeds = [lesion.centre_mm for lesion in patient.lesions]
    result = segment_lesions(patient.ct, patient.suv, seeds, **options)
    for outcome, lesion in zip(result.seeds, patient.lesions):
        truth = sitk.Cast(sitk.Equal(patient.lesion_labels, lesion.label), sitk.sitkUInt8)
        found = sitk.Cast(sitk.Equal(result.labels, outcome.label), sitk.sitkUInt8)
        # Floors by SUVmax band, from the cohort (bench/bench_segment.py, seed 7): SUVmax ≥ 3
        # median 0.89–0.92; 2.2–3 median 0.69, the PET's blur over the intact cortex of a faint
        # lesion. Here 0.82–0.87 at SUVmax 3.5–4.6, and 0.58 (PET+CT) / 0.69 (relative) for the
        # lesion at SUVmax 2.9 in a thin ilium.
        floor = 0.8 if patient.measured_suv_max[lesion.label] >= 3.0 else 0.5
        assert dice(found, truth) >= floor, f"lesion {lesion.label} in {lesion.bone}"


def test_non_avid_generated_lesion_and_soft_tissue_seed_give_the_message():
    patient = generated(1, ("bone_island",))
    with pytest.raises(SegmentationError, match="delineate manually"):
        segment_lesion(patient.ct, patient.suv, patient.lesions[0].centre_mm)
    with pytest.raises(SegmentationError, match=r"soft tissue|no bone"):
        segment_lesion(patient.ct, patient.suv, patient.liver_seed_lps_mm)


# Seeds chosen after tuning (the defaults were tuned on cohort seeds 11 and 23) and kept whatever
# the result: patients 0–7 of seed 5150.
UNSEEN = [(5150, index) for index in range(8)]


@functools.lru_cache(maxsize=1)
def unseen_results():
    """(Dice of avid lesions, |measured − recorded| part fractions of lesions with parts)."""
    from BoneOligoMetLib.lesions.metabolic import metabolic_table
    from BoneOligoMetLib.lesions.rules import assess_lesions
    from BoneOligoMetLib.synthetic.phantom import generate_patient

    dices, errors = [], []
    for seed, index in UNSEEN:
        patient = generate_patient(seed, "small", index=index)
        liver = metabolic_table(
            patient.suv, patient.lesion_labels, liver_seed_lps=patient.liver_seed_lps_mm
        )[0].liver_suv_mean
        report = assess_lesions(patient.ct, patient.suv, patient.lesion_labels)
        for lesion in patient.lesions:
            for part in ("necrotic", "calcified"):
                recorded = getattr(lesion, f"{part}_fraction")
                if recorded > 0:
                    errors.append(abs(report.parts[lesion.label].fraction(part) - recorded))
            suv_max = patient.measured_suv_max[lesion.label]
            if suv_max < 2.2 or suv_max <= liver:
                continue
            truth = sitk.Cast(sitk.Equal(patient.lesion_labels, lesion.label), sitk.sitkUInt8)
            try:
                found = segment_lesion(patient.ct, patient.suv, lesion.centre_mm)
            except SegmentationError:
                dices.append(0.0)
                continue
            mask = sitk.Resample(found.mask, patient.ct, sitk.Transform(), sitk.sitkNearestNeighbor)
            dices.append(dice(mask, truth))
    return np.array(dices), np.array(errors)


def test_avid_lesions_of_unseen_generated_patients_reach_dice_0_8():
    dices, _ = unseen_results()
    assert dices.size >= 8
    # Floors from the PET+CT border tuned on seeds 11 and 23 (on the phantom whose confined
    # lesions leave the cortex intact: median 0.90 / 0.92 there): on these seeds median 0.83,
    # 5 of 8 at ≥ 0.8, the lowest 0.57 (a 77-voxel rib lesion, SUVmax 3.5, segmented 158 voxels:
    # the PET's blur over the rib's intact cortex); one lesion's margin below each. The cohort
    # distribution (seed 7) is in bench/bench_segment.py and the README.
    assert np.median(dices) >= 0.8, np.round(dices, 2)
    assert np.mean(dices >= 0.8) >= 0.5, np.round(dices, 2)
    assert dices.min() >= 0.5, np.round(dices, 2)


def test_part_fractions_of_unseen_generated_patients_within_2_points():
    _, errors = unseen_results()
    assert errors.size >= 1
    # 5 of 5 parts within 2 pp on these seeds (cores grown to their half-way HU); 0.8 leaves
    # one lesion's margin. Cohort numbers (seed 7): bench/bench_segment.py.
    assert np.mean(errors <= 0.02) >= 0.8, np.round(errors, 3)


def test_segment_lesions_takes_an_array_of_seeds_and_refuses_none(ct_pet_pair):
    from BoneOligoMetLib.errors import SegmentationError
    from BoneOligoMetLib.lesions.segment import segment_lesions

    ct, pet = ct_pet_pair
    with pytest.raises(SegmentationError, match="no seed"):
        segment_lesions(ct, pet, np.zeros((0, 3)))
