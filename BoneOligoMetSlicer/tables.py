"""The panel's three tables: per-lesion clinical values, ROI rules, classification results.

Rows from the library's answers, named by segment (label i+1 = the segmentation's i-th segment),
and the clinical values read back as ``classify_case`` takes them. Table nodes are filled and read
by ``mrml.fillTable`` / ``mrml.readTable``.
"""

from BoneOligoMetSlicer import mrml

PATIENT_ROW = "(patient)"  # the rule table's row of patient-level checks (lesion count)
RESULT_COLUMNS = ("segment", "lesion", "probability", "label")
RULE_COLUMNS = ("segment", "lesion", "rule", "status", "value", "threshold", "unit", "message")
CLINICAL_COLUMNS = ("segment", "lesion", "site", "bone_change")
PER_LESION_CLINICAL = CLINICAL_COLUMNS[2:]


def fillRules(tableNode, report, segmentNames) -> None:
    """One row per check of a ``roi_rules`` report; the patient-level checks have no lesion."""
    rows = []
    for check in report.checks:
        row = {name: getattr(check, name) for name in RULE_COLUMNS[1:]}
        row["segment"] = PATIENT_ROW if check.lesion is None else segmentNames[check.lesion - 1]
        rows.append(row)
    mrml.fillTable(tableNode, rows, RULE_COLUMNS)


def fillResults(tableNode, summaryRows, segmentNames) -> None:
    """One row per classified lesion: probability, label at the threshold, metabolic values and
    rule flags. A lesion outside the model's domain has no probability (its label says why)."""
    rows = []
    for result in summaryRows:
        label = int(result["lesion_label"])
        probability = result["probability"]  # text for a lesion outside the model's domain
        if not isinstance(probability, (int, float)):
            probability = None
        row = {"segment": segmentNames[label - 1], "lesion": label, "probability": probability}
        row["label"] = result["verdict"]
        skip = ("lesion_label", "probability", "malignant", "verdict")
        row.update((key, value) for key, value in result.items() if key not in skip)
        rows.append(row)
    mrml.fillTable(tableNode, rows, RESULT_COLUMNS)


def fillClinical(tableNode, segmentNames, defaults=None) -> None:
    """One row per segment, keeping what was typed for each segment (by name); a new segment
    starts from ``defaults`` ({label: {column: value}})."""
    known = {row["segment"]: row for row in mrml.readTable(tableNode)}
    rows = []
    for label, name in enumerate(segmentNames, 1):
        row = known.get(name) or (defaults or {}).get(label, {})
        values = {key: row.get(key, "") for key in PER_LESION_CLINICAL}
        rows.append({"segment": name, "lesion": label, **values})
    mrml.fillTable(tableNode, rows, CLINICAL_COLUMNS)


def newSegments(tableNode, segmentNames) -> bool:
    """Whether a segment has no row yet (its defaults are then worth computing)."""
    known = {row["segment"] for row in mrml.readTable(tableNode)}
    return any(name not in known for name in segmentNames)


def clinicalValues(tableNode):
    """{"site": {label: value}, "bone_change": {...}} of the cells that were filled in."""
    values = {}
    for row in mrml.readTable(tableNode):
        for key in PER_LESION_CLINICAL:
            if row.get(key):
                values.setdefault(key, {})[int(row["lesion"])] = row[key]
    return values
