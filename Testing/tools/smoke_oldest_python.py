"""The library's Slicer 5.8 subset on the oldest Python we support (3.9, Slicer 5.8's).

    .venv-py39/bin/python Testing/tools/smoke_oldest_python.py     # what `make test` runs

With only numpy, scipy, SimpleITK, pydicom and PyYAML installed (what Slicer ships), it makes a
small synthetic patient, writes its PET as a DICOM series and converts it to SUV, finds the
candidate lesions, grows the lesions from seeds, checks the ROI rules and measures the metabolic
parameters: the steps the Slicer module runs in Slicer's own Python. Exits non-zero on any failure.
"""

from __future__ import annotations

import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout, not installed

import numpy as np

from BoneOligoMetLib.io.images import read_image, write_image
from BoneOligoMetLib.io.suv import pet_dicom_to_suv
from BoneOligoMetLib.lesions.candidates import slicer_candidates
from BoneOligoMetLib.lesions.metabolic import metabolic_table
from BoneOligoMetLib.lesions.rules import assess_lesions
from BoneOligoMetLib.lesions.segment import segment_lesions
from BoneOligoMetLib.synthetic.phantom import generate_patient
from BoneOligoMetLib.synthetic.phantom.dicom import write_patient_dicom


def main() -> int:
    started = time.perf_counter()
    patient = generate_patient(3, "small", n_lesions=2)
    with tempfile.TemporaryDirectory() as folder:
        written = write_patient_dicom(patient, Path(folder))
        suv, parameters = pet_dicom_to_suv(Path(folder) / written["pet_dicom"])
        ratio = float(np.max(np.abs(
            np.asarray(parameters.slice_suv_factors) / parameters.suv_factor - 1)))  # fmt: skip
        write_image(patient.lesion_labels, Path(folder) / "lesions.nii.gz")
        labels = read_image(Path(folder) / "lesions.nii.gz")
    candidates = slicer_candidates(patient.ct, patient.suv)
    seeds = [tuple(lesion.centre_mm) for lesion in patient.lesions]
    grown = segment_lesions(patient.ct, patient.suv, seeds, skip_failed=True)
    liver = patient.liver_seed_lps_mm
    rules = assess_lesions(patient.ct, patient.suv, labels, liver_seed_lps=liver)
    measured = metabolic_table(patient.suv, labels, liver_seed_lps=liver)
    problems = [
        text
        for failed, text in (
            (suv.GetSize() != patient.suv.GetSize(), "SUV from DICOM lies on another grid"),
            (ratio > 1e-6, "SUV factors differ between the slices of one bed"),
            (not candidates, "no candidate lesion found"),
            (not any(outcome.label for outcome in grown.seeds), "no lesion grew from its seed"),
            (len(measured) != 2, f"{len(measured)} lesions measured, not 2"),
            (not rules.checks, "no rule checks"),
        )
        if failed
    ]
    if problems:
        print(f"Python {platform.python_version()}: " + "; ".join(problems), file=sys.stderr)
        return 1
    print(
        f"Python {platform.python_version()}: SUV from DICOM, {len(candidates)} candidates, "
        f"{len(grown.seeds)} seeds grown, "
        f"{len(rules.checks)} rule checks, {len(measured)} lesions measured "
        f"({time.perf_counter() - started:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
