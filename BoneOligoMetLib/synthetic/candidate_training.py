"""Training the candidate ranking (:mod:`BoneOligoMetLib.lesions.candidate_ranking`) on
synthetic patients; the packaged model is ``BoneOligoMetLib/data/candidates/ranking.json``.

    python -m BoneOligoMetLib.synthetic.candidate_training          # retrain (~20 min, 2 cores)
    python -m BoneOligoMetLib.synthetic.candidate_training --check  # is the packaged model current?

The recipe: synthetic patients of the tuning seeds only. ``full`` preset: cohort seeds 1701 and
1705, and seed 1702 with two osteoblastic and one mixed metastasis each, so that the faint, CT-found
metastases are not too rare to learn; ``small`` preset (coarser grids): seeds 1703 and 1704
likewise, so that the ranking does not hang on one scanner's resolution. Every focus the search
proposes (``candidates``) with its features, labelled by whether it lies in or within 5 mm of a
generated lesion; scikit-learn's ``HistGradientBoostingClassifier``; its patient-grouped
out-of-fold scores give the operating point (the score above which the ``full`` tuning patients
had ``fp_per_patient`` false candidates each on average). The recipe's hash, with the search's
parameters and the feature list, is stored in the model: ``--check`` tells whether the packaged
model was trained with the current ones (bump :data:`FEATURE_VERSION` when the computation of a
feature changes). The seeds of the benchmark (``bench/bench_candidates.py``) are never used here.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any, Optional

import numpy as np

from BoneOligoMetLib.lesions.candidate_features import FEATURES
from BoneOligoMetLib.lesions.candidate_ranking import (
    DEFAULT_MODEL,
    FORMAT,
    HIT_MM,
    match_lesions,
    model_from_dict,
    recipe_hash,
    settings_hash,
)

OSTEOBLASTIC_SET = ["osteoblastic_metastasis", "osteoblastic_metastasis", "mixed_metastasis"]
RECIPE: dict[str, Any] = {
    "cohorts": [
        {"seed": 1701, "patients": 50, "preset": "full", "lesion_types": None},
        {"seed": 1702, "patients": 35, "preset": "full", "lesion_types": OSTEOBLASTIC_SET},
        {"seed": 1705, "patients": 40, "preset": "full", "lesion_types": None},
        {"seed": 1703, "patients": 60, "preset": "small", "lesion_types": None},
        {"seed": 1704, "patients": 30, "preset": "small", "lesion_types": OSTEOBLASTIC_SET},
    ],
    "hit_mm": HIT_MM,
    "model": {
        "max_depth": 4,
        "max_iter": 250,
        "learning_rate": 0.05,
        "l2_regularization": 1.0,
        "random_state": 0,
    },
    "folds": 5,
    "fp_per_patient": 1.0,
    "threshold_preset": "full",
}


def export_trees(estimator) -> tuple[float, list[dict[str, list]]]:
    """(baseline, trees) of a fitted binary ``HistGradientBoostingClassifier``, as lists."""
    baseline = float(np.ravel(estimator._baseline_prediction)[0])
    trees = []
    for (predictor,) in estimator._predictors:
        nodes = predictor.nodes
        if np.any(nodes["is_categorical"]):
            raise ValueError("categorical splits are not exported")
        trees.append(
            {
                "feature": nodes["feature_idx"].astype(int).tolist(),
                # exact: a threshold may equal a feature's value (a ratio of counts)
                "threshold": [float(v) for v in nodes["num_threshold"]],
                "left": nodes["left"].astype(int).tolist(),
                "right": nodes["right"].astype(int).tolist(),
                "leaf": nodes["is_leaf"].astype(bool).tolist(),
                "value": [float(f"{v:.9g}") for v in nodes["value"]],
                "missing_left": nodes["missing_go_to_left"].astype(bool).tolist(),
            }
        )
    return baseline, trees


def patient_rows(job: tuple) -> dict[str, Any]:
    """Features and labels of every focus of one generated patient (a worker's job):
    ``(seed, index, preset, lesion_types)``."""
    from BoneOligoMetLib.lesions.candidates import search
    from BoneOligoMetLib.synthetic.phantom import generate_patient

    seed, index, preset, lesion_types = job
    patient = generate_patient(seed, preset, index=index, lesion_types=lesion_types)
    found = search(patient.ct, patient.suv)
    hits, _ = match_lesions(found.points_lps(), patient.lesion_labels, HIT_MM)
    return {
        "patient": f"{seed}/{index}",
        "X": found.features,
        "hit": hits,
        "lesions": [int(lesion.label) for lesion in patient.lesions],
    }


def _threshold(scores: list[np.ndarray], hits: list[np.ndarray], fp_per_patient: float) -> float:
    """The score above which the patients have ``fp_per_patient`` false candidates on average."""
    false = np.sort(np.concatenate([s[h == 0] for s, h in zip(scores, hits)]))[::-1]
    k = int(np.floor(fp_per_patient * len(scores)))
    return float(false[k]) if k < false.size else 0.0


def _cohort_hash(cohort: dict[str, Any]) -> str:
    return settings_hash({"cohort": cohort, "hit_mm": HIT_MM})[:16]


def _cohort_rows(cohort: dict[str, Any], workers: int, work: Optional[Path]) -> list[dict]:
    """One cohort's foci (generated, or read back from ``work``)."""
    from concurrent.futures import ProcessPoolExecutor

    cache = work / f"foci_{_cohort_hash(cohort)}.npz" if work is not None else None
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as stored:
            return [
                {"patient": str(name), "preset": cohort["preset"], "X": stored[f"X{i}"],
                 "hit": stored[f"hit{i}"], "lesions": stored[f"lesions{i}"].tolist()}
                for i, name in enumerate(stored["patients"])
            ]  # fmt: skip
    jobs = [
        (cohort["seed"], i, cohort["preset"], cohort["lesion_types"])
        for i in range(cohort["patients"])
    ]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        rows = [{**r, "preset": cohort["preset"]} for r in pool.map(patient_rows, jobs)]
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"patients": np.array([r["patient"] for r in rows])}
        for i, r in enumerate(rows):
            arrays.update({f"X{i}": r["X"], f"hit{i}": r["hit"],
                           f"lesions{i}": np.asarray(r["lesions"], dtype=int)})  # fmt: skip
        np.savez(cache, **arrays)
    return rows


def train(recipe: dict[str, Any], workers: int = 2, work: Optional[Path] = None) -> dict[str, Any]:
    """The ranking model of ``recipe`` as JSON-ready data (generates the patients; with
    ``work``, keeps their foci there so that a second run only fits)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import GroupKFold

    rows = [row for cohort in recipe["cohorts"] for row in _cohort_rows(cohort, workers, work)]
    X = np.concatenate([r["X"] for r in rows])
    y = np.concatenate([r["hit"] > 0 for r in rows])
    groups = np.concatenate([[i] * len(r["hit"]) for i, r in enumerate(rows)])
    out_of_fold = np.zeros(len(y))
    for fit, held in GroupKFold(recipe["folds"]).split(X, y, groups):
        model = HistGradientBoostingClassifier(**recipe["model"]).fit(X[fit], y[fit])
        out_of_fold[held] = model.predict_proba(X[held])[:, 1]
    scores = [out_of_fold[groups == i] for i in range(len(rows))]
    # the operating point is set on the patients of the preset it is meant for
    chosen = [i for i, r in enumerate(rows) if r["preset"] == recipe["threshold_preset"]]
    threshold = _threshold(
        [scores[i] for i in chosen], [rows[i]["hit"] for i in chosen], recipe["fp_per_patient"]
    )
    found = sum(len({int(h) for h in rows[i]["hit"][scores[i] > threshold] if h}) for i in chosen)
    model = HistGradientBoostingClassifier(**recipe["model"]).fit(X, y)
    baseline, trees = export_trees(model)
    data = {
        "format": FORMAT,
        "name": "BoneOligoMet candidate ranking (synthetic training data)",
        "synthetic": True,
        "features": list(FEATURES),
        "baseline": baseline,
        "threshold": threshold,
        "recipe_sha256": recipe_hash(recipe),
        "training": {
            "recipe": recipe,
            "patients": len(rows),
            "foci": len(y),
            "foci_in_lesions": int(y.sum()),
            "lesions": int(sum(len(r["lesions"]) for r in rows)),
            "threshold_patients": len(chosen),
            "threshold_lesions": int(sum(len(rows[i]["lesions"]) for i in chosen)),
            "lesions_found_out_of_fold_at_threshold": int(found),
        },
        "trees": trees,
    }
    exported = model_from_dict(data, "the trained model")
    if not np.allclose(exported.score(X), model.predict_proba(X)[:, 1], atol=1e-6):
        raise RuntimeError("the exported trees do not reproduce scikit-learn's scores")
    return data


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", type=Path, help="keep the patients' foci here (a rerun fits)")
    parser.add_argument("--check", action="store_true", help="is the model up to date?")
    args = parser.parse_args(argv)
    if args.check:
        try:
            built = json.loads(args.out.read_text()).get("recipe_sha256")
        except (OSError, ValueError):
            built = None
        current = built == recipe_hash(RECIPE)
        print(
            "up to date"
            if current
            else "out of date: retrain with python -m BoneOligoMetLib.synthetic.candidate_training"
        )
        return 0 if current else 1
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    data = train(RECIPE, args.workers, args.work)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    staging = args.out.with_name(args.out.name + ".new")
    staging.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    staging.replace(args.out)
    summary = data["training"]
    print(
        f"trained on {summary['patients']} patients, {summary['foci']} foci "
        f"({summary['foci_in_lesions']} in lesions); threshold {data['threshold']:.4f}: "
        f"{summary['lesions_found_out_of_fold_at_threshold']} of "
        f"{summary['threshold_lesions']} lesions of the {summary['threshold_patients']} "
        f"{RECIPE['threshold_preset']} patients found out of fold at "
        f"{RECIPE['fp_per_patient']:g} false candidate per patient"
    )
    print(f"model: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
