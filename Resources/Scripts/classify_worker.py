"""Runs ``BoneOligoMetLib.classify.classify_case`` in a process of its own, for the Slicer panel.

The panel writes a job folder (``job.json`` and the CT, SUV and lesion images as NRRD) and hands
it to this script, which answers on its standard output, one line per event:

    BOM-PROGRESS <fraction 0..1> <message>
    BOM-ERROR <one-line message>          a bad input or bundle: shown to the user as it is
    BOM-CANCELLED <message>               the panel asked to stop (file JOB_FOLDER/cancel)
    BOM-RESULT result.json                done: result.json is in JOB_FOLDER

Two ways to run it:

``classify_worker.py JOB_FOLDER``
    one job, then exit. Exit status: 0 done, 2 error, 3 cancelled, 1 unexpected failure (with
    a traceback).
``classify_worker.py --serve``
    the panel's warm worker: one process per Slicer session that keeps the library imported
    and the last model bundle loaded, so that only the first classification pays for them.
    It prints ``BOM-READY <pid>`` when it waits for a job, reads one job folder per line of
    its standard input, answers as above and prints ``BOM-READY`` again. A cancelled job
    stops within a fraction of a second and the worker waits for the next one; an unexpected
    failure is reported as ``BOM-ERROR`` and the worker goes on. It exits when its standard
    input closes (Slicer ended or let it go) or when its parent process is gone.

Any other line is log output. Nothing here computes anything: it reads, calls the library and
writes. It runs in Slicer's own Python (PythonSlicer), so it must stay Python 3.9-compatible.
"""

from __future__ import annotations

import _thread
import contextlib
import importlib
import json
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Optional

PREFIX = "BOM"
CANCEL_FILE = "cancel"
JOB_FILE = "job.json"
RESULT_FILE = "result.json"
EXIT_ERROR, EXIT_CANCELLED = 2, 3
WATCH_INTERVAL_S = 0.1


def emit(kind: str, text: str = "") -> None:
    """One event line for the panel (flushed at once: the panel reads as we go)."""
    print(f"{PREFIX}-{kind} {' '.join(str(text).split())}".rstrip(), flush=True)


class _Cancelled(BaseException):
    """The panel asked the running job to stop (a BaseException, like KeyboardInterrupt, so
    that no library's ``except Exception`` takes it for an error of its own)."""


class _Watch:
    """A thread that stops the running job when the panel asks (cancel file) and ends the
    process when the parent (Slicer, or the PythonSlicer launcher) is gone.

    A thread, not the progress callback: the library may run for a while between two progress
    calls (a CNN forward pass, a radiomics class). One-shot (``serve=False``): ``os._exit`` at
    once, skipping interpreter clean-up on purpose (the job folder is the panel's to delete).
    Warm worker: the main thread is interrupted (``_thread.interrupt_main``: our SIGINT handler
    runs at its next Python instruction, within a fraction of a second, and stops the job if
    one is still running) and the worker keeps its loaded model.
    """

    def __init__(self, parent_pid: int, serve: bool) -> None:
        self.parent_pid = parent_pid
        self.serve = serve
        self.folder: Optional[Path] = None  # the job being watched, else None
        self.lock = threading.Lock()
        threading.Thread(target=self._run, daemon=True).start()

    def watch(self, folder: Optional[Path]) -> None:
        with self.lock:
            self.folder = folder

    def _run(self) -> None:
        while True:
            if os.getppid() != self.parent_pid:  # Slicer was killed: nobody reads our answers
                os._exit(EXIT_CANCELLED)
            with self.lock:
                folder = self.folder
                if folder is not None and (folder / CANCEL_FILE).exists():
                    if not self.serve:
                        emit("CANCELLED", "stopped on request")
                        os._exit(EXIT_CANCELLED)
                    self.folder = None  # asked once
                    _thread.interrupt_main()
            time.sleep(WATCH_INTERVAL_S)


def _lesion_keys(value: Any) -> Any:
    """JSON turns the lesion labels of per-lesion clinical values ({1: "spine"}) into strings."""
    if isinstance(value, dict):
        return {int(k) if isinstance(k, str) and k.isdigit() else k: v for k, v in value.items()}
    return value


def _plain(value: Any) -> Any:
    """JSON-ready copy of a value from the library (numpy scalars, paths)."""
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


# What a classification imports besides the library: loaded by the warm worker before its
# first job (a bundle that needs none of them does not fail for their absence here).
PRELOAD = ("BoneOligoMetLib.deep.network", "radiomics.featureextractor", "skops.io")


def _import_library(preload: bool = False) -> Optional[str]:
    """Imports the classifier (and, with ``preload``, :data:`PRELOAD`); None, or the message
    naming what is missing."""
    module_dir = Path(__file__).resolve().parents[2]  # Resources/Scripts -> the module folder
    if str(module_dir) not in sys.path:
        sys.path.insert(0, str(module_dir))
    try:
        for name in ("BoneOligoMetLib.classify", "BoneOligoMetLib.io.images"):
            importlib.import_module(name)
    except ImportError as error:
        return f"cannot import the classifier: {error} (install the missing package)"
    for name in PRELOAD if preload else ():
        with contextlib.suppress(ImportError):  # the job that needs it says so
            importlib.import_module(name)
    return None


class _Bundles:
    """The last model bundle loaded, kept while its files stay as they were (a model folder
    retrained in place is loaded again, and checked again, by the library)."""

    def __init__(self) -> None:
        self.key: Optional[tuple] = None
        self.bundle: Any = None

    @staticmethod
    def _key(folder: Path, device: str) -> tuple:
        stamps = []
        manifest = folder / "manifest.json"
        try:
            names = json.loads(manifest.read_text(encoding="utf-8")).get("files", {})
        except (OSError, ValueError):
            names = {}
        for path in [manifest, *(folder / name for name in names)]:
            try:
                stat = path.stat()
                stamps.append((str(path), stat.st_mtime_ns, stat.st_size))
            except OSError:
                stamps.append((str(path), None, None))
        return (str(folder.resolve()), device, tuple(stamps))

    def get(self, folder: Optional[str], device: str) -> Any:
        from BoneOligoMetLib.models.bundle import default_bundle_path, load_bundle

        path = Path(folder) if folder else default_bundle_path()
        key = self._key(path, device)
        if key != self.key:
            self.key, self.bundle = None, None  # the old one's memory goes before the new loads
            self.bundle = load_bundle(path, device)
            self.key = key
        return self.bundle


def run(folder: Path, bundles: Optional[_Bundles] = None) -> int:
    """One job: 0 done, EXIT_ERROR with a ``BOM-ERROR`` line (bad input, missing package)."""
    job = json.loads((folder / JOB_FILE).read_text(encoding="utf-8"))
    problem = _import_library()
    if problem:
        emit("ERROR", problem)
        return EXIT_ERROR
    from BoneOligoMetLib.classify import check_inputs, classify_case
    from BoneOligoMetLib.errors import BoneOligoMetError
    from BoneOligoMetLib.io.images import read_image

    def progress(fraction: float, message: str) -> None:
        emit("PROGRESS", f"{fraction:.4f} {message}")

    try:
        device = job.get("device", "auto")
        progress(0.0, "loading the model")
        bundle = (bundles or _Bundles()).get(job.get("bundle"), device)
        clinical = {key: _lesion_keys(value) for key, value in job.get("clinical", {}).items()}
        liver = job.get("liver_seed_lps_mm")
        check_inputs(bundle, clinical, liver)  # before any image is read
        progress(0.03, "reading the images")
        ct = read_image(folder / job["ct"])
        suv = read_image(folder / job["suv"])
        lesions = read_image(folder / job["lesions"])
        result = classify_case(
            ct,
            suv,
            lesions,
            clinical=clinical or None,
            bundle=bundle,
            liver_seed_lps_mm=tuple(liver) if liver else None,
            progress=progress,
            device=device,
            overlay=False,  # the panel makes it from the probabilities: no 0.3 GB file between
        )
    except BoneOligoMetError as error:
        emit("ERROR", str(error))
        return EXIT_ERROR
    except ImportError as error:  # a package the bundle needs (torch, radiomics, ...)
        emit("ERROR", f"missing Python package: {error}")
        return EXIT_ERROR
    summary = {
        "rows": result.rows,
        "probabilities": {str(k): v for k, v in result.probabilities.items()},
        "threshold": result.threshold,
        "device": result.device,
        "synthetic": result.synthetic,
        "warning": result.warning,
        "bundle_name": result.bundle_name,
    }
    text = json.dumps(summary, indent=1, default=_plain)
    (folder / RESULT_FILE).write_text(text, encoding="utf-8")
    emit("RESULT", RESULT_FILE)
    return 0


def _serve(watch: _Watch) -> int:
    """The warm worker's loop (see the module docstring)."""
    running = [False]  # read by the interrupt handler, which runs in this (the main) thread

    def stop_job(signum, frame) -> None:
        if running[0]:
            raise _Cancelled()
        # else: the job ended before the request landed; nothing to stop

    signal.signal(signal.SIGINT, stop_job)
    problem = _import_library(preload=True)  # the first job's wait, paid before it comes
    bundles = _Bundles()
    emit("READY", str(os.getpid()))
    while True:
        line = sys.stdin.readline()
        if not line:  # the panel closed our input: Slicer ended or let the worker go
            return 0
        if not line.strip():
            continue
        folder = Path(line.strip())
        try:
            running[0] = True
            watch.watch(folder)
            if (folder / CANCEL_FILE).exists():  # cancelled before the worker took it up
                raise _Cancelled()
            if problem:
                emit("ERROR", problem)
            elif not (folder / JOB_FILE).is_file():
                emit("ERROR", f"{folder}: no {JOB_FILE}")
            else:
                run(folder, bundles)
        except _Cancelled:
            emit("CANCELLED", "stopped on request")
        except Exception as error:  # unexpected: keep the traceback in Slicer's log
            traceback.print_exc(file=sys.stdout)
            emit("ERROR", f"{type(error).__name__}: {error}")
        finally:
            running[0] = False
            watch.watch(None)
        emit("READY")


def main(argv: Optional[list] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--serve"]:
        return _serve(_Watch(os.getppid(), serve=True))
    if len(args) != 1 or not Path(args[0], JOB_FILE).is_file():
        print(__doc__, file=sys.stderr)
        return EXIT_ERROR
    folder = Path(args[0])
    _Watch(os.getppid(), serve=False).watch(folder)
    try:
        return run(folder)
    except Exception as error:  # unexpected: keep the traceback in Slicer's log
        traceback.print_exc(file=sys.stdout)
        emit("ERROR", f"{type(error).__name__}: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
