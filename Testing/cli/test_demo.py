"""``make demo`` end to end: the built-in patient through DICOM, SUV, ROIs, rules, metabolics,
classification and the per-patient report, lesion N being the generator's lesion N everywhere."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import SimpleITK as sitk

from BoneOligoMetLib.cli import demo


def test_demo_writes_every_output_and_reads_suv_back(tmp_path, capsys):
    assert demo.main(["--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    for name in (
        "lesions.nii.gz",
        "suv.nii.gz",
        "rules.csv",
        "metabolic.csv",
        "report.md",
        "seeds.csv",
        "pet_mip.png",
    ):
        assert (tmp_path / name).is_file(), name
    assert "SUV factor" in printed
    assert "PatientWeight" in printed
    # The SUV read from DICOM matches the generated one (int16 storage: well under 0.5%).
    difference = float(printed.split("largest relative difference ")[1].split("%")[0])
    assert difference < 0.5
    lesions = sitk.ReadImage(str(tmp_path / "lesions.nii.gz"))
    with open(tmp_path / "metabolic.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    # One metabolic row per exported lesion.
    labels = sorted(int(v) for v in set(sitk.GetArrayViewFromImage(lesions).ravel()) - {0})
    assert [int(row["lesion_label"]) for row in rows] == labels
    with open(tmp_path / "rules.csv", newline="") as handle:
        rules = {row["rule"] for row in csv.DictReader(handle)}
    assert {"lesion_count", "holes", "outside_bone", "necrotic", "calcified", "fdg_avid"} <= rules
    # One-click classification with the packaged synthetic bundle: results, overlay, panels.
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
        assert (tmp_path / f"lesion_{row['lesion_label']}.png").stat().st_size > 50_000

    # One number per lesion: exported label N lies on the generator's lesion N, was grown from
    # lesion N's seed (patient.json's centre), and every printed line and title says N.
    record = json.loads((tmp_path / "patient" / "patient.json").read_text())
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "patient/lesions.nii.gz")))
    ours = sitk.GetArrayViewFromImage(lesions)
    kinds = {}
    for lesion in record["lesions"]:
        number = lesion["lesion_label"]
        kinds[number] = lesion["lesion_type"].replace("_", " ")
        overlap = truth[ours == number]
        assert np.bincount(overlap[overlap > 0]).argmax() == number
    assert labels == sorted(kinds)
    with open(tmp_path / "seeds.csv", newline="") as handle:
        seeds = {
            int(r["lesion"]): [float(r[f"{a}_lps_mm"]) for a in "xyz"]
            for r in csv.DictReader(handle)
        }
    for lesion in record["lesions"]:
        assert np.allclose(seeds[lesion["lesion_label"]], lesion["centre_lps_mm"], atol=0.01)
    for number, kind in kinds.items():
        assert f"- lesion {number} ({kind})" in printed
        truth_type = kind.replace(" ", "_")
        assert re.search(rf"- lesion {number}: .* truth: \w+ {kind}\n", printed)
        assert re.search(rf"- lesion {number}: P\(malignant\) = .*\({kind}\)\n", printed)
        assert any(r["truth_type"] == truth_type for r in rows if int(r["lesion_label"]) == number)
    assert not re.search(r"ROI \d", printed)  # no second numbering

    # The per-patient report: lesion table, a panel and the rules per lesion, SUV tags, model
    # card, ground truth; self-contained.
    page = (tmp_path / "report.html").read_text()
    table = re.search(r'<table id="lesions">.*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    assert re.findall(r"<tr><td>(\d+)</td>", table) == [str(n) for n in labels]
    for number in labels:
        assert f'<h3 id="lesion-{number}">Lesion {number}</h3>' in page
    assert page.count('src="data:image/png;base64,') == len(labels) + 1  # panels + MIP
    assert not re.search(r'(src|href)="(?!data:)', page)
    assert '<table id="suv">' in page
    assert "PatientWeight" in page
    assert "0010,1030" in page
    assert '<table id="model-metrics">' in page
    assert "synthetic data" in page
    assert '<table id="truth">' in page
    assert "not for clinical use" in page

    # `classify` writes the same report for the same patient from its DICOM folders, with the
    # SUV derivation read from the PET headers; lesion N keeps its number.
    from BoneOligoMetLib.cli import main

    liver = ",".join(str(v) for v in record["liver_seed_lps_mm"])
    dicom = tmp_path / "patient" / "dicom"
    out = tmp_path / "classify"
    argv = ["classify", "--ct", str(dicom / "CT"), "--pet", str(dicom / "PET"), "--lesions",
            str(tmp_path / "lesions.nii.gz"), f"--liver-seed={liver}", "--clinical", "age=61",
            "--clinical", "subtype=HR+", "--out", str(out)]  # fmt: skip
    status = main(argv)
    assert status == 0
    page = (out / "report.html").read_text()
    assert '<table id="suv">' in page
    assert "RadionuclideTotalDose" in page
    table = re.search(r'<table id="lesions">.*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    assert re.findall(r"<tr><td>(\d+)</td>", table) == [str(n) for n in labels]
    assert sorted(p.name for p in out.glob("lesion_*.png")) == [f"lesion_{n}.png" for n in labels]
