"""``bone-oligomet classify``: every lesion of a patient → probability of malignancy."""

from __future__ import annotations

import argparse

from BoneOligoMetLib.cli._common import parse_device, parse_point

HELP = "probability of malignancy of every lesion (model bundle; default: the synthetic demo)"
OUTPUTS = {"out": "folder"}


def _clinical(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. age=61), got {text!r}")
    return key.strip(), value.strip()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ct", required=True, help="CT image or DICOM folder (HU)")
    parser.add_argument("--pet", required=True, help="PET as SUV image, or a PET DICOM folder")
    lesions = parser.add_mutually_exclusive_group(required=True)
    lesions.add_argument("--lesions", help="lesion label image (one label each)")
    lesions.add_argument(
        "--find-lesions", action="store_true",
        help="no lesion image: classify the automatic candidates (`candidates`), grown into "
        "ROIs; automatic proposals that a reader must confirm (also written: candidates.csv, "
        "lesions.nii.gz)",
    )  # fmt: skip
    parser.add_argument(
        "--clinical", type=_clinical, action="append", default=[], metavar="KEY=VALUE",
        help="clinical value: age=61, subtype=HR+; per lesion: site:2=pelvis, bone_change:1=mixed",
    )  # fmt: skip
    parser.add_argument(
        "--liver-seed", type=parse_point, metavar="X,Y,Z",
        help="liver reference point, mm (LPS unless --ras), e.g. -50,-10,245",
    )  # fmt: skip
    parser.add_argument("--ras", action="store_true", help="--liver-seed is Slicer RAS, not LPS")
    parser.add_argument("--model", metavar="DIR", help="model bundle (default: the demo bundle)")
    parser.add_argument(
        "--device", type=parse_device, default="auto", help="auto (CUDA if present), cpu, cuda[:N]"
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--no-png", action="store_true", help="no lesion panels or PET overview")


def _parse_clinical(pairs) -> dict:
    from BoneOligoMetLib.io.manifest import parse_value

    clinical: dict = {}
    for key, value in pairs:
        name, _, label = key.partition(":")
        if label:
            clinical.setdefault(name, {})[int(label)] = parse_value(value)
        else:
            clinical[name] = parse_value(value)
    return clinical


def _span(progress, low: float, high: float):
    """``progress`` for a step that reports 0…1, shown as ``low``…``high`` of the whole bar."""
    return lambda fraction, message: progress(low + (high - low) * fraction, message)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from BoneOligoMetLib.classify import check_inputs, classify_case, liver_features
    from BoneOligoMetLib.cli._common import align, cell, progress_bar, to_lps
    from BoneOligoMetLib.errors import BoneOligoMetError, BundleError
    from BoneOligoMetLib.image.geometry import same_grid
    from BoneOligoMetLib.image.labels import label_image
    from BoneOligoMetLib.io.images import read_image, write_image
    from BoneOligoMetLib.io.suv import pet_dicom_to_suv, read_suv_image
    from BoneOligoMetLib.lesions import candidates
    from BoneOligoMetLib.models.bundle import default_bundle_path, load_bundle
    from BoneOligoMetLib.report.patient import write_overlay, write_results
    from BoneOligoMetLib.report.patient_html import candidates_section

    clinical = _parse_clinical(args.clinical)
    seed = to_lps(args.liver_seed, args.ras)
    name = "automatic candidates" if args.find_lesions else Path(args.lesions).name
    notice, found = "", None
    with progress_bar("classify") as progress:
        progress(0.0, "loading the model")  # every input is checked before the images are read
        bundle = load_bundle(args.model or default_bundle_path(), args.device)
        if seed is None and liver_features(bundle):
            raise BoneOligoMetError(
                "--liver-seed X,Y,Z is needed: the model uses the liver reference "
                f"({liver_features(bundle)[0]}, ...), the SUVmean of a 3 cm sphere in the liver "
                "(§2.3); give its centre in LPS mm (or Slicer RAS with --ras)"
            )
        try:
            check_inputs(bundle, clinical, seed, name)
        except BundleError as error:
            raise BoneOligoMetError(f"--clinical: {error}") from None
        progress(0.02, "reading the images")
        ct = read_image(args.ct, modality="CT" if Path(args.ct).is_dir() else None)
        suv_parameters = None  # a DICOM folder's SUV derivation goes into report.html
        if Path(args.pet).is_dir():
            suv, suv_parameters = pet_dicom_to_suv(args.pet)
        else:
            suv = read_suv_image(args.pet)
        classify_progress = progress
        if args.find_lesions:
            found = candidates.find_candidates(ct, suv, progress=_span(progress, 0.05, 0.35))
            if not found.candidates:
                raise BoneOligoMetError(
                    "--find-lesions: no candidate lesion found; nothing written"
                )
            lesions = candidates.candidate_rois(
                ct, suv, found, progress=_span(progress, 0.35, 0.45)
            )
            notice = f"lesions found automatically: {candidates.PROPOSAL_NOTE}"
            classify_progress = _span(progress, 0.45, 1.0)
        else:
            lesions = label_image(read_image(args.lesions), args.lesions)
        result = classify_case(
            ct,
            suv,
            lesions,
            clinical=clinical,
            bundle=bundle,
            liver_seed_lps_mm=seed,
            progress=classify_progress,
            device=args.device,
            name=name,
            overlay=False,  # made when written, once the CT is let go (memory)
        )
    rows = [c.row() for c in found.candidates] if found is not None else []
    write_results(
        result,
        ct,
        suv,
        lesions,
        args.out,
        png=not args.no_png,
        patient="automatic candidates" if found is not None else f"lesions {args.lesions}",
        manifest=bundle.manifest,
        suv_parameters=suv_parameters,
        pet_source=str(args.pet),
        notice=notice,
        sections=[candidates_section(rows)] if rows else (),
        overlay=False,
    )
    if found is not None:
        from BoneOligoMetLib.cli.candidates import write_table

        write_table(rows, str(Path(args.out) / "candidates.csv"))
        write_image(lesions, Path(args.out) / "lesions.nii.gz")
    reference = lesions if same_grid(lesions, ct) else ct  # the overlay's grid: the CT's
    del ct, suv
    write_overlay(result, lesions, reference, args.out)
    lines = [["lesion", "P(malignant)", "at threshold", "SUVmax", "MTV mL", "TLG", "rules"]]
    for row in result.rows:
        warned = [k[5:] for k, v in row.items() if k.startswith("rule_") and v == "warn"]
        probability = row["probability"]
        lines.append([
            str(row["lesion_label"]), "-" if isinstance(probability, str) else f"{probability:.3f}",
            row["verdict"], cell(row["met_suv_max"], ".2f"),
            cell(row["met_mtv_ml"], ".2f"), cell(row["met_tlg"], ".1f"),
            ", ".join(warned) or "pass",
        ])  # fmt: skip
    print(align(lines, left=(2, 6)))
    print(f"model: {result.bundle_name} (threshold {result.threshold:.3f}; {result.device})")
    for note in result.notes:
        print(f"note: {note}")
    if result.warning:
        print(f"WARNING: {result.warning}")
    if notice:
        print(f"WARNING: {notice} (lesion label = candidate rank, candidates.csv)")
    print(f"results, overlay, panels and report.html: {args.out}")
    return 0
