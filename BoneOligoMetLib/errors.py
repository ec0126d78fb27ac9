"""Domain exceptions: each message names the file, tag or lesion, what was expected and found.

All subclass :class:`ValueError` so callers that only know Python's built-ins still catch them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Callable

Progress = Callable[[float, str], None]
"""A progress callback, ``progress(fraction, message)`` with ``fraction`` in 0…1: library calls
that take time accept one; the CLI shows a bar, the Slicer module a progress dialog."""


class BoneOligoMetError(ValueError):
    """Base class of the library's input errors (one line, user-facing)."""


class ImageReadError(BoneOligoMetError):
    """A file or folder could not be read as the image that was asked for."""


class DicomTagError(BoneOligoMetError):
    """A DICOM tag needed for a computation is missing or implausible.

    The message names the tag keyword, its (group,element), the file and the offending value.
    """

    def __init__(self, keyword: str, path: object, problem: str, hint: str = "") -> None:
        self.keyword = keyword
        self.path = str(path)
        message = f"{path}: DICOM tag {keyword} {problem}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)


class GeometryError(BoneOligoMetError):
    """Images or masks whose physical geometry does not fit together (no overlap, other grid)."""


class MaskError(BoneOligoMetError):
    """A lesion mask that is empty, not binary, or otherwise unusable."""


class UnitsError(BoneOligoMetError):
    """An image not in the units a computation needs (e.g. Bq/mL where SUV is needed)."""


def did_you_mean(name: object, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the choice closest to ``name``, or ``""``."""
    import difflib

    close = difflib.get_close_matches(str(name), list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_keys(
    mapping: Mapping[str, object],
    known: Iterable[str],
    what: str,
    error: type[BoneOligoMetError] = BoneOligoMetError,
) -> None:
    """Refuse the first key of ``mapping`` not in ``known``: ``"{what} 'key'; did you mean …"``."""
    known = list(known)
    for key in mapping:
        if key not in known:
            raise error(f"{what} {key!r}{did_you_mean(key, known)}")


# --- the layers' own errors, bottom up: reading, lesions, features, deep features, models ------


class ManifestError(BoneOligoMetError):
    """A cohort manifest that cannot be read: missing columns, bad labels, duplicates."""


class SegmentationError(BoneOligoMetError):
    """No lesion could be grown from a seed (non-avid lesion, seed outside bone)."""


class ConfigError(BoneOligoMetError):
    """An extraction configuration with an unknown key or an impossible value."""


class ParamsError(BoneOligoMetError):
    """A radiomics parameter file (or override) that pyradiomics' schema or ours refuses."""


class ExtractionInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a cohort run (its workers stopped too): ``kept`` of ``total`` lesions are
    finished in the ``parts`` folder, and the same call again resumes from them."""

    def __init__(self, kept: int, total: int, parts: Path) -> None:
        super().__init__(f"{kept} of {total} lesion(s) kept in {parts}")
        self.kept = kept
        self.total = total
        self.parts = parts


class DeepConfigError(BoneOligoMetError):
    """A deep-branch setting that is unknown or impossible."""


class ArchitectureError(BoneOligoMetError):
    """An unknown network name or an impossible network configuration."""


class ModelFileError(BoneOligoMetError):
    """A network folder that is missing a file, or whose files disagree."""


class TrainingError(BoneOligoMetError):
    """Training that cannot start: too few lesions, one class only, a bad init checkpoint."""


class ModelingError(BoneOligoMetError):
    """A feature table or a model request that cannot be used (one line, names what is wrong)."""


class SelectionError(BoneOligoMetError):
    """Feature selection that cannot run or that left no feature."""


class ClassifierError(BoneOligoMetError):
    """An unknown classifier name, or input a classifier cannot use."""


class SplitError(BoneOligoMetError):
    """A split that cannot be made: too few patients or only one class."""


class StatsError(BoneOligoMetError):
    """Input that a statistic cannot be computed on (one class only, NaN scores, lengths)."""


class BundleError(BoneOligoMetError):
    """A model bundle that is incomplete, altered, or does not fit the features."""
