"""``make demo``: the main job on the built-in case, a synthetic PET/CT patient.

What a reader does, end to end, on data that take the path real data take:

1. the built-in patient is generated and written as DICOM CT + PET (and NIfTI ground truth);
2. the CT and PET are read back from DICOM, the PET converted to SUV from its header tags
   (the tag table is printed) and checked against the generated SUV; PET/CT overlap is checked;
3. a "click" on each lesion (its centre; ``seeds.csv``) grows the semi-automatic SUV ≥ 2.2 ROI;
   a seed that yields no ROI (a non-avid lesion) gets the reader's manual delineation instead
   (here the generator's ground-truth mask), as the study's readers did;
4. the study's ROI rules are checked and printed as a table; metabolic parameters are measured
   against the liver reference;
5. every lesion is classified with the packaged synthetic demo bundle (DLR+Complex random
   forest: radiomics, BasicNet deep features, metabolic and clinical values): ``results.csv`` /
   ``results.json``, the probability overlay ``overlay.nii.gz`` (CT grid), a panel per lesion
   (``lesion_N.png``: axial and coronal, CT in a bone window, PET, fused) and the PET overview
   ``pet_mip.png``;
6. outputs: ``lesions.nii.gz`` (the exported segmentation, CT grid), ``suv.nii.gz``,
   ``seeds.csv``, ``rules.csv``, ``metabolic.csv``, ``report.md`` (what was printed) and
   ``report.html`` (the per-patient report ``classify`` writes, with the ground truth and this
   run's log added).

Lesion N is the generator's lesion N everywhere: its seed, its label in ``lesions.nii.gz``, its
rows, ``lesion_N.png`` and every title.
"""

from __future__ import annotations

import argparse
import html
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Optional

import numpy as np
import SimpleITK as sitk


def lesion_numbered(
    semi_auto: sitk.Image,
    outcomes: Sequence,
    numbers: Sequence[int],
    truth: sitk.Image,
) -> tuple[sitk.Image, dict[int, str]]:
    """The exported label image with lesion N as label N: each seed's ROI (``outcomes``, in the
    order of ``numbers``) renumbered to its lesion's number, and the ground-truth mask of lesion
    N where its seed grew nothing (the reader's manual delineation). Also, per lesion number,
    how its ROI was made ("semi-automatic", "manual", or that it joined another lesion's)."""
    grown = sitk.GetArrayViewFromImage(semi_auto)
    manual = sitk.GetArrayViewFromImage(truth)
    labels = np.zeros(grown.shape, dtype=np.uint8)
    how: dict[int, str] = {}
    owner: dict[int, int] = {}
    for number, outcome in zip(numbers, outcomes):
        if outcome.label is None:
            continue
        if outcome.merged:  # its region joined an earlier seed's ROI: one lesion on the image
            how[number] = f"joined lesion {owner[outcome.label]}'s ROI"
            continue
        owner[outcome.label] = number
        labels[grown == outcome.label] = number
        how[number] = "semi-automatic"
    for number in numbers:
        if number not in how:
            labels[(manual == number) & (labels == 0)] = number
            how[number] = "manual"
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(semi_auto)
    return image, how


def _truth_section(records: Mapping[int, dict], how: Mapping[int, str], rows: Sequence) -> str:
    """The demo's ground truth beside the model's answer (HTML)."""
    from BoneOligoMetLib.report.format import _table

    table = []
    for row in rows:
        record = records.get(row["lesion_label"], {})
        probability = row["probability"]
        table.append(
            (
                row["lesion_label"],
                str(record.get("lesion_type", "?")).replace("_", " "),
                "malignant" if record.get("label") else "benign",
                f"{record.get('bone', '?')} ({record.get('site', '?')})",
                how.get(row["lesion_label"], "?"),
                f"{probability:.2f}" if isinstance(probability, float) else probability,
                row["verdict"],
            )
        )
    return (
        "<p>What the generator drew (the reader does not know it): each lesion's kind, the bone "
        "it is in, and how its ROI was made. Synthetic data; not patient data.</p>"
        + _table(
            ("lesion", "truth", "class", "bone (site)", "ROI", "P(malignant)", "model"),
            table,
            "truth",
        )
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m BoneOligoMetLib.cli.demo", description=__doc__)
    parser.add_argument("--out", default="demo_output", help="output folder")
    args = parser.parse_args(argv)

    from BoneOligoMetLib.classify import classify_case
    from BoneOligoMetLib.cli.check import format_checks
    from BoneOligoMetLib.image.geometry import require_overlap
    from BoneOligoMetLib.io.images import read_image, write_image
    from BoneOligoMetLib.io.suv import pet_dicom_to_suv
    from BoneOligoMetLib.io.tables import write_csv
    from BoneOligoMetLib.lesions.agreement import dice
    from BoneOligoMetLib.lesions.metabolic import metabolic_table
    from BoneOligoMetLib.lesions.rules import assess_lesions
    from BoneOligoMetLib.lesions.segment import segment_lesions
    from BoneOligoMetLib.models.bundle import default_bundle_path, load_bundle
    from BoneOligoMetLib.report.patient import write_results
    from BoneOligoMetLib.synthetic.phantom.demo import write_demo_case

    out = Path(args.out)
    case = write_demo_case(out)
    patient, folder = case["patient"], case["folder"]
    report = [f"# BoneOligoMet demo: synthetic patient {patient.patient_id}", ""]

    def say(text: str = "") -> None:
        print(text)
        report.append(text)

    # 2. DICOM in: CT in HU, PET to SUV from its tags.
    ct = read_image(folder / "dicom" / "CT", modality="CT")
    suv, parameters = pet_dicom_to_suv(folder / "dicom" / "PET")
    overlap = require_overlap(ct, suv, ("CT", "PET"))
    generated = sitk.GetArrayViewFromImage(patient.suv)
    read_back = sitk.GetArrayViewFromImage(suv)
    hot = generated > 0.5
    worst = float(np.max(np.abs(read_back[hot] - generated[hot]) / generated[hot]))
    say(f"PET DICOM -> SUV ({len(parameters.files)} slices):")
    say("```")
    say(parameters.report())
    say("```")
    say(
        f"SUV from DICOM vs generated: largest relative difference {worst:.2%} (voxels SUV > 0.5); "
        f"PET/CT overlap {overlap:.0%}"
    )
    write_image(suv, out / "suv.nii.gz")

    # 3. One click per lesion; manual delineation where the semi-automatic ROI cannot exist.
    truth = patient.lesion_labels
    records = {r["lesion_label"]: r for r in patient.lesion_records()}
    numbers = list(case["seeds"])
    seeds = [case["seeds"][number] for number in numbers]
    write_csv(
        [
            {"lesion": n, "x_lps_mm": round(x, 2), "y_lps_mm": round(y, 2), "z_lps_mm": round(z, 2)}
            for n, (x, y, z) in zip(numbers, seeds)
        ],
        out / "seeds.csv",
    )
    segmentation = segment_lesions(ct, suv, seeds, skip_failed=True)
    lesions, how = lesion_numbered(segmentation.labels, segmentation.seeds, numbers, truth)
    write_image(lesions, out / "lesions.nii.gz")
    say()
    say(
        "Semi-automatic ROIs (one click per lesion at the seed of seeds.csv, LPS mm: SUV ≥ 2.2 in "
        "bone is the search region, PET and CT draw the border, study §2.3):"
    )
    for number, point, outcome in zip(numbers, seeds, segmentation.seeds):
        kind = records[number]["lesion_type"].replace("_", " ")
        where = f"seed ({point[0]:.1f}, {point[1]:.1f}, {point[2]:.1f})"
        if how[number] == "manual":  # the error names the seed and what was found there
            say(f"- lesion {number} ({kind}): {outcome.error} -> manual delineation")
            continue
        if how[number] != "semi-automatic":
            say(f"- lesion {number} ({kind}), {where}: {how[number]}")
            continue
        overlap_dice = dice(sitk.Equal(lesions, number), sitk.Equal(truth, number))
        say(
            f"- lesion {number} ({kind}), {where}: {outcome.lesion.volume_ml:.2f} mL, "
            f"SUVmax {outcome.lesion.suv_max:.2f}, Dice vs ground truth {overlap_dice:.2f}"
        )

    # 4. ROI rules and metabolic parameters.
    liver = patient.liver_seed_lps_mm
    rules = assess_lesions(ct, suv, lesions, liver_seed_lps=liver)
    say()
    say("ROI rule checks (study §2.3):")
    say("```")
    say(format_checks(rules.checks))
    say("```")
    write_csv([check.__dict__ for check in rules.checks], str(out / "rules.csv"))

    rows = [item.as_row() for item in metabolic_table(suv, lesions, ct=ct, liver_seed_lps=liver)]
    for row in rows:
        record = records.get(row["lesion_label"], {})
        row["truth_label"] = record.get("label")
        row["truth_type"] = record.get("lesion_type")
    write_csv(rows, str(out / "metabolic.csv"))
    say()
    say(f"Metabolic parameters (liver SUVmean {rows[0]['met_liver_suv_mean']:.2f}):")
    for row in rows:
        truth_text = (
            "malignant" if row["truth_label"] else "benign",
            str(row["truth_type"]).replace("_", " "),
        )
        say(
            f"- lesion {row['lesion_label']}: SUVmax {row['met_suv_max']:.2f}, "
            f"SUVpeak {row['met_suv_peak']:.2f}, MTV {row['met_mtv_ml']:.2f} mL, "
            f"TLG {row['met_tlg']:.2f}, SUVmax/liver {row['met_suv_max_liver_ratio']:.2f}, "
            f"HU {row['met_hu_mean']:.0f} — truth: {' '.join(truth_text)}"
        )

    # 5. One click: every lesion classified with the packaged demo bundle.
    bundle = load_bundle(default_bundle_path())
    labels = [row["lesion_label"] for row in rows]
    clinical: dict = {"age": patient.clinical.age_years, "subtype": patient.clinical.subtype}
    for key in ("site", "bone_change"):  # what the reader records per lesion
        clinical[key] = {label: records[label].get(key) for label in labels if label in records}
    result = classify_case(
        ct,
        suv,
        lesions,
        clinical=clinical,
        bundle=bundle,
        liver_seed_lps_mm=liver,
        name=patient.patient_id,
    )
    say()
    say(
        f"Classification ({result.bundle_name}; threshold {result.threshold:.3f}, {result.device}):"
    )
    say(f"**{result.warning}**")
    for row in result.rows:
        record = records.get(row["lesion_label"], {})
        truth_text = "malignant" if record.get("label") else "benign"
        shown = row["probability"]
        shown = f"P(malignant) = {shown:.2f}" if isinstance(shown, float) else row["domain"]
        say(
            f"- lesion {row['lesion_label']}: {shown} -> {row['verdict']} — truth: {truth_text} "
            f"({str(record.get('lesion_type', '?')).replace('_', ' ')})"
        )
    say()
    say(
        "Files: report.html (the per-patient report), lesion_N.png (a panel per lesion), "
        "pet_mip.png, lesions.nii.gz (exported segmentation), seeds.csv (the clicks), suv.nii.gz, "
        "overlay.nii.gz (probability per lesion), results.csv/.json, rules.csv, metabolic.csv, "
        "patient/ (DICOM, NIfTI ground truth, patient.json)."
    )
    say("Synthetic data for demonstration; not patient data, not a clinical result.")
    (out / "report.md").write_text("\n".join(report) + "\n", encoding="utf-8")
    log = "\n".join(line for line in report[2:] if line != "```")
    sections = [
        ("Ground truth (synthetic patient)", _truth_section(records, how, result.rows)),
        (
            "Run log",
            f"<details><summary>what the demo printed</summary><pre>"
            f"{html.escape(log)}</pre></details>",
        ),
    ]
    write_results(
        result,
        ct,
        suv,
        lesions,
        out,
        patient=f"synthetic patient {patient.patient_id}",
        manifest=bundle.manifest,
        suv_parameters=parameters,
        sections=sections,
    )
    print(f"wrote {out / 'report.md'} and {out / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
