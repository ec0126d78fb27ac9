"""One patient's classification outputs: results.csv/.json, the probability overlay and a
snapshot per lesion."""

from __future__ import annotations

from BoneOligoMetLib.io.images import write_image
from BoneOligoMetLib.io.tables import write_csv
from BoneOligoMetLib.report.snapshots import fused_slice_png


def write_results(result, ct, suv, lesions, out, png: bool = True) -> list:
    """results.csv/.json, overlay.nii.gz and (``png``) one fused snapshot per lesion."""
    import json
    from pathlib import Path

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if result.rows:
        write_csv(result.rows, str(out / "results.csv"))
        written.append(out / "results.csv")
    summary = {
        "model": result.bundle_name,
        "synthetic": result.synthetic,
        "warning": result.warning,
        "threshold": result.threshold,
        "device": result.device,
        "lesions": result.rows,
    }
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    write_image(result.overlay, out / "overlay.nii.gz")
    written += [out / "results.json", out / "overlay.nii.gz"]
    if png:
        for row in result.rows:
            label = row["lesion_label"]
            if row["malignant"] is None:  # outside the model's domain: no probability
                title = f"lesion {label}: {row['verdict']} ({row['domain']})"
            else:
                title = (
                    f"lesion {label}: P(malignant) = {row['probability']:.2f} ({row['verdict']})"
                )
            if result.warning:
                title += f" — {result.warning}"
            path = out / f"lesion_{label}.png"
            fused_slice_png(ct, suv, lesions, path, label=label, title=title)
            written.append(path)
    return written
