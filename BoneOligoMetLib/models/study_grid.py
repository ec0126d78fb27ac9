"""The grid (§3.3–3.6, Tables 2–4): every feature group × classifier, plus the SUVmax
baseline, fitted on training patients and evaluated on held-out ones (a 7:3 patient split,
patient-grouped k-fold CV, or an external cohort), with paired DeLong tests against the
reference group; :class:`GridResult` and its rows for the report's CSVs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from BoneOligoMetLib.errors import ModelingError, Progress, SelectionError
from BoneOligoMetLib.models.classifiers import LIVER_COLUMN, SUV_MAX_COLUMN, classifier_key
from BoneOligoMetLib.models.evaluation import Evaluation, evaluate
from BoneOligoMetLib.models.fit import FittedModel, ModelConfig, fit_baseline, fit_model
from BoneOligoMetLib.models.groups import (
    BASELINE,
    BASELINE_CLASSIFIER,
    GROUPS,
    REFERENCE_ORDER,
    classifier_name,
    group_key,
    group_name,
)
from BoneOligoMetLib.models.splits import patient_folds, patient_split
from BoneOligoMetLib.models.stats import delong_test
from BoneOligoMetLib.models.table import LESION_COLUMN, PATIENT_COLUMN, FeatureTable
from BoneOligoMetLib.protocol import TEST_FRACTION

log = logging.getLogger(__name__)


# Fewest patients for a 7:3 split whose training side still holds patient-grouped CV folds.
MIN_PATIENTS = 10


@dataclass
class ModelRun:
    """One group × classifier: its fitted model(s) and predictions per set. ``predictions``
    maps a set name ("train": resubstitution, "train_oof": out-of-fold on the training
    patients, "test" / "cv" / "external": held out) to (row index into its table, probability,
    per-lesion threshold, fold)."""

    group: str
    classifier: str
    fitted: list[FittedModel]
    predictions: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    evaluations: dict[str, Evaluation] = field(default_factory=dict)


@dataclass
class GridResult:
    """What :func:`run_grid` produced. ``primary``: the held-out set ("test", "cv" or
    "external"); ``reference``: the group every model is DeLong-compared with."""

    mode: str
    primary: str
    table: FeatureTable
    external: Optional[FeatureTable]
    groups: list[str]
    classifiers: list[str]
    reference: Optional[str]
    config: ModelConfig
    seed: int
    test_fraction: float
    folds: int
    split: dict[str, np.ndarray]
    runs: dict[tuple[str, str], ModelRun]
    delong: list[dict[str, Any]]
    notes: list[str]
    failed: list[tuple[str, str, str]]  # (group, classifier, message)

    def set_table(self, set_name: str) -> FeatureTable:
        return self.external if set_name == "external" and self.external else self.table

    def run(self, group: str, classifier: str) -> Optional[ModelRun]:
        return self.runs.get((group, classifier))

    def baseline(self) -> Optional[ModelRun]:
        return self.runs.get((BASELINE, BASELINE_CLASSIFIER))

    def metrics_rows(self) -> list[dict[str, Any]]:
        """One row per model × classifier × set, with the DeLong p against the reference."""
        first = self.classifiers[0] if self.classifiers else ""
        p_values = {
            (d["set"], d["model"], d["classifier"]): d["p_value"]
            for d in self.delong
            if d["classifier"] != BASELINE_CLASSIFIER or d["reference_classifier"] == first
        }
        rows = []
        for run in self.runs.values():
            for set_name, evaluation in run.evaluations.items():
                row = evaluation.as_row()
                row["delong_p_vs_reference"] = p_values.get((set_name, run.group, run.classifier))
                row["reference_model"] = group_name(self.reference) if self.reference else ""
                rows.append(row)
        keys: dict[str, None] = {}
        for row in rows:
            keys.update(dict.fromkeys(row))
        return [{k: row.get(k) for k in keys} for row in rows]

    def prediction_rows(self) -> list[dict[str, Any]]:
        rows = []
        for run in self.runs.values():
            for set_name, (index, prob, thresholds, folds) in run.predictions.items():
                table = self.set_table(set_name)
                for i, p, t, k in zip(index, prob, thresholds, folds):
                    source = table.rows[int(i)]
                    rows.append(
                        {
                            "patient_id": source.get(PATIENT_COLUMN),
                            "lesion_label": source.get(LESION_COLUMN),
                            "label": int(table.y[int(i)]),
                            "set": set_name,
                            "model": run.group,
                            "classifier": run.classifier,
                            "probability": float(p),
                            "threshold": float(t),
                            "fold": "" if k < 0 else int(k),
                        }
                    )
        return rows

    def selected_rows(self) -> list[dict[str, Any]]:
        """Selected features with LASSO coefficients, per group (selection does not depend on
        the classifier) and fit ("all training" or the CV fold)."""
        rows = []
        seen: set[tuple[str, str]] = set()
        for run in self.runs.values():
            if run.group == BASELINE:
                continue
            for k, fitted in enumerate(run.fitted):
                fit = "training set" if len(run.fitted) == 1 else f"fold {k + 1}"
                if (run.group, fit) in seen:
                    continue
                seen.add((run.group, fit))
                ranked = sorted(fitted.selected, key=lambda item: -abs(item[1]))
                for rank, (feature, coefficient) in enumerate(ranked, start=1):
                    rows.append(
                        {
                            "model": run.group,
                            "model_name": group_name(run.group),
                            "fit": fit,
                            "lambda": fitted.lasso_lambda,
                            "rank": rank,
                            "feature": feature,
                            "coefficient": coefficient,
                            **{f"n_{s}": n for s, n in fitted.selection_counts.items()},
                        }
                    )
        return rows


def resolve_groups(table: FeatureTable, models: Optional[Sequence[str]]) -> tuple[list, list]:
    """(group keys to fit, notes). Default: every group the table's columns allow; a group
    asked for by name that the table cannot supply is an error."""
    notes: list[str] = []
    if models:
        keys = list(dict.fromkeys(group_key(m) for m in models))
        for key in keys:
            usable, note = table.group_available(key)
            if not usable:
                raise ModelingError(f"{table.source}: {note}")
            if note:
                notes.append(note)
        return keys, notes
    keys = []
    for key in GROUPS:
        usable, note = table.group_available(key)
        if note:
            notes.append(note)
        if usable:
            keys.append(key)
    if not keys:
        raise ModelingError(f"{table.source}: no feature columns of any model group (ct_*, …)")
    return keys, notes


def resolve_classifiers(names: Optional[Sequence[str]], config: ModelConfig) -> list[str]:
    """Registry names (did-you-mean errors come from :func:`classifier_key`)."""
    return list(dict.fromkeys(classifier_key(n) for n in (names or config.classifiers)))


def _check_table(table: FeatureTable, columns: Sequence[str], cv: int) -> None:
    counts = np.bincount(table.y, minlength=2)
    if counts.min() == 0:
        only = "malignant" if counts[1] else "benign"
        raise ModelingError(
            f"{table.source}: every one of the {len(table)} lesions is {only}; "
            "the models need benign and malignant lesions"
        )
    needed = max(MIN_PATIENTS, cv)
    if table.n_patients < needed:
        raise ModelingError(
            f"{table.source}: {table.n_patients} patients are too few (need at least {needed})"
        )
    table.check_numeric(columns)
    table.check_finite(columns)


def _check_external(external: FeatureTable, columns: Sequence[str]) -> None:
    external.matrix(columns, [0])  # names the missing columns
    if len(np.unique(external.y)) < 2:
        raise ModelingError(f"{external.source}: the external set holds one class only")
    external.check_numeric(columns)
    external.check_finite(columns)


def _check_inputs(
    table: FeatureTable, groups: Sequence[str], cv: int, external: Optional[FeatureTable]
) -> bool:
    """Check that the table (and the external set) can feed every group; whether the SUVmax
    baseline's columns are there too."""
    columns = sorted({c for g in groups for c in table.group_columns(g)}, key=table.columns.index)
    baseline_ok = all(c in table.columns for c in (SUV_MAX_COLUMN, LIVER_COLUMN))
    needed = columns + ([SUV_MAX_COLUMN, LIVER_COLUMN] if baseline_ok else [])
    _check_table(table, needed, cv)
    if external is not None:
        _check_external(external, needed)
    return baseline_ok


def _reference_group(groups: Sequence[str]) -> tuple[Optional[str], Optional[str]]:
    """The group every model is DeLong-compared with (DLR+Complex, else Complex), and a note
    when it is not DLR+Complex."""
    reference = next((g for g in REFERENCE_ORDER if g in groups), None)
    if reference is None:
        return None, "no Complex or DLR+Complex model in the grid: no DeLong comparisons"
    if reference != "dlr_complex":
        note = f"no deep features: models are DeLong-compared with {group_name(reference)}"
        return reference, note
    return reference, None


def _held_out(
    table: FeatureTable,
    test_fraction: float,
    seed: int,
    cv: int,
    external: Optional[FeatureTable],
) -> tuple[str, str, list[tuple[np.ndarray, np.ndarray]], dict[str, np.ndarray]]:
    """(mode, held-out set name, (training rows, held-out rows) per fit, the split's sets)."""
    all_rows = np.arange(len(table))
    if external is not None:
        return "external", "external", [(all_rows, np.arange(len(external)))], {"train": all_rows}
    if cv:
        return "cv", "cv", patient_folds(table.y, table.patients, cv, seed), {}
    train, test = patient_split(table.y, table.patients, test_fraction, seed)
    return "split", "test", [(train, test)], {"train": train, "test": test}


def _fit_run(
    result: GridResult,
    group: str,
    name: str,
    fits: Sequence[tuple[np.ndarray, np.ndarray]],
    cache: dict,
) -> ModelRun:
    """Fit one group × classifier on each fit's training rows and pool its held-out
    predictions (in row order); outside CV, also its training predictions. Raises
    :class:`SelectionError` when selection leaves no feature."""
    table = result.table
    test_table = result.external if result.external is not None else table
    fitted_models: list[FittedModel] = []
    pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    for k, (train, test) in enumerate(fits):
        if group == BASELINE:
            fitted = fit_baseline(table, train)
        else:
            fitted = fit_model(
                table, None, group, name, train, config=result.config, seed=result.seed, cache=cache
            )
        probability = fitted.predict_proba(test_table, test)
        fold = np.full(test.size, k if result.mode == "cv" else -1)
        pieces.append((test, probability, np.full(test.size, fitted.threshold), fold))
        fitted_models.append(fitted)
    index, probability, thresholds, folds = (np.concatenate(x) for x in zip(*pieces))
    order = np.argsort(index, kind="stable")
    run = ModelRun(group, name, fitted_models, {})
    run.predictions[result.primary] = (
        index[order],
        probability[order],
        thresholds[order],
        folds[order],
    )
    if result.mode != "cv":
        fitted = fitted_models[0]
        train = fitted.train_index
        none = np.full(train.size, -1)
        threshold = np.full(train.size, fitted.threshold)
        run.predictions["train"] = (train, fitted.train_probability, threshold, none)
        if fitted.oof_probability is not None:
            run.predictions["train_oof"] = (train, fitted.oof_probability, threshold, none)
    return run


def _evaluate_run(result: GridResult, run: ModelRun) -> None:
    """Evaluate each set of the run's predictions at its training thresholds."""
    for set_name, (index, probability, thresholds, _) in run.predictions.items():
        source = result.set_table(set_name)
        run.evaluations[set_name] = evaluate(
            source.y[index],
            probability,
            thresholds,
            model=run.group,
            classifier=run.classifier,
            set_name=set_name,
            patients=source.patients[index],
            config=result.config,
            seed=result.seed,
        )


def run_grid(
    table: FeatureTable,
    models: Optional[Sequence[str]] = None,
    classifiers: Optional[Sequence[str]] = None,
    *,
    config: Optional[ModelConfig] = None,
    test_fraction: float = TEST_FRACTION,
    seed: int = 0,
    cv: int = 0,
    external: Optional[FeatureTable] = None,
    progress: Optional[Progress] = None,
) -> GridResult:
    """Fit and evaluate every group × classifier, plus the SUVmax baseline.

    Modes: a 7:3 patient split (:func:`~BoneOligoMetLib.models.splits.patient_split`, ``seed``);
    ``cv`` ≥ 2: patient-grouped k-fold, each lesion predicted once by the model of the fold
    that held it out (pooled predictions, per-fold training thresholds); ``external``: the
    models fitted on all of ``table`` and tested on ``external``. A model whose selection
    leaves no feature is recorded in ``failed`` and the grid goes on. DeLong tests compare
    every model with the reference group (DLR+Complex, else Complex) of the same classifier,
    and the baseline with the reference of each classifier, on the held-out lesions.
    """

    config = config or ModelConfig()
    if cv and external is not None:
        raise ModelingError("choose k-fold CV or an external test set, not both")
    if cv == 1 or cv < 0:
        raise ModelingError(f"--cv needs at least 2 folds, found {cv}")
    groups, group_notes = resolve_groups(table, models)
    names = resolve_classifiers(classifiers, config)
    notes = list(table.notes) + group_notes
    baseline_ok = _check_inputs(table, groups, cv, external)
    if not baseline_ok:
        notes.append("SUVmax baseline: skipped, no met_suv_max / met_liver_suv_mean columns")
    reference, note = _reference_group(groups)
    if note:
        notes.append(note)
    mode, primary, fits, split = _held_out(table, test_fraction, seed, cv, external)
    result = GridResult(
        mode=mode,
        primary=primary,
        table=table,
        external=external,
        groups=groups,
        classifiers=names,
        reference=reference,
        config=config,
        seed=seed,
        test_fraction=test_fraction,
        folds=cv,
        split=split,
        runs={},
        delong=[],
        notes=notes,
        failed=[],
    )
    cache: dict = {}
    jobs = [(g, c) for g in groups for c in names]
    if baseline_ok:
        jobs.append((BASELINE, BASELINE_CLASSIFIER))
    for number, (group, name) in enumerate(jobs):
        if number and jobs[number - 1][0] != group:
            cache.clear()  # encode/select steps are shared within a group only
        if progress:
            progress(number / len(jobs), f"{group_name(group)} / {classifier_name(name)}")
        try:
            run = _fit_run(result, group, name, fits, cache)
        except SelectionError as error:
            message = str(error)
            result.failed.append((group, name, message))
            log.warning("%s / %s not fitted: %s", group_name(group), name, message)
            continue
        _evaluate_run(result, run)
        for fitted in run.fitted:
            for note in fitted.notes:
                if note not in result.notes:
                    result.notes.append(note)
        result.runs[(group, name)] = run
    if progress:
        progress(1.0, "done")
    result.delong = _delong_rows(result)
    return result


def _delong_rows(result: GridResult) -> list[dict[str, Any]]:
    """Paired DeLong tests on the held-out lesions: each model against the reference group of
    the same classifier; the baseline against the reference of every classifier."""

    rows: list[dict[str, Any]] = []
    if result.reference is None:
        return rows
    baseline = result.baseline()
    for name in result.classifiers:
        reference = result.run(result.reference, name)
        if reference is None:
            continue
        ref_index, ref_p, _, _ = reference.predictions[result.primary]
        others = [r for r in result.runs.values() if r.classifier == name and r is not reference]
        if baseline is not None:
            others.append(baseline)
        for run in others:
            index, p, _, _ = run.predictions[result.primary]
            if not np.array_equal(index, ref_index):
                continue  # not the same lesions (cannot happen within one grid)
            y = result.set_table(result.primary).y[index]
            test = delong_test(y, p, ref_p)
            low, high = test.difference_ci(result.config.level)
            rows.append(
                {
                    "set": result.primary,
                    "model": run.group,
                    "model_name": group_name(run.group),
                    "classifier": run.classifier,
                    "classifier_name": classifier_name(run.classifier),
                    "reference_model": result.reference,
                    "reference_classifier": name,
                    "auc_model": test.auc_a,
                    "auc_reference": test.auc_b,
                    "difference": test.difference,
                    "difference_low": low,
                    "difference_high": high,
                    "z": test.z,
                    "p_value": test.p_value,
                    "n_cases": test.n_cases,
                    "n_controls": test.n_controls,
                }
            )
    return rows
