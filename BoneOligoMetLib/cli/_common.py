"""Helpers shared by the subcommands: point arguments, aligned text tables, CSV, progress."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any


def parse_point(text: str) -> tuple[float, float, float]:
    """``X,Y,Z`` in mm as a tuple (argparse ``type=``); write ``--seed=-12,80,40`` for negatives."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected X,Y,Z in mm (e.g. 12.5,-80,40), got {text!r}")
    return values  # type: ignore[return-value]


def cell(value: Any, fmt: str = "") -> str:
    """A table cell: ``-`` for None, yes/no for booleans, else ``format(value, fmt)``."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return format(value, fmt)


def align(lines: Sequence[Sequence[str]], left: Sequence[int] = ()) -> str:
    """Rows of cells as aligned text: right-aligned, except the column numbers in ``left``."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join(
        "  ".join(
            c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))
        ).rstrip()
        for line in lines
    )


def write_csv(rows: Sequence[Mapping[str, Any]], path: str) -> None:
    """Rows of dicts (same keys) as CSV, ``None`` written as an empty field."""
    import csv
    from pathlib import Path

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})


def progress(fraction: float, message: str) -> None:
    """A one-line progress display on a terminal's stderr (silent when redirected)."""
    if sys.stderr.isatty():
        print(f"\r[{fraction:4.0%}] {message:<30}", end="", file=sys.stderr, flush=True)
        if fraction >= 1.0:
            print(file=sys.stderr)


def to_lps(point, ras: bool):
    """A CLI point in LPS mm: converted from Slicer RAS when ``ras``."""
    if point is None or not ras:
        return point
    from BoneOligoMetLib.coords import ras_to_lps

    return ras_to_lps(point)
