"""Reading DICOM: DA/TM/DT values, numeric and private elements, files cut short, and the
physical geometry of one-slice-per-file series (sorted along the slice normal, LPS), with
uneven multi-bed PET slices put on a regular grid.

Shared by the SUV reader (``suv``), the generic reader (``image_io``) and the PET writer's
tests; every failure is an error that names the tag and the file.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import re
import warnings
from collections.abc import Sequence
from typing import Any, Optional

from BoneOligoMetLib.errors import DicomTagError, ImageReadError

log = logging.getLogger(__name__)

F18_HALF_LIFE_S = 6586.2  # QIBA FDG-PET/CT profile: 109.77 min
GE_PRIVATE_CREATOR = "GEMS_PETD_01"  # (0009,10xx); 0x0D = PET scan_datetime (DT)
PHILIPS_PRIVATE_CREATOR = "Philips PET Private Group"  # (7053,10xx)
PHILIPS_SUV_FACTOR = 0x00  # (7053,1000) SUV scale factor: SUVbw per rescaled value
PHILIPS_ACTIVITY_FACTOR = 0x09  # (7053,1009) activity concentration scale factor: Bq/mL per value
PIXEL_DATA_TAG = 0x7FE00010
FLOAT_PIXEL_DATA_TAGS = (0x7FE00008, 0x7FE00009)  # Float / Double Float Pixel Data
DEFER_BYTES = 4096  # header reads leave values larger than this (the pixel data) on disk


def average_count_time_s(frame_duration_s: float, half_life_s: float) -> float:
    """Seconds after frame start at which the activity equals its frame average (C.8.9.4.1.5)."""
    if frame_duration_s <= 0:
        return 0.0
    decay_during_frame = math.log(2.0) / half_life_s * frame_duration_s
    return math.log(decay_during_frame / (1.0 - math.exp(-decay_during_frame))) / (
        math.log(2.0) / half_life_s
    )


def _valuerep(kind: str, text: str) -> Any:
    """pydicom's reading of a ``DA``/``TM``/``DT`` string, or None when it is not one."""
    from pydicom import valuerep

    try:
        with warnings.catch_warnings():  # a leap second "60" is read as 59, with a warning
            warnings.simplefilter("ignore")
            return getattr(valuerep, kind)(text) if text else None
    except (ValueError, TypeError, OverflowError):
        return None


def parse_dicom_time(text: str) -> Optional[dt.time]:
    """DICOM TM (``HH[MM[SS[.F]]]``; the legacy ``HH:MM:SS`` too) as a time; None if it is not
    one. Read by :class:`pydicom.valuerep.TM`."""
    value = _valuerep("TM", text.strip().replace(":", ""))
    return (
        None
        if value is None
        else dt.time(value.hour, value.minute, value.second, value.microsecond)
    )


def parse_dicom_date(text: str) -> Optional[dt.date]:
    """DICOM DA (``YYYYMMDD``, legacy ``YYYY.MM.DD``) as a date; None if it is not one. Read by
    :class:`pydicom.valuerep.DA`."""
    value = _valuerep("DA", text.strip())
    return None if value is None else dt.date(value.year, value.month, value.day)


def parse_dicom_datetime(text: str) -> Optional[dt.datetime]:
    """DICOM DT (``YYYYMMDD[HHMMSS[.F]][&ZZXX]``) as a naive datetime (the UTC offset is
    dropped, as the scanner's times are local); None if it is not one. Read by
    :class:`pydicom.valuerep.DT`."""
    text = text.strip()
    if len(re.sub(r"[+-]\d{4}$", "", text)) < 8:  # a year or month alone places no scan in time
        return None
    value = _valuerep("DT", text)
    return None if value is None else dt.datetime(*value.timetuple()[:6], value.microsecond)


def tag_label(keyword: str) -> str:
    """``tag (gggg,eeee)`` for a standard keyword, for provenance tables."""
    from pydicom.datadict import tag_for_keyword

    tag = tag_for_keyword(keyword)
    return f"tag ({tag >> 16:04X},{tag & 0xFFFF:04X})" if tag is not None else "tag"


def tag_text(ds: Any, keyword: str) -> str:
    """A single-valued tag as stripped text; "" when absent or empty."""
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def tag_number(ds: Any, keyword: str, path: object) -> Optional[float]:
    """A numeric tag as float; None when absent or empty; DicomTagError when not a number."""
    text = tag_text(ds, keyword)
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise DicomTagError(keyword, path, f"is {text!r}, not a number") from None
    if not math.isfinite(value):
        raise DicomTagError(keyword, path, f"is {text!r}, not a finite number")
    return value


def private_text(ds: Any, group: int, creator: str, element: int) -> Optional[str]:
    """The value of private element ``(group, xx<element>)`` reserved by ``creator``, as text."""
    try:
        tag = ds.private_block(group, creator).get_tag(element)
    except KeyError:
        return None
    if tag not in ds:
        return None
    value = ds[tag].value
    if isinstance(value, bytes):  # VR UN in files written without the private dictionary
        value = value.decode("ascii", "replace")
    return str(value).strip(" \x00") or None


def private_number(ds: Any, group: int, creator: str, element: int, path: object):
    """A numeric private element as float, None when absent; DicomTagError when not a number."""
    text = private_text(ds, group, creator, element)
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        name = f"({group:04X},10{element:02X}) of {creator!r}"
        raise DicomTagError(name, path, f"is {text!r}, not a number") from None


def _raw_elements(ds: Any) -> list[Any]:
    """Top-level and file-meta elements as read: raw, so a deferred value is not loaded."""
    found = []
    for holder in (getattr(ds, "file_meta", None), ds):
        raw = getattr(holder, "_dict", None)  # pydicom 2 and 3 (elements() converts in 2)
        if holder is not None:
            found += list(raw.values()) if isinstance(raw, dict) else list(holder.elements())
    return found


def _pixel_element(ds: Any) -> Any:
    try:
        return ds.get_item(PIXEL_DATA_TAG, keep_deferred=True)
    except TypeError:  # pragma: no cover - pydicom 2 has no keep_deferred
        return getattr(ds, "_dict", {}).get(PIXEL_DATA_TAG)


def expected_pixel_bytes(ds: Any) -> Optional[int]:
    """Bytes of native pixel data: Rows × Columns × samples × BitsAllocated/8 × frames.

    None for compressed (encapsulated) pixel data or when the image tags are absent.
    """
    from pydicom.uid import UID

    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is not None and UID(str(syntax)).is_compressed:
        return None
    try:
        rows, columns, bits = int(ds.Rows), int(ds.Columns), int(ds.BitsAllocated)
        samples = int(ds.get("SamplesPerPixel") or 1)
        frames = int(str(ds.get("NumberOfFrames") or 1).strip() or 1)
    except (AttributeError, TypeError, ValueError):
        return None
    return (rows * columns * samples * frames * bits + 7) // 8


def is_image_storage(ds: Any) -> bool:
    """Whether the SOP class is an image storage class, so the file must hold pixel data
    (DICOMDIR, RTSTRUCT, SR, presentation states are not)."""
    from pydicom.uid import UID

    meta = getattr(ds, "file_meta", None)
    uid = meta.get("MediaStorageSOPClassUID") if meta is not None else None
    uid = uid or ds.get("SOPClassUID")
    return uid is not None and "Image Storage" in UID(str(uid)).name


def pixel_data_problem(ds: Any, path: object, end_of_file: str = "") -> Optional[str]:
    """Why the pixel data of ``ds`` (read from ``path``) cannot be used, or None.

    pydicom reads a file cut short without a word, so this looks for the cut: an element whose
    value runs past the end of the file, an image without pixel data, or native pixel data
    shorter than Rows × Columns × BitsAllocated/8 (× frames). ``end_of_file``: pydicom's
    end-of-file warning, if it gave one. The message is one line naming the file.
    """
    size = os.path.getsize(path)
    if end_of_file:
        return f"{path}: truncated DICOM file: {end_of_file}"
    for element in _raw_elements(ds):
        length = getattr(element, "length", 0xFFFFFFFF)
        if element.tag == PIXEL_DATA_TAG or length == 0xFFFFFFFF:
            continue
        if element.value_tell + length > size:
            have = max(size - element.value_tell, 0)
            tag = f"({element.tag >> 16:04X},{element.tag & 0xFFFF:04X})"
            return f"{path}: truncated DICOM file: ends inside tag {tag} ({have} of {length} bytes)"
    if len(ds) == 0:
        return f"{path}: truncated DICOM file: no data elements after the file meta information"
    pixels = _pixel_element(ds)
    if pixels is None:
        if any(tag in ds for tag in FLOAT_PIXEL_DATA_TAGS) or not (
            "Rows" in ds or is_image_storage(ds)
        ):
            return None
        return f"{path}: truncated DICOM file: no pixel data (7FE0,0010); it ends at byte {size}"
    expected = expected_pixel_bytes(ds)
    declared = getattr(pixels, "length", 0xFFFFFFFF)
    if expected is None or declared == 0xFFFFFFFF:
        return None  # encapsulated (compressed) data: its decoder judges it
    present = max(min(declared, size - pixels.value_tell), 0)
    if pixels.value is not None:
        present = min(present, len(pixels.value))
    if present >= expected:
        return None
    if present < declared:
        return f"{path}: truncated DICOM file: pixel data holds {present} of {expected} bytes"
    return (
        f"{path}: not a readable DICOM file: pixel data holds {present} of {expected} bytes "
        "(Rows × Columns × BitsAllocated/8 × frames)"
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def inspect_dicom_file(
    path: object, pixels: bool = True, force: bool = False
) -> tuple[Optional[Any], Optional[str]]:
    """(pydicom dataset or None, why it cannot be used or None) for one file.

    ``pixels=False`` leaves large values (the pixel data) on disk until accessed; ``force``
    reads files without the Part-10 "DICM" preamble. The reason is one line naming the file:
    "not a readable DICOM file: ..." or "truncated DICOM file: ..." (:func:`pixel_data_problem`).
    """
    import pydicom

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(str(path), defer_size=None if pixels else DEFER_BYTES, force=force)
        except Exception as error:  # pydicom raises many types on garbage (struct.error, ...)
            return None, f"{path}: not a readable DICOM file: {_first_line(error)}"
    end_of_file = next(
        (
            str(w.message).split(" in file ")[0]
            for w in caught
            if "end of file" in str(w.message).lower() or "EOF" in str(w.message)
        ),
        "",
    )
    return ds, pixel_data_problem(ds, path, end_of_file)


def read_dataset(path: object, pixels: bool = True) -> Any:
    """One pydicom dataset; an unreadable or truncated file is an ImageReadError naming it."""
    ds, problem = inspect_dicom_file(path, pixels)
    if problem:
        raise ImageReadError(problem)
    return ds


def read_datasets(paths: Sequence[str], pixels: bool = True) -> list[Any]:
    """pydicom datasets of ``paths`` (:func:`read_dataset`): an unreadable or truncated file is
    an ImageReadError naming it."""
    return [read_dataset(path, pixels) for path in paths]
