"""Draws the README's panel diagram and the Sample Data thumbnail (run from the repository root).

    python Resources/Screenshots/draw_images.py

``BoneOligoMetPanel.png`` is a diagram of the Slicer panel drawn with matplotlib, not a
screenshot (Slicer does not run where this was made); ``BoneOligoMetSyntheticPatient.png`` is a
fused PET/CT slice of the synthetic sample patient, through the library's own figure code.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

# (section title, [(kind, text)]): kind "button", "field", "table", "note", "warn"
PANEL = [
    (
        "1. Inputs",
        [
            ("button", "Load synthetic patient (sample data)"),
            ("field", "CT (HU)            [ BOM0001 synthetic CT      v ]"),
            ("field", "PET (SUV)          [ BOM0001 synthetic PET SUV v ]"),
            ("button", "Read PET DICOM folder as SUV...   (weight / dose / time overrides)"),
            ("field", "Lesion segmentation [ Lesions v ]   Liver reference [ point ] (place)"),
            ("field", "Age 53   Subtype [HR+ v]   per lesion: site, bone change (table)"),
        ],
    ),
    ("2. Fused display", [("button", "Show fused PET/CT  (CT grey, PET heat SUV 0-8, linked)")]),
    (
        "3. Delineation",
        [
            ("button", "Edit lesions in Segment Editor"),
            ("field", "Seed points [ Lesion seeds v ] (place)    Border [petct v]"),
            ("button", "Grow lesions from seeds (SUV >= 2.2 in bone)"),
            ("button", "Check ROI rules"),
            ("table", "segment | rule | status | value | message   (click: jump to lesion)"),
            ("button", "Include necrotic / calcified parts (>10 % rule)"),
        ],
    ),
    (
        "4. Classification and results",
        [
            ("field", "Model [ packaged demo model ] [Browse...] [Demo]   Device [auto v]"),
            ("warn", "Packaged demo model: synthetic demo model - not for clinical use"),
            ("button", "Classify lesions   -> progress dialog with Cancel (background process)"),
            ("table", "segment | probability | label | SUVmax | MTV | TLG | rule flags"),
            ("note", "overlay: lesion voxels = probability, colour legend 0-1 in the views"),
        ],
    ),
    (
        "5. Export",
        [
            ("field", "Folder [ ... ] [Browse...]   [x] one file per lesion"),
            ("button", "Export: lesions.nii.gz (CT grid), ct, suv, probability, CSV tables"),
        ],
    ),
]


def draw_panel(path: Path) -> None:
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyBboxPatch

    rows = sum(len(items) + 1.4 for _, items in PANEL) + 1.5
    figure = Figure(figsize=(7.2, rows * 0.32), dpi=110)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_xlim(0, 100)
    axes.set_ylim(0, rows)
    axes.axis("off")
    y = rows - 0.9
    axes.text(
        50,
        y,
        "BoneOligoMet panel - diagram (drawn, not a Slicer screenshot)",
        ha="center",
        fontsize=10,
        weight="bold",
    )
    colours = {"button": "#dde6f3", "field": "#ffffff", "table": "#f4f4f4", "note": "#ffffff"}
    colours["warn"] = "#fde2e2"
    for title, items in PANEL:
        y -= 1.2
        axes.add_patch(
            FancyBboxPatch((2, y - 0.35), 96, 0.8, boxstyle="round,pad=0.1", fc="#c9d3e0")
        )
        axes.text(4, y, "v  " + title, va="center", fontsize=9, weight="bold")
        for kind, text in items:
            y -= 1.0
            height = 0.75 if kind != "table" else 0.85
            axes.add_patch(
                FancyBboxPatch(
                    (6, y - height / 2),
                    90,
                    height,
                    boxstyle="round,pad=0.05",
                    fc=colours[kind],
                    ec="#8899aa" if kind != "note" else "none",
                )
            )
            colour = "#b00000" if kind == "warn" else "black"
            axes.text(8, y, text, va="center", fontsize=7.5, color=colour, family="monospace")
    figure.savefig(path)


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
    draw_panel(ROOT / "Resources" / "Screenshots" / "BoneOligoMetPanel.png")
    # The sample patient of BoneOligoMet.py (SAMPLE_SEED, SAMPLE_LESIONS).
    draw_sample_thumbnail(
        ROOT / "Resources" / "Icons" / "BoneOligoMetSyntheticPatient.png",
        3,
        ["osteolytic_metastasis", "mixed_metastasis", "healing_fracture"],
    )
