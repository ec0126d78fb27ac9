"""Benchmark of the whole-body candidate finder on synthetic ``full`` patients never used for
tuning (the ranking was trained on seeds 1701–1705; see ``synthetic.candidate_training``; seeds
4242 and 4343 measured an earlier ranking and were looked at before it was retrained with more
patients, so they are no longer unseen).

    python bench/bench_candidates.py                       # 50 cohort + 25 CT-set patients
    python bench/bench_candidates.py --patients 30 --ct-patients 0 --workers 2

Two sets: the cohort (seed 5252: patients drawn like the study's, 1–7 lesions of every kind) and
a CT set (seed 5353: two osteoblastic and one mixed metastasis each), so that non-avid metastases
(SUVmax < 2.2), rare in a cohort, are numerous enough to measure. Per patient: every focus the
finder scores, matched to the generator's lesions (a candidate point in a lesion or within 5 mm
of it finds it; further candidates on a found lesion count neither way); the ROIs of the
proposed candidates (``--labels``) against the lesion masks (autoPET metrics: false-positive
volume = predicted components touching no lesion, false-negative volume = lesions touching no
prediction, Dice over the patient); wall and CPU seconds of the finder and of the ROIs (the
generation is not counted).

Reports: the FROC (sensitivity against false candidates per patient) for lesions with SUVmax ≥
2.2 and for non-avid metastases, and the default operating point; sensitivity by SUVmax band and
lesion kind; the site column against the generator's; the autoPET metrics; times; every missed
lesion and what the false candidates lie on (the generator's tissue map); a picture of a miss
and of a false candidate (``docs/figures/``). All numbers are on synthetic data.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from BoneOligoMetLib.lesions.candidate_ranking import match_lesions
from BoneOligoMetLib.lesions.candidates import candidate_rois, find_candidates
from BoneOligoMetLib.synthetic.candidate_training import OSTEOBLASTIC_SET
from BoneOligoMetLib.synthetic.phantom import generate_patient
from BoneOligoMetLib.synthetic.phantom.anatomy import Tissue

COHORT_SEED, CT_SEED = 5252, 5353
SITE_OF = {"vertebrae": "spine", "pelvis": "pelvis", "ribs": "ribs", "limbs": "limbs",
           "skull": "skull", "sternum": "other", "shoulder": "other"}  # fmt: skip
BANDS = ((0.0, 2.2), (2.2, 3.0), (3.0, 5.0), (5.0, np.inf))
FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures"


def _patient(seed: int, index: int, ct_set: bool):
    types = OSTEOBLASTIC_SET if ct_set else None
    return generate_patient(seed, "full", index=index, lesion_types=types)


def _autopet(predicted: np.ndarray, truth: np.ndarray, voxel_ml: float) -> dict:
    """autoPET's false-positive and false-negative volumes (mL) and Dice of one patient."""
    pred, true = predicted > 0, truth > 0
    components, count = ndimage.label(pred)
    touching = np.unique(components[pred & true])
    fp = np.isin(components, np.setdiff1d(np.arange(1, count + 1), touching)).sum()
    lesions, n = ndimage.label(true)
    found = np.unique(lesions[pred & true])
    fn = np.isin(lesions, np.setdiff1d(np.arange(1, n + 1), found)).sum()
    denominator = pred.sum() + true.sum()
    return {
        "fp_ml": float(fp * voxel_ml),
        "fn_ml": float(fn * voxel_ml),
        "dice": float(2.0 * (pred & true).sum() / denominator) if denominator else 1.0,
    }


def run_patient(job: tuple) -> dict:
    seed, index, ct_set = job
    patient = _patient(seed, index, ct_set)
    wall, cpu = time.perf_counter(), time.process_time()
    found = find_candidates(patient.ct, patient.suv)
    find_wall, find_cpu = time.perf_counter() - wall, time.process_time() - cpu
    points = np.array([c.point_lps_mm for c in found.scored]).reshape(-1, 3)
    hits, _ = match_lesions(points, patient.lesion_labels)
    tissues = sitk.GetArrayViewFromImage(patient.tissues)
    on_tissue = [
        int(tissues[patient.tissues.TransformPhysicalPointToIndex(tuple(p))[::-1]]) for p in points
    ]
    wall, cpu = time.perf_counter(), time.process_time()
    rois = candidate_rois(patient.ct, patient.suv, found)
    roi_wall, roi_cpu = time.perf_counter() - wall, time.process_time() - cpu
    voxel_ml = float(np.prod(patient.ct.GetSpacing())) / 1000.0
    autopet = _autopet(
        sitk.GetArrayViewFromImage(rois), sitk.GetArrayViewFromImage(patient.lesion_labels),
        voxel_ml,
    )  # fmt: skip
    proposed = {c.rank for c in found.candidates}
    return {
        "seed": seed,
        "index": index,
        "ct_set": ct_set,
        "threshold": found.threshold,
        "scores": [c.score for c in found.scored],
        "proposed": [c.rank in proposed for c in found.scored],
        "hits": hits.tolist(),
        "tissue": on_tissue,
        "sites": [c.site for c in found.scored],
        "points": points.tolist(),
        "why": [c.why for c in found.scored],
        "lesions": patient.lesion_records(),
        "autopet": autopet,
        "seconds": {
            "find_wall": find_wall,
            "find_cpu": find_cpu,
            "roi_wall": roi_wall,
            "roi_cpu": roi_cpu,
        },
    }


def lesion_table(results: list[dict]) -> list[dict]:
    """One row per lesion: its best score, whether proposed, the site of its best candidate."""
    rows = []
    for r in results:
        scores, hits = np.asarray(r["scores"]), np.asarray(r["hits"])
        for lesion in r["lesions"]:
            mine = np.flatnonzero(hits == lesion["lesion_label"])
            best = int(mine[np.argmax(scores[mine])]) if mine.size else -1
            rows.append({
                "patient": f"{r['seed']}/{r['index']}", "ct_set": r["ct_set"],
                "type": lesion["lesion_type"], "malignant": lesion["malignant"],
                "bone": lesion["bone"], "site": SITE_OF[lesion["site"]],
                "suv_max": lesion["measured_suv_max"], "volume_ml": lesion["volume_ml"],
                "centre": lesion["centre_lps_mm"], "label": lesion["lesion_label"],
                "best": float(scores[best]) if best >= 0 else -1.0,
                "proposed": bool(best >= 0 and r["proposed"][best]),
                "found_site": r["sites"][best] if best >= 0 else "",
                "focus": best >= 0,
            })  # fmt: skip
    return rows


def false_scores(results: list[dict]) -> np.ndarray:
    return np.concatenate([np.asarray(r["scores"])[np.asarray(r["hits"]) == 0] for r in results])


def froc(rows: list[dict], false: np.ndarray, n_patients: int, levels) -> list[tuple]:
    """(false candidates per patient, sensitivity, threshold) for each level."""
    false = np.sort(false)[::-1]
    out = []
    for level in levels:
        k = int(np.floor(level * n_patients))
        threshold = false[k] if k < false.size else -1.0
        found = [row["best"] > threshold for row in rows]
        out.append((level, float(np.mean(found)) if found else float("nan"), float(threshold)))
    return out


def _share(flags) -> str:
    flags = list(flags)
    return f"{np.mean(flags):6.1%} ({sum(flags)}/{len(flags)})" if flags else "   -  (0/0)"


def report(results: list[dict], out: Path) -> dict:
    rows = lesion_table(results)
    cohort = [r for r in results if not r["ct_set"]]
    n_cohort, n_all = len(cohort), len(results)
    avid = [row for row in rows if row["suv_max"] >= 2.2 and not row["ct_set"]]
    faint_mets = [row for row in rows if row["suv_max"] < 2.2 and row["malignant"]]
    fp_cohort = [sum(p and h == 0 for p, h in zip(r["proposed"], r["hits"])) for r in cohort]
    fp_all = [sum(p and h == 0 for p, h in zip(r["proposed"], r["hits"])) for r in results]
    levels = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0)
    summary: dict = {"patients": n_cohort, "ct_set_patients": n_all - n_cohort}
    print(f"\nsynthetic data: {n_cohort} cohort patients (seed {COHORT_SEED}), "
          f"{n_all - n_cohort} CT-set patients (seed {CT_SEED}); full preset")  # fmt: skip
    print(f"lesions: {len(rows)}; SUVmax ≥ 2.2 in the cohort: {len(avid)}; "
          f"non-avid metastases (both sets): {len(faint_mets)}")  # fmt: skip
    print("\nFROC (false candidates per patient → sensitivity):")
    curve_avid = froc(avid, false_scores(cohort), n_cohort, levels)
    curve_faint = froc(faint_mets, false_scores(results), n_all, levels)
    for (level, a, _), (_, f, _) in zip(curve_avid, curve_faint):
        print(f"  {level:4.2f} FP/pt: SUVmax ≥ 2.2 {a:6.1%}   non-avid metastases {f:6.1%}")
    summary["froc"] = {"fp_per_patient": list(levels), "avid": [c[1] for c in curve_avid],
                       "non_avid_metastases": [c[1] for c in curve_faint]}  # fmt: skip
    print(f"\ndefault operating point (score > {results[0]['threshold']:.4f}):")
    print(f"  SUVmax ≥ 2.2 found: {_share(r['proposed'] for r in avid)}; false candidates per "
          f"cohort patient: mean {np.mean(fp_cohort):.2f} (max {max(fp_cohort)})")  # fmt: skip
    print(f"  non-avid metastases found: {_share(r['proposed'] for r in faint_mets)}; false "
          f"candidates per patient, both sets: mean {np.mean(fp_all):.2f}")  # fmt: skip
    print(f"  every lesion of the cohort: {_share(r['proposed'] for r in rows if not r['ct_set'])}")
    summary["operating_point"] = {
        "threshold": results[0]["threshold"],
        "avid_sensitivity": float(np.mean([r["proposed"] for r in avid])),
        "non_avid_metastases_sensitivity": float(np.mean([r["proposed"] for r in faint_mets]))
        if faint_mets
        else None,
        "false_per_patient_cohort": float(np.mean(fp_cohort)),
        "false_per_patient_all": float(np.mean(fp_all)),
    }
    print("\nby SUVmax band (cohort and CT set, found at the operating point):")
    for low, high in BANDS:
        band = [r for r in rows if low <= r["suv_max"] < high]
        print(f"  SUVmax {low:.1f}–{high:.1f}: {_share(r['proposed'] for r in band)}")
    print("by lesion kind:")
    for kind in sorted({r["type"] for r in rows}):
        mine = [r for r in rows if r["type"] == kind]
        avid_mine = [r for r in mine if r["suv_max"] >= 2.2]
        print(f"  {kind:24s} all {_share(r['proposed'] for r in mine)}   "
              f"SUVmax ≥ 2.2 {_share(r['proposed'] for r in avid_mine)}")  # fmt: skip
    sites = [(r["site"], r["found_site"]) for r in rows if r["proposed"]]
    print(
        f"site column = the generator's site: {_share(a == b for a, b in sites)}; "
        f"confusions {Counter(f'{a}->{b}' for a, b in sites if a != b).most_common()}"
    )
    metrics = [r["autopet"] for r in results]
    for key in ("fp_ml", "fn_ml", "dice"):
        values = np.array([m[key] for m in metrics])
        summary[f"autopet_{key}"] = {
            "mean": float(values.mean()),
            "median": float(np.median(values)),
        }
    text = ", ".join(
        f"{k} mean {summary[f'autopet_{k}']['mean']:.2f} median "
        f"{summary[f'autopet_{k}']['median']:.2f}"
        for k in ("fp_ml", "fn_ml", "dice")
    )
    print(f"autoPET metrics of the ROIs (--labels), per patient: {text}")
    seconds = {k: np.array([r["seconds"][k] for r in results]) for k in results[0]["seconds"]}
    summary["seconds"] = {k: {"median": float(np.median(v)), "max": float(v.max())}
                          for k, v in seconds.items()}  # fmt: skip
    print(
        "time per patient (s; machine shared with other work): "
        + ", ".join(f"{k} median {np.median(v):.1f} max {v.max():.1f}" for k, v in seconds.items())
    )
    print("\nmissed (not proposed) lesions with SUVmax ≥ 2.2 or malignant:")
    for r in rows:
        if not r["proposed"] and (r["suv_max"] >= 2.2 or r["malignant"]):
            reason = "no focus found" if not r["focus"] else f"ranked low (score {r['best']:.3f})"
            print(f"  {r['patient']:>9s} {r['type']:24s} {r['bone']:18s} SUVmax "
                  f"{r['suv_max']:.2f} {r['volume_ml']:.2f} mL: {reason}")  # fmt: skip
    names = {int(t): t.name.lower() for t in Tissue}
    false_on = Counter(
        names[t]
        for r in results
        for t, p, h in zip(r["tissue"], r["proposed"], r["hits"])
        if p and h == 0
    )
    print(f"false candidates lie on: {false_on.most_common()}")
    summary["false_on"] = dict(false_on)
    summary["lesions"] = rows
    _plot_froc(curve_avid, curve_faint, out)
    return summary


def _plot_froc(curve_avid, curve_faint, out: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.2, 3.6), dpi=120)
    axes = figure.add_subplot(1, 1, 1)
    for curve, name in (
        (curve_avid, "SUVmax ≥ 2.2 (cohort)"),
        (curve_faint, "non-avid metastases"),
    ):
        axes.plot([c[0] for c in curve], [c[1] for c in curve], marker="o", label=name)
    axes.set_xscale("log")
    axes.set_xticks([c[0] for c in curve_avid])
    axes.set_xticklabels([f"{c[0]:g}" for c in curve_avid])
    axes.minorticks_off()
    axes.set_xlabel("false candidates per patient")
    axes.set_ylabel("lesions found")
    axes.set_ylim(0, 1.02)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    axes.set_title("candidate finder, synthetic full-size patients (unseen seeds)", fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "candidates_froc.png", metadata={"Software": None})


def pictures(results: list[dict], rows: list[dict], out: Path) -> None:
    """A fused slice through the most avid missed lesion and through the best-scored false
    candidate (its ROI outlined)."""
    from BoneOligoMetLib.report.snapshots import fused_slice_png

    missed = [r for r in rows if not r["proposed"] and r["suv_max"] >= 2.2]
    if missed:
        miss = max(missed, key=lambda r: r["suv_max"])
        seed, index = (int(v) for v in miss["patient"].split("/"))
        patient = _patient(seed, index, miss["ct_set"])
        fused_slice_png(
            patient.ct, patient.suv, patient.lesion_labels, out / "candidates_miss.png",
            label=miss["label"],
            title=f"missed (synthetic): {miss['type'].replace('_', ' ')}, {miss['bone']}, "
            f"SUVmax {miss['suv_max']:.1f}\ncyan: the generator's lesion",
        )  # fmt: skip
    false = [(s, r, k) for r in results for k, (s, p, h) in
             enumerate(zip(r["scores"], r["proposed"], r["hits"])) if p and h == 0]  # fmt: skip
    if false:
        _, r, k = max(false, key=lambda item: item[0])
        patient = _patient(r["seed"], r["index"], r["ct_set"])
        found = find_candidates(patient.ct, patient.suv)
        candidate = found.scored[k]
        rois = candidate_rois(patient.ct, patient.suv, found, [candidate])
        slice_index = patient.ct.TransformPhysicalPointToIndex(candidate.point_lps_mm)[2]
        names = {int(t): t.name.lower().replace("_", " ") for t in Tissue}
        fused_slice_png(
            patient.ct, patient.suv, rois, out / "candidates_false.png", slice_index=slice_index,
            title=f"false candidate (synthetic), on {names[r['tissue'][k]]}: "
            f"score {candidate.score:.2f}\n{candidate.why}; cyan: its ROI",
        )  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=50, help="cohort patients (seed 5252)")
    parser.add_argument("--ct-patients", type=int, default=25, help="CT-set patients (5353)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", type=Path, default=FIGURES, help="figures folder")
    parser.add_argument("--json", type=Path, help="write every number to this file")
    args = parser.parse_args(argv)
    jobs = [(COHORT_SEED, i, False) for i in range(args.patients)]
    jobs += [(CT_SEED, i, True) for i in range(args.ct_patients)]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = list(pool.map(run_patient, jobs))
    print(f"{len(results)} patients in {time.perf_counter() - started:.0f} s "
          f"({args.workers} workers)")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    summary = report(results, args.out)
    pictures(results, summary["lesions"], args.out)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
