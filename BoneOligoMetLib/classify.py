"""One patient, every lesion, one call: features → model bundle → probability of malignancy.

The single per-lesion entry point of the CLI (``bone-oligomet classify``) and the Slicer module::

    result = classify_case(ct, suv, lesions, clinical={"age": 61, "subtype": "HR+"})
    result.rows      # one dict per lesion: probability, label at threshold, SUVmax, MTV, TLG, rules
    result.overlay   # float32 image on the CT grid: each lesion's voxels = its probability

Per lesion: the ROI-rule checks (:mod:`.roi_rules`), the features the bundle's schema asks for
(metabolic, radiomics of CT/PET/fused PET-CT, deep features, clinical values), and the bundle's
pipeline. ``clinical`` holds patient values (``age``, ``subtype``) and per-lesion values as a
mapping from lesion label (``{"site": {1: "vertebrae", 2: "pelvis"}}``). Clinical values are
checked against the model's training schema before any work (:func:`check_clinical`): an unknown
key, a category the model never saw or a number outside its training range is an error naming
the allowed values. A clinical number the model needs and nobody gave is an error naming it;
``bone_change`` defaults to the lesion's CT appearance (:func:`bone_change_from_hu`).

The model was trained on bone lesions: a lesion that the ROI rules find is not one (mostly
outside bone and away from it, e.g. a soft-tissue tumour: :class:`~.roi_rules.RuleConfig`'s
``not_bone_*``) gets no probability; its row says :data:`OUTSIDE_DOMAIN` in the probability's
place, with the reason in ``domain``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import SimpleITK as sitk

from BoneOligoMetLib.deep.infer import select_device
from BoneOligoMetLib.errors import BundleError, Progress, UnitsError, did_you_mean
from BoneOligoMetLib.features.row import PreparedCase, lesion_features, prepare_case
from BoneOligoMetLib.image.geometry import Region, same_grid
from BoneOligoMetLib.image.labels import label_regions
from BoneOligoMetLib.lesions.metabolic import LesionMetabolics, require_suv_in_lesions
from BoneOligoMetLib.lesions.rule_config import RuleConfig
from BoneOligoMetLib.lesions.rules import assess_lesions
from BoneOligoMetLib.models.bundle import Bundle, default_bundle_path, load_bundle

__all__ = [
    "OUTSIDE_DOMAIN",
    "CaseResult",
    "bone_change_from_hu",
    "check_clinical",
    "check_inputs",
    "classify_case",
    "default_bundle_path",
    "liver_features",
    "load_bundle",
    "probability_overlay",
]

log = logging.getLogger(__name__)

# Lesion HU mean below which the bone change reads as osteolytic, above which osteogenic
# (DESIGN.md's typical appearances: lytic 30–150 HU, sclerotic 400–1200, mixed in between).
LYTIC_BELOW_HU = 200.0
BLASTIC_ABOVE_HU = 450.0
OUTSIDE_DOMAIN = "outside model domain"
# Plausible limits of clinical numbers a bundle saved without training ranges is checked against.
PLAUSIBLE_CLINICAL = {"clin_age": (0.0, 120.0)}  # years
RULE_COLUMNS = {
    "holes": "rule_holes",
    "outside_bone": "rule_outside_bone",
    "necrotic": "rule_necrosis",
    "calcified": "rule_calcification",
    "fdg_avid": "rule_fdg_avid",
}


@dataclass
class CaseResult:
    """Per-lesion results of one patient (see the module docstring)."""

    rows: list[dict[str, Any]]
    overlay: Optional[sitk.Image]  # None when classify_case was asked for none (overlay=False)
    threshold: float
    device: str
    synthetic: bool
    warning: str
    bundle_name: str
    checks: list[Any] = field(default_factory=list)  # every roi_rules.RuleCheck
    features: list[dict[str, Any]] = field(default_factory=list)  # the model's input rows
    notes: list[str] = field(default_factory=list)  # e.g. a clinical category not given
    probabilities: dict[int, float] = field(default_factory=dict)  # bone lesions: label -> p


def bone_change_from_hu(hu_mean: Optional[float]) -> str:
    """``osteolytic`` / ``mixed`` / ``osteogenic`` from a lesion's mean HU."""
    if hu_mean is None or not np.isfinite(hu_mean):
        return ""
    if hu_mean < LYTIC_BELOW_HU:
        return "osteolytic"
    return "osteogenic" if hu_mean > BLASTIC_ABOVE_HU else "mixed"


def _clinical_fields(bundle: Bundle) -> dict[str, Any]:
    """The model's clinical columns: categories (list) or the (low, high) range of a number."""
    encoder = getattr(bundle.pipeline, "named_steps", {}).get("encode")
    categories = getattr(encoder, "categories_", {})
    ranges = getattr(encoder, "ranges_", {})
    fields: dict[str, Any] = {}
    for column in bundle.schema:
        if column.startswith("clin_"):
            if column in categories:
                fields[column] = list(categories[column])
            else:
                fields[column] = tuple(ranges.get(column, PLAUSIBLE_CLINICAL.get(column, ())))
    return fields


def _check_value(key: str, value: Any, allowed: Any, where: str) -> Any:
    """``value`` as the model takes it, or a :class:`BundleError` naming the allowed values."""
    if isinstance(allowed, list):  # a category; matched without regard to case
        text = str(value).strip()
        match = [c for c in allowed if c.lower() == text.lower()]
        if not match:
            raise BundleError(
                f"clinical {key}{where} {text!r} is not a category the model knows "
                f"({', '.join(allowed)}){did_you_mean(text, allowed)}"
            )
        return match[0]
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise BundleError(f"clinical {key}{where} {value!r} is not a number")
    number = float(value)
    if not np.isfinite(number):
        raise BundleError(f"clinical {key}{where} {value!r} is not a finite number")
    if allowed and not allowed[0] <= number <= allowed[1]:
        raise BundleError(
            f"clinical {key}{where} {number:g} is outside the model's range "
            f"{allowed[0]:g}…{allowed[1]:g}"
        )
    return value


def check_clinical(
    bundle: Bundle, clinical: Optional[Mapping[str, Any]], labels: Sequence[int] = ()
) -> dict[str, Any]:
    """The clinical values checked against the model's training schema, categories in the
    model's spelling. Keys are the model's clinical columns with or without ``clin_``; a value
    may be a mapping from lesion label (one of ``labels``, when given) to the lesion's value."""
    fields = _clinical_fields(bundle)
    known = [c[5:] for c in fields]
    checked: dict[str, Any] = {}
    for key, value in (clinical or {}).items():
        column = key if key.startswith("clin_") else f"clin_{key}"
        if column not in fields:
            raise BundleError(
                f"clinical {key!r} is not a value this model uses "
                f"({', '.join(known) or 'it uses none'}){did_you_mean(key, known)}"
            )
        allowed = fields[column]
        if isinstance(value, Mapping):
            per_lesion = {}
            for label, item in value.items():
                try:
                    number = int(label)
                except (TypeError, ValueError):
                    raise BundleError(f"clinical {key}:{label}: not a lesion label") from None
                if labels and number not in labels:
                    raise BundleError(
                        f"clinical {key}:{label}: no lesion {label} "
                        f"(lesions {', '.join(str(v) for v in labels)})"
                    )
                if item is not None:
                    per_lesion[number] = _check_value(key, item, allowed, f" of lesion {label}")
            checked[column] = per_lesion
        elif value is not None:
            checked[column] = _check_value(key, value, allowed, "")
    return checked


def _clinical_for(clinical: Mapping[str, Any], label: int) -> dict[str, Any]:
    values = {}
    for key, value in clinical.items():
        if isinstance(value, Mapping):
            value = value.get(label, value.get(str(label)))
        if value is not None:
            values[key if key.startswith("clin_") else f"clin_{key}"] = value
    return values


def probability_overlay(
    lesions: sitk.Image,
    ct: sitk.Image,
    probabilities: Mapping[int, float],
    regions: Optional[Mapping[int, Region]] = None,
) -> sitk.Image:
    """A float32 image on the CT grid whose lesion voxels hold their lesion's probability.

    Filled lesion by lesion inside each lesion's box (``regions``, from
    :func:`~BoneOligoMetLib.image.labels.label_regions` of ``lesions`` when on the CT grid):
    the only whole-volume array is the overlay itself."""
    if not same_grid(lesions, ct):
        lesions = sitk.Resample(lesions, ct, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
        regions = None  # the boxes were those of the other grid
    overlay = sitk.Image(ct.GetSize(), sitk.sitkFloat32)  # zero-filled
    overlay.CopyInformation(ct)
    wanted = {int(k): float(v) for k, v in probabilities.items() if int(k) > 0}
    if not wanted:
        return overlay
    if regions is None:
        regions = label_regions(lesions) if sitk.GetArrayViewFromImage(lesions).any() else {}
    labels = sitk.GetArrayViewFromImage(lesions)
    for label, probability in sorted(wanted.items()):
        if label not in regions:
            continue
        start, size = regions[label].start, regions[label].size
        box = tuple(slice(a, a + n) for a, n in zip(start[::-1], size[::-1]))  # z, y, x
        values = sitk.GetArrayViewFromImage(overlay)[box].copy()  # boxes of lesions may overlap
        values[labels[box] == label] = probability
        overlay[tuple(slice(a, a + n) for a, n in zip(start, size))] = sitk.GetImageFromArray(
            values
        )  # pasted in place: no copy of the whole overlay
    return overlay


def liver_features(bundle: Bundle) -> list[str]:
    """The model's features that need the liver reference (a liver point must be given)."""
    return [c for c in bundle.schema if "liver" in c or c == "met_fdg_avid"]


def check_inputs(
    bundle: Bundle,
    clinical: Optional[Mapping[str, Any]],
    liver_seed_lps_mm: Optional[Sequence[float]],
    name: str = "case",
) -> dict[str, Any]:
    """What can be checked before any image is read: the liver point the model needs, the
    clinical values against its schema (see :func:`check_clinical`) and the clinical numbers it
    needs. Returns the checked clinical values (lesion labels are checked once known)."""
    liver_columns = liver_features(bundle)
    if liver_columns and liver_seed_lps_mm is None:
        raise BundleError(
            f"{name}: the model uses the liver reference ({liver_columns[0]}, ...): give the liver "
            "reference point (LPS mm; the centre of a 3 cm sphere in the liver, §2.3)"
        )
    given = check_clinical(bundle, clinical)
    numbers = [
        c for c, allowed in _clinical_fields(bundle).items() if not isinstance(allowed, list)
    ]
    if any(c not in given for c in numbers):
        needed = ", ".join(c[5:] for c in numbers if c not in given)
        raise BundleError(f"{name}: the model needs the clinical value(s) {needed}")
    return given


def _rule_checks(case: PreparedCase, feature_rows, extraction, liver_seed_lps_mm):
    """The ROI rules on the CT grid: (report, each lesion's rule_* flags, the lesions that are
    not bone lesions with the rule's reason). The lesions' SUVmax and liver reference come from
    their feature rows when those measured them as the rules would (lesions drawn on the CT
    grid, the same liver sphere), so nothing is measured twice."""
    ct, lesions = case.ct, case.lesions
    rule_config = RuleConfig()
    measured = None
    if same_grid(lesions, ct) and extraction.liver_diameter_mm == rule_config.liver_diameter_mm:
        found = {row["lesion_label"]: LesionMetabolics.from_row(row) for row in feature_rows}
        if all(v is not None for v in found.values()) and (
            liver_seed_lps_mm is None or all(v.liver_suv_mean is not None for v in found.values())
        ):
            measured = found
    else:
        lesions = sitk.Resample(lesions, ct, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    rules = assess_lesions(
        ct,
        case.suv,
        lesions,
        liver_seed_lps=liver_seed_lps_mm,
        config=rule_config,
        measured=measured,
    )
    flags: dict[int, dict[str, str]] = {}
    domains: dict[int, str] = {}
    for check in rules.checks:
        if check.lesion is None:
            continue
        column = RULE_COLUMNS.get(check.rule)
        if column:
            flags.setdefault(check.lesion, {})[column] = check.status
        if check.rule == "outside_bone" and check.status == "fail":  # not a bone lesion
            domains[check.lesion] = check.message
    return rules, flags, domains


def _feature_rows(case, bundle: Bundle, clinical, deep_rows, report) -> tuple[list, list[str]]:
    """The model's input row of every lesion (features, deep features, clinical values), and
    notes on categories not given. A clinical number still missing is an error."""
    encoder = getattr(bundle.pipeline, "named_steps", {}).get("encode")
    categorical = set(getattr(encoder, "categorical", ()))
    rows, notes = [], []
    for number, label in enumerate(case.labels):
        report(0.15 + 0.75 * number / len(case.labels), f"lesion {label}: features")
        row = lesion_features(
            case, label, clinical=_clinical_for(clinical, label), config=bundle.extraction
        )
        if "clin_bone_change" in bundle.schema and "clin_bone_change" not in row:
            row["clin_bone_change"] = bone_change_from_hu(row.get("met_hu_mean"))
        row.update(deep_rows.get(label, {}))
        missing = [c for c in bundle.schema if c.startswith("clin_") and c not in row]
        for column in [c for c in missing if c in categorical]:
            row[column] = None  # a category not given counts as none of the known ones
            notes.append(f"lesion {label}: {column[5:]} not given (treated as unknown)")
        missing = [c for c in missing if c not in categorical]
        if missing:
            raise BundleError(
                f"{case.name} lesion {label}: the model needs the clinical value(s) "
                f"{', '.join(c[5:] for c in missing)}"
            )
        rows.append(row)
    return rows, notes


def _result_rows(labels, feature_rows, probabilities, flags, domains, threshold: float):
    """(one result row per lesion, {label: probability} of the bone lesions, notes): a lesion
    outside the models' domain gets :data:`OUTSIDE_DOMAIN` in its probability's place."""
    rows, in_domain, notes = [], {}, []
    for label, row, probability in zip(labels, feature_rows, probabilities):
        domain = domains.get(label, "")
        if domain:
            verdict = OUTSIDE_DOMAIN
            notes.append(f"lesion {label}: {OUTSIDE_DOMAIN}: {domain}; no probability given")
        else:
            in_domain[label] = float(probability)
            verdict = "malignant" if probability >= threshold else "benign"
        rows.append(
            {
                "lesion_label": label,
                "probability": OUTSIDE_DOMAIN if domain else float(probability),
                "malignant": None if domain else bool(probability >= threshold),
                "verdict": verdict,
                "domain": domain or "bone lesion",
                "met_suv_max": row.get("met_suv_max"),
                "met_mtv_ml": row.get("met_mtv_ml"),
                "met_tlg": row.get("met_tlg"),
                **{c: flags.get(label, {}).get(c, "") for c in RULE_COLUMNS.values()},
            }
        )
    return rows, in_domain, notes


def classify_case(
    ct: sitk.Image,
    suv: sitk.Image,
    lesions: sitk.Image,
    *,
    clinical: Optional[Mapping[str, Any]] = None,
    bundle: Union[Bundle, str, Path, None] = None,
    liver_seed_lps_mm: Optional[Sequence[float]] = None,
    progress: Optional[Progress] = None,
    device: Optional[str] = None,
    name: str = "case",
    overlay: bool = True,
) -> CaseResult:
    """Classify every lesion of ``lesions`` (a label image, usually on the CT grid); CT in HU,
    PET in SUV. ``bundle``: a loaded :class:`~.bundle.Bundle`, a bundle folder, or None for the
    packaged synthetic demo bundle. ``overlay=False`` leaves :attr:`CaseResult.overlay` None
    (a float32 image of the CT's size; :func:`probability_overlay` makes it from
    :attr:`CaseResult.probabilities` when it is needed)."""

    def report(fraction: float, message: str) -> None:
        if progress is not None:
            progress(fraction, message)

    if not isinstance(bundle, Bundle):
        report(0.0, "loading the model")
        bundle = load_bundle(bundle if bundle is not None else default_bundle_path(), device)
    check_inputs(bundle, clinical, liver_seed_lps_mm, name)
    report(0.05, "checking the images")
    case = prepare_case(
        ct, suv, lesions, liver_seed_lps_mm=liver_seed_lps_mm, config=bundle.extraction, name=name
    )
    clinical = check_clinical(bundle, clinical, case.labels)
    try:  # every step reads crops around the lesions, each checked when cut
        deep_rows: dict[int, dict[str, float]] = {}
        if bundle.deep is not None:
            report(0.1, "deep features")
            deep_rows = bundle.deep.case_features(ct, suv, lesions, regions=case.regions, name=name)
        feature_rows, notes = _feature_rows(case, bundle, clinical, deep_rows, report)
        report(0.9, "ROI rules")
        rules, flags, domains = _rule_checks(
            case, feature_rows, bundle.extraction, liver_seed_lps_mm
        )
    except UnitsError:
        # A crop met a NaN (or a value no SUV takes): the whole PET's account names every
        # lesion such voxels touch, and how many (only on this error path: it reads the PET).
        require_suv_in_lesions(suv, lesions)
        raise
    report(0.95, "prediction")
    probabilities = bundle.predict_proba(feature_rows, where=name)
    rows, in_domain, outside = _result_rows(
        case.labels, feature_rows, probabilities, flags, domains, bundle.threshold
    )
    report(1.0, f"{len(case.labels)} lesion(s) classified")
    return CaseResult(
        rows=rows,
        overlay=probability_overlay(lesions, ct, in_domain, case.regions) if overlay else None,
        threshold=bundle.threshold,
        device=str(select_device(device)) if bundle.deep is not None else "cpu",
        synthetic=bundle.synthetic,
        warning=bundle.warning,
        bundle_name=bundle.name,
        checks=list(rules.checks),
        features=feature_rows,
        notes=notes + outside,
        probabilities=in_domain,
    )
