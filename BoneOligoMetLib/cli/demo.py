"""``make demo``: the main job on the built-in case, a synthetic PET/CT patient.

What a reader does, end to end, on data that take the path real data take:

1. the built-in patient is generated and written as DICOM CT + PET (and NIfTI ground truth);
2. the CT and PET are read back from DICOM, the PET converted to SUV from its header tags
   (the tag table is printed) and checked against the generated SUV; PET/CT overlap is checked;
3. a "click" on each lesion (its centre) grows the semi-automatic SUV ≥ 2.2 ROI; a seed that
   yields no ROI (a non-avid lesion) gets the reader's manual delineation instead (here the
   generator's ground-truth mask), as the study's readers did;
4. the study's ROI rules are checked and printed as a table; metabolic parameters are measured
   against the liver reference;
5. every lesion is classified with the packaged synthetic demo bundle (DLR+Complex random
   forest: radiomics, BasicNet deep features, metabolic and clinical values): ``results.csv`` /
   ``results.json``, the probability overlay ``overlay.nii.gz`` (CT grid) and one fused PET/CT
   snapshot per lesion with its outline and probability (``lesion_N.png``);
6. outputs: ``lesions.nii.gz`` (the exported segmentation, CT grid), ``suv.nii.gz``,
   ``rules.csv``, ``metabolic.csv``, ``fused_pet_ct.png``, ``report.md`` and ``report.html``
   (self-contained, snapshots inline).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import numpy as np
import SimpleITK as sitk


def _merge_manual(semi_auto: sitk.Image, truth: sitk.Image, missing: Sequence[int]) -> sitk.Image:
    """Semi-automatic labels plus the manual (ground-truth) masks of the seeds that failed."""
    labels = sitk.GetArrayFromImage(semi_auto)
    manual = sitk.GetArrayViewFromImage(truth)
    next_label = int(labels.max()) + 1
    for truth_label in missing:
        labels[(manual == truth_label) & (labels == 0)] = next_label
        next_label += 1
    merged = sitk.GetImageFromArray(labels)
    merged.CopyInformation(semi_auto)
    return merged


def _lesion_of_label(labels: sitk.Image, truth: sitk.Image) -> dict[int, int]:
    """For each label of ``labels``: the ground-truth lesion it overlaps most (0 if none)."""
    ours, theirs = sitk.GetArrayViewFromImage(labels), sitk.GetArrayViewFromImage(truth)
    matches = {}
    for label in np.unique(ours[ours > 0]):
        overlap = theirs[ours == label]
        overlap = overlap[overlap > 0]
        matches[int(label)] = int(np.bincount(overlap).argmax()) if overlap.size else 0
    return matches


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m BoneOligoMetLib.cli.demo", description=__doc__)
    parser.add_argument("--out", default="demo_output", help="output folder")
    args = parser.parse_args(argv)

    from BoneOligoMetLib.cli.check import format_checks
    from BoneOligoMetLib.image.geometry import require_overlap
    from BoneOligoMetLib.io.images import read_image, write_image
    from BoneOligoMetLib.io.suv import pet_dicom_to_suv
    from BoneOligoMetLib.io.tables import write_csv
    from BoneOligoMetLib.lesions.agreement import dice
    from BoneOligoMetLib.lesions.metabolic import metabolic_table
    from BoneOligoMetLib.lesions.rules import assess_lesions
    from BoneOligoMetLib.lesions.segment import segment_lesions
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
    seeds = [lesion.centre_mm for lesion in patient.lesions]
    segmentation = segment_lesions(ct, suv, seeds, skip_failed=True)
    say()
    say(
        "Semi-automatic ROIs (one click per lesion: SUV ≥ 2.2 in bone is the search region, "
        "PET and CT draw the border, study §2.3):"
    )
    failed = []
    for lesion, outcome in zip(patient.lesions, segmentation.seeds):
        kind = records[lesion.label]["lesion_type"].replace("_", " ")
        if outcome.label is None:
            failed.append(lesion.label)
            say(f"- lesion {lesion.label} ({kind}): {outcome.error} -> manual delineation")
            continue
        overlap_dice = dice(
            sitk.Equal(segmentation.labels, outcome.label), sitk.Equal(truth, lesion.label)
        )
        say(
            f"- lesion {lesion.label} ({kind}): ROI {outcome.label}, "
            f"{outcome.lesion.volume_ml:.2f} mL, SUVmax {outcome.lesion.suv_max:.2f}, "
            f"Dice vs ground truth {overlap_dice:.2f}"
        )
    lesions = _merge_manual(segmentation.labels, truth, failed)
    write_image(lesions, out / "lesions.nii.gz")
    truth_of = _lesion_of_label(lesions, truth)

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
        record = records.get(truth_of[row["lesion_label"]], {})
        row["truth_lesion"] = record.get("lesion_label")
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
            f"- ROI {row['lesion_label']}: SUVmax {row['met_suv_max']:.2f}, "
            f"SUVpeak {row['met_suv_peak']:.2f}, MTV {row['met_mtv_ml']:.2f} mL, "
            f"TLG {row['met_tlg']:.2f}, SUVmax/liver {row['met_suv_max_liver_ratio']:.2f}, "
            f"HU {row['met_hu_mean']:.0f} — truth: {' '.join(truth_text)}"
        )

    # 5. One click: every lesion classified with the packaged demo bundle.
    from BoneOligoMetLib.classify import classify_case
    from BoneOligoMetLib.report.patient import write_results

    clinical: dict = {"age": patient.clinical.age_years, "subtype": patient.clinical.subtype}
    for key in ("site", "bone_change"):  # what the reader records per lesion
        clinical[key] = {
            label: records[truth].get(key) for label, truth in truth_of.items() if truth in records
        }
    result = classify_case(ct, suv, lesions, clinical=clinical, liver_seed_lps_mm=liver,
                           name=patient.patient_id)  # fmt: skip
    snapshots = write_results(result, ct, suv, lesions, out)
    say()
    say(
        f"Classification ({result.bundle_name}; threshold {result.threshold:.3f}, {result.device}):"
    )
    say(f"**{result.warning}**")
    for row in result.rows:
        record = records.get(truth_of[row["lesion_label"]], {})
        truth_text = "malignant" if record.get("label") else "benign"
        shown = row["probability"]
        shown = f"P(malignant) = {shown:.2f}" if isinstance(shown, float) else row["domain"]
        say(
            f"- ROI {row['lesion_label']}: {shown} -> {row['verdict']} — truth: {truth_text} "
            f"({str(record.get('lesion_type', '?')).replace('_', ' ')})"
        )
    say()
    say(
        "Files: lesions.nii.gz (exported segmentation), suv.nii.gz, overlay.nii.gz (probability "
        "per lesion), results.csv/.json, lesion_N.png, rules.csv, metabolic.csv, fused_pet_ct.png, "
        "report.html, patient/ (DICOM, NIfTI ground truth, patient.json)."
    )
    say("Synthetic data for demonstration; not patient data, not a clinical result.")
    (out / "report.md").write_text("\n".join(report) + "\n", encoding="utf-8")
    images = [out / "fused_pet_ct.png"] + [p for p in snapshots if p.suffix == ".png"]
    _write_html(report, images, out / "report.html")
    print(f"wrote {out / 'report.md'} and {out / 'report.html'}")
    return 0


def _write_html(lines: Sequence[str], images: Sequence[Path], path: Path) -> None:
    """The report as one self-contained HTML page (text as written, PNGs inline)."""
    import base64
    import html

    body = []
    for line in lines:
        if line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("**") and line.endswith("**"):
            body.append(f'<p class="warning">{html.escape(line.strip("*"))}</p>')
        elif line != "```":
            body.append(f"<div>{html.escape(line) or '&nbsp;'}</div>")
    for image in images:
        data = base64.b64encode(image.read_bytes()).decode("ascii")
        body.append(f'<figure><img alt="{image.name}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{html.escape(image.name)}</figcaption></figure>")  # fmt: skip
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "div{white-space:pre-wrap;font-family:monospace}"
        ".warning{color:#b00;font-weight:bold}img{max-width:100%}"
    )
    path.write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>BoneOligoMet demo</title>'
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    sys.exit(main())
