"""``bone-oligomet extract`` stopped from outside: Ctrl-C gives one line and exit 130, the pool's
workers stopped; a killed parent takes its workers with it; either way a rerun reuses every
finished lesion."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import psutil  # a dependency of dask distributed
import pytest

from BoneOligoMetLib.features.cohort import extract_cohort, output_paths
from BoneOligoMetLib.synthetic.phantom import generate_cohort

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals and process groups")

LINUX = sys.platform.startswith("linux")


LESIONS = 12  # of the cohort below


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """Ten small synthetic patients, twelve lesions (none with more than five: no warnings): the
    signal comes after the first lesion's four parts, so the rest must outlast it (four lesions
    of the generator's small lesions took 0.7 s in all with 2 workers: the run ended first)."""
    return generate_cohort(10, seed=6, out_dir=tmp_path_factory.mktemp("cohort"), workers=2)


def _start(args: list[str], stderr: Path, start_method: str = "") -> subprocess.Popen:
    """The command in a session of its own (a terminal's process group); ``start_method``
    forces the pool's (the CLI picks fork when single-threaded, spawn otherwise)."""
    if start_method:
        code = (
            "import sys, BoneOligoMetLib.features.pool as pool\n"
            f"pool._start_method = lambda: {start_method!r}\n"
            "from BoneOligoMetLib.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n"
        )
        command = [sys.executable, "-c", code, *args]
    else:
        command = [sys.executable, "-m", "BoneOligoMetLib", *args]
    with stderr.open("w") as handle:  # a file, not a pipe: a live orphan cannot hold it open
        return subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=handle, start_new_session=True
        )


def _wait_for_parts(process: subprocess.Popen, parts: Path, at_least: int) -> None:
    deadline = time.monotonic() + 120
    while not (parts.is_dir() and len(list(parts.rglob("*.json"))) >= at_least):
        if process.poll() is not None:
            pytest.fail(f"the extraction ended (status {process.returncode}) before the signal")
        if time.monotonic() > deadline:
            pytest.fail(f"no {at_least} parts in {parts} after 120 s")
        time.sleep(0.01)


def _still_running(processes: list[psutil.Process], within_s: float) -> list[psutil.Process]:
    """Those of ``processes`` still running (zombies waiting for init count as ended)."""

    def running(process: psutil.Process) -> bool:
        try:
            return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    deadline = time.monotonic() + within_s
    alive = [p for p in processes if running(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if running(p)]
    return alive


def _finished_lesions(parts: Path, groups: int = 4) -> tuple[dict[str, int], int]:
    """(mtime of every part, lesions with all their groups finished); every part must read
    whole, including any a dying worker was writing."""
    mtimes, ok = {}, {}
    for path in parts.rglob("*.json"):
        record = json.loads(path.read_text())
        mtimes[str(path)] = path.stat().st_mtime_ns
        if record["status"] == "ok":
            lesion = (record["patient_id"], record["reader"], record["lesion_label"])
            ok[lesion] = ok.get(lesion, 0) + 1
    return mtimes, sum(count == groups for count in ok.values())


def _end(process: subprocess.Popen, workers: Sequence[psutil.Process] = ()) -> None:
    """Whatever a failed test leaves running of this run goes."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    for worker in _still_running(list(workers), within_s=0):
        worker.kill()


@pytest.mark.parametrize("workers", [2, 1])
def test_ctrl_c_stops_the_run_in_one_line_and_the_rerun_resumes(cohort, tmp_path, workers):
    out = tmp_path / "features.parquet"
    parts = output_paths(out)["parts"]
    args = ["extract", "--manifest", str(cohort), "--out", str(out), "--no-progress",
            "--workers", str(workers)]  # fmt: skip
    process = _start(args, tmp_path / "stderr.txt")
    children: list[psutil.Process] = []
    try:
        _wait_for_parts(process, parts, at_least=4)  # one lesion: four groups
        children = psutil.Process(process.pid).children(recursive=True)
        assert len(children) >= (2 if workers == 2 else 0)
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole group
        status = process.wait(timeout=30)
    finally:
        _end(process, children)
    stderr = (tmp_path / "stderr.txt").read_text()
    assert status == 130, stderr
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    found = re.fullmatch(
        rf"bone-oligomet extract: interrupted: (\d+) of {LESIONS} lesion\(s\) kept in (.+)/; "
        r"the same command again resumes",
        lines[0],
    )
    assert found, lines[0]
    kept = int(found[1])
    assert found[2] == str(parts)
    assert not _still_running(children, within_s=5)
    assert not list(parts.rglob("*.tmp"))  # no write left half-done by a stopped worker
    before, finished = _finished_lesions(parts)
    assert 1 <= kept == finished
    if kept < LESIONS:
        assert not out.exists()
    summary = extract_cohort(cohort, out)
    assert (summary.n_reused, summary.n_reused + summary.n_computed, summary.n_ok) == (
        kept,
        LESIONS,
        LESIONS,
    )
    after, _ = _finished_lesions(parts)
    assert {k: after[k] for k in before} == before  # nothing finished was written again


@pytest.mark.skipif(not LINUX, reason="the parent-death signal is Linux's")
@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_a_killed_parent_takes_its_workers_with_it(cohort, tmp_path, start_method):
    """SIGKILL to the parent only (not its group): the workers end within seconds, write no
    more parts, and a rerun — from a thread other than the main one, as an application with a
    user interface runs it — reuses every lesion that was finished."""
    out = tmp_path / "features.parquet"
    parts = output_paths(out)["parts"]
    args = ["extract", "--manifest", str(cohort), "--out", str(out), "--no-progress",
            "--workers", "2"]  # fmt: skip
    process = _start(args, tmp_path / "stderr.txt", start_method)
    workers: list[psutil.Process] = []
    try:
        _wait_for_parts(process, parts, at_least=4)
        workers = psutil.Process(process.pid).children(recursive=True)
        assert len(workers) >= 2
        process.kill()
        process.wait()
        assert not _still_running(workers, within_s=5)
    finally:
        _end(process, workers)
    before, finished = _finished_lesions(parts)
    assert finished >= 1
    time.sleep(0.5)
    assert _finished_lesions(parts)[0] == before  # nobody writes parts any more
    assert "Traceback" not in (tmp_path / "stderr.txt").read_text()

    result = {}
    rerun = threading.Thread(target=lambda: result.update(s=extract_cohort(cohort, out, workers=2)))
    rerun.start()
    rerun.join(timeout=120)
    summary = result["s"]
    assert (summary.n_reused, summary.n_reused + summary.n_computed) == (finished, LESIONS)
    assert summary.n_ok == LESIONS
    after, _ = _finished_lesions(parts)
    assert {k: after[k] for k in before} == before


def test_without_the_parent_death_signal_a_thread_watches_the_parent():
    """The fallback where prctl is missing (macOS, BSD): the child's watch thread ends it soon
    after its parent is killed, and not before."""
    code = (
        "import multiprocessing, os, time\n"
        "from BoneOligoMetLib.features.pool import _start_parent_watch\n"
        "def child(parent_pid):\n"
        "    _start_parent_watch(parent_pid, interval_s=0.05)\n"
        "    time.sleep(60)\n"
        "process = multiprocessing.get_context('fork').Process(target=child, args=(os.getpid(),))\n"
        "process.start()\n"
        "print(process.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    middle = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    children: list[psutil.Process] = []
    try:
        children.append(psutil.Process(int(middle.stdout.readline())))
        assert _still_running(children, within_s=0.5)  # its parent lives: it waits
        middle.kill()
        middle.wait()
        assert not _still_running(children, within_s=3)
    finally:
        _end(middle, children)


def _arm(parent_pid: int) -> None:
    from BoneOligoMetLib.features.pool import _arm_parent_death_signal

    assert _arm_parent_death_signal(parent_pid)


@pytest.mark.skipif(not LINUX, reason="the parent-death signal is Linux's")
def test_a_worker_whose_parent_is_already_gone_ends_at_once():
    """The race the parent-death signal leaves open: a parent that dies before the worker arms
    it. The worker then finds another parent pid and exits."""
    context = multiprocessing.get_context("fork")
    armed = context.Process(target=_arm, args=(os.getpid(),))
    armed.start()
    armed.join(10)
    assert armed.exitcode == 0
    orphan = context.Process(target=_arm, args=(os.getpid() + 1_000_000,))  # not our pid
    orphan.start()
    orphan.join(10)
    assert orphan.exitcode == 1


def test_ctrl_c_with_a_dask_cluster_cancels_the_runs_cases(cohort, tmp_path):
    """The cluster's workers are not ours: Ctrl-C ends the client with the same one line, and
    the scheduler drops the run's cases."""
    distributed = pytest.importorskip("distributed")
    out = tmp_path / "features.parquet"
    parts = output_paths(out)["parts"]
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:  # fmt: skip
        args = ["extract", "--manifest", str(cohort), "--out", str(out), "--no-progress",
                "--scheduler", cluster.scheduler_address]  # fmt: skip
        process = _start(args, tmp_path / "stderr.txt")
        try:
            _wait_for_parts(process, parts, at_least=4)
            os.killpg(process.pid, signal.SIGINT)
            status = process.wait(timeout=60)
        finally:
            _end(process)
        stderr = (tmp_path / "stderr.txt").read_text()
        assert status == 130, stderr
        assert "Traceback" not in stderr
        assert re.fullmatch(
            rf"bone-oligomet extract: interrupted: \d+ of {LESIONS} lesion\(s\) kept in .+",
            stderr.strip(),
        )
        with distributed.Client(cluster.scheduler_address) as client:
            deadline = time.monotonic() + 10
            while client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)):
                assert time.monotonic() < deadline, "the scheduler still holds the run's cases"
                time.sleep(0.1)
