"""The per-patient report.html (report/patient_html.py): lesion table, rules, SUV derivation and
the model card from a bundle's manifest, self-contained."""

from __future__ import annotations

import json
import re

import SimpleITK as sitk

from BoneOligoMetLib.classify import OUTSIDE_DOMAIN, CaseResult
from BoneOligoMetLib.io.suv import SuvParameters
from BoneOligoMetLib.io.suv_tags import ParameterSource
from BoneOligoMetLib.lesions.rules import RuleCheck
from BoneOligoMetLib.models.bundle import default_bundle_path
from BoneOligoMetLib.report.patient_html import render_patient_html


def _result() -> CaseResult:
    rows = [
        {
            "lesion_label": 1,
            "probability": 0.8123,
            "malignant": True,
            "verdict": "malignant",
            "domain": "bone lesion",
        },
        {
            "lesion_label": 4,
            "probability": OUTSIDE_DOMAIN,
            "malignant": None,
            "verdict": OUTSIDE_DOMAIN,
            "domain": "100% of the mask outside bone",
        },
    ]
    features = [
        {
            "lesion_label": 1,
            "met_suv_max": 6.234,
            "met_suv_peak": 4.5,
            "met_mtv_ml": 2.25,
            "met_tlg": 9.87,
            "met_volume_ml": 3.0,
            "met_hu_mean": 95.4,
            "met_suv_max_liver_ratio": 2.8,
            "met_liver_suv_mean": 2.2,
        },
        {"lesion_label": 4, "met_suv_max": 3.0},
    ]
    checks = [
        RuleCheck("lesion_count", None, 2.0, 5.0, "pass", "2 lesion(s): oligometastatic (≤ 5)"),
        RuleCheck("outside_bone", 1, 0.31, 0.25, "warn", "31.0% of the mask outside bone"),
        RuleCheck("fdg_avid", 1, 6.234, 2.2037, "pass", "SUVmax 6.23 > liver", "SUV"),
        RuleCheck("outside_bone", 4, 1.0, 0.25, "fail", "not a bone lesion"),
    ]
    overlay = sitk.Image(2, 2, 2, sitk.sitkFloat32)
    return CaseResult(
        rows,
        overlay,
        0.639,
        "cpu",
        True,
        "synthetic demo model — not for clinical use",
        "test bundle",
        checks,
        features,
        ["lesion 4: a note"],
    )


def _cells(page: str, table_id: str) -> list[list[str]]:
    table = re.search(rf'<table id="{table_id}">(.*?)</table>', page, re.S).group(1)
    rows = re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1], re.S)
    return [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in rows]


def test_lesion_table_rules_and_model_card_from_the_packaged_manifest(tmp_path):
    manifest = json.loads((default_bundle_path() / "manifest.json").read_text())
    pixel = tmp_path / "p.png"
    from matplotlib.figure import Figure

    Figure(figsize=(1, 1)).savefig(pixel)
    page = render_patient_html(
        _result(), patient="P001", panels={1: pixel}, overview=pixel, manifest=manifest
    )
    lesions = _cells(page, "lesions")
    assert [row[0] for row in lesions] == ["1", "4"]
    first = lesions[0]
    assert first[1:9] == ["0.81", "malignant", "6.23", "4.50", "2.80", "2.25", "9.87", "3.00"]
    assert first[9] == "95"
    assert first[10] == "outside bone warn (31.0%)"
    assert lesions[1][1:3] == [OUTSIDE_DOMAIN, OUTSIDE_DOMAIN]
    assert lesions[1][10] == "outside bone fail (100.0%)"
    assert "FDG avidity" in page
    assert "2.20 SUV" in page  # a threshold in its unit, 2 decimals
    assert "Note: lesion 4: a note" in page
    # The model card: the manifest's held-out numbers, its training set, the warning.
    held_out = manifest["metrics"][f"{manifest['training']['recipe']['model']}_rf"]
    auc = f"{held_out['auc']:.3f} [{held_out['auc_low']:.3f}–{held_out['auc_high']:.3f}]"
    card = dict((row[0], row) for row in _cells(page, "model-metrics"))
    assert card["DLR+Complex (RF)"][2:5] == [
        str(held_out["n_patients"]),
        str(held_out["n_lesions"]),
        auc,
    ]
    assert f"training set {manifest['training']['patients']} patients" in page
    assert "<b>synthetic data</b>" in page
    assert page.count("not for clinical use") >= 2
    # An SUV image was given: the page says the derivation is unknown and how to get it.
    assert "cannot show how it was derived" in page
    # Self-contained: every picture inline (one panel, one overview), nothing fetched.
    assert page.count('src="data:image/png;base64,') == 2
    assert not re.search(r'(src|href)="(?!data:)', page)


def test_suv_derivation_lists_every_tag_used():
    parameters = SuvParameters(
        units="BQML",
        suv_factor=2.4e-4,
        manufacturer="GE MEDICAL SYSTEMS",
        files=("a", "b"),
        slice_suv_factors=(2.4e-4, 2.4e-4),
        provenance=(
            ParameterSource("PatientWeight", "71.2 kg", "tag (0010,1030)", "/x/PET_1.dcm"),
            ParameterSource("SUV factor", "0.00024", "derived: weight_g / dose left"),
        ),
    )
    page = render_patient_html(_result(), patient="P001", suv_parameters=parameters)
    rows = _cells(page, "suv")
    assert rows[0] == ["PatientWeight", "71.2 kg", "tag (0010,1030)", "PET_1.dcm"]
    assert rows[1][0] == "SUV factor"
    assert "0.00024 g/mL per Bq/mL" in page
    assert "The bundle's manifest was not given" in page  # no manifest: said, not invented
