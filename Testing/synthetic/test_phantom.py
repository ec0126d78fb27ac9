"""Synthetic PET/CT patients: geometry, ground truth, DICOM round trip, determinism, command."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from BoneOligoMetLib.io.images import read_image
from BoneOligoMetLib.synthetic.phantom import (
    LESION_TYPES,
    PRESETS,
    fused_slice_png,
    generate_patient,
    write_patient,
)
from BoneOligoMetLib.synthetic.phantom.anatomy import BONE_TISSUES, Tissue
from BoneOligoMetLib.synthetic.phantom.lesion_render import bone_distance_mm

# Every lesion type, plus a second lytic and sclerotic metastasis; with seed 2 this patient has a
# necrotic core (29 %) and a calcified part (15 %), so the part fractions are exercised.
ALL_TYPES = [*LESION_TYPES, "osteolytic_metastasis", "osteoblastic_metastasis"]
SEED = 2


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The all-types patient, generated and written with DICOM."""
    patient = generate_patient(SEED, lesion_types=ALL_TYPES)
    folder = tmp_path_factory.mktemp("phantom") / "BOM0001"
    write_patient(patient, folder, dicom=True)
    return patient, folder


def _array(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(read_image(path))


def test_grids_follow_the_preset_and_share_one_field(written):
    patient, _ = written
    preset = PRESETS["small"]
    assert patient.ct.GetSpacing() == pytest.approx((2.0, 2.0, 3.27))
    assert patient.suv.GetSpacing() == pytest.approx((4.0, 4.0, 3.27))
    assert patient.ct.GetSize() == preset.ct_grid.size
    assert patient.suv.GetSize() == preset.pet_grid.size
    for image in (patient.lesion_labels, patient.lesion_parts, patient.tissues):
        assert image.GetSize() == patient.ct.GetSize()
        assert image.GetOrigin() == patient.ct.GetOrigin()
    # Each PET voxel is exactly 2×2 CT voxels: same physical field.
    ct_low = np.subtract(patient.ct.GetOrigin(), np.multiply(patient.ct.GetSpacing(), 0.5))
    pet_low = np.subtract(patient.suv.GetOrigin(), np.multiply(patient.suv.GetSpacing(), 0.5))
    assert ct_low == pytest.approx(pet_low)
    ct = sitk.GetArrayViewFromImage(patient.ct)
    assert ct.dtype == np.int16
    assert ct.min() < -900
    assert ct.max() > 1000


def test_normal_tissue_uptake_is_plausible(written):
    patient, _ = written
    suv = sitk.GetArrayFromImage(patient.suv)
    tissues = sitk.GetArrayFromImage(
        sitk.Resample(patient.tissues, patient.suv, sitk.Transform(), sitk.sitkNearestNeighbor)
    )
    liver = ndimage.binary_erosion(tissues == Tissue.LIVER, iterations=3)
    assert 1.9 <= float(suv[liver].mean()) <= 2.6  # DESIGN: liver SUVmean 2.0–2.5
    assert 0.05 <= float(suv[liver].std() / suv[liver].mean()) <= 0.2  # counting noise
    bladder = ndimage.binary_erosion(tissues == Tissue.BLADDER, iterations=2)
    assert float(suv[bladder].mean()) > 5.0
    assert float(suv[tissues == Tissue.AIR].mean()) < 0.05
    # Bq/mL and SUV differ by the SUVbw factor of the recorded weight, dose and times.
    record = json.loads((written[1] / "patient.json").read_text())
    bqml = sitk.GetArrayFromImage(patient.pet_bqml)
    np.testing.assert_allclose(suv, bqml * record["suv_per_bqml"], rtol=1e-5, atol=1e-6)


def test_every_lesion_type_is_drawn_with_its_record(written):
    patient, folder = written
    records = json.loads((folder / "patient.json").read_text())["lesions"]
    assert sorted(r["lesion_type"] for r in records) == sorted(ALL_TYPES)
    labels = _array(folder / "lesions.nii.gz")
    voxel_ml = float(np.prod(patient.ct.GetSpacing())) / 1000.0
    for record in records:
        lesion = LESION_TYPES[record["lesion_type"]]
        assert record["label"] == int(lesion.malignant)
        assert record["bone_change"] == lesion.bone_change
        count = int(np.count_nonzero(labels == record["lesion_label"]))
        assert record["volume_ml"] == pytest.approx(count * voxel_ml, rel=1e-3)
        assert record["volume_ml"] >= 0.2


def test_lesion_masks_lie_inside_bone(written):
    """Confined lesions lie in bone tissue; those that break the cortex (or are expansile) lie
    within their recorded distance of it, never in air or lung."""
    patient, folder = written
    labels = _array(folder / "lesions.nii.gz").astype(int)
    tissues = _array(folder / "tissues.nii.gz").astype(int)
    parts = _array(folder / "lesion_parts.nii.gz").astype(int)
    spacing = patient.ct.GetSpacing()
    records = json.loads((folder / "patient.json").read_text())["lesions"]
    assert any(r["outside_bone_mm"] > 0 for r in records)
    assert any(r["breaks_cortex"] for r in records)
    for record in records:
        mask = labels == record["lesion_label"]
        assert np.array_equal(mask, parts * mask > 0)  # parts cover exactly the lesion
        if record["outside_bone_mm"] == 0:
            assert np.all(np.isin(tissues[mask], BONE_TISSUES)), record["lesion_type"]
            continue
        box = tuple(slice(max(i.min() - 5, 0), i.max() + 6) for i in np.nonzero(mask))
        distance = bone_distance_mm(tissues[box], spacing)
        assert distance[mask[box]].max() <= record["outside_bone_mm"] + 1e-3
        assert not np.any(np.isin(tissues[mask], (Tissue.AIR, Tissue.LUNG)))


def test_part_fractions_recorded_match_the_masks(written):
    _, folder = written
    labels = _array(folder / "lesions.nii.gz").astype(int)
    parts = _array(folder / "lesion_parts.nii.gz").astype(int)
    records = json.loads((folder / "patient.json").read_text())["lesions"]
    for record in records:
        inside = parts[labels == record["lesion_label"]]
        assert record["necrotic_fraction"] == pytest.approx(np.mean(inside == 2), abs=1e-6)
        assert record["calcified_fraction"] == pytest.approx(np.mean(inside == 3), abs=1e-6)
    assert any(r["necrotic_fraction"] > 0.1 for r in records)
    assert any(r["calcified_fraction"] > 0.1 for r in records)


def test_dicom_reads_back_to_the_same_geometry_hu_and_suv(written):
    from BoneOligoMetLib.io.suv import pet_dicom_to_suv

    patient, folder = written
    ct = read_image(folder / "dicom" / "CT", modality="CT")
    assert ct.GetSize() == patient.ct.GetSize()
    assert ct.GetOrigin() == pytest.approx(patient.ct.GetOrigin(), abs=1e-3)
    assert ct.GetSpacing() == pytest.approx(patient.ct.GetSpacing(), abs=1e-4)
    assert np.array_equal(sitk.GetArrayFromImage(ct), sitk.GetArrayFromImage(patient.ct))

    suv, parameters = pet_dicom_to_suv(folder / "dicom" / "PET")
    assert parameters.manufacturer.startswith("GE")
    assert parameters.units == "BQML"
    assert suv.GetOrigin() == pytest.approx(patient.suv.GetOrigin(), abs=1e-3)
    assert suv.GetSpacing() == pytest.approx(patient.suv.GetSpacing(), abs=1e-4)
    expected, found = sitk.GetArrayFromImage(patient.suv), sitk.GetArrayFromImage(suv)
    # Within 0.5 % wherever there is activity; int16 quantisation elsewhere.
    active = expected > 0.5
    assert np.max(np.abs(found[active] / expected[active] - 1.0)) < 0.005
    assert np.max(np.abs(found - expected)) < 0.005 * float(expected.max())
    record = json.loads((folder / "patient.json").read_text())
    assert parameters.suv_factor == pytest.approx(record["suv_per_bqml"], rel=1e-6)


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_same_seed_gives_byte_identical_files(written, tmp_path):
    _, folder = written
    again = tmp_path / "again"
    write_patient(generate_patient(SEED, lesion_types=ALL_TYPES), again, dicom=True)
    first, second = _digests(folder), _digests(again)
    assert first.keys() == second.keys()
    assert len([name for name in first if name.endswith(".dcm")]) == 2 * 144
    assert first == second


def test_another_seed_gives_another_patient():
    a, b = generate_patient(0), generate_patient(1)
    assert a.clinical != b.clinical
    assert not np.array_equal(sitk.GetArrayViewFromImage(a.suv), sitk.GetArrayViewFromImage(b.suv))


def test_fused_png_of_a_lesion(written, tmp_path):
    patient, _ = written
    path = fused_slice_png(patient.ct, patient.suv, patient.lesion_labels, tmp_path / "f.png", 1)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000


def test_unknown_names_are_clear_errors():
    with pytest.raises(ValueError, match="unknown phantom preset 'tiny'"):
        generate_patient(0, preset="tiny")
    with pytest.raises(ValueError, match="unknown lesion type 'chondroma'"):
        generate_patient(0, lesion_types=["chondroma"])
