"""A synthetic patient as DICOM: a CT series and a GE-style PET series of one PET/CT study.

UIDs derive from (seed, patient index, preset), so the same seed writes byte-identical files.
The PET is split into beds of 157 mm (GE Discovery axial field), each with its own acquisition
time and RescaleSlope, all decay-corrected to the series start (DecayCorrection START), as the
scanner writes them; ``suv.pet_dicom_to_suv`` reads back the generated SUV.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from BoneOligoMetLib.io.dicom_writer import UidSource
from BoneOligoMetLib.synthetic.dicom_ct import write_ct_series
from BoneOligoMetLib.synthetic.dicom_pet import write_pet_series

if TYPE_CHECKING:
    from BoneOligoMetLib.synthetic.phantom.patient import SyntheticPatient

BED_AXIAL_FIELD_MM = 157.0
CT_BEFORE_PET_S = 300.0  # the CT is acquired a few minutes before the PET


def write_patient_dicom(patient: SyntheticPatient, folder: Path) -> dict:
    """Write ``dicom/CT`` and ``dicom/PET`` under ``folder``; their paths relative to it."""
    entropy = ["BoneOligoMet phantom", patient.seed, patient.index, patient.preset.name]
    uid = UidSource(entropy)
    study_uid, frame_uid = uid("study"), uid("frame of reference")
    clinical = patient.clinical
    name = f"Synthetic^{patient.patient_id}"
    write_ct_series(
        patient.ct,
        folder / "dicom" / "CT",
        series_datetime=clinical.scan_datetime - dt.timedelta(seconds=CT_BEFORE_PET_S),
        patient_id=patient.patient_id,
        patient_name=name,
        patient_weight_kg=clinical.weight_kg,
        study_uid=study_uid,
        frame_of_reference_uid=frame_uid,
        uid_entropy=entropy,
    )
    n_slices = patient.pet_bqml.GetSize()[2]
    extent_mm = n_slices * patient.pet_bqml.GetSpacing()[2]
    write_pet_series(
        patient.pet_bqml,
        folder / "dicom" / "PET",
        weight_kg=clinical.weight_kg,
        injected_dose_bq=clinical.injected_dose_bq,
        injection_datetime=clinical.injection_datetime,
        series_datetime=clinical.scan_datetime,
        beds=max(1, round(extent_mm / BED_AXIAL_FIELD_MM)),
        bed_duration_s=clinical.bed_duration_s,
        patient_id=patient.patient_id,
        patient_name=name,
        study_uid=study_uid,
        frame_of_reference_uid=frame_uid,
        uid_entropy=entropy,
    )
    return {"ct_dicom": "dicom/CT", "pet_dicom": "dicom/PET"}
