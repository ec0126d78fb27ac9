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

import contextlib
import csv
import hashlib
import json
import math
import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from BoneOligoMetLib.errors import BoneOligoMetError

ID_COLUMNS = ("patient_id", "reader", "lesion_label", "label")


def file_fingerprint(path: Union[str, Path]) -> list:
    """(path, size, mtime_ns) of a file, or of every file under a folder; ``missing`` if absent."""
    path = Path(path)
    if path.is_file():
        stat = path.stat()
        return [str(path), stat.st_size, stat.st_mtime_ns]
    if path.is_dir():
        entries = []
        for folder, _, names in sorted(os.walk(path)):
            for name in sorted(names):
                stat = os.stat(os.path.join(folder, name))
                entries.append([os.path.join(folder, name), stat.st_size, stat.st_mtime_ns])
        return [str(path), entries]
    return [str(path), "missing"]


def file_sha256(path: Union[str, Path]) -> str:
    """SHA-256 of a file's content (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def case_fingerprint(inputs: Iterable[str]) -> str:
    """SHA-256 of the fingerprints of a case's input files and folders."""
    text = json.dumps([file_fingerprint(p) for p in inputs])
    return hashlib.sha256(text.encode()).hexdigest()


def part_key(fingerprint: str, patient_id: str, reader: str, label: int, digest: str) -> str:
    """Name of one lesion's feature-group part."""
    text = json.dumps([fingerprint, patient_id, reader, int(label), digest])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def atomic_write(path: Path, data: bytes, durable: bool = False) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, even
    if this process dies meanwhile. ``durable``: on disk before the rename, so a machine crash
    cannot leave an empty file either (tables; a torn part reads as unfinished anyway)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Named before it exists, so a Ctrl-C right after the create still removes it; the pid
    # says whose it is (remove_temporaries).
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
    try:
        with open(temporary, "xb") as stream:
            stream.write(data)
            if durable:
                stream.flush()
                os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def remove_temporaries(folder: Union[str, Path], pids: Iterable[int]) -> int:
    """Remove the unfinished writes that processes ``pids``, now ended, left under ``folder``
    (killed mid-write); returns how many."""
    removed = 0
    for pid in pids:
        for temporary in Path(folder).glob(f"**/.*.{int(pid)}.*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
                removed += 1
    return removed


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


def _arrow_column(values: list):
    import pyarrow as pa

    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pa.array(values, type=pa.bool_())
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pa.array(values, type=pa.int64())
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pa.array([math.nan if v is None else float(v) for v in values], type=pa.float64())
    return pa.array([None if v is None else str(v) for v in values], type=pa.string())


def write_table(columns: Sequence[str], rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Rows as Parquet (pyarrow), or CSV when ``path`` ends in ``.csv``; written atomically."""
    if path.suffix.lower() == ".csv":
        import io

        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row[k] for k in columns})
        atomic_write(path, buffer.getvalue().encode(), durable=True)
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({name: _arrow_column([row.get(name) for row in rows]) for name in columns})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    atomic_write(path, sink.getvalue().to_pybytes(), durable=True)


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
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, buffer.getvalue().encode(), durable=True)
    return len(failed)


def read_table(path: Union[str, Path]) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, rows) of a table written by :func:`write_table` (Parquet or CSV)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        from BoneOligoMetLib.manifest import parse_value

        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            rows = [{k: parse_value(v) for k, v in row.items()} for row in reader]
            return list(reader.fieldnames or []), rows
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    return table.column_names, table.to_pylist()
