"""Read CT/PET/label images from a DICOM series folder, NIfTI, NRRD or MetaImage into SimpleITK.

Geometry (origin, spacing, direction) is kept in ITK's LPS physical space; see ``coords`` for the
one place that converts to Slicer's RAS. DICOM series are placed from their headers
(``dicom_tags.slice_geometry``: the same check for CT and PET, uneven PET bed junctions put on a
regular grid). Files cut short are refused naming the file: a DICOM slice that GDCM skips, a
NIfTI or MetaImage shorter than its header says (SimpleITK reads a short NIfTI as zeros). Float
NIfTI voxels are read as stored: SimpleITK's reader turns NaN and ±Inf into 0.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import math
import os
import struct
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import SimpleITK as sitk

from BoneOligoMetLib.dicom_tags import inspect_dicom_file, slice_geometry
from BoneOligoMetLib.errors import ImageReadError

log = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
# Files in a DICOM folder that are plainly something else (not checked as possible slices).
NOT_DICOM_SUFFIXES = (
    *IMAGE_SUFFIXES,
    *(".raw", ".zraw", ".gz", ".zip", ".txt", ".md", ".csv", ".xml", ".json", ".html", ".htm"),
    *(".pdf", ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".py", ".log", ".ini"),
    *(".yaml", ".yml", ".db", ".exe", ".bat", ".sh"),
)
DICOM_SUFFIXES = (".dcm", ".ima", ".dicom", ".dic")
NIFTI1_HEADER_BYTES, NIFTI2_HEADER_BYTES = 348, 540
NIFTI_FLOAT_TYPES = {16: "f4", 64: "f8"}  # NIfTI datatype code -> numpy type (float32, float64)
GDCM_GEOMETRY_TAGS = {  # keyword -> GDCM metadata key, for slice_geometry
    "ImagePositionPatient": "0020|0032",
    "ImageOrientationPatient": "0020|0037",
    "Rows": "0028|0010",
    "Columns": "0028|0011",
    "PixelSpacing": "0028|0030",
    "SliceThickness": "0018|0050",
}
METAIMAGE_BYTES = {
    **{"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4},
    **{"MET_UINT": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4, "MET_DOUBLE": 8},
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


def _has_image_suffix(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(suffix) for suffix in IMAGE_SUFFIXES)


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
        f"choose one by modality or series UID: {listing}"
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


@dataclass(frozen=True)
class _NiftiHeader:
    """The fields of a NIfTI-1/2 header that fix where the voxels are and how many bytes."""

    endian: str  # "<" or ">"
    shape_xyz: tuple[int, ...]  # dim[1] … dim[dim[0]]
    datatype: int
    bitpix: int
    vox_offset: int  # bytes before the voxels
    slope: float
    inter: float

    @property
    def total_bytes(self) -> int:
        voxels = int(np.prod(self.shape_xyz, dtype=np.int64))
        return self.vox_offset + (voxels * self.bitpix + 7) // 8


def _open_image_bytes(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _nifti_header(path: Path) -> Optional[_NiftiHeader]:
    """The header of a NIfTI-1 or NIfTI-2 file (plain or gzip), None if it is not one."""
    try:
        with _open_image_bytes(path) as handle:
            head = handle.read(NIFTI2_HEADER_BYTES)
    except EOFError:
        raise ImageReadError(
            f"{path}: truncated NIfTI file: the gzip stream ends in the header"
        ) from None
    except (OSError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
        raise ImageReadError(f"{path}: not a readable NIfTI file: {error}") from None
    for endian in "<>":
        if len(head) < 4:
            break
        (size,) = struct.unpack(endian + "i", head[:4])
        if size not in (NIFTI1_HEADER_BYTES, NIFTI2_HEADER_BYTES):
            continue
        if len(head) < size:
            raise ImageReadError(
                f"{path}: truncated NIfTI file: {len(head)} bytes, less than its {size}-byte header"
            )
        if size == NIFTI1_HEADER_BYTES and head[344:347] in (b"n+1", b"ni1"):
            dim = struct.unpack(endian + "8h", head[40:56])
            datatype, bitpix = struct.unpack(endian + "2h", head[70:74])
            offset = int(struct.unpack(endian + "f", head[108:112])[0])
            slope, inter = struct.unpack(endian + "2f", head[112:120])
        elif size == NIFTI2_HEADER_BYTES and head[4:7] == b"n+2":
            datatype, bitpix = struct.unpack(endian + "2h", head[12:16])
            dim = struct.unpack(endian + "8q", head[16:80])
            offset = int(struct.unpack(endian + "q", head[168:176])[0])
            slope, inter = struct.unpack(endian + "2d", head[176:192])
        else:
            continue
        if not 1 <= dim[0] <= 7 or bitpix <= 0:
            return None
        return _NiftiHeader(
            endian=endian,
            shape_xyz=tuple(max(int(d), 1) for d in dim[1 : dim[0] + 1]),
            datatype=int(datatype),
            bitpix=int(bitpix),
            vox_offset=max(offset, size + 4),  # nifti1_io: never inside the header
            slope=float(slope),
            inter=float(inter),
        )
    return None


def _gunzipped_bytes(path: Path) -> tuple[int, bool]:
    """(uncompressed bytes, whether the gzip stream ended properly), reading every member."""
    total = 0
    try:
        with gzip.open(path, "rb") as handle:
            while True:
                chunk = handle.read(1 << 22)
                if not chunk:
                    return total, True
                total += len(chunk)
    except EOFError:
        return total, False
    except (OSError, zlib.error) as error:
        raise ImageReadError(f"{path}: not a readable gzip file: {error}") from None


def _nifti_problem(path: Path, header: _NiftiHeader) -> Optional[str]:
    """Why the file holds fewer bytes than header + voxels, or None.

    For gzip the trailer's ISIZE (uncompressed size mod 2^32) is checked first; only when it
    disagrees (a cut file, or a legal multi-member gzip) is the file decompressed to count.
    """
    need = header.total_bytes
    if not path.name.lower().endswith(".gz"):
        have = path.stat().st_size
        if have < need:
            return f"{path}: truncated NIfTI file: {have} of {need} bytes (header + voxels)"
        return None
    with open(path, "rb") as handle:
        handle.seek(max(path.stat().st_size - 4, 0))
        trailer = handle.read(4)
    if len(trailer) == 4 and struct.unpack("<I", trailer)[0] == need % 2**32:
        return None
    have, ended = _gunzipped_bytes(path)
    if not ended:
        return (
            f"{path}: truncated NIfTI file: the gzip stream ends after {have} of {need} bytes "
            "(header + voxels)"
        )
    if have < need:
        return f"{path}: truncated NIfTI file: {have} of {need} bytes (header + voxels)"
    return None


def _read_float_nifti(path: Path, header: _NiftiHeader) -> Optional[sitk.Image]:
    """A float NIfTI with its stored values (NaN and ±Inf kept), geometry from ITK's reading
    of the header; None when the image is not one 3D scalar volume (SimpleITK reads those)."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return None
    shape = header.shape_xyz
    size = tuple(reader.GetSize())
    if (
        reader.GetNumberOfComponents() != 1
        or size != shape
        or len(shape) not in (3, 4)
        or (len(shape) == 4 and shape[3] != 1)
    ):
        return None
    need = header.total_bytes - header.vox_offset
    try:
        with _open_image_bytes(path) as handle:
            handle.seek(header.vox_offset)
            data = handle.read(need)
    except EOFError:
        data = b""
    if len(data) < need:  # _nifti_problem said otherwise only if the file changed meanwhile
        raise ImageReadError(f"{path}: truncated NIfTI file: voxel data shorter than its header")
    stored = np.dtype(header.endian + NIFTI_FLOAT_TYPES[header.datatype])
    values = np.frombuffer(data, dtype=stored).reshape(shape[:3][::-1])  # x fastest, as ITK
    # ITK's rescale: slope 0 or non-finite counts as 1, a non-finite intercept as 0.
    slope = header.slope if math.isfinite(header.slope) and header.slope != 0 else 1.0
    inter = header.inter if math.isfinite(header.inter) else 0.0
    if (slope, inter) != (1.0, 0.0):
        values = values.astype(np.float64) * slope + inter
    pixel = np.float32 if reader.GetPixelID() == sitk.sitkFloat32 else np.float64
    image = sitk.GetImageFromArray(np.ascontiguousarray(values, dtype=pixel))
    direction = np.array(reader.GetDirection()).reshape(len(size), len(size))[:3, :3]
    image.SetOrigin(reader.GetOrigin()[:3])
    image.SetSpacing(reader.GetSpacing()[:3])
    image.SetDirection(tuple(direction.ravel().tolist()))
    for key in reader.GetMetaDataKeys():
        image.SetMetaData(key, reader.GetMetaData(key))
    return image


def _metaimage_problem(path: Path) -> Optional[str]:
    """Why a MetaImage (.mha/.mhd) holds fewer data bytes than its header says, or None.

    (SimpleITK refuses such files too, but with "No such file or directory".)
    """
    with open(path, "rb") as handle:
        text = handle.read(1 << 16)
    fields: dict[str, str] = {}
    end = 0
    for line in text.split(b"\n"):
        end += len(line) + 1
        key, sep, value = line.partition(b"=")
        if sep:
            fields[key.strip().decode("latin-1")] = value.strip().decode("latin-1")
        if key.strip() == b"ElementDataFile":
            break
    else:
        return None
    source = fields["ElementDataFile"]
    if source.upper() == "LOCAL":
        data, start = path, end
    elif source.upper().startswith("LIST") or "%" in source:
        return None
    else:
        data, start = path.parent / source, int(fields.get("HeaderSize", "0") or 0)
        if not data.is_file():
            return f"{path}: MetaImage data file {data} is missing"
        if start < 0:  # -1: the data are the last bytes of the file
            return None
    try:
        if fields.get("CompressedData", "False").lower() == "true":
            need = int(fields.get("CompressedDataSize", "0") or 0)
        else:
            voxels = int(np.prod([int(v) for v in fields["DimSize"].split()], dtype=np.int64))
            channels = int(fields.get("ElementNumberOfChannels", "1") or 1)
            need = voxels * channels * METAIMAGE_BYTES[fields["ElementType"]]
    except (KeyError, ValueError):
        return None  # a header SimpleITK will judge
    have = data.stat().st_size - start
    if need and have < need:
        return f"{path}: truncated MetaImage file: {data.name} holds {have} of {need} bytes"
    return None


def _read_image_file(path: Path) -> sitk.Image:
    """One image file by suffix; a file shorter than its header says is an ImageReadError."""
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        header = _nifti_header(path)
        if header is not None:
            problem = _nifti_problem(path, header)
            if problem:
                raise ImageReadError(problem)
            if header.datatype in NIFTI_FLOAT_TYPES:
                image = _read_float_nifti(path, header)
                if image is not None:
                    return image
    elif name.endswith((".mha", ".mhd")):
        problem = _metaimage_problem(path)
        if problem:
            raise ImageReadError(problem)
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as error:
        detail = _last_line(error)
        if "fread got only" in detail or "but received" in detail:
            raise ImageReadError(f"{path}: truncated image file: {detail}") from None
        raise ImageReadError(f"{path}: cannot read image: {detail}") from None


def read_image(
    path: PathLike,
    modality: Optional[str] = None,
    series_uid: Optional[str] = None,
    pixel_type: Optional[int] = None,
) -> sitk.Image:
    """Read a 3D image from a DICOM folder, NIfTI (.nii/.nii.gz), NRRD or MetaImage file.

    ``modality``/``series_uid`` pick a series in a folder that holds several. ``pixel_type`` (a
    SimpleITK pixel ID) casts the result; DICOM series are always read as float32. A file cut
    short is an ImageReadError naming it; float NIfTI voxels keep NaN and ±Inf as stored.
    """
    path = Path(path)
    if path.is_dir():
        image = read_dicom_series(select_dicom_series(path, modality, series_uid))
    elif path.is_file():
        if not _has_image_suffix(path):
            raise ImageReadError(
                f"{path}: unknown image format; expected a DICOM folder or one of "
                f"{', '.join(IMAGE_SUFFIXES)}"
            )
        image = _read_image_file(path)
    else:
        raise ImageReadError(f"{path}: no such file or folder")
    if image.GetDimension() == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise ImageReadError(
            f"{path}: expected a 3D scalar image, found {image.GetDimension()}D with "
            f"{image.GetNumberOfComponentsPerPixel()} component(s) per voxel"
        )
    if pixel_type is not None:
        image = sitk.Cast(image, pixel_type)
    return image


def write_image(image: sitk.Image, path: PathLike, compress: bool = True) -> Path:
    """Write ``image`` (NIfTI, NRRD, MetaImage by suffix), creating the parent folder."""
    path = Path(path)
    if not _has_image_suffix(path):
        raise ImageReadError(f"{path}: cannot write; use one of {', '.join(IMAGE_SUFFIXES)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), useCompression=compress)
    return path
