"""Numbers, intervals and HTML tables as the reports print them."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def _ci(value: Any, low: Any, high: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    separator = ", " if low is not None and low < 0 else "–"  # "-0.59–-0.01" reads badly
    return f"{value:.{digits}f} [{_num(low, digits)}{separator}{_num(high, digits)}]"


def _p(value: Any) -> str:
    if value is None or value == "":
        return "–"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], table_id: str = "") -> str:
    ident = f' id="{table_id}"' if table_id else ""
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
