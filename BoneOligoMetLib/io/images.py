"""Read CT/PET/label images from a DICOM series folder, NIfTI, NRRD or MetaImage into SimpleITK.

Geometry (origin, spacing, direction) is kept in ITK's LPS physical space; see ``coords`` for the
one place that converts to Slicer's RAS. DICOM series are placed from their headers
(``dicom_tags.slice_geometry``: the same check for CT and PET, uneven PET bed junctions put on a
regular grid). Files cut short are refused naming the file: a DICOM slice that GDCM skips, a
NIfTI or MetaImage shorter than its header says (SimpleITK reads a short NIfTI as zeros). Float
NIfTI voxels are read as stored: SimpleITK's reader turns NaN and ±Inf into 0.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import SimpleITK as sitk

from BoneOligoMetLib.errors import ImageReadError
from BoneOligoMetLib.io.dicom_series import _last_line, read_dicom_series, select_dicom_series
from BoneOligoMetLib.io.file_checks import (
    NIFTI_FLOAT_TYPES,
    _metaimage_problem,
    _nifti_header,
    _nifti_problem,
    _read_float_nifti,
)
from BoneOligoMetLib.io.files import IMAGE_SUFFIXES, PathLike, _has_image_suffix

log = logging.getLogger(__name__)


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
