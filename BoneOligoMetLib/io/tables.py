"""Tables on disk: Parquet or CSV, read and written in one place."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union

from BoneOligoMetLib.io.files import atomic_write
from BoneOligoMetLib.io.manifest import parse_value


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


def csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] = ()) -> str:
    """Rows of dicts as CSV text: ``columns`` (default: the first row's keys) in order, a key a
    row lacks or ``None`` as an empty field, ``\\n`` line ends."""
    names = list(columns) or (list(rows[0]) if rows else [])
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in names})
    return buffer.getvalue()


def write_csv(
    rows: Sequence[Mapping[str, Any]], path: Union[str, Path], columns: Sequence[str] = ()
) -> Path:
    """:func:`csv_text` of ``rows`` to ``path``, its folder created, written atomically (a crash
    never leaves half a table)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, csv_text(rows, columns).encode("utf-8"), durable=True)
    return path


def write_table(columns: Sequence[str], rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Rows as Parquet (pyarrow), or CSV when ``path`` ends in ``.csv``; written atomically."""
    if path.suffix.lower() == ".csv":
        write_csv(rows, path, columns)
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({name: _arrow_column([row.get(name) for row in rows]) for name in columns})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    atomic_write(path, sink.getvalue().to_pybytes(), durable=True)


def read_table(path: Union[str, Path]) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, rows) of a table written by :func:`write_table` (Parquet or CSV)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            rows = [{k: parse_value(v) for k, v in row.items()} for row in reader]
            return list(reader.fieldnames or []), rows
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    return table.column_names, table.to_pylist()
