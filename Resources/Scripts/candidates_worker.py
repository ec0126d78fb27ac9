"""Finds candidate bone lesions (``BoneOligoMetLib.lesions.candidates``) in a process of its own,
for the Slicer panel's *Find candidate lesions*.

The panel writes a job folder (``job.json`` and the CT and SUV images as NRRD), starts
``PythonSlicer candidates_worker.py JOB_FOLDER`` and reads this script's standard output, one
line per event:

    BOM-PROGRESS <fraction 0..1> <message>
    BOM-ERROR <one-line message>          a bad input: shown to the user as it is
    BOM-CANCELLED <message>               the panel asked to stop (file JOB_FOLDER/cancel)
    BOM-RESULT result.json                done: result.json is in JOB_FOLDER

``result.json``: ``{"candidates": [...], "note": ...}``, the candidates best first as
``slicer_candidates`` gives them (name, rank, point_lps, suv_max, score, site, why, note).
Any other line is log output. Exit status: 0 done, 2 error, 3 cancelled, 1 unexpected failure
(with a traceback). Nothing here computes anything: it reads, calls the library and writes.
It runs in Slicer's own Python (PythonSlicer) with only what Slicer ships (numpy, scipy,
SimpleITK), so it must stay Python 3.9-compatible.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

PREFIX = "BOM"
CANCEL_FILE = "cancel"
JOB_FILE = "job.json"
RESULT_FILE = "result.json"
EXIT_ERROR, EXIT_CANCELLED = 2, 3
WATCH_INTERVAL_S = 0.3


def emit(kind: str, text: str) -> None:
    """One event line for the panel (flushed at once: the panel reads as we go)."""
    print(f"{PREFIX}-{kind} {' '.join(str(text).split())}", flush=True)


def _watch(folder: Path, parent_pid: int) -> None:
    """Stop at once when the panel asks (cancel file) or when our parent is gone; a thread, as
    the library may run for seconds between two progress calls. ``os._exit`` skips interpreter
    clean-up on purpose; the job folder is the panel's to delete."""
    while True:
        if (folder / CANCEL_FILE).exists():
            emit("CANCELLED", "stopped on request")
            os._exit(EXIT_CANCELLED)
        if os.getppid() != parent_pid:  # Slicer (or the PythonSlicer launcher) was killed
            os._exit(EXIT_CANCELLED)
        time.sleep(WATCH_INTERVAL_S)


def _plain(value: Any) -> Any:
    """JSON-ready copy of a value from the library (numpy scalars)."""
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def run(folder: Path) -> int:
    job = json.loads((folder / JOB_FILE).read_text(encoding="utf-8"))
    module_dir = Path(__file__).resolve().parents[2]  # Resources/Scripts -> the module folder
    if str(module_dir) not in sys.path:
        sys.path.insert(0, str(module_dir))
    try:
        from BoneOligoMetLib.errors import BoneOligoMetError
        from BoneOligoMetLib.io.images import read_image
        from BoneOligoMetLib.lesions.candidates import PROPOSAL_NOTE, slicer_candidates
    except ImportError as error:
        emit("ERROR", f"cannot import the candidate finder: {error}")
        return EXIT_ERROR

    try:
        ct = read_image(folder / job["ct"])
        suv = read_image(folder / job["suv"])
        found = slicer_candidates(
            ct,
            suv,
            max_candidates=job.get("max_candidates"),
            progress=lambda fraction, message: emit("PROGRESS", f"{fraction:.4f} {message}"),
        )
    except BoneOligoMetError as error:
        emit("ERROR", str(error))
        return EXIT_ERROR
    text = json.dumps({"candidates": found, "note": PROPOSAL_NOTE}, indent=1, default=_plain)
    (folder / RESULT_FILE).write_text(text, encoding="utf-8")
    emit("RESULT", RESULT_FILE)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0], JOB_FILE).is_file():
        print(__doc__, file=sys.stderr)
        return EXIT_ERROR
    folder = Path(args[0])
    threading.Thread(target=_watch, args=(folder, os.getppid()), daemon=True).start()
    try:
        return run(folder)
    except Exception as error:  # unexpected: keep the traceback in Slicer's log
        traceback.print_exc(file=sys.stdout)
        emit("ERROR", f"{type(error).__name__}: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
