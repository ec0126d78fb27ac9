"""Deep branch speed: patch cutting, feature inference per lesion and modality, training epochs.

Measured side by side in one run on the same patches:

- inference of one lesion's deep features (study BasicNet, 32³ patch) on the CPU with
  PyTorch's own handling of a batch of one against ours (padded to two, see
  ``BoneOligoMetLib.deep.train``): the ratio shows what the padding buys; target < 0.3 s/lesion;
- the same on the GPU when CUDA is present (and the CPU/GPU ratio);
- cutting a lesion's CT+PET patches from whole-body images;
- one training epoch on a cohort (default: the ``tiny`` and ``study`` presets), seconds per
  epoch and per lesion.

Usage::

    python bench/bench_deep.py                       # makes a 200-patient cohort in /tmp
    python bench/bench_deep.py --manifest M.csv --presets tiny --threads 2

Set ``--threads`` to the cores you have; on a machine shared with other work use 1.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def _timed(function, repeat: int) -> float:
    function()  # warm-up (oneDNN primitive creation)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", help="cohort manifest (default: a 200-patient phantom)")
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--presets", default="tiny,study", help="presets to time an epoch of")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--no-epoch", action="store_true", help="skip the training epochs")
    parser.add_argument("--epochs", type=int, default=1, help="epochs timed per preset")
    parser.add_argument("--workers", type=int, default=None, help="processes making the cohort")
    args = parser.parse_args()

    import numpy as np
    import SimpleITK as sitk
    import torch

    from BoneOligoMetLib.deep.config import preset
    from BoneOligoMetLib.deep.data import cohort_patches
    from BoneOligoMetLib.deep.infer import run_features
    from BoneOligoMetLib.deep.network import build_network, count_parameters
    from BoneOligoMetLib.deep.patches import lesion_patches
    from BoneOligoMetLib.deep.train import train_network
    from BoneOligoMetLib.io.manifest import read_manifest
    from BoneOligoMetLib.models.splits import patient_split

    torch.set_num_threads(args.threads)
    work = Path(tempfile.gettempdir()) / "bone_oligomet_bench"
    manifest = args.manifest
    if manifest is None:
        from BoneOligoMetLib.synthetic.phantom import generate_cohort

        manifest = generate_cohort(
            args.patients, seed=11, out_dir=work / f"deep{args.patients}", workers=args.workers
        )
    print(f"torch {torch.__version__}, {args.threads} CPU thread(s), CUDA: "
          f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")  # fmt: skip

    study = preset("study")
    model = build_network(study.network.architecture, **study.network.options()).eval()
    print(f"BasicNet (study): {count_parameters(model):,} parameters, patch "
          f"{study.patch.size}³ at {study.patch.spacing_mm} mm")  # fmt: skip

    # -- cutting patches from whole-body images --
    case = read_manifest(manifest).cases[0]
    ct = sitk.ReadImage(case.ct)
    suv = sitk.ReadImage(case.pet, sitk.sitkFloat32)
    lesions = sitk.ReadImage(case.lesions[0].lesions)
    n_lesions = len(lesion_patches(ct, suv, lesions, study.patch))
    cut = _timed(lambda: lesion_patches(ct, suv, lesions, study.patch), args.repeat) / n_lesions
    print(f"patch cutting (CT + PET + mask): {cut * 1000:.1f} ms per lesion")

    # -- inference of one lesion's features --
    patch = lesion_patches(ct, suv, lesions, study.patch)[0].images["ct"][None]

    def naive() -> None:
        with torch.inference_mode():
            model.features(torch.as_tensor(patch)[:, None])

    ours = _timed(lambda: run_features(model, patch), args.repeat)
    plain = _timed(naive, args.repeat)
    print(f"features, one lesion, one modality, CPU: {ours:.3f} s (PyTorch's batch of one: "
          f"{plain:.3f} s; ratio {plain / ours:.1f}×); target < 0.3 s")  # fmt: skip
    five = np.repeat(patch, 5, axis=0)
    batch5 = _timed(lambda: run_features(model, five), args.repeat) / 5
    print(f"features, a patient's 5 lesions in one batch: {batch5:.3f} s per lesion")
    if torch.cuda.is_available():
        gpu = build_network(study.network.architecture, **study.network.options()).eval().cuda()

        def on_gpu() -> None:
            run_features(gpu, patch)
            torch.cuda.synchronize()

        gpu_time = _timed(on_gpu, args.repeat)
        print(
            f"features, one lesion, GPU: {gpu_time * 1000:.1f} ms (CPU/GPU {ours / gpu_time:.0f}×)"
        )

        def on_gpu_half() -> None:
            with torch.autocast("cuda", dtype=torch.float16):
                run_features(gpu, patch)
            torch.cuda.synchronize()

        half_time = _timed(on_gpu_half, args.repeat)
        print(f"features, one lesion, GPU, mixed precision (float16 autocast): "
              f"{half_time * 1000:.1f} ms")  # fmt: skip
        five_gpu = _timed(lambda: (run_features(gpu, five), torch.cuda.synchronize()), args.repeat)
        print(f"features, a patient's 5 lesions in one batch, GPU: {five_gpu / 5 * 1000:.1f} ms "
              "per lesion")  # fmt: skip
    if args.no_epoch:
        return

    # -- one training epoch per preset (on CUDA: with and without mixed precision) --
    precisions = (True, False) if torch.cuda.is_available() else (True,)
    for name in args.presets.split(","):
        for mixed in precisions:
            config = preset(name).with_train(
                epochs=args.epochs, validate_every=args.epochs, workers=0, mixed_precision=mixed
            )
            patches = cohort_patches(manifest, config.patch, cache_dir=work / "deep_cache")
            train, _ = patient_split(patches.labels, patches.patients, 0.3, 0)
            fit, validation = patient_split(patches.labels[train], patches.patients[train], 0.2, 1)
            result = train_network(patches, "ct", config, train[fit], train[validation])
            seconds = result.seconds / args.epochs
            where = str(result.device)
            if str(result.device).startswith("cuda"):
                where += ", mixed precision" if mixed else ", float32"
            print(f"{name}: one epoch of {fit.size} lesions (+ validation of {validation.size}) "
                  f"{seconds:.2f} s, {seconds / fit.size * 1000:.1f} ms per lesion "
                  f"(mean of {args.epochs} epoch(s)), on {where}")  # fmt: skip


if __name__ == "__main__":
    main()
