"""The cohort-characteristics table (the study's Table 1): variables compared between groups
(training vs test, benign vs malignant), with the summary and the test that suit each kind of
variable. Errors are :class:`~BoneOligoMetLib.errors.StatsError` (a ``ValueError``), one line
each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
from scipy import stats as sps

from BoneOligoMetLib.errors import StatsError
from BoneOligoMetLib.io.tables import write_csv

VARIABLE_KINDS = ("auto", "normal", "nonnormal", "categorical")
# Shapiro–Wilk p below which a group's values count as not normal.
NORMALITY_ALPHA = 0.05
# Monte-Carlo replicates of the Fisher–Freeman–Halton test for tables larger than 2×2.
FISHER_REPLICATES = 20000


@dataclass(frozen=True)
class CohortTable:
    """A Table-1-like table. ``rows`` are dicts with the keys in ``columns``: ``variable``,
    ``level`` (categories; "" on a variable's own row), one column per group (summary text),
    ``test``, ``statistic``, ``p``, ``missing`` (None where not applicable: the level rows, a
    statistic that the test does not have). ``group_sizes`` maps group column → n."""

    columns: list[str]
    rows: list[dict[str, Any]]
    group_sizes: dict[str, int]

    def to_csv(self, path: Any) -> None:
        write_csv(self.rows, path, self.columns)

    def to_pandas(self) -> Any:
        """The table as a pandas DataFrame (pandas is optional and imported here)."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=self.columns)


def _column(table: Any, name: str) -> list[Any]:
    if isinstance(table, Sequence) and not isinstance(table, (str, bytes)):
        if table and name not in table[0]:
            raise StatsError(f"column {name!r} is not in the table")
        return [row.get(name) for row in table]
    try:
        values = table[name]
    except (KeyError, IndexError) as error:
        raise StatsError(f"column {name!r} is not in the table") from error
    # pyarrow columns hold arrow scalars; pandas/numpy ones give Python or numpy scalars
    return values.to_pylist() if hasattr(values, "to_pylist") else list(values)


def _missing(value: Any) -> bool:
    if value is None or (isinstance(value, str) and value == ""):
        return True
    return isinstance(value, (float, np.floating)) and math.isnan(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def cohort_characteristics(
    table: Any,
    group_col: str,
    variables: Sequence[str],
    *,
    kinds: Optional[dict[str, str]] = None,
    groups: Optional[Sequence[Any]] = None,
    digits: int = 2,
) -> CohortTable:
    """Compare variables between groups (e.g. training vs test, benign vs malignant).

    ``table``: rows (a sequence of dicts), columns (a dict of sequences) or a DataFrame.
    ``kinds`` per variable: "normal" (mean ± SD; Welch's t-test, one-way ANOVA for > 2 groups),
    "nonnormal" (median [IQR]; Mann–Whitney U, Kruskal–Wallis for > 2 groups), "categorical"
    (n (%) of the group per level; Pearson χ² without continuity correction, or Fisher's exact
    test when an expected count is < 5: exact for 2×2, Monte-Carlo Fisher–Freeman–Halton with
    a fixed seed otherwise), or "auto" (default): categorical for non-numeric values, else
    normal when Shapiro–Wilk p ≥ 0.05 in every group (3 ≤ n ≤ 5000), otherwise nonnormal.
    Missing values (None, NaN, "") are left out and counted in ``missing``.
    """
    kinds = dict(kinds or {})
    unknown = sorted(set(kinds) - set(variables))
    if unknown:
        raise StatsError(f"kinds given for variables not listed: {unknown}")
    labels = _column(table, group_col)
    present = [g for g in labels if not _missing(g)]
    if groups is None:
        groups = sorted(set(present), key=str)
    if len(groups) < 2:
        raise StatsError(f"column {group_col!r} needs at least 2 groups, found {list(groups)}")
    names = [str(g) for g in groups]
    members = [[i for i, g in enumerate(labels) if g == group] for group in groups]
    for name, rows in zip(names, members):
        if not rows:
            raise StatsError(f"group {name!r} of column {group_col!r} has no rows")
    columns = ["variable", "level", *names, "test", "statistic", "p", "missing"]
    out = CohortTable(columns, [], {n: len(r) for n, r in zip(names, members)})
    for variable in variables:
        kind = kinds.get(variable, "auto")
        if kind not in VARIABLE_KINDS:
            raise StatsError(f"{variable}: kind must be one of {VARIABLE_KINDS}, found {kind!r}")
        values = _column(table, variable)
        kept = [[values[i] for i in rows if not _missing(values[i])] for rows in members]
        missing = sum(len(rows) for rows in members) - sum(len(k) for k in kept)
        numeric = all(_is_number(v) for group in kept for v in group)
        if kind == "categorical" or (kind == "auto" and not numeric):
            out.rows.extend(_categorical_rows(variable, names, kept, missing))
            continue
        if not numeric:
            raise StatsError(f"{variable}: kind {kind!r} needs numbers, found non-numeric values")
        arrays = [np.asarray(group, dtype=float) for group in kept]
        if any(a.size < 2 for a in arrays):
            raise StatsError(f"{variable}: each group needs at least 2 values")
        if kind == "auto":
            kind = "normal" if _all_normal(arrays) else "nonnormal"
        out.rows.append(_continuous_row(variable, names, arrays, kind, digits, missing))
    out.rows[:] = [{column: row.get(column) for column in columns} for row in out.rows]
    return out


def _all_normal(arrays: list[np.ndarray]) -> bool:
    for values in arrays:
        if values.size < 3 or np.ptp(values) == 0:
            return False
        if values.size <= 5000 and sps.shapiro(values).pvalue < NORMALITY_ALPHA:
            return False
    return True


def _continuous_row(
    variable: str, names: list[str], arrays: list[np.ndarray], kind: str, digits: int, missing: int
) -> dict[str, Any]:
    row: dict[str, Any] = {"variable": variable, "level": "", "missing": missing}
    for name, values in zip(names, arrays):
        if kind == "normal":
            row[name] = f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"
        else:
            q1, median, q3 = np.percentile(values, [25, 50, 75])
            row[name] = f"{median:.{digits}f} [{q1:.{digits}f}, {q3:.{digits}f}]"
    if kind == "normal" and len(arrays) == 2:
        result = sps.ttest_ind(arrays[0], arrays[1], equal_var=False)
        row["test"] = "Welch t-test"
    elif kind == "normal":
        result = sps.f_oneway(*arrays)
        row["test"] = "one-way ANOVA"
    elif len(arrays) == 2:
        result = sps.mannwhitneyu(arrays[0], arrays[1], alternative="two-sided")
        row["test"] = "Mann–Whitney U"
    else:
        result = sps.kruskal(*arrays)
        row["test"] = "Kruskal–Wallis"
    row["statistic"], row["p"] = float(result.statistic), float(result.pvalue)
    return row


def _categorical_rows(
    variable: str, names: list[str], kept: list[list[Any]], missing: int
) -> list[dict[str, Any]]:
    levels = sorted({v for group in kept for v in group}, key=str)
    counts = np.array([[sum(1 for v in group if v == level) for level in levels] for group in kept])
    head: dict[str, Any] = {"variable": variable, "level": "", "missing": missing}
    head.update({name: "" for name in names})
    if len(levels) < 2:
        head.update(test="", statistic=None, p=None)
    else:
        expected = sps.contingency.expected_freq(counts)
        if expected.min() >= 5:
            chi2, p, _, _ = sps.chi2_contingency(counts, correction=False)
            head.update(test="χ²", statistic=float(chi2), p=float(p))
        elif counts.shape == (2, 2):
            odds, p = sps.fisher_exact(counts)
            head.update(test="Fisher exact", statistic=float(odds), p=float(p))
        else:
            head.update(test="Fisher–Freeman–Halton (Monte Carlo)", statistic=None)
            head["p"] = _fisher_monte_carlo(counts)
    rows = [head]
    totals = counts.sum(axis=1)
    for j, level in enumerate(levels):
        row: dict[str, Any] = {"variable": variable, "level": str(level)}
        for i, name in enumerate(names):
            share = 100.0 * counts[i, j] / totals[i] if totals[i] else math.nan
            row[name] = f"{counts[i, j]} ({share:.1f}%)"
        row.update(test="", statistic=None, p=None, missing=None)
        rows.append(row)
    return rows


def _fisher_monte_carlo(counts: np.ndarray, seed: int = 0) -> float:
    """Monte-Carlo p of the Fisher–Freeman–Halton test (R's ``fisher.test(simulate.p.value=
    TRUE)``): tables with the same margins, drawn by permuting one variable, that are no more
    probable than the observed one (probability ∝ 1/∏ n_ij!)."""
    from scipy.special import gammaln

    groups = np.repeat(np.arange(counts.shape[0]), counts.sum(axis=1))
    levels = np.concatenate([np.repeat(np.arange(counts.shape[1]), row) for row in counts])
    rng = np.random.default_rng(seed)
    size = counts.size
    observed = -gammaln(counts + 1).sum()
    exceed = 0
    for start in range(0, FISHER_REPLICATES, 2000):
        block = min(2000, FISHER_REPLICATES - start)
        shuffled = rng.permuted(np.tile(levels, (block, 1)), axis=1)
        cells = groups[None, :] * counts.shape[1] + shuffled
        offsets = (np.arange(block) * size)[:, None]
        tables = np.bincount((cells + offsets).ravel(), minlength=block * size).reshape(block, -1)
        log_prob = -gammaln(tables + 1).sum(axis=1)
        exceed += int((log_prob <= observed + 1e-7).sum())
    return (exceed + 1) / (FISHER_REPLICATES + 1)
