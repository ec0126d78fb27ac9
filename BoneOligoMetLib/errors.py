"""Domain exceptions: each message names the file, tag or lesion, what was expected and found.

All subclass :class:`ValueError` so callers that only know Python's built-ins still catch them.
"""

from __future__ import annotations


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
