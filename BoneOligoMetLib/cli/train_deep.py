"""``bone-oligomet train-deep``: the CT and PET deep-feature networks from a cohort manifest."""

from __future__ import annotations

import argparse

from BoneOligoMetLib.cli._common import parse_device
from BoneOligoMetLib.protocol import TEST_FRACTION

HELP = "train the BasicNet deep-feature networks (CT, PET) on a cohort manifest"
OUTPUTS = {"out": "folder"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--features-from", "--manifest", dest="manifest", required=True, metavar="CSV",
        help="cohort manifest with a label column (docs/cohort_manifest.md)",
    )  # fmt: skip
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument(
        "--modality", choices=("ct", "pet", "both"), default="both", help="network(s) to train"
    )
    parser.add_argument(
        "--preset", choices=("study", "tiny"), default="study",
        help="study: the paper's protocol (4.3 M-parameter BasicNet, up to 1001 epochs); "
        "tiny: a small net for tests",
    )  # fmt: skip
    parser.add_argument("--config", metavar="JSON", help="settings overriding the preset")
    parser.add_argument("--architecture", metavar="NAME", help="basicnet, resnet10 … resnet101")
    parser.add_argument("--epochs", type=int, metavar="N")
    parser.add_argument("--batch-size", type=int, metavar="N")
    parser.add_argument("--learning-rate", type=float, metavar="LR")
    parser.add_argument("--workers", type=int, metavar="N", help="data-loader workers")
    parser.add_argument("--seed", type=int, metavar="S", help="training seed")
    parser.add_argument(
        "--test-fraction", type=float, default=TEST_FRACTION, metavar="F",
        help="held-out patients (0.3: the study's 7:3); 0 trains on all",
    )  # fmt: skip
    parser.add_argument("--split-seed", type=int, default=0, metavar="S")
    parser.add_argument("--init", metavar="PATH", help="start from these weights (transfer)")
    parser.add_argument(
        "--device", type=parse_device, default="auto", help="auto (CUDA if present), cpu, cuda[:N]"
    )
    parser.add_argument("--half", action="store_true", help="save float16 weights")
    parser.add_argument(
        "--patch-workers", type=int, default=1, metavar="N", help="processes cutting patches"
    )
    parser.add_argument(
        "--threads", type=int, metavar="N",
        help="CPU threads for PyTorch (default: its own; 1 on a machine busy with other work)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from BoneOligoMetLib.cli._common import progress_bar
    from BoneOligoMetLib.deep.config import preset
    from BoneOligoMetLib.deep.train_cohort import train_deep

    overrides: dict = json.loads(Path(args.config).read_text()) if args.config else {}
    if args.architecture:
        overrides.setdefault("network", {})["architecture"] = args.architecture
    train = overrides.setdefault("train", {})
    for option, key in (
        ("epochs", "epochs"),
        ("batch_size", "batch_size"),
        ("learning_rate", "learning_rate"),
        ("workers", "workers"),
        ("seed", "seed"),
    ):
        if getattr(args, option) is not None:
            train[key] = getattr(args, option)
    config = preset(args.preset, overrides)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    modalities = ("ct", "pet") if args.modality == "both" else (args.modality,)
    with progress_bar("train-deep") as progress:
        summary = train_deep(
            args.manifest,
            args.out,
            config,
            modalities=modalities,
            test_fraction=args.test_fraction,
            split_seed=args.split_seed,
            device=args.device,
            init=args.init,
            patch_workers=args.patch_workers,
            half=args.half,
            progress=progress,
        )
    lesions = summary["lesions"]
    print(
        f"lesions: {lesions['train']} train, {lesions['validation']} validation, "
        f"{lesions['test']} test (patients {summary['patients']})"
    )
    for modality, entry in summary["modalities"].items():
        training = entry["training"]
        line = (
            f"{modality}: best epoch {training['best_epoch']} of {training['epochs_run']} "
            f"({training['seconds_per_epoch']} s/epoch on {training['device']}), validation AUC "
            f"{training['best_validation'].get('auc', float('nan')):.3f}"
        )
        if "test_head" in entry:
            line += (
                f"; held-out AUC {entry['test_head']['auc']:.3f} (network), "
                f"{entry['test_features']['test_auc']:.3f} (deep features + logistic regression)"
            )
        print(line)
    if "pre_fusion_test_features" in summary:
        print(
            "CT+PET deep features (pre-fusion), held-out AUC "
            f"{summary['pre_fusion_test_features']['test_auc']:.3f}"
        )
    print(f"networks and summary: {args.out}")
    return 0
