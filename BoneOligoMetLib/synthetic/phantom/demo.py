"""The demo's built-in case: one synthetic patient written as NIfTI and DICOM.

Seed 9 gives a patient like the study's Figure 2: a vertebral haemangioma (T9), an FDG-avid
osteolytic metastasis of the pelvis and an avid fibrous dysplasia of a rib (a benign pitfall).
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

from BoneOligoMetLib.synthetic.phantom.patient import generate_patient, write_patient

DEMO_SEED = 9


def write_demo_case(out_dir: Union[str, Path], seed: int = DEMO_SEED) -> dict:
    """Generate and write the demo patient under ``out_dir/patient``; a dict of what was written.

    Keys: ``folder``, ``patient`` (the :class:`SyntheticPatient`), ``files`` (role -> path),
    ``seeds`` (lesion number -> the point a reader clicks, LPS mm: the lesion's centre, also in
    ``patient.json`` as ``lesions[i].centre_lps_mm``).
    """

    folder = Path(out_dir) / "patient"
    patient = generate_patient(seed, "small", patient_id="DEMO0001")
    written = write_patient(patient, folder, dicom=True)
    files = {role: folder / name for role, name in written.items()}
    seeds = {lesion.label: tuple(lesion.centre_mm) for lesion in patient.lesions}
    return {"folder": folder, "patient": patient, "files": files, "seeds": seeds}
