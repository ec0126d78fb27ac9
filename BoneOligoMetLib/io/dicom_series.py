"""DICOM series in a folder: listing them (and the files that look like DICOM but cannot be used),
choosing one by modality or UID, and reading it into a SimpleITK image on a regular grid.

Slices are placed from their ImagePositionPatient by :func:`.slices.slice_geometry` (bed junctions
of multi-bed series are resampled, missing or duplicate slices refused, naming the files)."""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

import SimpleITK as sitk

from BoneOligoMetLib.errors import ImageReadError
from BoneOligoMetLib.io.dicom_tags import inspect_dicom_file
from BoneOligoMetLib.io.files import IMAGE_SUFFIXES, PathLike
from BoneOligoMetLib.io.slices import slice_geometry

log = logging.getLogger(__name__)

# Files in a DICOM folder that are plainly something else (not checked as possible slices).
NOT_DICOM_SUFFIXES = (
    *IMAGE_SUFFIXES,
    *(".raw", ".zraw", ".gz", ".zip", ".txt", ".md", ".csv", ".xml", ".json", ".html", ".htm"),
    *(".pdf", ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".py", ".log", ".ini"),
    *(".yaml", ".yml", ".db", ".exe", ".bat", ".sh"),
)


DICOM_SUFFIXES = (".dcm", ".ima", ".dicom", ".dic")


GDCM_GEOMETRY_TAGS = {  # keyword -> GDCM metadata key, for slice_geometry
    "ImagePositionPatient": "0020|0032",
    "ImageOrientationPatient": "0020|0037",
    "Rows": "0028|0010",
    "Columns": "0028|0011",
    "PixelSpacing": "0028|0030",
    "SliceThickness": "0018|0050",
}


@dataclass(frozen=True)
class DicomSeries:
    """One DICOM series found in a folder, its files sorted by slice position (by GDCM).

    ``unusable``: one-line reasons for files in the folder that look like DICOM of this series
    (or of no series that can be told) but cannot be read or are cut short; GDCM's listing skips
    them, so without this their gap would look like a missing slice.
    """

    uid: str
    modality: str
    description: str
    folder: Path
    files: tuple[str, ...]
    unusable: tuple[str, ...] = ()

    def summary(self) -> str:
        broken = f", {len(self.unusable)} unusable" if self.unusable else ""
        return (
            f"{self.modality or '?'} '{self.description}' ({len(self.files)} files{broken}, "
            f"SeriesInstanceUID {self.uid}, in {self.folder})"
        )

    def usable_files(self) -> tuple[str, ...]:
        """The files; an unusable file in the series is an ImageReadError naming it."""
        if self.unusable:
            more = len(self.unusable) - 1
            extra = f" (and {more} more unusable file(s) in {self.folder})" if more else ""
            raise ImageReadError(self.unusable[0] + extra)
        return self.files


def _looks_like_dicom(ds: Any) -> bool:
    """A dataset read with force=True from a file without the DICM preamble is DICOM if it has
    the identifying tags; garbage parsed as tags has not."""
    return bool(ds.get("SOPClassUID") or ds.get("SeriesInstanceUID")) and bool(ds.get("Modality"))


def unusable_dicom_files(folder: PathLike, listed: set[str]) -> list[tuple[Optional[Any], str]]:
    """(header or None, reason) for files in ``folder`` (not sub-folders) outside ``listed``
    that look like DICOM (the Part-10 "DICM" preamble, a .dcm/.ima suffix, or a header pydicom
    can read with force) yet cannot be used: unreadable, or cut short. DICOMDIR, hidden files,
    files with a plainly non-DICOM suffix (.txt, .xml, .json, images...) and complete non-image
    objects (RTSTRUCT, SR...) are ignored."""
    found = []
    for entry in sorted(os.scandir(folder), key=lambda item: item.name):
        name = entry.name.lower()
        if (
            not entry.is_file()
            or entry.path in listed
            or name.startswith(".")
            or name == "dicomdir"
            or name.endswith(NOT_DICOM_SUFFIXES)
        ):
            continue
        with open(entry.path, "rb") as handle:
            marked = handle.read(132)[128:132] == b"DICM" or name.endswith(DICOM_SUFFIXES)
        ds, problem = inspect_dicom_file(entry.path, pixels=False, force=not marked)
        if ds is None and not marked:
            continue  # not DICOM at all
        if ds is not None and not marked and not _looks_like_dicom(ds):
            continue
        if problem:
            found.append((ds, problem))
        else:
            log.debug("%s: a complete DICOM file that is no slice of an image series", entry.path)
    return found


@contextlib.contextmanager
def itk_warnings_off():
    """ITK's console warnings off (they bypass logging and repeat what our errors say)."""
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)


def list_dicom_series(folder: PathLike) -> list[DicomSeries]:
    """Every DICOM series in ``folder`` and its sub-folders, with modality and description.

    Files that look like DICOM but cannot be used are attached to their series
    (:attr:`DicomSeries.unusable`), or to every series of their folder when the header does
    not say which; a series whose only files are unusable is listed with no files.
    """
    import pydicom

    root = Path(folder)
    if not root.is_dir():
        raise ImageReadError(f"{root}: not a folder")
    found: list[DicomSeries] = []
    for dirpath, _dirnames, _filenames in sorted(os.walk(root)):
        here: dict[str, DicomSeries] = {}
        listed: set[str] = set()
        with itk_warnings_off():  # "No Series were found" in every folder without DICOM
            uids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(dirpath) or ()
        for uid in uids:
            files = tuple(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(dirpath, uid))
            if not files:
                continue
            try:
                header = pydicom.dcmread(files[0], stop_before_pixels=True)
            except Exception as error:  # GDCM read it, pydicom cannot: name the file
                first = (str(error).strip().splitlines() or [type(error).__name__])[0]
                raise ImageReadError(f"{files[0]}: not a readable DICOM file: {first}") from None
            listed.update(files)
            here[uid] = DicomSeries(
                uid=uid,
                modality=str(getattr(header, "Modality", "")),
                description=str(getattr(header, "SeriesDescription", "")),
                folder=Path(dirpath),
                files=files,
            )
        unknown = []
        for header, problem in unusable_dicom_files(dirpath, listed):
            uid = str(header.get("SeriesInstanceUID", "") or "") if header is not None else ""
            if not uid:
                unknown.append(problem)
                continue
            series = here.get(uid) or DicomSeries(
                uid=uid,
                modality=str(header.get("Modality", "") or ""),
                description=str(header.get("SeriesDescription", "") or ""),
                folder=Path(dirpath),
                files=(),
            )
            here[uid] = replace(series, unusable=(*series.unusable, problem))
        if unknown and not here:
            here[""] = DicomSeries("(unreadable)", "", "", Path(dirpath), (), tuple(unknown))
        elif unknown:
            here = {uid: replace(s, unusable=(*s.unusable, *unknown)) for uid, s in here.items()}
        found.extend(here.values())
    return found


def select_dicom_series(
    folder: PathLike, modality: Optional[str] = None, series_uid: Optional[str] = None
) -> DicomSeries:
    """The one series in ``folder`` matching ``modality`` (e.g. ``"CT"``, ``"PT"``) and/or UID.

    Several matches, or none, is an error that lists the series that exist.
    """
    series = list_dicom_series(folder)
    if not series:
        raise ImageReadError(f"{folder}: no DICOM series found")
    matches = [
        s
        for s in series
        if (modality is None or s.modality.upper() == modality.upper())
        and (series_uid is None or s.uid == series_uid)
    ]
    if len(matches) == 1:
        return matches[0]
    listing = "; ".join(s.summary() for s in series)
    wanted = ", ".join(
        part
        for part in (
            f"modality {modality}" if modality else "",
            f"SeriesInstanceUID {series_uid}" if series_uid else "",
        )
        if part
    )
    if not matches:
        for unreadable in series:  # files whose series cannot be told: they may be the one
            if not unreadable.files:
                unreadable.usable_files()
        raise ImageReadError(f"{folder}: no DICOM series with {wanted or 'any'}; found: {listing}")
    raise ImageReadError(
        f"{folder}: {len(matches)} DICOM series match {wanted or 'the request'}; "
        f"give a folder holding one series, or choose one by its SeriesInstanceUID: {listing}"
    )


class _GdcmHeader:
    """The tags :func:`dicom_tags.slice_geometry` needs, from one slice's GDCM metadata
    dictionary, looked up by keyword like a pydicom dataset (``get``, ``in``)."""

    MULTI_VALUED = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing")

    def __init__(self, reader: sitk.ImageSeriesReader, index: int) -> None:
        self.values = {
            keyword: reader.GetMetaData(index, tag).strip(" \x00")
            for keyword, tag in GDCM_GEOMETRY_TAGS.items()
            if reader.HasMetaDataKey(index, tag)
        }

    def __contains__(self, keyword: str) -> bool:
        return keyword in self.values

    def get(self, keyword: str, default: Any = None) -> Any:
        if keyword not in self.values:
            return default
        text = self.values[keyword]
        return text.split("\\") if keyword in self.MULTI_VALUED else text


def _read_with_gdcm(files: list[str], where: object) -> tuple[sitk.ImageSeriesReader, sitk.Image]:
    """(reader, image): ``files`` read in this order as float32, each file's rescale applied
    (GDCM); the reader keeps each slice's tags (``reader.GetMetaData(slice, tag)``)."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.SetOutputPixelType(sitk.sitkFloat32)
    reader.MetaDataDictionaryArrayUpdateOn()
    # Geometry comes from slice_geometry, which reports uneven spacing itself; GDCM's warning
    # about it would only be noise on the console.
    try:
        with itk_warnings_off():
            image = reader.Execute()
    except RuntimeError as error:
        for path in files:  # name the file if one is cut short or unreadable
            _ds, problem = inspect_dicom_file(path, pixels=False)
            if problem:
                raise ImageReadError(problem) from None
        raise ImageReadError(f"{where}: cannot read DICOM series: {_last_line(error)}") from None
    return reader, image


def read_dicom_series(series: DicomSeries) -> sitk.Image:
    """Read a series as float32 with each slice's own rescale slope/intercept applied.

    Geometry is decided from the headers by :func:`dicom_tags.slice_geometry` (the check the
    SUV reader uses too): duplicate or missing slices are refused naming the two files; uneven
    steps at PET bed junctions are resampled along z onto a regular grid. Files that GDCM
    skips (cut short, unreadable) are refused naming them (:attr:`DicomSeries.unusable`). A
    series of one file (a single slice, or multi-frame) keeps GDCM's geometry.
    """
    files = [str(path) for path in series.usable_files()]
    reader, image = _read_with_gdcm(files, series.folder)
    if len(files) == 1:
        return image
    if image.GetDimension() != 3 or image.GetSize()[2] != len(files):
        raise ImageReadError(
            f"{series.folder}: {len(files)} files gave a {image.GetDimension()}D image of size "
            f"{image.GetSize()} (multi-frame files in a series of single slices?)"
        )
    headers = [_GdcmHeader(reader, k) for k in range(len(files))]
    del reader  # the image then owns its pixels: setting its geometry does not copy them
    geometry = slice_geometry(headers, files)
    in_order = geometry.order == tuple(range(len(files)))  # GDCM sorts as we do, usually
    if geometry.resampled or not in_order:
        planes = sitk.GetArrayViewFromImage(image)
        image = sitk.GetImageFromArray(
            geometry.stack(planes if in_order else planes[list(geometry.order)])
        )
    image.SetOrigin(geometry.origin)  # GDCM's geometry assumed even steps
    image.SetSpacing(geometry.spacing)
    image.SetDirection(geometry.direction)
    return image


def _last_line(error: BaseException) -> str:
    """The last non-empty line of an ITK error: the one that says what went wrong."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__
