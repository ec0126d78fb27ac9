"""The README's demo figures: lesion 3 of the demo patient, one axial and one coronal row of its
panel, from the outputs of ``make demo`` (run from the repository root).

    python docs/figures/demo_figures.py [demo_output] [docs/figures] [--dpi 80]

Writes ``demo_lesion3_axial.png`` and ``demo_lesion3_coronal.png``; the title holds the demo's
probability and verdict (``results.json``) and its metabolic measures (``metabolic.csv``).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout, not installed

LABEL = 3


def main() -> int:
    import SimpleITK as sitk

    from BoneOligoMetLib.report.snapshots import PatientPlanes, lesion_panel_png

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo", nargs="?", type=Path, default=Path("demo_output"))
    parser.add_argument("out", nargs="?", type=Path, default=Path("docs/figures"))
    parser.add_argument("--dpi", type=int, default=80)
    args = parser.parse_args()
    demo = args.demo
    planes = PatientPlanes(
        sitk.ReadImage(str(demo / "patient" / "ct.nii.gz")),
        sitk.ReadImage(str(demo / "suv.nii.gz")),
        sitk.ReadImage(str(demo / "lesions.nii.gz")),
    )
    summary = json.loads((demo / "results.json").read_text(encoding="utf-8"))
    row = next(r for r in summary["lesions"] if int(r["lesion_label"]) == LABEL)
    with open(demo / "metabolic.csv", newline="", encoding="utf-8") as handle:
        met = next(r for r in csv.DictReader(handle) if int(r["lesion_label"]) == LABEL)
    title = (
        f"synthetic patient DEMO0001 · lesion {LABEL}: P(malignant) = {row['probability']:.2f} "
        f"→ {row['verdict']} — {summary['warning']}\n"
        f"SUVmax {float(met['met_suv_max']):.2f} · SUVpeak {float(met['met_suv_peak']):.2f} · "
        f"MTV {float(met['met_mtv_ml']):.2f} mL · TLG {float(met['met_tlg']):.2f} · "
        f"CT mean {float(met['met_hu_mean']):.0f} HU"
    )
    for view in ("axial", "coronal"):
        path = lesion_panel_png(
            planes,
            LABEL,
            args.out / f"demo_lesion{LABEL}_{view}.png",
            title=title,
            liver_suv_mean=float(met["met_liver_suv_mean"]),
            views=(view,),
            dpi=args.dpi,
        )
        print(f"{path} ({path.stat().st_size / 1000:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
