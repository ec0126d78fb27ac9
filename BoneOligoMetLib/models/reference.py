"""A bundle's reference case: a small synthetic lesion whose features are stored when the bundle
is saved and recomputed when it is loaded, so compatibility is decided by the numbers."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from BoneOligoMetLib.errors import BoneOligoMetError, BundleError
from BoneOligoMetLib.features.row import lesion_features, prepare_case
from BoneOligoMetLib.io.files import atomic_write, json_default

if TYPE_CHECKING:  # a type hint only: the bundle loader calls this module
    from BoneOligoMetLib.models.bundle import Bundle

log = logging.getLogger(__name__)

# Files in the bundle's own folder (package data and the Slicer build take its files, one level)
REFERENCE_VALUES = "reference.json"


REFERENCE_IMAGES = {k: f"reference_{k}.nrrd" for k in ("ct", "pet", "lesions")}


IMAGE_PREFIXES = ("met_", "ct_", "pet_", "petct_", "dl_")  # columns computed from the images


# A reference value "moved" when |here - saved| > REFERENCE_RTOL * max(|here|, |saved|) +
# REFERENCE_ATOL. Metabolic and radiomics values are float64 sums over float32 voxels read from
# the stored files: the same environment repeats them bit for bit, and a SimpleITK or NumPy
# build that rounds an interpolated voxel or a sum differently moves them by ~1e-7 relative (a
# float32 unit in the last place is 6e-8); a changed definition or discretisation moves them by
# far more than 1e-6.
REFERENCE_RTOL = 1e-6


REFERENCE_ATOL = 1e-12


# Deep features are float32 networks' outputs as z-scores (training SD units). Measured on the
# demo networks over 21 lesions against this machine's CPU: another CPU, thread count or PyTorch
# (2.11 vs 2.13) 0 (bit-identical); an H200 GPU 1.4e-6 SD, or 2.4e-3 SD with PyTorch's default
# TF32 convolutions. A changed network or patch preprocessing moves them by a fraction of an SD.
DEEP_ATOL_SD = 1e-2


def reference_images(seed: int = 12) -> tuple[Any, Any, Any, tuple[float, float, float]]:
    """A small synthetic case: CT (int16 HU, 2 mm, 80 × 80 × 48 mm), SUV PET (float32, 4 mm,
    same box, another grid), a lesion label image (uint8, label 1, on the CT grid) and the
    liver reference point (LPS mm). Left of the midline a liver (CT 58 HU, SUV 2.2), right a
    bone (cortex 1200 HU, marrow 260 HU, SUV 1.4) holding an osteolytic lesion (~90 HU with
    noise, lobulated edge; SUV blob up to ~8 with 8% noise), air around the body."""
    import SimpleITK as sitk

    rng = np.random.default_rng(seed)

    def mesh(shape: tuple[int, int, int], spacing_mm: float) -> list[np.ndarray]:
        axes = [(np.arange(n) - (n - 1) / 2) * spacing_mm for n in shape]
        return np.meshgrid(*axes, indexing="ij")  # z, y, x (mm from the box centre)

    def image(array: np.ndarray, spacing_mm: float) -> Any:
        out = sitk.GetImageFromArray(array)
        out.SetSpacing((spacing_mm,) * 3)
        out.SetOrigin(tuple(-(n - 1) / 2 * spacing_mm for n in array.shape[::-1]))
        return out

    z, y, x = mesh((24, 40, 40), 2.0)
    body = (x / 38) ** 2 + (y / 34) ** 2 <= 1
    bone = body & (x >= 2) & ((x - 20) ** 2 + y**2 <= 16**2)
    marrow = bone & ((x - 20) ** 2 + y**2 <= 13.5**2)
    angle = np.arctan2(y - 2, x - 20)
    lesion = np.sqrt((x - 20) ** 2 + (y - 2) ** 2 + (z - 1) ** 2) <= 8.5 + 1.5 * np.sin(3 * angle)
    hu = np.where(body, np.where(x < -2, 58.0, 40.0), -1000.0)
    hu[bone], hu[marrow], hu[lesion] = 1200.0, 260.0, 90.0
    hu += rng.normal(0.0, 12.0, hu.shape) * marrow  # texture where the features look
    ct = image(np.round(hu).astype(np.int16), 2.0)
    lesions = image(lesion.astype(np.uint8), 2.0)
    z, y, x = mesh((12, 20, 20), 4.0)
    body = (x / 38) ** 2 + (y / 34) ** 2 <= 1
    suv = np.where(body, np.where(x < -2, 2.2, 0.6), 0.0)
    suv[body & (x >= 2) & ((x - 20) ** 2 + y**2 <= 16**2)] = 1.4
    suv += 6.5 * np.exp(-((x - 20) ** 2 + (y - 2) ** 2 + (z - 1) ** 2) / (2 * 6.0**2))
    suv = np.clip(suv * (1 + rng.normal(0.0, 0.08, suv.shape)), 0.0, None)
    pet = image((np.round(suv * 256) / 256).astype(np.float32), 4.0)  # 1/256 SUV: compresses
    return ct, pet, lesions, (-20.0, 0.0, 0.0)


def write_reference(folder: Union[str, Path], extraction: Any, deep: Any, schema: Sequence[str]):
    """Write the reference case into a bundle folder: the images of :func:`reference_images` and the
    values the schema's image columns take for them here (deep features on ``deep``'s device;
    save on the CPU). Returns the values."""
    import SimpleITK as sitk

    target = Path(folder)
    ct, pet, lesions, liver = reference_images()
    for key, image in zip(("ct", "pet", "lesions"), (ct, pet, lesions)):
        sitk.WriteImage(image, str(target / REFERENCE_IMAGES[key]), True)
    columns = [c for c in schema if c.startswith(IMAGE_PREFIXES)]
    record = {"label": 1, "liver_seed_lps_mm": list(liver)}
    values = reference_values(target, record, extraction, deep, columns)
    record.update(environment=environment(deep), features=values)
    text = json.dumps(record, indent=1, default=json_default) + "\n"
    (target / REFERENCE_VALUES).write_text(text)
    return values


def reference_values(
    folder: Path, record: Mapping[str, Any], extraction: Any, deep: Any, columns: Sequence[str]
) -> dict[str, Any]:
    """The reference lesion's ``columns``, computed as ``classify`` computes a lesion's."""
    import SimpleITK as sitk

    if not columns:
        return {}
    images = [sitk.ReadImage(str(folder / REFERENCE_IMAGES[k])) for k in ("ct", "pet", "lesions")]
    label = int(record["label"])
    case = prepare_case(
        *images, liver_seed_lps_mm=record["liver_seed_lps_mm"], config=extraction, name="reference"
    )
    row = lesion_features(case, label, config=extraction)
    if deep is not None:
        row.update(deep.case_features(*images, labels=[label], regions=case.regions)[label])
    missing = [c for c in columns if c not in row]
    if missing:
        raise BundleError(f"{folder}: the reference case gives no {', '.join(missing[:3])} …")
    return {c: row[c] for c in columns}


def moved_features(saved: Mapping[str, Any], here: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(column, saved, here) for every value that differs beyond rounding (see the tolerances
    at the top of the module); NaN equals NaN, non-numbers must be equal."""
    moved = []
    for column, before in saved.items():
        after = here.get(column)
        if (
            isinstance(before, bool)
            or isinstance(after, bool)
            or not (isinstance(before, (int, float)) and isinstance(after, (int, float)))
        ):
            if before != after:
                moved.append((column, before, after))
            continue
        a, b = float(before), float(after)
        if np.isnan(a) and np.isnan(b):
            continue
        if column.startswith("dl_"):
            allowed = DEEP_ATOL_SD
        else:
            allowed = REFERENCE_RTOL * max(abs(a), abs(b)) + REFERENCE_ATOL
        if not abs(a - b) <= allowed:  # a NaN on one side moved
            moved.append((column, before, after))
    return moved


def _describe(moved: Sequence[tuple[str, Any, Any]], shown: int = 3) -> str:
    parts = []
    for column, before, after in moved[:shown]:
        numbers = all(isinstance(v, float) for v in (before, after))
        text = (
            f"{column} {before:.10g} → {after:.10g}"
            if numbers
            else f"{column} {before!r} → {after!r}"
        )
        if numbers and column.startswith("dl_"):
            text += f" ({after - before:+.2g} SD)"
        elif numbers and before != 0:
            text += f" ({(after - before) / abs(before):+.1e} relative)"
        parts.append(text)
    more = f"; {len(moved) - shown} more" if len(moved) > shown else ""
    return "; ".join(parts) + more


def environment(deep: Any = None) -> dict[str, str]:
    """What decides the features' values besides the bundle: the versions of the libraries that
    compute them, the Python, the processor and (deep features) the device."""
    import radiomics
    import SimpleITK as sitk

    import BoneOligoMetLib

    spec = {
        "bone-oligomet": BoneOligoMetLib.__version__,
        "pyradiomics": str(radiomics.__version__),
        "numpy": np.__version__,
        "SimpleITK": sitk.Version_VersionString(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    if deep is not None:
        import torch

        network = next(iter(deep.networks.values()))
        where = next(network.model.parameters()).device
        spec.update(torch=torch.__version__, monai=_version("monai"), device=str(where))
        if where.type == "cuda":
            spec["device"] += f" ({torch.cuda.get_device_name(where)})"
    return spec


def _version(package: str) -> str:
    """An installed package's version without importing it (MONAI takes ~1 s to import and
    using a network no longer needs it)."""
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def cache_dir() -> Path:
    """Where verdicts are kept: ``$XDG_CACHE_HOME/bone-oligomet`` (default ``~/.cache``)."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "bone-oligomet"


def check_reference(bundle: Bundle, manifest_sha256: str) -> None:
    """Recompute the reference case's features (once per bundle and environment; a pass is
    cached) and refuse the bundle when they moved, naming them."""
    env = environment(bundle.deep)
    key = hashlib.sha256(json.dumps([manifest_sha256, env], sort_keys=True).encode()).hexdigest()
    cached = cache_dir() / "bundle-checks" / f"{key[:32]}.json"
    if cached.is_file():
        return
    started = time.perf_counter()
    folder = bundle.folder
    path = bundle.folder / str(bundle.manifest["reference"])
    try:
        record = json.loads(path.read_text())
        saved = dict(record["features"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise BundleError(f"{path}: not a reference record ({error})") from None
    columns = [c for c in bundle.schema if c.startswith(IMAGE_PREFIXES)]
    lacking = [c for c in columns if c not in saved]
    if lacking:
        raise BundleError(f"{path}: no reference value of {len(lacking)} features ({lacking[0]} …)")
    try:
        here = reference_values(folder, record, bundle.extraction, bundle.deep, columns)
    except BoneOligoMetError as error:
        raise BundleError(f"{path}: the reference case fails here ({error})") from None
    moved = moved_features({c: saved[c] for c in columns}, here)
    if moved:
        then = record.get("environment", {})
        changed = ", ".join(
            f"{k} {then.get(k)} → {v}" for k, v in env.items() if then.get(k) not in (None, v)
        )
        raise BundleError(
            f"{path}: {len(moved)} of the {len(columns)} features of the reference case differ "
            f"here from those the model was saved with ({_describe(moved)})"
            + (f"; environment: {changed}" if changed else "")
            + ": the model would see other numbers than it was trained on; retrain it here"
        )
    seconds = time.perf_counter() - started
    log.info(
        "%s: reference case reproduced (%d features, %.2f s)", bundle.folder, len(columns), seconds
    )
    verdict = {"bundle": str(bundle.folder), "features": len(columns), "seconds": seconds, **env}
    try:
        atomic_write(cached, (json.dumps(verdict, indent=1) + "\n").encode())
    except OSError as error:  # checked again next time
        log.info("cannot keep the verdict in %s (%s)", cached, error)
