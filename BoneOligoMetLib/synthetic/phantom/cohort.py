"""A synthetic cohort: many patients written in parallel, and a manifest with one row per lesion.

Layout of ``out_dir``::

    manifest.csv             one row per lesion (paths relative to out_dir)
    cohort.json              seed, preset, patient count, class balance
    patients/BOM0001/        ct.nii.gz, pet_bqml.nii.gz, suv.nii.gz, lesions.nii.gz,
                             lesion_parts.nii.gz, tissues.nii.gz, patient.json
                             [, dicom/CT/, dicom/PET/]

Patient ``i`` is ``generate_patient(seed, index=i)`` whatever the number of workers, so the files
and the manifest are byte-identical for a given seed. A rerun keeps patients already written with
the same seed and preset (their ``patient.json`` is the marker) and makes the rest.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Optional, Union

from BoneOligoMetLib.errors import Progress
from BoneOligoMetLib.io.tables import write_csv
from BoneOligoMetLib.synthetic.phantom.patient import generate_patient, write_patient
from BoneOligoMetLib.synthetic.phantom.presets import get_preset

log = logging.getLogger(__name__)


MANIFEST_COLUMNS = (
    "patient_id",
    "lesion_label",
    "label",
    "lesion_type",
    "site",
    "bone",
    "bone_change",
    "volume_ml",
    "necrotic_fraction",
    "calcified_fraction",
    "outside_bone_mm",
    "breaks_cortex",
    "ct",
    "pet_bqml",
    "suv",
    "lesions",
    "lesion_parts",
    "tissues",
    "ct_dicom",
    "pet_dicom",
    "clin_age",
    "clin_subtype",
    "clin_site",
    "clin_bone_change",
    "weight_kg",
    "height_cm",
    "injected_dose_mbq",
    "injection_datetime",
    "scan_datetime",
    "uptake_min",
    "n_lesions_patient",
    "preset",
    "seed",
    "patient_index",
)


def patient_folder_name(index: int) -> str:
    return f"BOM{index + 1:04d}"


def manifest_rows(record: dict, folder: str) -> list[dict]:
    """Manifest rows (one per lesion) of a patient record (``patient.json``) in ``folder``."""
    files = record["files"]
    clinical = record["clinical"]

    def path(role: str) -> str:
        return f"{folder}/{files[role]}" if role in files else ""

    rows = []
    for lesion in record["lesions"]:
        row = {key: lesion.get(key, "") for key in MANIFEST_COLUMNS if key in lesion}
        row.update(
            patient_id=record["patient_id"],
            ct=path("ct"),
            pet_bqml=path("pet_bqml"),
            suv=path("suv"),
            lesions=path("lesions"),
            lesion_parts=path("lesion_parts"),
            tissues=path("tissues"),
            ct_dicom=path("ct_dicom"),
            pet_dicom=path("pet_dicom"),
            clin_age=clinical["age_years"],
            clin_subtype=clinical["subtype"],
            # the study's clinical parameters per lesion (§2.6): site and bone structure change
            clin_site=lesion.get("site", ""),
            clin_bone_change=lesion.get("bone_change", ""),
            weight_kg=clinical["weight_kg"],
            height_cm=clinical["height_cm"],
            injected_dose_mbq=clinical["injected_dose_mbq"],
            injection_datetime=clinical["injection_datetime"],
            scan_datetime=clinical["scan_datetime"],
            uptake_min=clinical["uptake_min"],
            n_lesions_patient=record["n_lesions"],
            preset=record["preset"]["name"],
            seed=record["seed"],
            patient_index=record["index"],
        )
        rows.append({key: row.get(key, "") for key in MANIFEST_COLUMNS})
    return rows


def _existing_record(folder: Path, seed: int, index: int, preset: str, dicom: bool):
    marker = folder / "patient.json"
    if not marker.is_file():
        return None
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    same = (
        record.get("seed") == seed
        and record.get("index") == index
        and record.get("preset", {}).get("name") == preset
        and (not dicom or "pet_dicom" in record.get("files", {}))
    )
    return record if same else None


def make_patient(seed: int, index: int, preset: str, out_dir: str, dicom: bool) -> dict:
    """Generate and write patient ``index`` (or keep it if already written); its record."""

    folder = Path(out_dir) / "patients" / patient_folder_name(index)
    record = _existing_record(folder, seed, index, preset, dicom)
    if record is None:
        patient = generate_patient(seed, preset, index=index, patient_id=patient_folder_name(index))
        write_patient(patient, folder, dicom=dicom)
        record = json.loads((folder / "patient.json").read_text())
    return record


def _tqdm_progress(total: int) -> tuple[Progress, Callable[[], None]]:
    from tqdm import tqdm

    bar = tqdm(total=total, unit="patient", desc="phantom", dynamic_ncols=True)

    def update(fraction: float, message: str) -> None:
        bar.n = round(fraction * total)
        bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    return update, bar.close


def _records(
    n_patients: int, seed: int, preset: str, out_dir: Path, dicom: bool, workers: int
) -> Iterator[dict]:
    args = [(seed, i, preset, str(out_dir), dicom) for i in range(n_patients)]
    if workers <= 1 or n_patients <= 1:
        for arg in args:
            yield make_patient(*arg)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(make_patient, *arg) for arg in args]
        for future in futures:  # in patient order: the manifest does not depend on timing
            yield future.result()


def generate_cohort(
    n_patients: int,
    seed: int,
    out_dir: Union[str, Path],
    preset: str = "small",
    dicom: bool = False,
    workers: Optional[int] = None,
    progress: Union[bool, Progress, None] = None,
) -> Path:
    """Write ``n_patients`` synthetic patients and ``manifest.csv`` into ``out_dir``.

    ``workers``: processes (default min(2, CPUs)). ``progress``: a ``progress(fraction, message)``
    callback, True for a progress bar on stderr, or None. Returns the manifest's path.
    """

    get_preset(preset)  # fail early on an unknown name
    if n_patients < 1:
        raise ValueError(f"n_patients must be ≥ 1, got {n_patients}")
    out_dir = Path(out_dir)
    (out_dir / "patients").mkdir(parents=True, exist_ok=True)
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    close = None
    if progress is True:
        progress, close = _tqdm_progress(n_patients)
    rows: list[dict] = []
    n_benign = n_malignant = 0
    try:
        for done, record in enumerate(
            _records(n_patients, seed, preset, out_dir, dicom, workers), start=1
        ):
            folder = f"patients/{patient_folder_name(record['index'])}"
            patient_rows = manifest_rows(record, folder)
            rows.extend(patient_rows)
            n_malignant += sum(int(row["label"]) for row in patient_rows)
            n_benign += sum(1 - int(row["label"]) for row in patient_rows)
            if callable(progress):
                progress(
                    done / n_patients, f"{record['patient_id']}: {len(patient_rows)} lesion(s)"
                )
    finally:
        if close is not None:
            close()
    manifest = out_dir / "manifest.csv"
    write_csv(rows, manifest, MANIFEST_COLUMNS)
    summary = {
        "seed": seed,
        "preset": preset,
        "n_patients": n_patients,
        "n_lesions": len(rows),
        "n_benign": n_benign,
        "n_malignant": n_malignant,
        "dicom": dicom,
        "manifest": manifest.name,
        "note": "synthetic data made by BoneOligoMet's phantom; not patient data",
    }
    (out_dir / "cohort.json").write_text(json.dumps(summary, indent=2) + "\n")
    log.info("cohort of %d patients, %d lesions in %s", n_patients, len(rows), out_dir)
    return manifest
