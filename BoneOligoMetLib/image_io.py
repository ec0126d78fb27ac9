"""Read CT/PET/label images from a DICOM series folder, NIfTI or NRRD into SimpleITK images.

Geometry (origin, spacing, direction) is kept in ITK's LPS physical space; see ``coords`` for the
one place that converts to Slicer's RAS.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import SimpleITK as sitk

from BoneOligoMetLib.errors import ImageReadError

log = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")


@dataclass(frozen=True)
class DicomSeries:
    """One DICOM series found in a folder, its files sorted by slice position (by GDCM)."""

    uid: str
    modality: str
    description: str
    folder: Path
    files: tuple[str, ...]

    def summary(self) -> str:
        return (
            f"{self.modality or '?'} '{self.description}' ({len(self.files)} files, "
            f"SeriesInstanceUID {self.uid}, in {self.folder})"
        )


def _has_image_suffix(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(suffix) for suffix in IMAGE_SUFFIXES)


def list_dicom_series(folder: PathLike) -> list[DicomSeries]:
    """Every DICOM series in ``folder`` and its sub-folders, with modality and description."""
    import pydicom

    root = Path(folder)
    if not root.is_dir():
        raise ImageReadError(f"{root}: not a folder")
    found: list[DicomSeries] = []
    for dirpath, _dirnames, _filenames in sorted(os.walk(root)):
        for uid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(dirpath) or ():
            files = tuple(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(dirpath, uid))
            if not files:
                continue
            header = pydicom.dcmread(files[0], stop_before_pixels=True)
            found.append(
                DicomSeries(
                    uid=uid,
                    modality=str(getattr(header, "Modality", "")),
                    description=str(getattr(header, "SeriesDescription", "")),
                    folder=Path(dirpath),
                    files=files,
                )
            )
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
        raise ImageReadError(f"{folder}: no DICOM series with {wanted or 'any'}; found: {listing}")
    raise ImageReadError(
        f"{folder}: {len(matches)} DICOM series match {wanted or 'the request'}; "
        f"choose one by modality or series UID: {listing}"
    )


def read_dicom_series(series: DicomSeries) -> sitk.Image:
    """Read a series as float32 with each slice's own rescale slope/intercept applied."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(list(series.files))
    reader.SetOutputPixelType(sitk.sitkFloat32)
    try:
        return reader.Execute()
    except RuntimeError as error:
        first_line = str(error).strip().splitlines()[-1]
        raise ImageReadError(f"{series.folder}: cannot read DICOM series: {first_line}") from error


def read_image(
    path: PathLike,
    modality: Optional[str] = None,
    series_uid: Optional[str] = None,
    pixel_type: Optional[int] = None,
) -> sitk.Image:
    """Read a 3D image from a DICOM folder, NIfTI (.nii/.nii.gz), NRRD or MetaImage file.

    ``modality``/``series_uid`` pick a series in a folder that holds several. ``pixel_type`` (a
    SimpleITK pixel ID) casts the result; DICOM series are always read as float32.
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
        try:
            image = sitk.ReadImage(str(path))
        except RuntimeError as error:
            raise ImageReadError(f"{path}: cannot read image: {str(error).strip()}") from error
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
