"""One patient's pending lesions as a task, and the worker function every backend runs on it:
compute the lesions' feature groups and store each part as it finishes."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from BoneOligoMetLib.errors import BoneOligoMetError
from BoneOligoMetLib.features.config import ExtractionConfig
from BoneOligoMetLib.features.row import lesion_feature_groups, prepare_case
from BoneOligoMetLib.features.store import (
    PartStore,
)
from BoneOligoMetLib.io.manifest import CaseEntry, read_case_images
from BoneOligoMetLib.lesions.dicom_labels import read_case_lesions

log = logging.getLogger(__name__)


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
