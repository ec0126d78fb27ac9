"""One patient's classification outputs: results.csv/.json, the probability overlay and a
snapshot per lesion."""

from __future__ import annotations

from BoneOligoMetLib.classify import probability_overlay
from BoneOligoMetLib.io.images import write_image
from BoneOligoMetLib.io.tables import write_csv
from BoneOligoMetLib.report.snapshots import fused_slice_png


def write_overlay(result, lesions, reference, out):
    """``overlay.nii.gz`` in ``out``: the result's overlay, or one made from its probabilities
    on ``reference``'s grid (the CT's; ``lesions`` itself when they lie on it, so that the CT
    need not be held: :func:`~BoneOligoMetLib.classify.probability_overlay`)."""
    from pathlib import Path

    path = Path(out) / "overlay.nii.gz"
    overlay = result.overlay
    if overlay is None:
        overlay = probability_overlay(lesions, reference, result.probabilities)
    write_image(overlay, path)
    return path


def write_results(result, ct, suv, lesions, out, png: bool = True, overlay: bool = True) -> list:
    """results.csv/.json, (``png``) one fused snapshot per lesion and (``overlay``)
    overlay.nii.gz (see :func:`write_overlay`)."""
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
    written.append(out / "results.json")
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
    if overlay:
        written.append(write_overlay(result, lesions, ct, out))
    return written
