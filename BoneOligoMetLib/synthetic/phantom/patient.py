"""One synthetic patient: clinical values, anatomy, lesions, CT and PET; generate and write.

Deterministic: everything derives from ``numpy.random.SeedSequence([seed, index])``, split into
independent streams (clinical, anatomy, lesions, CT noise, PET noise, physiology), so a cohort's
patient ``index`` is the same whichever worker makes it, and ``generate_patient(seed)`` is the
first patient of ``generate_cohort(..., seed)``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Optional, Union

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from BoneOligoMetLib.io.images import write_image
from BoneOligoMetLib.synthetic.phantom.anatomy import (
    SITES,
    Anatomy,
    AnatomyParameters,
    bones_in_field,
    build_anatomy,
)
from BoneOligoMetLib.synthetic.phantom.ct import CtParameters, synthesize_ct
from BoneOligoMetLib.synthetic.phantom.dicom import write_patient_dicom
from BoneOligoMetLib.synthetic.phantom.grid import Grid
from BoneOligoMetLib.synthetic.phantom.lesion_render import (
    CALCIFIED,
    NECROTIC,
    RasterLesion,
    paint,
    rasterize_lesion,
)
from BoneOligoMetLib.synthetic.phantom.lesion_types import (
    BENIGN_FRACTION,
    LESION_COUNT_PROBABILITIES,
    SUBTYPES,
    lesion_type,
    types_of_class,
)
from BoneOligoMetLib.synthetic.phantom.lesions import Lesion, sample_lesion
from BoneOligoMetLib.synthetic.phantom.pet import (
    UptakeParameters,
    activity_grid_for,
    fdg_level_map,
    simulate_pet,
    suv_per_bqml,
)
from BoneOligoMetLib.synthetic.phantom.physiology import Physiology
from BoneOligoMetLib.synthetic.phantom.presets import Preset, get_preset

log = logging.getLogger(__name__)

MIN_LESION_ML = 0.2
MAX_PLACEMENT_TRIES = 40
MAX_PART_FRACTION = 0.45  # a necrotic or calcified part never dominates a lesion
DOSE_MBQ_PER_KG = 5.5  # §2.2
FILES = {
    "ct": "ct.nii.gz",
    "pet_bqml": "pet_bqml.nii.gz",
    "suv": "suv.nii.gz",
    "lesions": "lesions.nii.gz",
    "lesion_parts": "lesion_parts.nii.gz",
    "tissues": "tissues.nii.gz",
}


@dataclass(frozen=True)
class ClinicalRecord:
    """Per-patient clinical and acquisition values (what a PET DICOM header and chart hold)."""

    patient_id: str
    age_years: int
    subtype: str  # HR+, HER2+, triple-negative
    weight_kg: float
    height_cm: float
    injected_dose_bq: float
    injection_datetime: dt.datetime
    scan_datetime: dt.datetime  # PET series start; Bq/mL refer to it
    bed_duration_s: float

    @property
    def uptake_s(self) -> float:
        return (self.scan_datetime - self.injection_datetime).total_seconds()

    def as_dict(self) -> dict:
        out = asdict(self)
        out["injection_datetime"] = self.injection_datetime.isoformat()
        out["scan_datetime"] = self.scan_datetime.isoformat()
        out["injected_dose_mbq"] = round(self.injected_dose_bq / 1e6, 3)
        out["uptake_min"] = round(self.uptake_s / 60.0, 2)
        return out


def sample_clinical(rng: np.random.Generator, patient_id: str) -> ClinicalRecord:
    """Age (study: 58.2 ± 14.1, 18–75), subtype, weight, 5.5 MBq/kg, 40–60 min uptake (§2.1–2.2)."""
    age = 0.0
    while not 18.0 <= age <= 75.0:
        age = rng.normal(61.0, 12.5)
    subtype = str(rng.choice(list(SUBTYPES), p=list(SUBTYPES.values())))
    weight = round(float(np.clip(rng.normal(60.0, 9.0), 42.0, 100.0)), 1)
    height = round(float(np.clip(rng.normal(158.0, 6.0), 140.0, 180.0)), 1)
    dose = round(DOSE_MBQ_PER_KG * weight * rng.uniform(0.92, 1.08), 1) * 1e6
    day = dt.date(2012, 1, 1) + dt.timedelta(days=int(rng.integers(0, 13 * 365)))
    injection = dt.datetime.combine(day, dt.time(7, 30)) + dt.timedelta(
        seconds=int(rng.integers(0, 6 * 3600))
    )
    scan = injection + dt.timedelta(seconds=int(rng.integers(40 * 60, 60 * 60 + 1)))
    return ClinicalRecord(
        patient_id=patient_id,
        age_years=round(age),
        subtype=subtype,
        weight_kg=weight,
        height_cm=height,
        injected_dose_bq=dose,
        injection_datetime=injection,
        scan_datetime=scan,
        bed_duration_s=float(rng.choice([120.0, 150.0, 180.0])),
    )


@dataclass
class SyntheticPatient:
    """A generated patient: images (SimpleITK, LPS) and the ground truth behind them."""

    patient_id: str
    seed: int
    index: int
    preset: Preset
    clinical: ClinicalRecord
    anatomy_parameters: AnatomyParameters
    uptake: UptakeParameters
    ct_parameters: CtParameters
    suv_per_bqml: float
    lesions: list[Lesion]
    ct: sitk.Image  # int16 HU, CT grid
    pet_bqml: sitk.Image  # float32 Bq/mL at the scan start, PET grid
    suv: sitk.Image  # float32 SUVbw, PET grid
    lesion_labels: sitk.Image  # uint8 lesion label per CT voxel (0 = none)
    lesion_parts: sitk.Image  # uint8 1 viable, 2 necrotic, 3 calcified (CT grid)
    tissues: sitk.Image  # uint8 anatomy.Tissue labels (CT grid)
    liver_seed_lps_mm: tuple[float, float, float]  # centre for the 3 cm liver reference VOI
    measured_suv_max: dict[int, float] = field(default_factory=dict)
    physiology: Optional[Physiology] = None

    def lesion_records(self) -> list[dict]:
        """One ground-truth record per lesion (label, type, site, volume, fractions, ...)."""
        records = []
        for lesion in self.lesions:
            records.append(
                {
                    "lesion_label": lesion.label,
                    "label": int(lesion.malignant),
                    "malignant": lesion.malignant,
                    "lesion_type": lesion.kind.name,
                    "site": lesion.site,
                    "bone": lesion.bone,
                    "bone_part": lesion.bone_part,
                    "bone_change": lesion.kind.bone_change,
                    "centre_lps_mm": [round(c, 2) for c in lesion.centre_mm],
                    "radius_mm": round(lesion.radius_mm, 2),
                    "volume_ml": round(lesion.volume_ml, 4),
                    "necrotic_fraction": round(lesion.necrotic_fraction, 6),
                    "calcified_fraction": round(lesion.calcified_fraction, 6),
                    "outside_bone_mm": round(lesion.outside_bone_mm, 3),
                    "breaks_cortex": lesion.breaks_cortex,
                    "hu_viable": round(lesion.hu_viable, 1),
                    "hu_secondary": None
                    if lesion.hu_secondary is None
                    else round(lesion.hu_secondary, 1),
                    "suv_viable": round(lesion.suv_viable, 4),
                    "measured_suv_max": round(self.measured_suv_max.get(lesion.label, 0.0), 4),
                }
            )
        return records

    def record(self) -> dict:
        """Everything about the patient as JSON-ready data (``patient.json``)."""
        return {
            "patient_id": self.patient_id,
            "seed": self.seed,
            "index": self.index,
            "preset": self.preset.summary(),
            "clinical": self.clinical.as_dict(),
            "suv_per_bqml": self.suv_per_bqml,
            "liver_seed_lps_mm": [round(c, 2) for c in self.liver_seed_lps_mm],
            "uptake_suv": self.uptake.as_dict(),
            "physiology": self.physiology.as_dict() if self.physiology is not None else None,
            "ct_hu": asdict(self.ct_parameters),
            "anatomy": {k: v for k, v in asdict(self.anatomy_parameters).items() if k != "extra"},
            "n_lesions": len(self.lesions),
            "lesions": self.lesion_records(),
            "files": dict(FILES),
        }


def _draw_lesion_kinds(rng: np.random.Generator, n: Optional[int]) -> list:
    if n is None:
        counts = list(LESION_COUNT_PROBABILITIES)
        n = int(rng.choice(counts, p=list(LESION_COUNT_PROBABILITIES.values())))
    kinds = []
    for _ in range(n):
        kinds_of_class = types_of_class(malignant=rng.uniform() >= BENIGN_FRACTION)
        weights = np.array([k.frequency for k in kinds_of_class])
        kinds.append(
            kinds_of_class[int(rng.choice(len(kinds_of_class), p=weights / weights.sum()))]
        )
    return kinds


def _place_lesions(
    rng: np.random.Generator,
    anatomy: Anatomy,
    grid: Grid,
    tissues: np.ndarray,
    kinds: Sequence,
    subtype: str,
    marrow_suv: float,
) -> list[tuple[Lesion, RasterLesion]]:
    low, high = grid.bounds()
    available: dict[str, list] = {site: [] for site in SITES}
    for bone in bones_in_field(anatomy, low, high):
        if bone.site in available:
            available[bone.site].append(bone)
    occupied = np.zeros(grid.shape, dtype=bool)
    placed: list[tuple[Lesion, RasterLesion]] = []
    for kind in kinds:
        label = len(placed) + 1
        for _ in range(MAX_PLACEMENT_TRIES):
            lesion = sample_lesion(
                rng, label, kind, anatomy, available, low, high, subtype, marrow_suv
            )
            if lesion is None:
                continue
            raster = rasterize_lesion(lesion, anatomy.bone(lesion.bone), grid, tissues)
            n = raster.n_voxels
            if n < 5 or n * grid.voxel_volume_ml < MIN_LESION_ML:
                continue
            necrotic = float(np.count_nonzero(raster.parts == NECROTIC)) / n
            calcified = float(np.count_nonzero(raster.parts == CALCIFIED)) / n
            if max(necrotic, calcified) > MAX_PART_FRACTION:
                continue
            region = occupied[raster.box.slices]
            grown = ndimage.binary_dilation(raster.mask, iterations=2)
            if np.any(region & grown):
                continue
            region[raster.mask] = True
            lesion.volume_ml = n * grid.voxel_volume_ml
            lesion.necrotic_fraction, lesion.calcified_fraction = necrotic, calcified
            placed.append((lesion, raster))
            break
        else:
            log.warning("no place found for a %s lesion; patient gets one lesion less", kind.name)
    return placed


def _measure_suv_max(suv: np.ndarray, pet_grid: Grid, ct_grid: Grid, raster: RasterLesion) -> float:
    """SUVmax of a CT-grid lesion: PET sampled (trilinear) at the centres of its voxels."""
    kk, jj, ii = np.nonzero(raster.mask)
    points = [
        (raster.box.z.ravel()[kk] - pet_grid.origin[2]) / pet_grid.spacing[2],
        (raster.box.y.ravel()[jj] - pet_grid.origin[1]) / pet_grid.spacing[1],
        (raster.box.x.ravel()[ii] - pet_grid.origin[0]) / pet_grid.spacing[0],
    ]
    return float(ndimage.map_coordinates(suv, points, order=1, mode="nearest").max())


def generate_patient(
    seed: int,
    preset: Union[str, Preset] = "small",
    index: int = 0,
    patient_id: Optional[str] = None,
    n_lesions: Optional[int] = None,
    lesion_types: Optional[Sequence[str]] = None,
) -> SyntheticPatient:
    """A synthetic breast-cancer patient with bone lesions on PET/CT, on ``preset``'s grids.

    Deterministic in (seed, index). ``n_lesions`` or ``lesion_types`` (names from
    ``lesion_types.LESION_TYPES``) fix the lesions; by default their number and kinds are drawn
    like the study's cohort.
    """
    preset = get_preset(preset) if isinstance(preset, str) else preset
    patient_id = patient_id or f"BOM{index + 1:04d}"
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence([seed, index]).spawn(6)]
    rng_clinical, rng_anatomy, rng_lesions, rng_ct, rng_pet, rng_physiology = streams

    clinical = sample_clinical(rng_clinical, patient_id)
    anatomy_parameters = AnatomyParameters.sample(rng_anatomy, clinical.weight_kg)
    uptake = UptakeParameters.sample(rng_anatomy)
    ct_parameters = CtParameters.sample(
        rng_anatomy, clinical.age_years, clinical.weight_kg, preset.ct_noise_hu
    )
    anatomy = build_anatomy(anatomy_parameters)
    physiology = Physiology.sample(rng_physiology, clinical.age_years, anatomy.joints)
    uptake = uptake.with_physiology(physiology)
    ct_parameters = replace(ct_parameters, yellow_marrow_hu=physiology.yellow_marrow_hu)

    ct_grid = preset.ct_grid
    tissues = anatomy.rasterize(ct_grid)
    if lesion_types is not None:
        kinds = [lesion_type(name) for name in lesion_types]
    else:
        kinds = _draw_lesion_kinds(rng_lesions, n_lesions)
    placed = _place_lesions(
        rng_lesions, anatomy, ct_grid, tissues, kinds, clinical.subtype, uptake.marrow
    )
    labels = np.zeros(ct_grid.shape, dtype=np.uint8)
    parts = np.zeros(ct_grid.shape, dtype=np.uint8)
    for lesion, raster in placed:
        paint(labels, raster, lesion.label)
        paint(parts, raster, raster.parts)
    ct = synthesize_ct(
        ct_grid, tissues, placed, ct_parameters, preset.ct_blur_fwhm_mm, rng_ct, physiology
    )

    body_low, body_high = anatomy.body_bounds()
    activity_grid, pet_start, _ = activity_grid_for(
        preset.pet_grid, preset.activity_subdivision, body_low, body_high, 3.0 * preset.pet_fwhm_mm
    )
    if activity_grid.same_as(ct_grid):
        activity_tissues, activity_lesions = tissues, placed
    else:
        activity_tissues = anatomy.rasterize(activity_grid)
        activity_lesions = [
            (
                lesion,
                rasterize_lesion(
                    lesion, anatomy.bone(lesion.bone), activity_grid, activity_tissues
                ),
            )
            for lesion, _ in placed
        ]
    level = fdg_level_map(
        activity_tissues, activity_lesions, uptake, activity_grid, physiology, anatomy.joints
    )
    factor = suv_per_bqml(
        clinical.weight_kg,
        clinical.injected_dose_bq,
        clinical.injection_datetime,
        clinical.scan_datetime,
    )
    pet = simulate_pet(
        level,
        activity_grid,
        preset.pet_grid,
        pet_start,
        preset.activity_subdivision,
        preset.pet_fwhm_mm,
        preset.pet_post_filter_fwhm_mm,
        1.0 / factor,
        clinical.bed_duration_s,
        rng_pet,
    )
    suv = (pet * np.float32(factor)).astype(np.float32)
    measured = {
        lesion.label: _measure_suv_max(suv, preset.pet_grid, ct_grid, raster)
        for lesion, raster in placed
    }
    return SyntheticPatient(
        patient_id=patient_id,
        seed=int(seed),
        index=int(index),
        preset=preset,
        clinical=clinical,
        anatomy_parameters=anatomy_parameters,
        uptake=uptake,
        ct_parameters=ct_parameters,
        suv_per_bqml=factor,
        lesions=[lesion for lesion, _ in placed],
        ct=ct_grid.image(ct),
        pet_bqml=preset.pet_grid.image(pet),
        suv=preset.pet_grid.image(suv),
        lesion_labels=ct_grid.image(labels),
        lesion_parts=ct_grid.image(parts),
        tissues=ct_grid.image(tissues),
        liver_seed_lps_mm=tuple(float(c) for c in anatomy.liver_seed_mm),
        measured_suv_max=measured,
        physiology=physiology,
    )


def write_patient(patient: SyntheticPatient, folder: Union[str, Path], dicom: bool = False) -> dict:
    """Write the patient's NIfTI files, ``patient.json`` and optionally DICOM CT + PET series.

    Returns the paths written (relative to ``folder``) by role.
    """

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    images = {
        "ct": patient.ct,
        "pet_bqml": patient.pet_bqml,
        "suv": patient.suv,
        "lesions": patient.lesion_labels,
        "lesion_parts": patient.lesion_parts,
        "tissues": patient.tissues,
    }
    paths = {}
    for role, image in images.items():
        write_image(image, folder / FILES[role])
        paths[role] = FILES[role]
    record = patient.record()
    if dicom:
        paths.update(write_patient_dicom(patient, folder))
        record["files"] = dict(paths)
    (folder / "patient.json").write_text(json.dumps(record, indent=2) + "\n")
    paths["record"] = "patient.json"
    return paths
