"""Synthetic PET/CT patients with bone lesions: the built-in data of the demo, tests and benchmarks.

Like Slicer's SampleData, the generator is part of the product and deterministic for a seed::

    from BoneOligoMetLib.synthetic.phantom import generate_patient, write_patient, generate_cohort

    patient = generate_patient(seed=1, preset="small")      # in memory: images + ground truth
    write_patient(patient, "out/BOM0001", dicom=True)        # NIfTI (+ DICOM CT and PET)
    generate_cohort(200, seed=1, out_dir="cohort")           # many patients + manifest.csv

The data are synthetic: anatomy from analytic solids, lesion appearances from DESIGN.md's table,
FDG levels tuned so SUVmax alone is a good but imperfect classifier. Not patient data.
"""

from __future__ import annotations

from BoneOligoMetLib.report.snapshots import fused_slice_png
from BoneOligoMetLib.synthetic.phantom.cohort import MANIFEST_COLUMNS, generate_cohort
from BoneOligoMetLib.synthetic.phantom.lesion_types import LESION_TYPES
from BoneOligoMetLib.synthetic.phantom.patient import (
    SyntheticPatient,
    generate_patient,
    write_patient,
)
from BoneOligoMetLib.synthetic.phantom.presets import PRESETS, get_preset

__all__ = [
    "LESION_TYPES",
    "MANIFEST_COLUMNS",
    "PRESETS",
    "SyntheticPatient",
    "fused_slice_png",
    "generate_cohort",
    "generate_patient",
    "get_preset",
    "write_patient",
]
