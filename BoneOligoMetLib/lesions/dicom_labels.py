"""A lesion label image from a DICOM RTSTRUCT or SEG file, on a reference image's grid.

``labels_from_dicom(path, reference, rois=["GTV_1", "GTV_2"])`` gives a label image whose
lesion 1 is ROI (or segment) "GTV_1" and lesion 2 "GTV_2"; without names, every ROI with
contours (every segment) in file order, labelled 1, 2, … (a SEG written by
:mod:`.dicom_export` gets its lesions' own labels back from the segments' tracking
identifiers). Names match exactly, else case-insensitively; a name
that matches nothing is an error that lists the names the file holds. RTSTRUCT contours are
filled by the rule in :mod:`.rtstruct`; SEG segments are read by :mod:`.dicom_seg`. Two chosen
ROIs that share voxels cannot both be lesions of one label image: an error names them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import SimpleITK as sitk

from BoneOligoMetLib.errors import GeometryError, ImageReadError, MaskError, did_you_mean
from BoneOligoMetLib.io.dicom_seg import (
    SEGMENTATION_STORAGE,
    check_frame_of_reference,
    read_segments,
    segment_mask,
)
from BoneOligoMetLib.io.manifest import CaseEntry
from BoneOligoMetLib.io.rtstruct import (
    RTSTRUCT_STORAGE,
    RoiContours,
    contour_extent_text,
    rasterise_roi,
    read_rtstruct,
)

log = logging.getLogger(__name__)

PathLike = Union[str, Path]
KINDS = {RTSTRUCT_STORAGE: "RTSTRUCT", SEGMENTATION_STORAGE: "SEG"}
NOT_IMAGES = ("SEG", "SR", "RTSTRUCT", "KO", "PR", "REG")  # modalities that are no image grid


@dataclass(frozen=True)
class LabelledRoi:
    """A ROI or segment as it went into the label image."""

    label: int
    name: str
    voxels: int
    volume_ml: float


def dicom_object_kind(path: PathLike) -> Optional[str]:
    """``"RTSTRUCT"``, ``"SEG"``, or None when ``path`` is neither (or no DICOM file)."""
    import pydicom

    path = Path(path)
    if not path.is_file():
        return None
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except Exception:
        return None
    return KINDS.get(str(header.get("SOPClassUID", "")))


def choose_names(available: Sequence[str], wanted: Sequence[str], source: object) -> list[int]:
    """Indices into ``available`` of each ``wanted`` name: exact match first, else the one
    case-insensitive match; otherwise an error listing what the file holds."""
    chosen = []
    for name in wanted:
        exact = [n for n, item in enumerate(available) if item == name]
        folded = [n for n, item in enumerate(available) if item.casefold() == name.casefold()]
        matches = exact or folded
        if len(matches) != 1:
            held = ", ".join(repr(item) for item in available) or "none"
            problem = "no ROI named" if not matches else f"{len(matches)} ROIs named"
            raise MaskError(
                f"{source}: {problem} {name!r}; it holds {held}{did_you_mean(name, available)}"
            )
        if matches[0] in chosen:
            raise MaskError(f"{source}: ROI {name!r} is asked for twice")
        chosen.append(matches[0])
    return chosen


def read_reference(
    path: PathLike, series_uid: Optional[str] = None
) -> tuple[sitk.Image, Optional[str]]:
    """(reference image, its FrameOfReferenceUID when it is a DICOM series, else None).

    In a folder, the one image series is taken (SEG, SR and RTSTRUCT files beside it, as after
    an export, do not count); ``series_uid`` picks one of several."""
    from BoneOligoMetLib.io.dicom_series import (
        list_dicom_series,
        read_dicom_series,
        select_dicom_series,
    )
    from BoneOligoMetLib.io.images import read_image

    path = Path(path)
    if not path.is_dir():
        return read_image(path), None
    import pydicom

    images = [s for s in list_dicom_series(path) if s.modality.upper() not in NOT_IMAGES]
    if series_uid is None and len(images) == 1:
        series = images[0]
    else:  # the error lists the series
        series = select_dicom_series(path, None, series_uid)
    image = read_dicom_series(series)
    header = pydicom.dcmread(series.files[0], stop_before_pixels=True)
    return image, str(header.get("FrameOfReferenceUID", "")) or None


def labels_from_dicom(
    path: PathLike,
    reference: sitk.Image,
    rois: Optional[Sequence[str]] = None,
    *,
    labels: Optional[Sequence[int]] = None,
    frame_of_reference_uid: Optional[str] = None,
) -> tuple[sitk.Image, list[LabelledRoi]]:
    """A uint16 label image on ``reference``'s grid from an RTSTRUCT or SEG file.

    ``rois``: ROI / segment names, in the order of their labels (all when None). ``labels``:
    the label of each chosen ROI (default 1, 2, …). ``frame_of_reference_uid``: the
    reference's, when known; a file drawn in another frame of reference is refused.
    """
    path = Path(path)
    kind = dicom_object_kind(path)
    if kind is None:
        raise ImageReadError(f"{path}: not a DICOM RTSTRUCT or SEG file")
    if kind == "RTSTRUCT":
        items = read_rtstruct(path)
        names = [roi.name for roi in items]
        if rois is None:
            chosen = [n for n, roi in enumerate(items) if roi.contours]
            if not chosen:
                raise MaskError(
                    f"{path}: no ROI with closed contours; it holds "
                    + (", ".join(repr(n) for n in names) or "no ROI")
                )
        else:
            chosen = choose_names(names, rois, path)
        for n in chosen:
            check_frame_of_reference(
                items[n].frame_of_reference_uid, frame_of_reference_uid, f"{path} ROI {names[n]!r}"
            )
        masks = [roi_mask(items[n], reference, path) for n in chosen]
    else:
        seg, segments = read_segments(path)
        names = [segment.name for segment in segments]
        chosen = list(range(len(segments))) if rois is None else choose_names(names, rois, path)
        if not chosen:
            raise MaskError(f"{path}: the SEG holds no segment")
        check_frame_of_reference(
            str(seg.get("FrameOfReferenceUID", "")), frame_of_reference_uid, path
        )
        masks = [segment_mask(seg, segments[n], reference, path) for n in chosen]
        own = [segments[n].label for n in chosen]  # a SEG this package wrote: "lesion 5"
        if rois is None and labels is None and None not in own and len(set(own)) == len(own):
            labels = own
    if labels is None:
        labels = list(range(1, len(chosen) + 1))
    if len(labels) != len(chosen):
        raise MaskError(f"{path}: {len(chosen)} ROIs but {len(labels)} labels")
    values = np.zeros(masks[0].shape, dtype=np.uint16)
    owner = np.full(masks[0].shape, -1, dtype=np.int32)
    voxel_ml = float(np.prod(reference.GetSpacing())) / 1000.0
    found = []
    for position, (n, mask, label) in enumerate(zip(chosen, masks, labels)):
        shared = mask & (owner >= 0)
        if shared.any():
            other = names[chosen[int(owner[shared][0])]]
            raise MaskError(
                f"{path}: ROIs {other!r} and {names[n]!r} share {int(shared.sum())} voxels; "
                "a lesion label image holds one lesion per voxel"
            )
        values[mask] = int(label)
        owner[mask] = position
        count = int(mask.sum())
        found.append(LabelledRoi(int(label), names[n], count, count * voxel_ml))
    image = sitk.GetImageFromArray(values)
    image.CopyInformation(reference)
    for roi in found:
        log.info(
            "label %d: %s (%d voxels, %.2f mL)", roi.label, roi.name, roi.voxels, roi.volume_ml
        )
    return image, found


def roi_mask(roi: RoiContours, reference: sitk.Image, source: object = "RTSTRUCT") -> np.ndarray:
    """:func:`rasterise_roi`, refusing a ROI that covers no voxel centre of the reference."""
    mask = rasterise_roi(roi, reference)
    if not mask.any():
        from BoneOligoMetLib.image.geometry import physical_bounds

        low, high = physical_bounds(reference)
        image = " × ".join(f"{a:.1f}…{b:.1f}" for a, b in zip(low, high))
        raise GeometryError(
            f"{source}: ROI {roi.name!r} covers no voxel centre of the reference image "
            f"(contours span {contour_extent_text(roi)} mm, the image {image} mm, LPS)"
        )
    return mask


def read_case_lesions(case: CaseEntry, path: str, reference: Any) -> Any:
    """The lesion label image ``path`` of ``case`` on its own grid, or, when its rows name
    ROIs, the RTSTRUCT/SEG ROIs rasterised onto ``reference`` (the case's CT) with the rows'
    lesion labels. A DICOM CT's frame of reference must be the contours' (else an error)."""
    rois = {e.lesion_label: e.roi for e in case.lesions if e.lesions == path and e.roi}
    if not rois:
        from BoneOligoMetLib.io.images import read_image

        return read_image(path)
    from BoneOligoMetLib.lesions.dicom_labels import labels_from_dicom

    frame = None
    if case.ct_is_dicom:
        import pydicom

        from BoneOligoMetLib.io.dicom_series import select_dicom_series

        first = select_dicom_series(case.ct, "CT").files[0]
        frame = str(pydicom.dcmread(first, stop_before_pixels=True).get("FrameOfReferenceUID", ""))
    labels, _ = labels_from_dicom(
        path, reference, list(rois.values()), labels=list(rois), frame_of_reference_uid=frame
    )
    return labels
