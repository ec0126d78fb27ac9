"""Image files checked before their voxels are trusted: NIfTI and MetaImage files cut short, and
float NIfTI read as stored (SimpleITK's NIfTI reader turns NaN and ±Inf into 0)."""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import SimpleITK as sitk

from BoneOligoMetLib.errors import ImageReadError

NIFTI1_HEADER_BYTES, NIFTI2_HEADER_BYTES = 348, 540


NIFTI_FLOAT_TYPES = {16: "f4", 64: "f8"}  # NIfTI datatype code -> numpy type (float32, float64)


METAIMAGE_BYTES = {
    **{"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4},
    **{"MET_UINT": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4, "MET_DOUBLE": 8},
}


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
