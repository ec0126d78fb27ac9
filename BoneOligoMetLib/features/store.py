"""The resumable result store of a cohort extraction, and the table assembled from it.

Every lesion's feature group (``met``, ``ct``, ``pet``, ``petct``) is one small JSON file in
``<out>.parts/``, written atomically (temporary file, then rename) the moment it is computed. Its
name is a hash of what decides its values: the case's input files (path, size and modification
time of each, every file of a DICOM folder), the patient, reader and lesion label, and the
group's effective parameters (:meth:`ExtractionConfig.group_digest`). So a rerun finds finished
work by name and skips it; touching an image or changing a parameter file's effective content
changes the names of exactly the parts it decides; a failed lesion's part records its error and
is retried on the next run. Stale parts are left in place (switching back reuses them).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from BoneOligoMetLib.errors import BoneOligoMetError
from BoneOligoMetLib.io.files import atomic_write
from BoneOligoMetLib.io.tables import write_csv

ID_COLUMNS = ("patient_id", "reader", "lesion_label", "label")


def part_key(fingerprint: str, patient_id: str, reader: str, label: int, digest: str) -> str:
    """Name of one lesion's feature-group part."""
    text = json.dumps([fingerprint, patient_id, reader, int(label), digest])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class PartStore:
    """Parts (one JSON per lesion and feature group) under a folder."""

    def __init__(self, root: Union[str, Path]) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> Optional[dict[str, Any]]:
        """The part's record, or None if absent or unreadable (then it is recomputed)."""
        try:
            return json.loads(self.path(key).read_text())
        except (OSError, ValueError):
            return None

    def done(self, key: str) -> bool:
        record = self.get(key)
        return record is not None and record.get("status") == "ok"

    def put_values(self, key: str, about: Mapping[str, Any], values: Mapping[str, Any]) -> None:
        record = {**about, "status": "ok", "values": [[k, v] for k, v in values.items()]}
        atomic_write(self.path(key), json.dumps(record).encode())

    def put_error(self, key: str, about: Mapping[str, Any], error: str) -> None:
        record = {**about, "status": "error", "error": error}
        atomic_write(self.path(key), json.dumps(record).encode())


@dataclass(frozen=True)
class LesionResult:
    """What the store holds for one manifest row: its feature groups, or its error."""

    row: int
    ids: dict[str, Any]  # patient_id, [reader], lesion_label, [label]
    clinical: dict[str, Any]
    groups: Optional[dict[str, list]]  # group -> [[name, value], ...]; None if failed
    error: str = ""


def assemble(results: Sequence[LesionResult], groups: Sequence[str]) -> tuple[list, list[dict]]:
    """(columns, rows) of the finished lesions in row order; columns in a fixed order: ids,
    ``clin_*`` (manifest order), then each group's names in the order they were computed."""
    finished = sorted((r for r in results if r.groups is not None), key=lambda r: r.row)
    if not finished:
        return [], []
    first = finished[0]
    columns = list(first.ids) + list(first.clinical)
    names = {group: [name for name, _ in first.groups[group]] for group in groups}  # type: ignore[index]
    for group in groups:
        columns += names[group]
    rows = []
    for result in finished:
        row = {**result.ids, **result.clinical}
        for group in groups:
            values = result.groups[group]  # type: ignore[index]
            if [name for name, _ in values] != names[group]:
                raise BoneOligoMetError(
                    f"{result.ids.get('patient_id')} lesion {result.ids.get('lesion_label')}: "
                    f"its {group} features differ in names from the first lesion's"
                )
            row.update(values)
        rows.append(row)
    return columns, rows


def write_errors(results: Sequence[LesionResult], path: Path) -> int:
    """``patient_id, reader, lesion_label, error`` of failed lesions; the file is removed when
    none failed. Returns the number of failures."""
    failed = sorted((r for r in results if r.groups is None), key=lambda r: r.row)
    if not failed:
        if path.exists():
            path.unlink()
        return 0
    rows = [
        {
            "patient_id": r.ids.get("patient_id"),
            "reader": r.ids.get("reader", ""),
            "lesion_label": r.ids.get("lesion_label"),
            "error": r.error,
        }
        for r in failed
    ]
    write_csv(rows, path)
    return len(failed)
