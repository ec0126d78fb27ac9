"""``make demo`` end to end: the built-in patient through DICOM, SUV, ROIs, rules, metabolics."""

from __future__ import annotations

import csv

import SimpleITK as sitk

from BoneOligoMetLib.cli import demo


def test_demo_writes_every_output_and_reads_suv_back(tmp_path, capsys):
    assert demo.main(["--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    for name in ("lesions.nii.gz", "suv.nii.gz", "rules.csv", "metabolic.csv", "report.md"):
        assert (tmp_path / name).is_file(), name
    assert (tmp_path / "fused_pet_ct.png").stat().st_size > 10_000
    assert "SUV factor" in printed
    assert "PatientWeight" in printed
    # The SUV read from DICOM matches the generated one (int16 storage: well under 0.5%).
    difference = float(printed.split("largest relative difference ")[1].split("%")[0])
    assert difference < 0.5
    lesions = sitk.ReadImage(str(tmp_path / "lesions.nii.gz"))
    with open(tmp_path / "metabolic.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    # One metabolic row per exported lesion, each matched to a ground-truth lesion.
    labels = sorted(int(v) for v in set(sitk.GetArrayViewFromImage(lesions).ravel()) - {0})
    assert [int(row["lesion_label"]) for row in rows] == labels
    assert all(row["truth_type"] for row in rows)
    with open(tmp_path / "rules.csv", newline="") as handle:
        rules = {row["rule"] for row in csv.DictReader(handle)}
    assert {"lesion_count", "holes", "outside_bone", "necrotic", "calcified", "fdg_avid"} <= rules
    # One-click classification with the packaged synthetic bundle: results, overlay, snapshots.
    import json

    import numpy as np

    result = json.loads((tmp_path / "results.json").read_text())
    assert result["synthetic"] is True
    assert "not for clinical use" in result["warning"]
    assert [row["lesion_label"] for row in result["lesions"]] == labels
    overlay = sitk.ReadImage(str(tmp_path / "overlay.nii.gz"))
    assert overlay.GetSize() == lesions.GetSize()
    values = sitk.GetArrayViewFromImage(overlay)
    for row in result["lesions"]:
        inside = sitk.GetArrayViewFromImage(lesions) == row["lesion_label"]
        assert np.allclose(values[inside], row["probability"])
        assert (tmp_path / f"lesion_{row['lesion_label']}.png").stat().st_size > 5_000
    page = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in page
    assert "http://" not in page
    assert "not for clinical use" in page
