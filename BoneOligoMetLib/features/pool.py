"""Running a cohort's cases in parallel: a local process pool (workers that end with their parent,
Ctrl-C that stops them) or a Dask cluster; a case whose worker dies is recorded as failed."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from typing import Optional

from BoneOligoMetLib.errors import BoneOligoMetError
from BoneOligoMetLib.features.store import (
    PartStore,
)
from BoneOligoMetLib.features.tasks import CaseTask, LesionOutcome, _about, _one_line, run_case
from BoneOligoMetLib.io.files import remove_temporaries

log = logging.getLogger(__name__)

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
