"""``bone-oligomet radiomics``: pyradiomics features of one image in one lesion (params file)."""

from __future__ import annotations

import argparse

HELP = "radiomics of one image in one lesion with a params file (packaged or your pyradiomics YAML)"
OUTPUTS = {"output": "file"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", required=True, help="image (NIfTI/NRRD or DICOM folder)")
    parser.add_argument("--mask", required=True, help="lesion label image (any grid)")
    parser.add_argument(
        "--params",
        default="ct",
        metavar="P",
        help="pyradiomics YAML, or a packaged name: ct (default), pet, petct, ct_binwidth32, "
        "ibsi1_phantom; ct files check the image is in HU, pet files that it is in SUV",
    )
    parser.add_argument(
        "--label",
        type=int,
        default=None,
        help="lesion label in --mask (default: the only label, else the params' label setting)",
    )
    parser.add_argument("--prefix", default="", help="prefix of the feature names (e.g. ct_)")
    parser.add_argument(
        "--margin", type=float, default=0.0, metavar="MM", help="least crop margin, mm"
    )
    parser.add_argument("-o", "--output", help="write the features as a one-row CSV")


def run(args: argparse.Namespace) -> int:
    import SimpleITK as sitk

    from BoneOligoMetLib.cli._common import align
    from BoneOligoMetLib.features.radiomics import extract_image_features
    from BoneOligoMetLib.features.radiomics_params import load_params
    from BoneOligoMetLib.image.labels import mask_labels
    from BoneOligoMetLib.image.units import require_hu, require_suv
    from BoneOligoMetLib.io.images import read_image
    from BoneOligoMetLib.io.tables import write_csv

    params = load_params(args.params)
    image = read_image(args.image, pixel_type=sitk.sitkFloat32)
    if params.image == "ct":
        require_hu(image, args.image)
    elif params.image == "pet":
        require_suv(image, args.image)
    mask = read_image(args.mask)
    label = args.label
    if label is None:
        labels = mask_labels(mask, args.mask)
        label = labels[0] if len(labels) == 1 else int(params.settings.get("label", 1))
    features = extract_image_features(
        image,
        mask,
        params,
        label=label,
        margin_mm=args.margin,
        prefix=args.prefix,
        name=f"{args.mask} lesion {label}",
    )
    print(f"{len(features)} features of lesion {label} ({params.source})")
    print(align([[name, f"{value:.6g}"] for name, value in features.items()], left=(0,)))
    if args.output:
        write_csv([{"lesion_label": label, **features}], args.output)
        print(f"wrote {args.output}")
    return 0
