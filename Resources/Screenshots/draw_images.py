"""Draws the Sample Data thumbnail (run from the repository root).

    python Resources/Screenshots/draw_images.py

``BoneOligoMetSyntheticPatient.png`` is a fused PET/CT slice of the synthetic sample patient,
through the library's own figure code. The README's views of the panel's display are rendered by
Slicer's own slice-view code: ``python Testing/slicer/slicer_views.py Resources/Screenshots``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def draw_sample_thumbnail(path: Path, seed: int, lesion_types: list[str]) -> None:
    import tempfile

    from PIL import Image

    from BoneOligoMetLib.synthetic.phantom import fused_slice_png, generate_patient

    patient = generate_patient(seed, "small", lesion_types=lesion_types)
    with tempfile.TemporaryDirectory() as folder:
        full = Path(folder) / "slice.png"
        fused_slice_png(
            patient.ct, patient.suv, patient.lesion_labels, full, label=1, window_hu=(1800, 400)
        )
        image = Image.open(full).convert("RGB")
    width, height = image.size
    body = image.crop((40, 110, width - 40, height - 60))  # below the title, around the body
    body.thumbnail((260, 280))
    body.save(path)


if __name__ == "__main__":
    # The sample patient of BoneOligoMet.py (SAMPLE_SEED, SAMPLE_LESIONS).
    draw_sample_thumbnail(
        ROOT / "Resources" / "Icons" / "BoneOligoMetSyntheticPatient.png",
        3,
        ["osteolytic_metastasis", "mixed_metastasis", "healing_fracture"],
    )
