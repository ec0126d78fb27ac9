"""The demo's built-in case: one synthetic patient written as NIfTI and DICOM, with a fused PNG.

Seed 9 gives a patient like the study's Figure 2: a vertebral haemangioma (T9), an FDG-avid
osteolytic metastasis of the pelvis and an avid fibrous dysplasia of a rib (a benign pitfall).
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

from BoneOligoMetLib.report.snapshots import fused_slice_png
from BoneOligoMetLib.synthetic.phantom.patient import generate_patient, write_patient

DEMO_SEED = 9


def write_demo_case(out_dir: Union[str, Path], seed: int = DEMO_SEED) -> dict:
    """Generate and write the demo patient under ``out_dir/patient``; a dict of what was written.

    Keys: ``folder``, ``patient`` (the :class:`SyntheticPatient`), ``files`` (role -> path),
    ``png`` (a fused axial PET/CT slice through the first malignant lesion, else lesion 1).
    """

    folder = Path(out_dir) / "patient"
    patient = generate_patient(seed, "small", patient_id="DEMO0001")
    written = write_patient(patient, folder, dicom=True)
    records = patient.lesion_records()
    shown = next((r for r in records if r["label"] == 1), records[0])
    png = fused_slice_png(
        patient.ct,
        patient.suv,
        patient.lesion_labels,
        Path(out_dir) / "fused_pet_ct.png",
        label=shown["lesion_label"],
        title=(
            f"synthetic patient {patient.patient_id}, lesion {shown['lesion_label']}: "
            f"{shown['lesion_type'].replace('_', ' ')} ({shown['site']})"
        ),
    )
    files = {role: folder / name for role, name in written.items()}
    return {"folder": folder, "patient": patient, "files": files, "png": png}
