"""The feature table the models read (one row per lesion, as ``bone-oligomet extract`` writes
it) and :class:`TableEncoder`, the first step of every model's pipeline.

- :class:`FeatureTable`: labels, patients, columns by group, and checks that name the column
  and the lesion (text in a numeric column, missing/NaN/infinite values: no imputation).
- :class:`TableEncoder`: numeric columns as floats, text ``clin_*`` columns one-hot
  (categories learned from the training rows; an unseen or missing category is all zeros).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from BoneOligoMetLib.errors import BoneOligoMetError, ModelingError
from BoneOligoMetLib.io.tables import read_table
from BoneOligoMetLib.models.groups import GROUPS

LABEL_COLUMN = "label"
PATIENT_COLUMN = "patient_id"
LESION_COLUMN = "lesion_label"
_TEXT_LABELS = {"benign": 0, "malignant": 1, "0": 0, "1": 1, "false": 0, "true": 1}


def _missing(value: Any) -> bool:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return True
    return isinstance(value, (float, np.floating)) and math.isnan(value)


def _label_value(value: Any, where: str) -> int:
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)) and int(value) in (0, 1):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value) in (0.0, 1.0):
        return int(value)
    if isinstance(value, str) and value.strip().lower() in _TEXT_LABELS:
        return _TEXT_LABELS[value.strip().lower()]
    raise ModelingError(f"{where}: label {value!r} is not 0/1 or benign/malignant (1 = malignant)")


class FeatureTable:
    """A feature table as ``bone-oligomet extract`` writes it: one row per lesion with
    ``patient_id``, ``lesion_label``, ``label`` (0 benign / 1 malignant, or the words) and the
    feature columns. With a ``reader`` column holding several readers, the rows of ``reader``
    (default: the first in sorted order) are used.

    ``y``: labels (int, 1 = malignant); ``patients``: patient ids (str), one per row.
    """

    def __init__(
        self,
        columns: Sequence[str],
        rows: Sequence[Mapping[str, Any]],
        source: str = "feature table",
        reader: Optional[str] = None,
    ) -> None:
        self.source = str(source)
        self.columns = [str(c) for c in columns]
        self.notes: list[str] = []
        for needed in (PATIENT_COLUMN, LABEL_COLUMN):
            if needed not in self.columns:
                hint = " (the manifest needs a label column: 0 benign, 1 malignant)"
                raise ModelingError(
                    f"{self.source}: no {needed!r} column"
                    + (hint if needed == LABEL_COLUMN else "")
                )
        rows = list(rows)
        if "reader" in self.columns:
            readers = sorted({str(r.get("reader")) for r in rows})
            if reader is None and len(readers) > 1:
                reader = readers[0]
                self.notes.append(
                    f"{len(readers)} readers in the table; the models use reader {reader!r}'s "
                    "delineations"
                )
            if reader is not None:
                if reader not in readers:
                    raise ModelingError(f"{self.source}: no reader {reader!r} (found {readers})")
                rows = [r for r in rows if str(r.get("reader")) == reader]
        if not rows:
            raise ModelingError(f"{self.source}: the table has no rows")
        self.rows = rows
        self.y = np.array(
            [_label_value(r.get(LABEL_COLUMN), self.describe(i)) for i, r in enumerate(rows)],
            dtype=int,
        )
        self.patients = np.array([str(r.get(PATIENT_COLUMN)) for r in rows])
        seen: set[tuple[str, str]] = set()
        for i, row in enumerate(rows):
            key = (str(row.get(PATIENT_COLUMN)), str(row.get(LESION_COLUMN, i)))
            if key in seen:
                raise ModelingError(f"{self.source}: {self.describe(i)} appears twice")
            seen.add(key)
        self._categorical = {c for c in self.columns if c.startswith("clin_") and self._is_text(c)}

    @classmethod
    def read(cls, path: Union[str, Path], reader: Optional[str] = None) -> FeatureTable:
        """A ``.parquet`` or ``.csv`` table written by ``bone-oligomet extract``."""

        path = Path(path)
        if not path.is_file():
            raise ModelingError(f"{path}: no such feature table")
        try:
            columns, rows = read_table(path)
        except (OSError, ValueError) as error:
            if isinstance(error, BoneOligoMetError):
                raise
            raise ModelingError(f"{path}: cannot read the feature table ({error})") from error
        return cls(columns, rows, source=str(path), reader=reader)

    def __len__(self) -> int:
        return len(self.rows)

    def describe(self, row: int) -> str:
        """ "patient P lesion L" of a row, for messages."""
        values = self.rows[row]
        return (
            f"patient {values.get(PATIENT_COLUMN)} lesion {values.get(LESION_COLUMN, '?')}"
            f" (row {row})"
        )

    def _is_text(self, column: str) -> bool:
        return any(
            isinstance(r.get(column), str) and not _missing(r.get(column)) for r in self.rows
        )

    def column(self, name: str) -> list[Any]:
        if name not in self.columns:
            raise ModelingError(f"{self.source}: no column {name!r}")
        return [r.get(name) for r in self.rows]

    @property
    def n_patients(self) -> int:
        return len(np.unique(self.patients))

    def prefix_columns(self, prefix: str) -> list[str]:
        return [c for c in self.columns if c.startswith(prefix)]

    def group_columns(self, group: str) -> list[str]:
        """The table's columns of a group, in table order."""
        prefixes = GROUPS[group].prefixes
        return [c for c in self.columns if c.startswith(prefixes)]

    def group_available(self, group: str) -> tuple[bool, str]:
        """(usable, note): a group needs a column of every prefix but ``clin_``."""
        spec = GROUPS[group]
        absent = [p for p in spec.prefixes if not self.prefix_columns(p)]
        needed = [p for p in absent if p != "clin_"]
        if needed:
            stars = ", ".join(f"{p}*" for p in needed)
            return False, f"{spec.name}: skipped, no {stars} columns in the table"
        if absent:
            return True, f"{spec.name}: no clin_* columns in the table; clinical values left out"
        return True, ""

    def categorical(self, columns: Sequence[str]) -> list[str]:
        """The text (one-hot encoded) columns among ``columns``."""
        return [c for c in columns if c in self._categorical]

    def check_numeric(self, columns: Sequence[str]) -> None:
        """Text in a non-clinical column is an error naming it (clin_* text is categorical)."""
        for column in columns:
            if column in self._categorical:
                continue
            for i, row in enumerate(self.rows):
                value = row.get(column)
                if isinstance(value, str) and not _missing(value):
                    try:
                        float(value)
                    except ValueError:
                        raise ModelingError(
                            f"{self.source}: column {column!r} holds text {value!r} at "
                            f"{self.describe(i)}; only clin_* columns may be categories"
                        ) from None

    def check_finite(self, columns: Sequence[str], index: Optional[Sequence[int]] = None) -> None:
        """Missing, NaN or infinite numeric values are an error naming column and lesion."""
        numeric = [c for c in columns if c not in self._categorical]
        if not numeric:
            return
        rows = range(len(self.rows)) if index is None else index
        matrix = self.matrix(numeric, rows, categorical=False)
        bad = ~np.isfinite(matrix)
        if bad.any():
            where_rows, where_cols = np.nonzero(bad)
            first = list(rows)[int(where_rows[0])]
            columns_hit = sorted({numeric[j] for j in where_cols})
            raise ModelingError(
                f"{self.source}: {int(bad.sum())} missing/NaN/infinite feature values in "
                f"{len(columns_hit)} column(s) (first: {numeric[int(where_cols[0])]!r} at "
                f"{self.describe(first)}); the models do not impute: fix the extraction or "
                "drop the column"
            )

    def matrix(
        self,
        columns: Sequence[str],
        index: Optional[Sequence[int]] = None,
        categorical: Optional[bool] = None,
    ) -> np.ndarray:
        """Rows × ``columns`` as the pipelines take them: float, or object when a categorical
        (text) column is among them. Missing numbers come out NaN."""
        missing = [c for c in columns if c not in self.columns]
        if missing:
            shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
            raise ModelingError(
                f"{self.source}: {len(missing)} feature column(s) the model needs are missing: "
                f"{shown}"
            )
        rows = self.rows if index is None else [self.rows[int(i)] for i in index]
        if categorical is None:
            categorical = bool(self.categorical(columns))
        if categorical:
            out = np.empty((len(rows), len(columns)), dtype=object)
            for i, row in enumerate(rows):
                out[i] = [row.get(c) for c in columns]
            return out
        try:
            return np.array([[row.get(c) for c in columns] for row in rows], dtype=float).reshape(
                len(rows), len(columns)
            )
        except (TypeError, ValueError) as error:
            self.check_numeric(columns)
            raise ModelingError(f"{self.source}: non-numeric feature values ({error})") from error


# ---------------------------------------------------------------------------------------------
# Encoding: numbers pass through, clinical text categories one-hot


class TableEncoder(TransformerMixin, BaseEstimator):
    """Feature rows (columns ``feature_names``) to a float matrix: numeric columns as floats,
    ``categorical`` columns one-hot with the categories seen in fit (sorted; output columns
    ``name=category``, in place of the text column). An unseen or missing category is all
    zeros; a missing/NaN/infinite number is an error naming the column and the row.
    ``ranges_`` holds each numeric ``clin_*`` column's (min, max) over the training rows.
    """

    def __init__(self, feature_names: Sequence[str] = (), categorical: Sequence[str] = ()) -> None:
        self.feature_names = feature_names
        self.categorical = categorical

    def _columns(self, X: Any) -> np.ndarray:
        array = np.asarray(X, dtype=object if self.categorical else float)
        if array.ndim != 2 or array.shape[1] != len(self.feature_names):
            raise ModelingError(
                f"expected {len(self.feature_names)} feature columns "
                f"({', '.join(list(self.feature_names)[:3])} …), found shape {array.shape}"
            )
        return array

    def fit(self, X: Any, y: Any = None) -> TableEncoder:
        names = [str(n) for n in self.feature_names]
        unknown = sorted(set(self.categorical) - set(names))
        if unknown:
            raise ModelingError(f"categorical columns not among the features: {unknown}")
        array = self._columns(X)
        self.n_features_in_ = len(names)
        self.categories_: dict[str, list[str]] = {}
        for j, name in enumerate(names):
            if name in self.categorical:
                levels = {str(v).strip() for v in array[:, j] if not _missing(v)}
                self.categories_[name] = sorted(levels)
        out: list[str] = []
        for name in names:
            if name in self.categories_:
                out.extend(f"{name}={level}" for level in self.categories_[name])
            else:
                out.append(name)
        self.feature_names_out_ = out
        self.transform(array)  # validates the numbers of the training rows
        # The clinical numbers' training range: values outside it are refused when classifying.
        self.ranges_ = {
            name: (
                float(np.min(array[:, j].astype(float))),
                float(np.max(array[:, j].astype(float))),
            )
            for j, name in enumerate(names)
            if name.startswith("clin_") and name not in self.categories_ and len(array)
        }
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        array = self._columns(X)
        blocks: list[np.ndarray] = []
        for j, name in enumerate(self.feature_names):
            values = array[:, j]
            if name in self.categories_:
                text = np.array(["" if _missing(v) else str(v).strip() for v in values])
                levels = self.categories_[name]
                blocks.append((text[:, None] == np.array(levels)[None, :]).astype(float))
                continue
            try:
                numbers = np.array([np.nan if v is None else v for v in values], dtype=float)
            except (TypeError, ValueError):
                raise ModelingError(f"feature {name!r} holds non-numeric values") from None
            bad = ~np.isfinite(numbers)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise ModelingError(
                    f"feature {name!r} is {values[row]!r} at row {row} ({int(bad.sum())} rows); "
                    "the models do not impute missing values"
                )
            blocks.append(numbers[:, None])
        if not blocks:
            return np.zeros((array.shape[0], 0))
        return np.hstack(blocks)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        return np.asarray(self.feature_names_out_, dtype=object)
