"""One patient's ``report.html``: what ``classify`` (and ``make demo``) found, as a reader reads it.

Self-contained (inline CSS, PNGs as base64, nothing fetched), like the training report. Sections:

1. the lesion table: probability of malignancy, label at the model's threshold, SUVmax, SUVpeak,
   SUVmax/liver, MTV, TLG, volume, CT HU and the ROI rules that did not pass;
2. the PET maximum-intensity projection with the lesions numbered;
3. per lesion its panel (axial and coronal: whole slice, CT in a bone window, PET, fused) and
   every rule check with its value;
4. how the SUV was derived: the factor and every DICOM tag used (``SuvParameters``), or a line
   saying the PET was given as an SUV image;
5. the model card from the bundle's ``manifest.json``: what it was trained on, its held-out
   metrics, its threshold and how it was chosen, its inputs, and the synthetic warning.

Lesion numbers are the label values of the lesion image, the same in every table, file name
(``lesion_N.png``) and picture title.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from BoneOligoMetLib import __version__
from BoneOligoMetLib.report.format import _esc, _num, _table
from BoneOligoMetLib.report.html import CSS

if TYPE_CHECKING:  # type hints only
    from BoneOligoMetLib.classify import CaseResult
    from BoneOligoMetLib.io.suv import SuvParameters

RULE_NAMES = {
    "holes": "holes",
    "outside_bone": "outside bone",
    "necrotic": "necrotic part",
    "calcified": "calcified part",
    "fdg_avid": "FDG avidity",
    "largest_slice": "largest slice",
    "lesion_count": "lesion count",
}
# Feature-group prefixes of a model's inputs, as the model card names them.
GROUP_NAMES = {
    "clin_": "clinical",
    "met_": "metabolic (PET)",
    "ct_": "CT radiomics",
    "pet_": "PET radiomics",
    "petct_": "fused PET/CT radiomics",
    "dl_ct_": "CT deep features",
    "dl_pet_": "PET deep features",
}
EXTRA_CSS = """
td.malignant{color:#a00;font-weight:bold}td.benign{color:#060;font-weight:bold}
td.warn{background:#fff3cd}td.fail{background:#f8d7da}
pre{background:#f7f7f7;border:1px solid #ddd;padding:.6em;overflow-x:auto;font-size:.8em}
figure.panel{display:block;margin:.5em 0}figure.panel img{max-width:100%}
"""


def _image(path: Union[str, Path], alt: str, caption: str, css: str = "") -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    klass = f' class="{css}"' if css else ""
    return (
        f'<figure{klass}><img alt="{_esc(alt)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_esc(caption)}</figcaption></figure>"
    )


def _value(row: Mapping[str, Any], key: str, digits: int = 2) -> str:
    value = row.get(key)
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return "–" if value in (None, "") else str(value)
    return _num(float(value), digits)


def lesion_measures(result: CaseResult) -> dict[int, dict[str, Any]]:
    """Each lesion's model inputs (features, ``met_*`` included) by label."""
    return {int(row["lesion_label"]): row for row in result.features}


def rule_flags(result: CaseResult, label: int) -> str:
    """The rules that did not pass for lesion ``label``, with their values ("all pass" if none)."""
    flags = [
        f"{RULE_NAMES.get(c.rule, c.rule)} {c.status}"
        + (f" ({_rule_value(c)})" if c.value is not None else "")
        for c in result.checks
        if c.lesion == label and c.status in ("warn", "fail")
    ]
    return "; ".join(flags) or "all pass"


def _rule_value(check: Any, value: Optional[float] = None) -> str:
    """A check's value (or ``value``, e.g. its threshold) as the rule tables print it."""
    value = check.value if value is None else value
    if value is None:
        return "–"
    if check.rule == "lesion_count":
        return f"{value:.0f}"
    if check.unit == "mm²":
        return f"{value:.0f} mm²"
    if check.unit:
        return f"{value:.2f} {check.unit}"
    return f"{value:.1%}"


def _lesion_table(result: CaseResult) -> str:
    measures = lesion_measures(result)
    header = (
        "lesion",
        "P(malignant)",
        f"at threshold {result.threshold:.3f}",
        "SUVmax",
        "SUVpeak",
        "SUVmax / liver",
        "MTV (mL)",
        "TLG (SUV·mL)",
        "volume (mL)",
        "CT mean (HU)",
        "ROI rules",
    )
    rows = []
    for row in result.rows:
        label = int(row["lesion_label"])
        met = measures.get(label, {})
        probability = row["probability"]
        verdict = row["verdict"]
        rows.append(
            "<tr>"
            f"<td>{label}</td>"
            f"<td>{_esc(_num(probability, 2) if isinstance(probability, float) else probability)}"
            "</td>"
            f'<td class="{_esc(verdict if verdict in ("malignant", "benign") else "")}">'
            f"{_esc(verdict)}</td>"
            + "".join(
                f"<td>{_esc(_value(met, key, digits))}</td>"
                for key, digits in (
                    ("met_suv_max", 2),
                    ("met_suv_peak", 2),
                    ("met_suv_max_liver_ratio", 2),
                    ("met_mtv_ml", 2),
                    ("met_tlg", 2),
                    ("met_volume_ml", 2),
                    ("met_hu_mean", 0),
                )
            )
            + f"<td>{_esc(rule_flags(result, label))}</td></tr>"
        )
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    return (
        f'<table id="lesions"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def _rule_table(checks: Sequence[Any]) -> str:
    rows = [
        f"<tr><td>{_esc(RULE_NAMES.get(c.rule, c.rule))}</td><td>{_esc(_rule_value(c))}</td>"
        f'<td>{_esc(_threshold(c))}</td><td class="{_esc(c.status)}">{_esc(c.status)}</td>'
        f'<td style="text-align:left">{_esc(c.message)}</td></tr>'
        for c in checks
    ]
    head = "".join(f"<th>{h}</th>" for h in ("rule", "value", "threshold", "status", "finding"))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _threshold(check: Any) -> str:
    if check.threshold is None:
        return "–"
    if not check.unit and check.rule != "lesion_count":
        return f"{check.threshold:.0%}"
    return _rule_value(check, check.threshold)


def _suv_section(parameters: Optional[SuvParameters], pet_source: str) -> str:
    if parameters is None:
        where = f" ({_esc(pet_source)})" if pet_source else ""
        return (
            f"<p>The PET was given as an image already in SUV{where}, so this report cannot show "
            "how it was derived. Give the PET DICOM folder instead (<code>--pet PET_DIR</code>) "
            "to have the SUV computed from its header here, with every tag listed.</p>"
        )
    rows = [
        (p.name, p.value, p.source, Path(p.path).name if p.path else "")
        for p in parameters.provenance
    ]
    return (
        f"<p>SUVbw = activity concentration (Bq/mL) × body weight (g) / injected dose "
        f"decay-corrected to the scan reference time (Bq): factor "
        f"<b>{parameters.suv_factor:.6g} g/mL per Bq/mL</b> ({parameters.units}, "
        f"{len(parameters.files)} slices, "
        f"{_esc(parameters.manufacturer or 'manufacturer not given')}). Every value used, "
        "where it came from and the file it was read from (QIBA SUV pseudo-code):</p>"
        + _table(("parameter", "value", "source", "file"), rows, "suv")
    )


def _model_card(manifest: Optional[Mapping[str, Any]], result: CaseResult) -> str:
    parts = [
        f"<p><b>{_esc(result.bundle_name)}</b>, run on {_esc(result.device)}; threshold "
        f"{result.threshold:.3f} on P(malignant).</p>"
    ]
    if result.warning:
        parts.append(
            f'<p class="banner">{_esc(result.warning)}: trained on synthetic patients '
            "to demonstrate the software; its probabilities say nothing about a real "
            "patient. Train on your own cohort for real use (README).</p>"
        )
    if not manifest:
        parts.append("<p>The bundle's manifest was not given to the report.</p>")
        return "".join(parts)
    training = manifest.get("training") or {}
    recipe = training.get("recipe") or {}
    trained = []
    if training.get("patients") is not None:
        trained.append(
            f"training set {training['patients']} patients, {training.get('lesions', '?')} "
            f"lesions ({training.get('malignant', '?')} malignant)"
        )
    if recipe:
        described = ", ".join(f"{k} {v}" for k, v in recipe.items())
        trained.append(f"recipe: {described}")
    if training.get("threshold_method"):
        trained.append(f"threshold: {training['threshold_method']}")
    parts.append(
        "<p>Trained on: "
        + (_esc("; ".join(trained)) if trained else "not recorded in the bundle")
        + ("" if not manifest.get("synthetic") else " — <b>synthetic data</b>")
        + ".</p>"
    )
    metrics = [
        m for m in (manifest.get("metrics") or {}).values() if isinstance(m, Mapping) and "auc" in m
    ]
    if metrics:
        rows = [
            (
                f"{m.get('model_name', m.get('model', ''))} ({m.get('classifier_name', '')})",
                m.get("set", ""),
                m.get("n_patients", "–"),
                m.get("n_lesions", "–"),
                _ci(m, "auc"),
                _ci(m, "sensitivity"),
                _ci(m, "specificity"),
                _num(m.get("threshold"), 3),
            )
            for m in metrics
        ]
        methods = sorted({str(m.get("auc_ci", "")) for m in metrics} - {""})
        parts.append(
            "<p>Held-out patients (never seen in training): AUC with its 95 % CI "
            f"({_esc(', '.join(methods) or 'method not recorded')}); sensitivity and "
            "specificity at the threshold, with Wilson 95 % CIs:</p>"
            + _table(
                (
                    "model",
                    "set",
                    "patients",
                    "lesions",
                    "AUC",
                    "sensitivity",
                    "specificity",
                    "threshold",
                ),
                rows,
                "model-metrics",
            )
        )
    else:
        parts.append("<p>The bundle records no held-out metrics.</p>")
    schema = list(manifest.get("feature_schema") or [])
    counts = []
    for prefix in sorted(GROUP_NAMES, key=len, reverse=True):
        n = sum(1 for c in schema if c.startswith(prefix))
        schema = [c for c in schema if not c.startswith(prefix)]
        if n:
            counts.append((GROUP_NAMES[prefix], n))
    if counts:
        parts.append(
            "<p>Inputs: " + _esc(", ".join(f"{n} {name}" for name, n in counts[::-1])) + ".</p>"
        )
    versions = manifest.get("versions") or {}
    if versions:
        parts.append(
            '<p class="note">Saved with '
            + _esc(", ".join(f"{k} {v}" for k, v in versions.items()))
            + f"; this report: bone-oligomet {__version__}.</p>"
        )
    return "".join(parts)


def _ci(metrics: Mapping[str, Any], key: str) -> str:
    value = metrics.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    low, high = metrics.get(f"{key}_low"), metrics.get(f"{key}_high")
    if low is None or high is None:
        return _num(value, 3)
    return f"{value:.3f} [{low:.3f}–{high:.3f}]"


def candidates_section(rows: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """A (title, HTML) report section: the automatic candidates that became the lesions (their
    rank is the lesion's label), as ``lesions.candidates.Candidate.row`` gives them."""
    header = ("Lesion (rank)", "X, Y, Z (LPS mm)", "SUVmax", "mL", "Site", "Score", "Why")
    cells = [
        (
            int(r["rank"]),
            f"{r['x']:.1f}, {r['y']:.1f}, {r['z']:.1f}",
            f"{r['suvmax']:.2f}",
            f"{r['volume_ml']:.2f}",
            r["site"],
            f"{r['score']:.3f}",
            r["why"],
        )
        for r in rows
    ]
    return (
        "Automatic candidates",
        _table(header, cells)
        + '<p class="note">Found by the candidate finder (ranking trained on synthetic patients): '
        "automatic proposals that a reader must confirm.</p>",
    )


def render_patient_html(
    result: CaseResult,
    *,
    patient: str,
    panels: Optional[Mapping[int, Union[str, Path]]] = None,
    overview: Optional[Union[str, Path]] = None,
    manifest: Optional[Mapping[str, Any]] = None,
    suv_parameters: Optional[SuvParameters] = None,
    pet_source: str = "",
    sections: Sequence[tuple[str, str]] = (),
    files: Sequence[str] = (),
    notice: str = "",
) -> str:
    """The page (a string). ``panels``: lesion label → its PNG; ``overview``: the MIP PNG;
    ``manifest``: the bundle's; ``sections``: extra (title, HTML) sections at the end (the demo's
    ground truth and run log); ``files``: the output files to list; ``notice``: a banner (e.g.
    that the lesions are automatic proposals)."""
    panels = panels or {}
    body = [f"<h1>BoneOligoMet — {_esc(patient)}</h1>"]
    if result.warning:
        body.append(f'<p class="banner"><b>{_esc(result.warning)}</b></p>')
    if notice:
        body.append(f'<p class="banner"><b>{_esc(notice)}</b></p>')
    body.append("<h2>Lesions</h2>")
    body.append(_lesion_table(result))
    body.append(
        '<p class="note">P(malignant): the model\'s probability; the label compares it with the '
        "model's threshold. SUV is body-weight SUV (g/mL); SUVpeak the highest mean in a 1 cm³ "
        "sphere; MTV the lesion volume with SUV ≥ 2.2 (§2.3); TLG = SUVmean(MTV) × MTV; the liver "
        "reference is the SUVmean of a 3 cm sphere. ROI rules: the study's checks (§2.3) that did "
        "not pass; every check is listed under its lesion.</p>"
    )
    for note in result.notes:
        body.append(f'<p class="note">Note: {_esc(note)}</p>')
    if overview is not None:
        body.append("<h2>Overview</h2>")
        body.append(
            _image(
                overview,
                "PET maximum-intensity projection",
                "PET maximum-intensity projection, anterior view (inverted grey); "
                "the numbers are the lesions of the table.",
            )
        )
    body.append("<h2>Each lesion</h2>")
    patient_checks = [c for c in result.checks if c.lesion is None]
    for row in result.rows:
        label = int(row["lesion_label"])
        body.append(f'<h3 id="lesion-{label}">Lesion {label}</h3>')
        if label in panels:
            body.append(
                _image(
                    panels[label],
                    f"lesion {label}",
                    f"Lesion {label}: axial (top) and coronal (bottom) slices of "
                    "largest lesion area — whole slice, CT in a bone window, PET, "
                    "fused PET/CT.",
                    css="panel",
                )
            )
        checks = [c for c in result.checks if c.lesion == label]
        if checks:
            body.append(_rule_table(checks))
    if patient_checks:
        body.append("<h3>Patient</h3>")
        body.append(_rule_table(patient_checks))
    body.append("<h2>SUV derivation</h2>")
    body.append(_suv_section(suv_parameters, pet_source))
    body.append("<h2>Model card</h2>")
    body.append(_model_card(manifest, result))
    for title, html_text in sections:
        body.append(f"<h2>{_esc(title)}</h2>{html_text}")
    if files:
        body.append('<p class="note">Files: ' + _esc(", ".join(files)) + ".</p>")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>BoneOligoMet — {_esc(patient)}</title><style>{CSS}{EXTRA_CSS}</style></head>"
        f"<body>\n{''.join(body)}\n</body></html>\n"
    )
