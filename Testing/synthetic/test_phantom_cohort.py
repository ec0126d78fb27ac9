"""Synthetic cohorts: manifest, determinism across workers, resume, command, and the benign /
malignant overlap of SUVmax on a study-sized cohort."""

from __future__ import annotations

import csv
import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from BoneOligoMetLib.cli import main
from BoneOligoMetLib.synthetic.phantom import MANIFEST_COLUMNS, generate_cohort, generate_patient


def _rows(manifest: Path) -> list[dict]:
    with open(manifest, newline="") as handle:
        return list(csv.DictReader(handle))


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_cohort_is_the_same_with_one_or_two_workers_and_resumes(tmp_path):
    one = generate_cohort(3, seed=11, out_dir=tmp_path / "one", workers=1)
    two = generate_cohort(3, seed=11, out_dir=tmp_path / "two", workers=2, progress=True)
    assert one.read_bytes() == two.read_bytes()
    assert _digests(tmp_path / "one") == _digests(tmp_path / "two")

    rows = _rows(one)
    assert tuple(rows[0]) == MANIFEST_COLUMNS
    assert [r["patient_id"] for r in rows] == sorted(r["patient_id"] for r in rows)
    assert {r["patient_id"] for r in rows} == {"BOM0001", "BOM0002", "BOM0003"}
    for row in rows:
        for role in ("ct", "pet_bqml", "suv", "lesions", "lesion_parts", "tissues"):
            assert (tmp_path / "one" / row[role]).is_file()
        assert row["label"] in ("0", "1")
        assert row["clin_subtype"] in ("HR+", "HER2+", "triple-negative")
        assert 18 <= int(row["clin_age"]) <= 75
        assert row["clin_site"] == row["site"]
        assert row["clin_bone_change"] in ("osteolytic", "osteogenic", "mixed")
        assert float(row["injected_dose_mbq"]) == pytest.approx(
            5.5 * float(row["weight_kg"]), rel=0.09
        )
        assert 40 <= float(row["uptake_min"]) <= 60

    ct = tmp_path / "one" / rows[0]["ct"]
    stamp = ct.stat().st_mtime_ns
    assert generate_cohort(3, seed=11, out_dir=tmp_path / "one", workers=1).read_bytes() == (
        two.read_bytes()
    )
    assert ct.stat().st_mtime_ns == stamp  # kept, not regenerated


def test_phantom_command(tmp_path, capsys):
    out = tmp_path / "cohort"
    args = ["phantom", "--patients", "2", "--seed", "4", "--out", str(out), "--no-progress"]
    assert main([*args, "--workers", "1", "--png", "--dicom"]) == 0
    assert "2 patient(s)" in capsys.readouterr().out
    rows = _rows(out / "manifest.csv")
    assert all(row["pet_dicom"] and (out / row["pet_dicom"]).is_dir() for row in rows)
    assert (out / "patients" / "BOM0001" / "fused.png").is_file()
    assert (out / "cohort.json").is_file()


def _suv_max_per_lesion(index: int) -> list[tuple[int, str, float, float, float, int]]:
    """(label, type, SUVmax as the metabolic module measures it, necrotic and calcified
    fraction, lesions of the patient) for patient ``index`` of seed 2024."""
    from BoneOligoMetLib.lesions.metabolic import lesion_metabolics

    patient = generate_patient(2024, index=index)
    out = []
    for record in patient.lesion_records():
        measured = lesion_metabolics(patient.suv, patient.lesion_labels, record["lesion_label"])
        out.append(
            (
                record["label"],
                record["lesion_type"],
                measured.suv_max,
                record["necrotic_fraction"],
                record["calcified_fraction"],
                len(patient.lesions),
            )
        )
    return out


@pytest.mark.large
def test_suv_max_alone_separates_benign_from_malignant_imperfectly():
    """On a 200-patient cohort (the study: 207), SUVmax measured on the generated PET (blur,
    noise; lesion mask mapped to the PET grid by ``metabolic``) gives an AUC in [0.75, 0.95].

    In memory (same generator as the files, no I/O); ~60 s on 2 cores."""
    workers = min(2, os.cpu_count() or 1)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        rows = [row for rows in pool.map(_suv_max_per_lesion, range(200)) for row in rows]
    label = np.array([r[0] for r in rows])
    suv_max = np.array([r[2] for r in rows])
    malignant, benign = suv_max[label == 1], suv_max[label == 0]
    auc = mannwhitneyu(malignant, benign).statistic / (malignant.size * benign.size)
    assert 0.75 <= auc <= 0.95, auc
    # Like the study (312 lesions, 107 benign): about a third benign, 1.5 lesions per patient.
    assert 250 <= len(rows) <= 380
    assert 0.25 <= benign.size / len(rows) <= 0.45
    # The clinical pitfalls: avid benign lesions and faint metastases both exist.
    assert np.sum(benign > 3.0) >= 5
    assert np.sum(malignant < 2.5) >= 5
    # Necrotic and calcified parts, some under and some over 10 % of the lesion.
    for column in (3, 4):
        fractions = np.array([r[column] for r in rows])
        assert np.sum((fractions > 0) & (fractions <= 0.1)) >= 3
        assert np.sum(fractions > 0.1) >= 3
    assert max(r[5] for r in rows) > 5  # a few patients break the oligometastasis rule
