"""One patient's classification outputs in a folder: results.csv/.json, the probability overlay,
a panel per lesion (``lesion_N.png``), the PET overview (``pet_mip.png``) and ``report.html``.

Lesion N is label N of the lesion image in every file, table and picture title.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

import SimpleITK as sitk

from BoneOligoMetLib.classify import probability_overlay
from BoneOligoMetLib.io.images import write_image
from BoneOligoMetLib.io.tables import write_csv
from BoneOligoMetLib.report.patient_html import lesion_measures, render_patient_html, rule_flags
from BoneOligoMetLib.report.snapshots import PatientPlanes, lesion_panel_png, mip_png

if TYPE_CHECKING:  # type hints only
    from BoneOligoMetLib.classify import CaseResult
    from BoneOligoMetLib.io.suv import SuvParameters


def write_overlay(
    result: CaseResult, lesions: sitk.Image, reference: sitk.Image, out: Union[str, Path]
) -> Path:
    """``overlay.nii.gz`` in ``out``: the result's overlay, or one made from its probabilities on
    ``reference``'s grid (the CT's; ``lesions`` itself when they lie on it, so that the CT need
    not be held: :func:`~BoneOligoMetLib.classify.probability_overlay`)."""
    path = Path(out) / "overlay.nii.gz"
    overlay = result.overlay
    if overlay is None:
        overlay = probability_overlay(lesions, reference, result.probabilities)
    write_image(overlay, path)
    return path


def panel_title(
    result: CaseResult, row: Mapping[str, Any], patient: str = "", notice: str = ""
) -> str:
    """Two lines above a lesion's panel: the model's answer (and ``notice``, e.g. that the lesion
    is an automatic proposal), then the measures and rule flags."""
    label = int(row["lesion_label"])
    who = f"{patient} · " if patient else ""
    if row["malignant"] is None:  # outside the model's domain: no probability
        answer = f"{row['verdict']} ({row['domain']})"
    else:
        answer = (
            f"P(malignant) = {row['probability']:.2f} → {row['verdict']} "
            f"(threshold {result.threshold:.3f})"
        )
    if result.warning:
        answer += f" — {result.warning}"
    if notice:
        answer += f" — {notice}"
    met = lesion_measures(result).get(label, {})

    def value(key: str, text: str, digits: int = 2) -> str:
        number = met.get(key)
        return f"{text} {number:.{digits}f}" if isinstance(number, (int, float)) else f"{text} –"

    measures = " · ".join(
        (
            value("met_suv_max", "SUVmax"),
            value("met_suv_peak", "SUVpeak"),
            value("met_mtv_ml", "MTV") + " mL",
            value("met_tlg", "TLG"),
            value("met_hu_mean", "CT mean", 0) + " HU",
        )
    )
    return f"{who}lesion {label}: {answer}\n{measures} · ROI rules: {rule_flags(result, label)}"


def write_results(
    result: CaseResult,
    ct: sitk.Image,
    suv: sitk.Image,
    lesions: sitk.Image,
    out: Union[str, Path],
    png: bool = True,
    *,
    patient: str = "",
    manifest: Optional[Mapping[str, Any]] = None,
    suv_parameters: Optional[SuvParameters] = None,
    pet_source: str = "",
    sections: Sequence[tuple[str, str]] = (),
    overlay: bool = True,
    notice: str = "",
) -> list[Path]:
    """Write the outputs (module docstring) into ``out``; the paths written.

    ``png=False`` draws no pictures (the report then has tables only). ``patient`` names the case
    in titles; ``manifest`` is the bundle's (the report's model card); ``suv_parameters`` how the
    SUV was derived from DICOM (else ``pet_source`` names the SUV image given); ``sections``:
    extra (title, HTML) sections for the report; ``overlay=False`` leaves overlay.nii.gz to
    :func:`write_overlay`; ``notice`` (e.g. that the lesions are automatic proposals) goes into
    results.json, the panels' titles and the report.
    """
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
    if notice:
        summary["notice"] = notice
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    written.append(out / "results.json")
    if overlay:
        written.append(write_overlay(result, lesions, ct, out))
    panels: dict[int, Path] = {}
    overview = None
    if png and result.rows:
        planes = PatientPlanes(ct, suv, lesions)
        liver = next((r.get("met_liver_suv_mean") for r in result.features), None)
        for row in result.rows:
            label = int(row["lesion_label"])
            panels[label] = lesion_panel_png(
                planes,
                label,
                out / f"lesion_{label}.png",
                title=panel_title(result, row, patient, notice),
                liver_suv_mean=liver,
            )
        overview = mip_png(
            suv,
            lesions,
            out / "pet_mip.png",
            title=f"{patient + ': ' if patient else ''}PET maximum-intensity "
            "projection, anterior view",
        )
        written += [*panels.values(), overview]
    later = [] if overlay else ["overlay.nii.gz"]  # written by the caller after this
    names = [*sorted([p.name for p in written] + later), "report.html"]
    page = render_patient_html(
        result,
        patient=patient or "patient",
        panels=panels,
        overview=overview,
        manifest=manifest,
        suv_parameters=suv_parameters,
        pet_source=pet_source,
        sections=sections,
        files=names,
        notice=notice,
    )
    (out / "report.html").write_text(page, encoding="utf-8")
    written.append(out / "report.html")
    return written
