"""Helpers shared by the subcommands: point and device arguments, aligned text tables, the
progress bar, the output check."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any


def parse_point(text: str) -> tuple[float, float, float]:
    """``X,Y,Z`` in mm as a tuple (argparse ``type=``; a leading minus works, see
    :func:`~BoneOligoMetLib.cli.join_negative_points`)."""
    import math

    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(
            f"expected X,Y,Z as three finite numbers in mm (e.g. 12.5,-80,40), got {text!r}"
        )
    return values  # type: ignore[return-value]


def parse_device(text: str) -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (argparse ``type=``): a typo fails at once."""
    if text in ("auto", "cpu", "cuda") or (text.startswith("cuda:") and text[5:].isdigit()):
        return text
    raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N, got {text!r}")


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


@contextlib.contextmanager
def progress_bar(
    desc: str, total: int = 100, unit: str = "%", enabled: bool = True
) -> Iterator[Callable[[float, str], None]]:
    """A tqdm bar on stderr, fed by the library's ``progress(fraction, message)`` callbacks;
    yields the callback. Silent when stderr is not a terminal (or ``enabled`` is False). The bar
    appears with the first call, at the fraction done so far (a resumed run's honest ETA)."""
    from tqdm import tqdm

    # No monitor thread: a single-threaded process forks its pool workers (features.pool).
    tqdm.monitor_interval = 0
    state: dict = {}

    def update(fraction: float, message: str) -> None:
        count = min(total, round(fraction * total))
        if "bar" not in state:
            state["bar"] = tqdm(total=total, initial=count, unit=unit, desc=desc,
                                dynamic_ncols=True, disable=None if enabled else True)  # fmt: skip
        bar = state["bar"]
        bar.update(count - bar.n)
        bar.set_postfix_str(message, refresh=True)

    try:
        yield update
    finally:
        if "bar" in state:
            state["bar"].close()


def to_lps(point, ras: bool):
    """A CLI point in LPS mm: converted from Slicer RAS when ``ras``."""
    if point is None or not ras:
        return point
    from BoneOligoMetLib.io.coords import ras_to_lps

    return ras_to_lps(point)


def check_outputs(args: argparse.Namespace, outputs: Mapping[str, str]) -> None:
    """Refuse, before any work, an output that cannot be written (so no computing is lost).

    ``outputs`` maps an argument's dest to its kind: ``folder``, ``image`` (a suffix the image
    writer knows) or ``file``. A path whose parent is a file, a file where a folder is wanted
    (or the reverse), or a place the system will not let us write is an error naming the flag.
    """
    import os
    import tempfile
    from pathlib import Path

    from BoneOligoMetLib.errors import BoneOligoMetError

    for dest, kind in outputs.items():
        value = getattr(args, dest, None)
        if not value:
            continue
        flag = f"--{dest.replace('_', '-')}"
        path = Path(value)
        if kind == "folder" and path.exists() and not path.is_dir():
            raise BoneOligoMetError(f"{flag} {path}: exists and is not a folder")
        if kind != "folder" and path.is_dir():
            raise BoneOligoMetError(f"{flag} {path}: is a folder; give a file name")
        if kind == "image":
            from BoneOligoMetLib.io.files import IMAGE_SUFFIXES

            if not path.name.lower().endswith(IMAGE_SUFFIXES):
                raise BoneOligoMetError(
                    f"{flag} {path}: cannot write this format; use one of "
                    f"{', '.join(IMAGE_SUFFIXES)}"
                )
        existing = path if kind == "folder" else path.parent
        existing = existing.absolute()
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir():
            raise BoneOligoMetError(f"{flag} {path}: {existing} is a file, not a folder")
        try:
            if not os.access(existing, os.W_OK | os.X_OK):
                raise PermissionError("permission denied")
            with tempfile.TemporaryFile(dir=existing):
                pass
        except OSError as error:
            reason = error.strerror or str(error)
            raise BoneOligoMetError(
                f"{flag} {path}: cannot write in {existing} ({reason})"
            ) from None
