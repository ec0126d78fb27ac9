"""Build the packaged synthetic demo bundle (``BoneOligoMetLib/data/demo_bundle``).

    python -m BoneOligoMetLib.synthetic.demo_bundle [--patients 200] [--seed 11] [--work DIR]

The recipe: a synthetic cohort from the phantom → the CT and PET deep-feature networks
(``tiny`` preset, so that the bundle stays small and builds on a CPU in minutes) trained on the
training patients → every lesion's features (metabolic, CT / PET / fused radiomics, deep,
clinical) → the study's DLR+Complex random forest fitted on the same training patients → the
held-out patients' AUC (DeLong CI) against the SUVmax-vs-liver reading, recorded in the bundle's
manifest. The manifest also records a hash of the recipe (``recipe_sha256``); ``--check`` tells
whether the packaged bundle was built from the current recipe, so it is rebuilt only when its
inputs change. The bundle is marked "synthetic — not for clinical use".
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional

from BoneOligoMetLib.deep.config import preset
from BoneOligoMetLib.deep.train_cohort import train_deep
from BoneOligoMetLib.features.cohort import extract_cohort
from BoneOligoMetLib.features.config import ExtractionConfig
from BoneOligoMetLib.io.manifest import read_manifest
from BoneOligoMetLib.models.bundle import default_bundle_path, save_bundle
from BoneOligoMetLib.models.stats import delong_test
from BoneOligoMetLib.synthetic.phantom import generate_cohort

log = logging.getLogger(__name__)

RECIPE = {
    "patients": 200,
    "seed": 11,
    "preset": "small",
    "deep_preset": "tiny",
    "deep_epochs": 80,
    "test_fraction": 0.3,
    "split_seed": 0,
    "model": "dlr_complex",
    "classifier": "rf",
}


def recipe_hash(recipe: dict[str, Any]) -> str:
    """The recipe and the feature settings (parameters only: whether this environment computes
    the same features is the bundle's reference case's to say, not a version string's)."""

    config = ExtractionConfig()
    spec = {
        "recipe": recipe,
        "groups": {g: config.settings_digest(g) for g in config.groups},
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def build(out: Path, work: Path, recipe: dict[str, Any], workers: int = 2) -> dict[str, Any]:
    import numpy as np

    from BoneOligoMetLib.models.evaluation import evaluate
    from BoneOligoMetLib.models.fit import fit_baseline, fit_model
    from BoneOligoMetLib.models.table import FeatureTable

    work.mkdir(parents=True, exist_ok=True)
    manifest = generate_cohort(
        recipe["patients"], recipe["seed"], work / "cohort", preset=recipe["preset"],
        workers=workers,
    )  # fmt: skip
    deep_dir = work / "deep"
    config = preset(recipe["deep_preset"]).with_train(epochs=recipe["deep_epochs"])
    deep_summary = train_deep(
        manifest, deep_dir, config, test_fraction=recipe["test_fraction"],
        split_seed=recipe["split_seed"], patch_workers=workers,
    )  # fmt: skip
    extraction = ExtractionConfig(deep_model=str(deep_dir))
    table_path = work / "features.parquet"
    extract_cohort(read_manifest(manifest), table_path, config=extraction, workers=workers)
    table = FeatureTable.read(table_path)
    # the deep networks' split: their training side (train + validation) fits the forest
    sides = {}
    for line in (deep_dir / "split.csv").read_text().splitlines()[1:]:
        patient, lesion, _, side = line.split(",")
        sides[(patient, int(lesion))] = side
    keys = [(str(r["patient_id"]), int(r["lesion_label"])) for r in table.rows]
    train = np.asarray([i for i, k in enumerate(keys) if sides[k] != "test"])
    test = np.asarray([i for i, k in enumerate(keys) if sides[k] == "test"])
    fitted = fit_model(table, None, recipe["model"], recipe["classifier"], train)
    baseline = fit_baseline(table, train)
    y = table.y[test]
    p_model = fitted.predict_proba(table, test)
    p_base = baseline.predict_proba(table, test)
    patients = table.patients[test]
    model_eval = evaluate(y, p_model, fitted.threshold, model=recipe["model"],
                          classifier=recipe["classifier"], set_name="test",
                          patients=patients)  # fmt: skip
    base_eval = evaluate(y, p_base, baseline.threshold, model="suvmax_liver",
                         classifier="rule", set_name="test", patients=patients)  # fmt: skip
    delong = delong_test(y, p_model, p_base)
    metrics = {
        "test_lesions": int(test.size),
        "test_patients": len(set(table.patients[test])),
        "dlr_complex_rf": model_eval.as_row(),
        "suvmax_liver": base_eval.as_row(),
        "delong_p_vs_suvmax_liver": delong.p_value,
        "deep": deep_summary,
    }
    save_bundle(
        out,
        pipeline=fitted.pipeline,
        feature_schema=fitted.features,
        threshold=fitted.threshold,
        extraction=ExtractionConfig(),
        deep_folder=deep_dir,
        name="BoneOligoMet synthetic demo (DLR+Complex, RF)",
        synthetic=True,
        training={
            "recipe": recipe,
            "recipe_sha256": recipe_hash(recipe),
            "lesions": int(train.size),
            "patients": len(set(table.patients[train])),
            "malignant": int(table.y[train].sum()),
            "threshold_method": fitted.threshold_method,
            "lasso_lambda": fitted.lasso_lambda,
            "selected": fitted.selected,
            "selection_counts": fitted.selection_counts,
        },
        metrics=metrics,
    )
    return metrics


def main(argv: Optional[list[str]] = None) -> int:

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=default_bundle_path())
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one)")
    parser.add_argument("--patients", type=int, default=RECIPE["patients"])
    parser.add_argument("--seed", type=int, default=RECIPE["seed"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--threads", type=int, default=1, help="PyTorch CPU threads (1: workers use the cores)"
    )
    parser.add_argument("--check", action="store_true", help="is the bundle up to date?")
    args = parser.parse_args(argv)
    recipe = {**RECIPE, "patients": args.patients, "seed": args.seed}
    if args.check:
        manifest = args.out / "manifest.json"
        built = json.loads(manifest.read_text())["training"].get("recipe_sha256") if (
            manifest.is_file()) else None  # fmt: skip
        current = built == recipe_hash(recipe)
        print("up to date" if current else "out of date: rebuild with python -m "
              "BoneOligoMetLib.synthetic.demo_bundle")  # fmt: skip
        return 0 if current else 1
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import torch

    torch.set_num_threads(args.threads)
    work = args.work or Path(tempfile.mkdtemp(prefix="bone_oligomet_bundle_"))
    staging = args.out.with_name(args.out.name + ".new")
    if staging.exists():
        shutil.rmtree(staging)
    metrics = build(staging, work, recipe, args.workers)
    if args.out.exists():
        shutil.rmtree(args.out)
    staging.rename(args.out)
    model, base = metrics["dlr_complex_rf"], metrics["suvmax_liver"]
    print(
        f"held-out: DLR+Complex RF AUC {model['auc']:.3f} [{model['auc_low']:.3f}, "
        f"{model['auc_high']:.3f}] vs SUVmax > liver {base['auc']:.3f} [{base['auc_low']:.3f}, "
        f"{base['auc_high']:.3f}], DeLong p = {metrics['delong_p_vs_suvmax_liver']:.3g} "
        f"({metrics['test_lesions']} lesions, {metrics['test_patients']} patients)"
    )
    print(f"bundle: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
