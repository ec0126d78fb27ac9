"""DICOM Segmentation (SEG) of bone lesions: written on the CT series with highdicom, read back
onto any reference grid.

Writing: one binary segment per lesion label, coded as the field codes lesions
(category SCT 49755003 "Morphologically Altered Structure", type SCT 52988006 "Lesion",
anatomic region SCT 272673000 "Bone structure"), each frame referencing the CT slice it lies on
(the labels are taken on the CT series' own slices, so the geometry is the CT's exactly). The
patient and study come from the CT (highdicom copies them); the SEG gets new series and
instance UIDs. Segment numbers run 1, 2, … as DICOM requires; the lesion label stays in the
segment label ("Lesion 5") and the tracking identifier ("lesion 5"), which the measurement
report uses to point at the same lesion.

Reading: a segment becomes a boolean mask on a reference grid (nearest neighbour: exact where
the reference is the grid the SEG was drawn on); a fractional segment counts where it is at
least half of its maximum.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import SimpleITK as sitk

from BoneOligoMetLib.errors import BoneOligoMetError, GeometryError, ImageReadError

log = logging.getLogger(__name__)

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
ENHANCED_CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
# (value, scheme, meaning) of the codes every lesion segment carries.
LESION_CATEGORY = ("49755003", "SCT", "Morphologically Altered Structure")
LESION_TYPE = ("52988006", "SCT", "Lesion")
BONE = ("272673000", "SCT", "Bone structure")
# Algorithm family (CID 7162) of BoneOligoMet's seeded region growing.
REGION_GROWING_FAMILY = ("123101", "DCM", "Neighborhood Analysis")
# Display colours (RGB) of segments 1, 2, …: Slicer's first generic-anatomy colours.
SEGMENT_RGB = ((241, 214, 145), (216, 101, 79), (128, 174, 128), (111, 184, 210), (221, 130, 101))
SEG_SERIES_NUMBER = 901
MANUFACTURER = "BoneOligoMet"
MODEL_NAME = "bone-oligomet"

PathLike = Union[str, Path]


def require_highdicom() -> Any:
    """The highdicom module, or a one-line error saying how to get it."""
    try:
        import highdicom
    except ImportError:
        raise BoneOligoMetError(
            "DICOM SEG and SR need highdicom ≥ 0.24 (Python ≥ 3.10): pip install highdicom"
        ) from None
    return highdicom


def code(triple: tuple[str, str, str]) -> Any:
    """A pydicom ``Code`` from (value, scheme designator, meaning)."""
    from pydicom.sr.coding import Code

    return Code(triple[0], triple[1], triple[2])


def software_version() -> str:
    from BoneOligoMetLib import __version__

    return str(__version__)


@dataclass(frozen=True)
class SourceSeries:
    """The CT series a SEG is drawn on: headers (no pixels) sorted along the slice normal and
    the series' grid as an empty SimpleITK image (one voxel per pixel of each slice)."""

    where: str  # folder or first file, for messages
    datasets: tuple[Any, ...]
    grid: Optional[sitk.Image]  # None when the slices are not evenly spaced
    normal: np.ndarray

    @property
    def frame_of_reference_uid(self) -> str:
        return str(self.datasets[0].get("FrameOfReferenceUID", ""))

    @property
    def series_uid(self) -> str:
        return str(self.datasets[0].SeriesInstanceUID)


def _vector(ds: Any, keyword: str, where: str) -> np.ndarray:
    value = ds.get(keyword)
    if value is None:
        from BoneOligoMetLib.errors import DicomTagError

        raise DicomTagError(keyword, where, "is missing")
    return np.asarray([float(v) for v in value], dtype=float)


def read_source_series(
    source: Union[PathLike, Sequence[PathLike]], series_uid: Optional[str] = None
) -> SourceSeries:
    """The CT series in a folder (``series_uid`` picks one of several; otherwise the one CT),
    or given as its files (e.g. Slicer's DICOM database paths of a loaded volume)."""
    import pydicom

    if isinstance(source, (str, Path)):
        from BoneOligoMetLib.io.dicom_series import select_dicom_series

        series = select_dicom_series(source, None if series_uid else "CT", series_uid)
        files = [str(f) for f in series.usable_files()]
        where = str(source)
    else:
        files = [str(f) for f in source]
        if not files:
            raise ImageReadError("no CT files given")
        where = str(Path(files[0]).parent)
    datasets = []
    for path in files:
        try:
            datasets.append(pydicom.dcmread(path, stop_before_pixels=True))
        except Exception as error:
            raise ImageReadError(f"{path}: not a readable DICOM file: {error}") from None
    first = datasets[0]
    if str(first.get("SOPClassUID", "")) == ENHANCED_CT_STORAGE or len(datasets) == 1:
        raise ImageReadError(
            f"{where}: a single (multi-frame) file; export needs a series of single-slice CT images"
        )
    if len({str(ds.SeriesInstanceUID) for ds in datasets}) > 1:
        raise ImageReadError(f"{where}: the files belong to more than one series")
    orientation = _vector(first, "ImageOrientationPatient", files[0])
    row, column = orientation[:3], orientation[3:]
    normal = np.cross(row, column)
    spacing = _vector(first, "PixelSpacing", files[0])
    for ds, path in zip(datasets, files):
        same = (
            np.allclose(_vector(ds, "ImageOrientationPatient", path), orientation, atol=1e-4)
            and np.allclose(_vector(ds, "PixelSpacing", path), spacing, rtol=1e-4)
            and (ds.Rows, ds.Columns) == (first.Rows, first.Columns)
        )
        if not same:
            raise GeometryError(
                f"{path}: orientation, pixel spacing or size differs from {files[0]} "
                "(one series must share one slice geometry)"
            )
    order = sorted(
        range(len(datasets)),
        key=lambda n: float(_vector(datasets[n], "ImagePositionPatient", files[n]) @ normal),
    )
    datasets = [datasets[n] for n in order]
    offsets = np.array([_vector(ds, "ImagePositionPatient", "") @ normal for ds in datasets])
    steps = np.diff(offsets)
    if np.any(steps <= 1e-4):
        raise GeometryError(f"{where}: two CT slices share a position")
    grid = None
    if np.allclose(steps, np.median(steps), rtol=1e-3, atol=1e-3):
        grid = sitk.Image(int(first.Columns), int(first.Rows), len(datasets), sitk.sitkUInt8)
        grid.SetOrigin(tuple(_vector(datasets[0], "ImagePositionPatient", "")))
        grid.SetSpacing((float(spacing[1]), float(spacing[0]), float(np.median(steps))))
        grid.SetDirection(tuple(np.stack([row, column, normal], axis=1).ravel()))
    return SourceSeries(where=where, datasets=tuple(datasets), grid=grid, normal=normal)


@dataclass(frozen=True)
class SegmentRecord:
    """One segment as written or read: its number in the SEG and what it stands for."""

    number: int  # Segment Number (1, 2, …)
    name: str  # Segment Label
    label: Optional[int] = None  # our lesion label, when the SEG says it (tracking id)
    tracking_uid: str = ""
    tracking_id: str = ""
    fractional: bool = False


@dataclass(frozen=True)
class WrittenSeg:
    dataset: Any  # the highdicom Segmentation (a pydicom Dataset)
    segments: tuple[SegmentRecord, ...]


def build_seg(
    series: SourceSeries,
    frames: np.ndarray,
    labels: Sequence[int],
    *,
    algorithm_type: str = "MANUAL",
    series_number: int = SEG_SERIES_NUMBER,
    uid: Optional[Any] = None,
) -> WrittenSeg:
    """A binary SEG with one segment per lesion label (in ``labels`` order) from ``frames``
    (label values, one plane per CT slice in the series' order). ``algorithm_type``:
    ``MANUAL`` (drawn by a reader) or ``SEMIAUTOMATIC`` (grown by BoneOligoMet from seeds, then
    reviewed). ``uid``: a callable making UIDs (default random)."""
    hd = require_highdicom()
    from BoneOligoMetLib.io.dicom_writer import UidSource

    uid = uid or UidSource()
    algorithm_type = algorithm_type.upper()
    algorithm = None
    if algorithm_type != "MANUAL":
        algorithm = hd.AlgorithmIdentificationSequence(
            name="BoneOligoMet segment (SUV >= 2.2 within bone, PET/CT border)",
            family=code(REGION_GROWING_FAMILY),
            version=software_version(),
        )
    descriptions, segments = [], []
    for number, label in enumerate(labels, start=1):
        tracking_uid, tracking_id = uid("tracking", label), f"lesion {label}"
        rgb = SEGMENT_RGB[(number - 1) % len(SEGMENT_RGB)]
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=f"Lesion {label}",
                segmented_property_category=code(LESION_CATEGORY),
                segmented_property_type=code(LESION_TYPE),
                algorithm_type=algorithm_type,
                algorithm_identification=algorithm,
                tracking_uid=tracking_uid,
                tracking_id=tracking_id,
                anatomic_regions=[code(BONE)],
                display_color=hd.color.CIELabColor.from_rgb(*rgb),
            )
        )
        segments.append(SegmentRecord(number, f"Lesion {label}", label, tracking_uid, tracking_id))
    # A label map of segment numbers (lesions never overlap): a quarter of the memory of one
    # plane per segment on a whole-body CT.
    dtype = np.uint8 if len(labels) < 256 else np.uint16
    numbers = np.zeros(int(max(int(frames.max()), *labels)) + 1, dtype=dtype)
    numbers[list(labels)] = np.arange(1, len(labels) + 1)
    pixels = numbers[frames]
    seg = hd.seg.Segmentation(
        source_images=list(series.datasets),
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=uid("series", "SEG"),
        series_number=series_number,
        sop_instance_uid=uid("instance", "SEG"),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=MODEL_NAME,
        software_versions=software_version(),
        device_serial_number="none",
        content_description="Bone lesions",
        content_label="LESIONS",
        series_description="BoneOligoMet bone lesions",
    )
    return WrittenSeg(seg, tuple(segments))


def read_segments(path: PathLike) -> tuple[Any, list[SegmentRecord]]:
    """(the highdicom Segmentation, its segments in order). Not a SEG: ImageReadError."""
    hd = require_highdicom()
    path = Path(path)
    try:
        seg = hd.seg.segread(str(path))
    except Exception as error:
        raise ImageReadError(f"{path}: not a readable DICOM Segmentation: {error}") from None
    fractional = str(seg.get("SegmentationType", "")).upper() == "FRACTIONAL"
    records = []
    for item in seg.SegmentSequence:
        tracking_id = str(item.get("TrackingID", ""))
        label = None
        if tracking_id.startswith("lesion ") and tracking_id[7:].isdigit():
            label = int(tracking_id[7:])
        records.append(
            SegmentRecord(
                number=int(item.SegmentNumber),
                name=str(item.get("SegmentLabel", "")).strip(),
                label=label,
                tracking_uid=str(item.get("TrackingUID", "")),
                tracking_id=tracking_id,
                fractional=fractional,
            )
        )
    return seg, records


def segment_mask(
    seg: Any, segment: SegmentRecord, reference: sitk.Image, source: object = "SEG"
) -> np.ndarray:
    """One segment as a boolean (k, j, i) array on ``reference``'s grid (nearest neighbour;
    fractional values count from half the maximum). Empty on the reference: GeometryError."""
    try:
        volume = seg.get_volume(
            segment_numbers=[segment.number], combine_segments=False, rescale_fractional=True
        )
    except (ValueError, RuntimeError) as error:
        raise ImageReadError(
            f"{source}: segment {segment.name!r}: its frames do not form a volume ({error})"
        ) from None
    values = np.asarray(volume.array)[..., 0] if volume.array.ndim == 4 else volume.array
    binary = values >= 0.5 if segment.fractional else values > 0
    image = volume.with_array(binary.astype(np.uint8)).to_simpleitk()
    on_reference = sitk.Resample(
        image, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8
    )
    mask = sitk.GetArrayFromImage(on_reference).astype(bool)
    if not mask.any():
        raise GeometryError(
            f"{source}: segment {segment.name!r} covers no voxel of the reference image"
            + ("" if binary.any() else " (the segment is empty)")
        )
    return mask


def check_frame_of_reference(found: str, expected: Optional[str], source: object) -> None:
    """Refuse a SEG/RTSTRUCT in another frame of reference than the reference series."""
    if expected and found and found != expected:
        raise GeometryError(
            f"{source}: frame of reference {found} is not the reference image's ({expected}): "
            "the contours were drawn on another scan"
        )
