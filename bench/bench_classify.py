"""Classification speed and memory: cold and warm clicks against the floor, in one run.

    python bench/bench_classify.py                    # ~4 min on 2 cores
    python bench/bench_classify.py --cold-runs 2 --repeats 3 --json out.json

On a whole-body synthetic patient (preset ``full``: CT 512×512×311 int16, PET 192×192×311, 5
lesions; made once into ``--work``) written as the Slicer panel hands it to its classifier
(uncompressed NRRD and ``job.json``):

1. **Cold**, a new process: ``--cold-runs`` fresh processes that import the library, read the
   images, load the packaged demo bundle and classify (``classify_case(overlay=False)``, as
   the worker does), each timing its phases; wall and CPU time and peak RSS (VmHWM) per run.
   Then the panel's real route: a fresh warm worker (``classify_worker.py --serve``) per run,
   whose first job is the cold click (the job line sent → its answer).
2. **Warm**, the reader's later clicks: the same workers' next jobs (library imported, bundle
   loaded; the worker still reads the job's NRRD images), with the panel's own share measured
   here (writing the job's images, drawing the overlay from the probabilities).
3. **Warm against the floor**, in this process, interleaved ``--repeats`` times:
   ``classify_case`` with the bundle loaded and the images in memory, beside the floor, the
   lesions' own work: cutting the CT and PET crops and the deep patches, pyradiomics on the
   ready crops (CT, PET and fused PET/CT images, the bundle's parameter files), the deep
   networks' inference, the model's prediction. Ratios are taken pair by pair.
4. **Peak memory** of ``bone-oligomet classify`` on the NIfTI files (reading, outputs and the
   overlay included; no snapshots), a fresh process.

The machine may be shared: every time is printed with its CPU time, the load average is
printed before and after, and medians (min–max) are quoted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "Resources" / "Scripts" / "classify_worker.py"
SEED = 3
PHASES = (  # progress message (prefix) -> phase that starts there
    ("checking the images", "prepare_case (checks, boxes, liver)"),
    ("deep features", "deep features (patches + inference)"),
    ("lesion ", "per-lesion features (crops, metabolic, radiomics)"),
    ("ROI rules", "ROI rules"),
    ("prediction", "prediction"),
    ("lesion(s) classified", "end"),
)


def _vm_hwm_mb(pid: str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _spread(values) -> str:
    values = list(values)
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def _load() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


# --- the patient --------------------------------------------------------------------------------


def patient(work: Path) -> Path:
    """The job folder (NRRD images, job.json) and the NIfTI files of a full patient."""
    folder = work / f"full_seed{SEED}_5"
    if (folder / "job.json").is_file():
        return folder
    from BoneOligoMetLib.io.images import write_image
    from BoneOligoMetLib.synthetic.phantom import generate_patient

    folder.mkdir(parents=True, exist_ok=True)
    case = generate_patient(SEED, "full", n_lesions=5)
    images = {"ct": case.ct, "suv": case.suv, "lesions": case.lesion_labels}
    for role, image in images.items():
        write_image(image, folder / f"{role}.nrrd", compress=False)
        write_image(image, folder / f"{role}.nii.gz")
    job = {
        "ct": "ct.nrrd",
        "suv": "suv.nrrd",
        "lesions": "lesions.nrrd",
        "clinical": {"age": case.clinical.age_years, "subtype": case.clinical.subtype},
        "bundle": None,
        "liver_seed_lps_mm": list(case.liver_seed_lps_mm),
        "device": "cpu",
    }
    (folder / "job.json").write_text(json.dumps(job, indent=1))
    return folder


def _job_copy(folder: Path, work: Path) -> Path:
    """A fresh job folder using the patient's images (links: no copy of 0.3 GB)."""
    target = Path(tempfile.mkdtemp(prefix="job-", dir=work))
    for name in ("ct.nrrd", "suv.nrrd", "lesions.nrrd", "job.json"):
        (target / name).symlink_to(folder / name)
    return target


# --- timing classify_case by its progress messages ---------------------------------------------


class Phases:
    """Progress callback that stamps the start of each phase (wall and CPU)."""

    def __init__(self) -> None:
        self.stamps: list[tuple[str, float, float]] = []

    def __call__(self, fraction: float, message: str) -> None:
        for prefix, phase in PHASES:
            if message.startswith(prefix) or (
                prefix == "lesion(s) classified" and prefix in message
            ):
                if not self.stamps or self.stamps[-1][0] != phase:
                    self.stamps.append((phase, time.perf_counter(), time.process_time()))
                return

    def durations(self) -> dict[str, tuple[float, float]]:
        out = {}
        for (phase, wall, cpu), (_, wall2, cpu2) in zip(self.stamps, self.stamps[1:]):
            out[phase] = (wall2 - wall, cpu2 - cpu)
        return out


def child_cold(folder: str) -> None:
    """One cold run, as the worker's first job: imports, reading, bundle, classify."""
    started, started_cpu = time.perf_counter(), time.process_time()
    marks = {}

    def mark(name: str) -> None:
        marks[name] = (time.perf_counter(), time.process_time())

    import skops.io  # noqa: F401
    from radiomics import featureextractor  # noqa: F401

    import BoneOligoMetLib.deep.network  # noqa: F401  (torch, monai: what the bundle needs)
    from BoneOligoMetLib.classify import classify_case
    from BoneOligoMetLib.io.images import read_image
    from BoneOligoMetLib.models.bundle import default_bundle_path, load_bundle

    mark("imports")
    job = json.loads(Path(folder, "job.json").read_text())
    ct, suv, lesions = (read_image(Path(folder, job[k])) for k in ("ct", "suv", "lesions"))
    mark("reading the NRRD images")
    bundle = load_bundle(default_bundle_path(), "cpu")
    mark("loading the bundle")
    phases = Phases()
    result = classify_case(
        ct,
        suv,
        lesions,
        clinical=job["clinical"],
        bundle=bundle,
        liver_seed_lps_mm=job["liver_seed_lps_mm"],
        progress=phases,
        device="cpu",
        **_no_overlay(classify_case),
    )
    mark("classify_case")
    steps, before = {}, (started, started_cpu)
    for name, stamp in marks.items():
        steps[name] = (stamp[0] - before[0], stamp[1] - before[1])
        before = stamp
    print(
        json.dumps(
            {
                "steps": steps,
                "phases": phases.durations(),
                "probabilities": getattr(result, "probabilities", None),
                "peak_mb": _vm_hwm_mb(),
            }
        )
    )


_MEASURE = (
    "import json, resource, subprocess, sys; "
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, "
    "stderr=subprocess.DEVNULL).returncode; "
    "r = resource.getrusage(resource.RUSAGE_CHILDREN); "
    "print(json.dumps([r.ru_maxrss, r.ru_utime + r.ru_stime, code]))"
)


def _no_overlay(classify_case) -> dict:
    """``overlay=False`` where classify_case takes it (the worker's way); a version before it
    (``--baseline``) made the overlay always, as its worker did."""
    import inspect

    return {"overlay": False} if "overlay" in inspect.signature(classify_case).parameters else {}


def child_warm(folder: str, runs: int) -> None:
    """``runs`` warm classify_case calls (bundle loaded, images in memory) after a first one."""
    from BoneOligoMetLib.classify import classify_case
    from BoneOligoMetLib.io.images import read_image
    from BoneOligoMetLib.models.bundle import default_bundle_path, load_bundle

    job = json.loads(Path(folder, "job.json").read_text())
    ct, suv, lesions = (read_image(Path(folder, job[k])) for k in ("ct", "suv", "lesions"))
    bundle = load_bundle(default_bundle_path(), "cpu")
    times = []
    for _ in range(runs + 1):
        wall, cpu = time.perf_counter(), time.process_time()
        classify_case(
            ct,
            suv,
            lesions,
            clinical=job["clinical"],
            bundle=bundle,
            liver_seed_lps_mm=job["liver_seed_lps_mm"],
            device="cpu",
            **_no_overlay(classify_case),
        )
        times.append((time.perf_counter() - wall, time.process_time() - cpu))
    print(json.dumps({"times": times[1:], "peak_mb": _vm_hwm_mb()}))


def _run_child(*args: str, code: Path = ROOT) -> tuple[dict, float, float, float]:
    """(child's JSON, wall s, CPU s, peak MB from wait4) of ``python this --child ...`` with
    the library of ``code`` (this checkout, or ``--baseline``'s)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(code)},
    )
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"child {args} failed (status {status})")
    data = json.loads(output.strip().splitlines()[-1]) if output.strip() else {}
    return data, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0


# --- the panel's warm worker -------------------------------------------------------------------


class Worker:
    """``classify_worker.py --serve`` driven as the panel drives it."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )

    def job(self, folder: Path) -> tuple[float, float, dict]:
        """(wall s, worker CPU s, result) of one job: the line sent → its answer."""
        cpu = _cpu_s(self.process.pid)
        started = time.perf_counter()
        self.process.stdin.write(f"{folder}\n")
        self.process.stdin.flush()
        answer = None
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise SystemExit("the worker ended")
            kind = line.strip().split(" ", 1)[0]
            if kind in ("BOM-RESULT", "BOM-ERROR", "BOM-CANCELLED"):
                answer = line.strip()
                wall = time.perf_counter() - started
                used = _cpu_s(self.process.pid) - cpu
            elif kind == "BOM-READY" and answer is not None:
                break
        if not answer.startswith("BOM-RESULT"):
            raise SystemExit(f"worker: {answer}")
        return wall, used, json.loads((folder / "result.json").read_text())

    def close(self) -> float:
        peak = _vm_hwm_mb(str(self.process.pid))
        self.process.stdin.close()
        self.process.wait(30)
        return peak


# --- the floor ---------------------------------------------------------------------------------


def floor_setup(ct, suv, lesions, bundle, job):
    """Ready-made inputs of the floor (untimed): each lesion's crop boxes, mask, fused crop, the
    bare pyradiomics extractors, the design matrix."""
    import copy
    import logging

    from radiomics import featureextractor

    from BoneOligoMetLib.classify import classify_case
    from BoneOligoMetLib.features.row import _LesionImages, prepare_case
    from BoneOligoMetLib.image.fusion import fuse

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    config = bundle.extraction
    case = prepare_case(ct, suv, lesions, liver_seed_lps_mm=job["liver_seed_lps_mm"], config=config)
    lesions_setup = {}
    for label in case.labels:
        cut = _LesionImages(case, label, config)
        boxes = {}
        for modality, image in (("ct", ct), ("pet", suv)):
            crop = cut.crop(modality)
            index = image.TransformPhysicalPointToIndex(crop.GetOrigin())
            boxes[modality] = (list(crop.GetSize()), list(index))
        fused = fuse(cut.crop("ct"), cut.crop("pet"), config.params("petct").fusion)
        lesions_setup[label] = (boxes, cut.mask, fused)
    extractors = {
        image: featureextractor.RadiomicsFeatureExtractor(
            copy.deepcopy(config.params(image).pyradiomics)
        )
        for image in config.images
    }
    result = classify_case(
        ct,
        suv,
        lesions,
        clinical=job["clinical"],
        bundle=bundle,
        liver_seed_lps_mm=job["liver_seed_lps_mm"],
        overlay=False,
    )
    design = bundle.design(result.features)
    return case, lesions_setup, extractors, design


def floor(ct, suv, lesions, bundle, setup) -> dict[str, tuple[float, float]]:
    """The lesions' own work, timed by part (wall s, CPU s)."""
    import numpy as np
    import SimpleITK as sitk

    from BoneOligoMetLib.deep.infer import run_features
    from BoneOligoMetLib.deep.patches import lesion_patches

    case, lesions_setup, extractors, design = setup
    parts: dict[str, list[float]] = {}

    def timed(name, function):
        wall, cpu = time.perf_counter(), time.process_time()
        out = function()
        spent = parts.setdefault(name, [0.0, 0.0])
        spent[0] += time.perf_counter() - wall
        spent[1] += time.process_time() - cpu
        return out

    images = {"ct": ct, "pet": suv}
    for boxes, mask, fused in lesions_setup.values():
        crops = timed(
            "crops (CT, PET, deep patches)",
            lambda boxes=boxes: {
                m: sitk.Cast(sitk.RegionOfInterest(images[m], *boxes[m]), sitk.sitkFloat32)
                for m in ("ct", "pet")
            },
        )
        crops["petct"] = fused  # made beforehand (our fusion is not pyradiomics')
        for image, extractor in extractors.items():
            timed("pyradiomics", lambda e=extractor, i=crops[image], m=mask: e.execute(i, m))
    if bundle.deep is not None:
        for modality, network in bundle.deep.networks.items():
            patches = timed(
                "crops (CT, PET, deep patches)",
                lambda m=modality, n=network: lesion_patches(
                    ct, suv, lesions, n.config.patch, modalities=(m,), regions=case.regions
                ),
            )
            stack = np.stack([p.images[modality] for p in patches])
            timed("deep inference", lambda n=network, s=stack: run_features(n.model, s))
    timed("prediction", lambda: bundle.pipeline.predict_proba(design))
    return {k: (v[0], v[1]) for k, v in parts.items()}


# --- the command line, and before/after ----------------------------------------------------


def _cli(folder: Path, work: Path, job: dict, code: Path) -> tuple[float, float, float, int]:
    """(wall s, CPU s, peak kB, exit status) of ``bone-oligomet classify`` on the NIfTI files
    with the library of ``code``. Started by a small Python that waits for it: the peak wait4
    reports is then the command's own (a child forked from this large process would inherit its
    size there)."""
    command = [
        sys.executable, "-m", "BoneOligoMetLib", "classify", "--ct", str(folder / "ct.nii.gz"),
        "--pet", str(folder / "suv.nii.gz"), "--lesions", str(folder / "lesions.nii.gz"),
        "--clinical", f"age={job['clinical']['age']}",
        "--clinical", f"subtype={job['clinical']['subtype']}",
        "--liver-seed=" + ",".join(str(v) for v in job["liver_seed_lps_mm"]),
        "--device", "cpu", "--out", str(work / "cli_out"), "--no-png",
    ]  # fmt: skip
    started = time.perf_counter()
    measured = subprocess.run(
        [sys.executable, "-c", _MEASURE, *command],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(code)},
    )
    wall = time.perf_counter() - started
    peak_kb, cpu, status = json.loads(measured.stdout.strip().splitlines()[-1])
    return wall, cpu, peak_kb, status


def before_after(folder: Path, work: Path, baseline: Path, job: dict, args, figures) -> None:
    """5. This checkout against ``baseline``, in turn (A B A B): a cold process, warm
    classify_case in a long-lived process, the command line."""
    rows: dict[str, dict[str, list]] = {}
    for _ in range(max(1, args.cold_runs - 1)):
        for name, code in (("before", baseline), ("after", ROOT)):
            data, wall, cpu, _ = _run_child("--child-cold", str(folder), code=code)
            row = rows.setdefault(name, {})
            row.setdefault("cold wall", []).append(wall)
            row.setdefault("cold CPU", []).append(cpu)
            row.setdefault("cold peak MB", []).append(data["peak_mb"])
            data, *_ = _run_child("--child-warm", str(folder), "--repeats", "3", code=code)
            row.setdefault("warm wall", []).append(statistics.median(t[0] for t in data["times"]))
            row.setdefault("warm CPU", []).append(statistics.median(t[1] for t in data["times"]))
            wall, cpu, peak_kb, _ = _cli(folder, work, job, code)
            row.setdefault("CLI wall", []).append(wall)
            row.setdefault("CLI CPU", []).append(cpu)
            row.setdefault("CLI peak MB", []).append(peak_kb / 1024)
    print(f"\n5. Before ({baseline}) and after, in turn, the same patient (median (min–max)); "
          "'cold': a new process as the worker's first job; 'warm': classify_case, bundle "
          "loaded (before: with its overlay, as its worker made it); CLI: bone-oligomet "
          "classify, no snapshots")  # fmt: skip
    print(f"   {'':14s} {'before':>22s} {'after':>22s}   after/before")
    for key in rows["before"]:
        b, a = rows["before"][key], rows["after"][key]
        ratio = statistics.median(a) / statistics.median(b)
        print(f"   {key:14s} {_spread(b):>22s} {_spread(a):>22s}   {ratio:.2f}")
    figures["before_after"] = rows


# --- main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "bone_oligomet_bench"))
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--warm-jobs", type=int, default=3, help="warm jobs per worker")
    parser.add_argument("--repeats", type=int, default=5, help="warm/floor pairs in process")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--child-cold", help=argparse.SUPPRESS)
    parser.add_argument("--child-patient", help=argparse.SUPPRESS)
    parser.add_argument("--child-warm", help=argparse.SUPPRESS)
    parser.add_argument(
        "--baseline",
        help="another checkout of the library (e.g. `git worktree add /tmp/base <commit>`): its "
        "cold process, warm classify_case and CLI are measured beside this one's (5.)",
    )
    args = parser.parse_args()
    if args.child_cold:
        child_cold(args.child_cold)
        return
    if args.child_patient:
        patient(Path(args.child_patient))
        return
    if args.child_warm:
        child_warm(args.child_warm, args.repeats)
        return
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    print(f"load average before: {_load()} ({os.cpu_count()} cores)")
    _run_child("--child-patient", str(work))  # made once, in a process of its own
    folder = patient(work)
    figures: dict = {"load_before": os.getloadavg()}

    # 1. cold, in fresh processes (before this process grows: wait4's peak is the child's)
    cold = [_run_child("--child-cold", str(folder)) for _ in range(args.cold_runs)]
    print(f"\n1. Cold (a new process; {args.cold_runs} runs; wall s, median (min–max))")
    print(f"   {'step':52s} {'wall':>18s} {'CPU':>18s}")
    steps = list(cold[0][0]["steps"]) + list(cold[0][0]["phases"])
    for step in steps:
        where = "steps" if step in cold[0][0]["steps"] else "phases"
        walls = [run[0][where][step][0] for run in cold]
        cpus = [run[0][where][step][1] for run in cold]
        print(f"   {('  ' if where == 'phases' else '') + step:52s} {_spread(walls):>18s} "
              f"{_spread(cpus):>18s}")  # fmt: skip
    print(f"   {'whole process (start to exit)':52s} {_spread(r[1] for r in cold):>18s} "
          f"{_spread(r[2] for r in cold):>18s}")  # fmt: skip
    print(f"   peak RSS (VmHWM): {_spread(r[0]['peak_mb'] for r in cold)} MB")
    figures["cold"] = [
        {"wall": r[1], "cpu": r[2], "peak_mb": r[0]["peak_mb"], **r[0]} for r in cold
    ]

    # 2. the panel's route: a fresh warm worker per run, first job cold, then warm jobs
    clicks_cold, clicks_warm, peaks = [], [], []
    for _ in range(args.cold_runs):
        worker = Worker()
        wall, cpu, result = worker.job(_job_copy(folder, work))
        clicks_cold.append((wall, cpu))
        for _ in range(args.warm_jobs):
            wall, cpu, result = worker.job(_job_copy(folder, work))
            clicks_warm.append((wall, cpu))
        peaks.append(worker.close())
    probabilities = result["probabilities"]

    # the panel's own share of a click, measured here
    import SimpleITK as sitk

    from BoneOligoMetLib.classify import classify_case, probability_overlay
    from BoneOligoMetLib.io.images import read_image, write_image
    from BoneOligoMetLib.models.bundle import default_bundle_path, load_bundle

    job = json.loads((folder / "job.json").read_text())
    ct, suv, lesions = (read_image(folder / job[k]) for k in ("ct", "suv", "lesions"))
    panel_write, panel_overlay = [], []
    for _ in range(3):
        target = Path(tempfile.mkdtemp(prefix="panel-", dir=work))
        started = time.perf_counter()
        for role, image in (("ct", ct), ("suv", suv), ("lesions", lesions)):
            write_image(image, target / f"{role}.nrrd", compress=False)
        panel_write.append(time.perf_counter() - started)
        for path in target.iterdir():
            path.unlink()
        target.rmdir()
        started = time.perf_counter()
        overlay = probability_overlay(
            lesions, lesions, {int(k): v for k, v in probabilities.items()}
        )
        panel_overlay.append(time.perf_counter() - started)
    del overlay
    write_s, overlay_s = statistics.median(panel_write), statistics.median(panel_overlay)
    print("\n2. The Slicer panel's route (classify_worker.py --serve; the job line → its answer)")
    print(f"   cold click (new worker, first job): wall {_spread(c[0] for c in clicks_cold)} s, "
          f"worker CPU {_spread(c[1] for c in clicks_cold)} s")  # fmt: skip
    print(f"   warm click (later jobs, {len(clicks_warm)}): wall "
          f"{_spread(c[0] for c in clicks_warm)} s, worker CPU "
          f"{_spread(c[1] for c in clicks_warm)} s")  # fmt: skip
    print(f"   the panel's share: writing the job's NRRD images {write_s:.2f} s, drawing the "
          f"overlay from the probabilities {overlay_s:.2f} s")  # fmt: skip
    warm_click = statistics.median(c[0] for c in clicks_warm) + write_s + overlay_s
    print(f"   warm click, panel included: {warm_click:.2f} s")
    print(f"   worker peak RSS (VmHWM): {_spread(peaks)} MB")
    figures["worker"] = {
        "cold": clicks_cold,
        "warm": clicks_warm,
        "panel_write_s": write_s,
        "panel_overlay_s": overlay_s,
        "peak_mb": peaks,
    }

    # 3. warm classify_case against the floor, interleaved, in this process
    bundle = load_bundle(default_bundle_path(), "cpu")
    setup = floor_setup(ct, suv, lesions, bundle, job)
    floor(ct, suv, lesions, bundle, setup)  # warm-up
    # pyradiomics as our extraction calls it (on its own 1 mm grids, the mask checked once per
    # grid): the floor's pyradiomics as this library runs it
    import BoneOligoMetLib.features.row as row_module

    inside = [0.0, 0.0]
    compute = row_module.compute

    def timed_compute(*a, **k):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return compute(*a, **k)
        finally:
            inside[0] += time.perf_counter() - wall
            inside[1] += time.process_time() - cpu

    row_module.compute = timed_compute
    warm, floors, ours_radiomics = [], [], []
    for _ in range(args.repeats):
        inside[:] = [0.0, 0.0]
        phases = Phases()
        started, started_cpu = time.perf_counter(), time.process_time()
        classify_case(
            ct,
            suv,
            lesions,
            clinical=job["clinical"],
            bundle=bundle,
            liver_seed_lps_mm=job["liver_seed_lps_mm"],
            progress=phases,
            device="cpu",
            overlay=False,
        )
        warm.append(
            (time.perf_counter() - started, time.process_time() - started_cpu, phases.durations())
        )
        ours_radiomics.append(tuple(inside))
        floors.append(floor(ct, suv, lesions, bundle, setup))
    row_module.compute = compute
    floor_wall = [sum(v[0] for v in f.values()) for f in floors]
    floor_cpu = [sum(v[1] for v in f.values()) for f in floors]
    print(f"\n3. Warm classify_case against the floor ({args.repeats} interleaved pairs, in "
          "process, images in memory, bundle loaded)")  # fmt: skip
    print(f"   {'':52s} {'wall':>18s} {'CPU':>18s}")
    print(f"   {'classify_case (no overlay)':52s} {_spread(w[0] for w in warm):>18s} "
          f"{_spread(w[1] for w in warm):>18s}")  # fmt: skip
    for phase in warm[0][2]:
        print(f"   {'  ' + phase:52s} {_spread(w[2][phase][0] for w in warm):>18s} "
              f"{_spread(w[2][phase][1] for w in warm):>18s}")  # fmt: skip
    print(f"   {'floor (the lesions own work)':52s} {_spread(floor_wall):>18s} "
          f"{_spread(floor_cpu):>18s}")  # fmt: skip
    for part in floors[0]:
        print(f"   {'  ' + part:52s} {_spread(f[part][0] for f in floors):>18s} "
              f"{_spread(f[part][1] for f in floors):>18s}")  # fmt: skip
    ratios = [w[0] / f for w, f in zip(warm, floor_wall)]
    ratios_cpu = [w[1] / f for w, f in zip(warm, floor_cpu)]
    print(
        f"   warm / floor, pair by pair: wall {_spread(ratios)}, CPU {_spread(ratios_cpu)} "
        "(target ≤ 1.5)"
    )
    # Floor B: the same with pyradiomics timed inside our own extraction instead of bare
    floor_b = [
        w - f["pyradiomics"][0] + r[0] for w, f, r in zip(floor_wall, floors, ours_radiomics)
    ]
    floor_b_cpu = [
        c - f["pyradiomics"][1] + r[1] for c, f, r in zip(floor_cpu, floors, ours_radiomics)
    ]
    print(f"   {'floor B: pyradiomics timed inside classify_case':52s} {_spread(floor_b):>18s} "
          f"{_spread(floor_b_cpu):>18s}")  # fmt: skip
    ratios_b = [w[0] / f for w, f in zip(warm, floor_b)]
    ratios_b_cpu = [w[1] / f for w, f in zip(warm, floor_b_cpu)]
    print(f"   warm / floor B, pair by pair: wall {_spread(ratios_b)}, CPU {_spread(ratios_b_cpu)}")
    click_ratio = warm_click / statistics.median(floor_wall)
    print(f"   the panel's warm click (2.) / floor: {click_ratio:.2f}")
    figures["in_process"] = {
        "warm": warm,
        "floor": floors,
        "ratio": ratios,
        "ratio_cpu": ratios_cpu,
        "floor_b": floor_b,
        "ratio_b": ratios_b,
    }
    del ct, suv, lesions, setup, bundle

    # 4. the command line's peak memory
    wall, cpu, peak_kb, status = _cli(folder, work, job, ROOT)
    print(f"\n4. bone-oligomet classify on the NIfTI files (a new process; outputs and the "
          f"overlay written, no snapshots): exit {status}, wall {wall:.2f} s, CPU {cpu:.2f} s, "
          f"peak RSS {peak_kb / 1024:.0f} MB")  # fmt: skip
    figures["cli"] = {"wall": wall, "cpu": cpu, "peak_mb": peak_kb / 1024, "exit": status}
    if args.baseline:
        before_after(folder, work, Path(args.baseline), job, args, figures)
    print(f"\nload average after: {_load()}")
    figures["load_after"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1, default=str))
    del sitk


if __name__ == "__main__":
    main()
