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
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from BoneOligoMetLib.errors import BoneOligoMetError, ExtractionInterrupted, Progress
from BoneOligoMetLib.features.config import ExtractionConfig
from BoneOligoMetLib.features.pool import _ctrl_c_deferred, _run_dask, _run_local
from BoneOligoMetLib.features.store import LesionResult, PartStore, assemble, part_key, write_errors
from BoneOligoMetLib.features.tasks import CaseTask, LesionOutcome, run_case
from BoneOligoMetLib.io.files import case_fingerprint
from BoneOligoMetLib.io.manifest import Manifest, read_manifest
from BoneOligoMetLib.io.tables import write_table
from BoneOligoMetLib.lesions.agreement import feature_icc

log = logging.getLogger(__name__)


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
