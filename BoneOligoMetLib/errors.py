"""Domain exceptions: each message names the file, tag or lesion, what was expected and found.

All subclass :class:`ValueError` so callers that only know Python's built-ins still catch them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


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
