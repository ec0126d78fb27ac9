"""Cohort feature extraction: every lesion of a manifest into one table, resumably, in parallel.

``extract_cohort(manifest, "features.parquet")`` reads the manifest (:mod:`.manifest`), finds
which lesion feature groups the store (:mod:`.store`) already holds, computes the rest one
patient per task — in this process (``workers=1``), in a local process pool (``workers=N``) or
on a Dask distributed cluster (``scheduler="tcp://host:8786"``) — and assembles the table in
manifest order. Each worker writes its lesions' parts the moment they are done, so a killed run
loses at most the lesions in flight; a lesion that fails is recorded with its error in
``<out>.errors.csv`` and the others go on. With several readers per lesion (a ``reader``
column), ``<out>.icc.csv`` holds every feature's inter-reader ICC(2,1).

Ctrl-C reaches every process of the terminal's group: pool workers ignore it and the parent
stops them (cases not started are cancelled, cases in flight end at once), then raises
:class:`ExtractionInterrupted` with the number of lesions kept. A pool worker also ends when
its parent dies, so a killed run leaves no orphan computing.

Tasks carry paths, not images: a Dask worker elsewhere needs the same paths (a shared file
system) and reads the images itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

from BoneOligoMetLib.errors import BoneOligoMetError
from BoneOligoMetLib.features import ExtractionConfig
from BoneOligoMetLib.manifest import CaseEntry, Manifest, read_manifest
from BoneOligoMetLib.store import (
    LesionResult,
    PartStore,
    assemble,
    case_fingerprint,
    part_key,
    remove_temporaries,
    write_errors,
    write_table,
)

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class CaseTask:
    """One patient's lesions still to compute: (lesion label, ((group, part key), ...))."""

    case: CaseEntry
    todo: tuple[tuple[int, tuple[tuple[str, str], ...]], ...]

    @property
    def n_lesions(self) -> int:
        return len(self.todo)


@dataclass(frozen=True)
class LesionOutcome:
    patient_id: str
    reader: str
    lesion_label: int
    groups: tuple[str, ...]  # computed now
    error: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class ExtractionSummary:
    table: Optional[Path]  # None when no lesion succeeded
    errors: Optional[Path]  # None when none failed
    icc: Optional[Path]  # with several readers
    n_lesions: int  # manifest rows
    n_ok: int  # rows in the table
    n_failed: int
    n_computed: int  # lesions computed by this run (some or all of their groups)
    n_reused: int  # lesions found complete in the store
    n_columns: int
    seconds: float


class ExtractionInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a cohort run (its workers stopped too): ``kept`` of ``total`` lesions are
    finished in the ``parts`` folder, and the same call again resumes from them."""

    def __init__(self, kept: int, total: int, parts: Path) -> None:
        super().__init__(f"{kept} of {total} lesion(s) kept in {parts}")
        self.kept = kept
        self.total = total
        self.parts = parts


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text if isinstance(error, BoneOligoMetError) else f"{type(error).__name__}: {text}"


def _about(case: CaseEntry, label: int, group: str) -> dict[str, Any]:
    return {
        "patient_id": case.patient_id,
        "reader": case.reader,
        "lesion_label": label,
        "group": group,
    }


def read_case_images(case: CaseEntry):
    """A case's CT (HU) and PET as SUV: image files, or DICOM folders (PET converted to SUVbw)."""
    import SimpleITK as sitk

    from BoneOligoMetLib.image_io import read_image

    ct = read_image(case.ct, modality="CT" if case.ct_is_dicom else None)
    if case.pet_is_dicom:
        from BoneOligoMetLib.suv import pet_dicom_to_suv

        suv, _ = pet_dicom_to_suv(case.pet)
    else:
        suv = read_image(case.pet, pixel_type=sitk.sitkFloat32)
    return ct, suv


def run_case(
    task: CaseTask,
    store_root: str,
    config: ExtractionConfig,
    threads: Optional[int] = None,
    on_lesion: Optional[Callable[[LesionOutcome], None]] = None,
) -> list[LesionOutcome]:
    """Compute one patient's pending lesions and store each group's part as it finishes.

    The worker function of every backend (importable, small arguments). A failure of the case
    (unreadable image, wrong units) is recorded for each of its lesions; a failure of one lesion
    for that lesion only. ``threads``: SimpleITK threads in this process (None: unchanged).
    """
    import SimpleITK as sitk

    from BoneOligoMetLib.features import lesion_feature_groups, prepare_case
    from BoneOligoMetLib.manifest import read_case_lesions

    if threads is not None:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(int(threads))
    store = PartStore(store_root)
    case = task.case
    labels = dict(task.todo)
    by_file: dict[str, list[int]] = {}
    for lesion in case.lesions:
        if lesion.lesion_label in labels:
            by_file.setdefault(lesion.lesions, []).append(lesion.lesion_label)
    outcomes: list[LesionOutcome] = []

    def record(label: int, groups: tuple[str, ...], error: str, seconds: float) -> None:
        outcome = LesionOutcome(case.patient_id, case.reader, label, groups, error, seconds)
        outcomes.append(outcome)
        if on_lesion is not None:
            on_lesion(outcome)

    def fail(label: int, error: str, seconds: float = 0.0) -> None:
        for group, key in labels[label]:
            store.put_error(key, _about(case, label, group), error)
        record(label, (), error, seconds)

    started = time.perf_counter()
    try:
        ct, suv = read_case_images(case)
    except Exception as error:  # a bad case is recorded; the run goes on
        message = _one_line(error)
        log.warning("%s: %s", case.name, message)
        for label in labels:
            fail(label, message)
        return outcomes
    for lesions_path, pending in by_file.items():
        try:
            prepared = prepare_case(
                ct,
                suv,
                read_case_lesions(case, lesions_path, ct),
                liver_seed_lps_mm=case.liver_seed_lps_mm,
                config=config,
                name=case.name,
            )
        except Exception as error:
            message = _one_line(error)
            log.warning("%s: %s", case.name, message)
            for label in pending:
                fail(label, message)
            continue
        for label in pending:
            lesion_started = time.perf_counter()
            groups = tuple(group for group, _ in labels[label])
            try:
                values = lesion_feature_groups(prepared, label, config, groups)
            except Exception as error:
                message = _one_line(error)
                log.warning("%s lesion %d: %s", case.name, label, message)
                fail(label, message, time.perf_counter() - lesion_started)
                continue
            for group, key in labels[label]:
                store.put_values(key, _about(case, label, group), values[group])
            record(label, groups, "", time.perf_counter() - lesion_started)
    log.info("%s: %d lesion(s) in %.1f s", case.name, len(labels), time.perf_counter() - started)
    return outcomes


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _init_worker(threads: Optional[int], parent_pid: int) -> None:
    # Ctrl-C reaches the whole process group: the parent stops the pool; a worker that took it
    # too would die mid-lesion with a traceback. It was blocked since the fork (see
    # _ctrl_c_deferred); ignoring it discards one pending meanwhile.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    _end_with_parent(parent_pid)
    if threads is not None:
        import SimpleITK as sitk

        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(int(threads))


def _end_with_parent(parent_pid: int) -> None:
    """End this worker when its parent dies (killed, crashed): an orphan would go on computing
    and then idle for ever. On Linux the kernel's parent-death signal, which fires when the
    THREAD that started this process ends: ProcessPoolExecutor starts its workers in the thread
    that submits (not its manager thread), and that thread waits in ``_pool_pass`` until the
    pool is shut down. Elsewhere a thread that watches the parent."""
    if not _arm_parent_death_signal(parent_pid):
        _start_parent_watch(parent_pid)


def _arm_parent_death_signal(parent_pid: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        kill, zero = ctypes.c_ulong(int(signal.SIGKILL)), ctypes.c_ulong(0)
        if libc.prctl(ctypes.c_int(_PR_SET_PDEATHSIG), kill, zero, zero, zero) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)
    return True


def _start_parent_watch(parent_pid: int, interval_s: float = 0.5) -> None:
    watch = threading.Thread(
        target=_watch_parent, args=(parent_pid, interval_s), name="parent-watch", daemon=True
    )
    watch.start()


def _parent_alive(parent_pid: int) -> bool:
    if os.name == "nt":  # no reparenting there: the parent's process handle tells
        import multiprocessing

        parent = multiprocessing.parent_process()
        return parent is None or parent.is_alive()
    return os.getppid() == parent_pid  # an orphan is adopted by init or a subreaper


def _watch_parent(parent_pid: int, interval_s: float = 0.5) -> None:
    while _parent_alive(parent_pid):
        time.sleep(interval_s)
    os._exit(1)


@contextlib.contextmanager
def _ctrl_c_deferred():
    """Hold Ctrl-C back until the block ends, then raise it as usual: while pool workers start
    (a child inherits SIGINT blocked, so none dies with a traceback before its initializer
    ignores it) and while the pool is stopped or the kept lesions are counted. Python runs
    signal handlers in the main thread only, so elsewhere (or where SIGINT's handler is not
    Python's, e.g. an embedding application's) this does nothing."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is None
    ):
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    blocking = hasattr(signal, "pthread_sigmask")
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if blocking else None
    try:
        yield
    finally:
        if blocking:  # a Ctrl-C pending meanwhile reaches the handler above now
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        signal.signal(signal.SIGINT, previous)
    if caught and callable(previous):
        previous(signal.SIGINT, None)


def _keys(manifest: Manifest, config: ExtractionConfig) -> dict[tuple[int, int], dict]:
    """(case index, lesion label) -> {group: part key} for every manifest lesion."""
    digests = {group: config.group_digest(group) for group in config.groups}
    keys = {}
    for index, case in enumerate(manifest.cases):
        fingerprint = case_fingerprint(case.inputs)
        for lesion in case.lesions:
            keys[(index, lesion.lesion_label)] = {
                group: part_key(
                    fingerprint, case.patient_id, case.reader, lesion.lesion_label, digest
                )
                for group, digest in digests.items()
            }
    return keys


@contextlib.contextmanager
def _worker_environment(threads: Optional[int]):
    """BLAS/OpenMP thread counts for spawned workers, unless the user set them: N workers each
    running an all-core OpenBLAS spin on each other's cores (measured: twice the CPU time)."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    added = [name for name in names if name not in os.environ]
    for name in added:
        os.environ[name] = str(threads or 1)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def _start_method() -> str:
    """``fork`` where it is safe — Linux, and this process runs a single OS thread, so no ITK or
    BLAS thread pool can leave a lock held in the children — and the workers start in
    milliseconds with everything imported; ``spawn`` (a fresh interpreter each) otherwise."""
    if sys.platform.startswith("linux"):
        try:
            if len(os.listdir("/proc/self/task")) == 1:
                return "fork"
        except OSError:
            pass
    return "spawn"


def _pool_pass(tasks, store_root, config, workers, threads, done) -> list[CaseTask]:
    """Run ``tasks`` in a fresh process pool; those left when the pool broke are returned."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context(_start_method())
    finished: set[int] = set()
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_init_worker,
        initargs=(threads, os.getpid()),
    )
    try:
        # The workers start on the first submits: they read the environment and are born with
        # Ctrl-C blocked.
        with _worker_environment(threads), _ctrl_c_deferred():
            futures = {
                pool.submit(run_case, task, store_root, config): i for i, task in enumerate(tasks)
            }
        for future in as_completed(futures):
            outcomes = future.result()
            finished.add(futures[future])
            done(tasks[futures[future]], outcomes)
    except BrokenProcessPool:
        log.warning("a worker process died; its unfinished cases are retried")
    except BaseException:  # interrupted: cases not started are dropped, those running stopped
        with _ctrl_c_deferred():
            remove_temporaries(store_root, _stop_pool(pool))
        raise
    pool.shutdown(wait=True)
    return [task for i, task in enumerate(tasks) if i not in finished]


def _stop_pool(pool) -> list[int]:
    """Cancel the cases not started and end the workers now; their pids. A case in flight loses
    only its unfinished lesions (each finished one is stored already, atomically)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join()
    pool.shutdown(wait=True, cancel_futures=True)
    return [process.pid for process in processes]


def _run_local(tasks, store_root, config, workers, threads, done) -> None:
    """A process pool; if a worker dies (twice), each remaining case runs in a pool of its own,
    so the case that kills its process is recorded as failed and the others finish."""
    remaining = _pool_pass(tasks, store_root, config, workers, threads, done)
    if remaining:
        remaining = _pool_pass(remaining, store_root, config, workers, threads, done)
    for task in remaining:
        if _pool_pass([task], store_root, config, 1, threads, done):
            done(task, _crashed(task, store_root))


def _crashed(task: CaseTask, store_root: str) -> list[LesionOutcome]:
    """Record a case whose worker process died, alone in its pool, as failed."""
    store = PartStore(store_root)
    message = "the worker process died computing this case (out of memory?)"
    outcomes = []
    for label, keys in task.todo:
        for group, key in keys:
            store.put_error(key, _about(task.case, label, group), message)
        outcomes.append(LesionOutcome(task.case.patient_id, task.case.reader, label, (), message))
    return outcomes


def _run_dask(tasks, store_root, config, scheduler, threads, done) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError as error:  # pragma: no cover - a dependency
        raise BoneOligoMetError(f"--scheduler needs dask distributed ({error})") from None
    try:
        client = Client(scheduler, timeout="30s")
    except OSError as error:
        raise BoneOligoMetError(f"cannot reach the Dask scheduler {scheduler} ({error})") from None
    with client:  # closed on Ctrl-C too: the scheduler then drops this client's cases
        futures = {
            client.submit(run_case, task, store_root, config, threads, pure=False): task
            for task in tasks
        }
        for future in as_completed(futures):
            task = futures[future]
            try:
                done(task, future.result())
            except Exception as error:  # e.g. KilledWorker: the task's worker kept dying
                done(task, _failed_remotely(task, store_root, _one_line(error)))


def _failed_remotely(task: CaseTask, store_root: str, message: str) -> list[LesionOutcome]:
    store = PartStore(store_root)
    for label, keys in task.todo:
        for group, key in keys:
            store.put_error(key, _about(task.case, label, group), message)
    return [
        LesionOutcome(task.case.patient_id, task.case.reader, label, (), message)
        for label, _ in task.todo
    ]


def _results(manifest: Manifest, keys, store: PartStore, groups) -> list[LesionResult]:
    results = []
    for index, case in enumerate(manifest.cases):
        for lesion in case.lesions:
            ids: dict[str, Any] = {"patient_id": case.patient_id}
            if manifest.has_reader:
                ids["reader"] = case.reader
            ids["lesion_label"] = lesion.lesion_label
            if manifest.has_truth:
                ids["label"] = lesion.truth
            records = {g: store.get(k) for g, k in keys[(index, lesion.lesion_label)].items()}
            errors = [
                r.get("error", "") if r else f"{g} features missing"
                for g, r in records.items()
                if not r or r.get("status") != "ok"
            ]
            groups_values = None if errors else {g: records[g]["values"] for g in groups}
            results.append(
                LesionResult(
                    lesion.row,
                    ids,
                    dict(lesion.clinical),
                    groups_values,
                    errors[0] if errors else "",
                )
            )
    return results


def _write_icc(columns: Sequence[str], rows: Sequence[Mapping[str, Any]], path: Path) -> bool:
    from BoneOligoMetLib.agreement import feature_icc

    by_reader: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        keyed = {**row, "lesion_id": f"{row['patient_id']}/{row['lesion_label']}"}
        by_reader.setdefault(str(row["reader"]), []).append(keyed)
    if len(by_reader) < 2:
        return False
    prefixes = ("met_", "ct_", "pet_", "petct_")
    results = feature_icc(by_reader, key="lesion_id", prefixes=prefixes)
    icc_rows = [
        {
            "feature": r.feature,
            "icc": r.icc,
            "kind": r.kind,
            "n_lesions": r.n_lesions,
            "n_readers": r.n_readers,
            "stable": r.stable,
        }
        for r in results
    ]
    if not icc_rows:
        return False
    write_table(list(icc_rows[0]), icc_rows, path)
    return True


def output_paths(out: Union[str, Path]) -> dict[str, Path]:
    """Where a run writes: the table, its parts folder, errors and ICC tables."""
    out = Path(out)
    return {
        "table": out,
        "parts": out.with_name(out.name + ".parts"),
        "errors": out.with_name(out.name + ".errors.csv"),
        "icc": out.with_name(out.name + ".icc.csv"),
    }


def _nearest_existing(path: Path) -> Path:
    return next(p for p in (path, *path.parents) if p.exists() or p == p.parent)


def check_output(out: Union[str, Path]) -> None:
    """Refuse an output that cannot be written, before anything is computed, and leave nothing
    behind: the table must not be a folder, and the nearest existing folder of the table and of
    ``OUT.parts/`` must be a folder that takes a file (one is created there and removed)."""
    import secrets

    paths = output_paths(out)
    table = paths["table"]

    def refuse(reason: str) -> BoneOligoMetError:
        return BoneOligoMetError(f"cannot write the output {table}: {reason}")

    try:
        is_folder = table.is_dir()
        folders = [_nearest_existing(f) for f in dict.fromkeys((table.parent, paths["parts"]))]
    except OSError as error:  # e.g. a folder on the way that this user may not look into
        raise refuse(f"{error.filename}: {error.strerror}") from None
    if is_folder:
        raise refuse("it is a folder")
    for existing in folders:
        if not existing.is_dir():
            raise refuse(f"{existing} is a file, not a folder")
        probe = existing / f".write-probe.{os.getpid()}.{secrets.token_hex(8)}.tmp"
        try:
            probe.open("xb").close()
        except OSError as error:
            raise refuse(f"{existing} does not take new files ({error.strerror})") from None
        finally:
            with contextlib.suppress(OSError):
                probe.unlink()


def _count_kept(keys: Mapping[Any, Mapping[str, str]], store: PartStore) -> int:
    """Manifest lesions whose every group is finished in the store (what a rerun reuses)."""
    return sum(all(store.done(key) for key in groups.values()) for groups in keys.values())


def extract_cohort(
    manifest: Union[str, Path, Manifest],
    out: Union[str, Path],
    *,
    config: Optional[ExtractionConfig] = None,
    workers: int = 1,
    scheduler: Optional[str] = None,
    prefer_dicom: bool = False,
    threads_per_worker: Optional[int] = 1,
    progress: Optional[Progress] = None,
) -> ExtractionSummary:
    """Extract every lesion of a cohort manifest into one table (Parquet, or CSV for ``.csv``).

    ``workers``: 1 computes in this process; more use a local process pool (each worker with
    ``threads_per_worker`` SimpleITK threads). ``scheduler``: a Dask distributed scheduler
    address (``tcp://host:port``), which then does the work. ``progress(fraction, message)``
    is called per lesion (in this process) or per patient (pool, Dask). Ctrl-C raises
    :class:`ExtractionInterrupted` (a ``KeyboardInterrupt``) once the workers have stopped.
    """
    started = time.perf_counter()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise BoneOligoMetError(f"workers must be a whole number of at least 1, got {workers!r}")
    config = config or ExtractionConfig()
    if not isinstance(manifest, Manifest):
        manifest = read_manifest(manifest, prefer_dicom=prefer_dicom)
    check_output(out)
    paths = output_paths(out)
    store = PartStore(paths["parts"])
    keys = _keys(manifest, config)
    try:
        return _extract(
            manifest, paths, store, keys, config, workers, scheduler, threads_per_worker,
            progress, started,
        )  # fmt: skip
    except KeyboardInterrupt:
        with _ctrl_c_deferred():  # counted after the workers stopped: nothing changes now
            kept = _count_kept(keys, store)
        raise ExtractionInterrupted(kept, manifest.n_lesions, paths["parts"]) from None


def _extract(
    manifest: Manifest,
    paths: dict[str, Path],
    store: PartStore,
    keys,
    config: ExtractionConfig,
    workers: int,
    scheduler: Optional[str],
    threads_per_worker: Optional[int],
    progress: Optional[Progress],
    started: float,
) -> ExtractionSummary:
    tasks = []
    n_reused = 0
    for index, case in enumerate(manifest.cases):
        todo = []
        for lesion in case.lesions:
            pending = tuple(
                (g, k) for g, k in keys[(index, lesion.lesion_label)].items() if not store.done(k)
            )
            if pending:
                todo.append((lesion.lesion_label, pending))
            else:
                n_reused += 1
        if todo:
            tasks.append(CaseTask(case, tuple(todo)))
    total = manifest.n_lesions
    state = {"done": n_reused, "computed": 0}
    log.info("%d lesion(s): %d already in %s", total, n_reused, paths["parts"])
    if progress is not None:
        progress(state["done"] / total, f"{n_reused} lesion(s) reused")

    def lesion_done(outcome: LesionOutcome) -> None:
        state["done"] += 1
        state["computed"] += 1
        if progress is not None:
            status = "failed" if outcome.error else "done"
            progress(
                state["done"] / total,
                f"{outcome.patient_id} lesion {outcome.lesion_label} {status}",
            )

    def task_done(task: CaseTask, outcomes: list[LesionOutcome]) -> None:
        for outcome in outcomes:
            lesion_done(outcome)

    store_root = str(paths["parts"])
    # In parallel, the patients with most lesions first: the run does not end on one long case.
    by_size = sorted(tasks, key=lambda task: -task.n_lesions)
    if tasks:
        if scheduler:
            _run_dask(by_size, store_root, config, scheduler, threads_per_worker, task_done)
        elif workers > 1 and len(tasks) > 1:
            _run_local(by_size, store_root, config, workers, threads_per_worker, task_done)
        else:
            for task in tasks:
                run_case(task, store_root, config, on_lesion=lesion_done)
    results = _results(manifest, keys, store, config.groups)
    columns, rows = assemble(results, config.groups)
    table = None
    if rows:
        write_table(columns, rows, paths["table"])
        table = paths["table"]
    elif paths["table"].exists():
        paths["table"].unlink()
    n_failed = write_errors(results, paths["errors"])
    icc = None
    if manifest.has_reader and rows and _write_icc(columns, rows, paths["icc"]):
        icc = paths["icc"]
    if progress is not None:
        progress(1.0, f"{len(rows)} lesion(s) in the table, {n_failed} failed")
    return ExtractionSummary(
        table=table,
        errors=paths["errors"] if n_failed else None,
        icc=icc,
        n_lesions=total,
        n_ok=len(rows),
        n_failed=n_failed,
        n_computed=state["computed"],
        n_reused=n_reused,
        n_columns=len(columns),
        seconds=time.perf_counter() - started,
    )


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))
