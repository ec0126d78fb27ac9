"""Label images: the lesion labels they hold, one lesion as a 0/1 mask, and each label's voxel
box found in one pass (non-integer, negative or non-finite labels are errors naming the image)."""

from __future__ import annotations

from typing import Optional

import numpy as np
import SimpleITK as sitk

from BoneOligoMetLib.errors import MaskError
from BoneOligoMetLib.image.geometry import Region


def mask_labels(mask: sitk.Image, name: str = "mask") -> list[int]:
    """The lesion labels (> 0) in a label image; non-integer values or an empty mask are errors."""
    array = sitk.GetArrayViewFromImage(mask)
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)):
            raise MaskError(f"{name}: contains NaN or infinite values")
        if not np.all(array == np.round(array)):
            raise MaskError(
                f"{name}: not a label image (non-integer values, e.g. a probability map)"
            )
    labels = [int(v) for v in np.unique(array) if v != 0]
    if any(v < 0 for v in labels):
        raise MaskError(f"{name}: negative labels {[v for v in labels if v < 0]}")
    if not labels:
        raise MaskError(f"{name}: empty (no voxel > 0)")
    return labels


def binary_mask(mask: sitk.Image, label: Optional[int] = None, name: str = "mask") -> sitk.Image:
    """A uint8 0/1 mask of one lesion. ``label=None`` requires the mask to hold a single label."""
    labels = mask_labels(mask, name)
    if label is None:
        if len(labels) > 1:
            raise MaskError(f"{name}: holds {len(labels)} labels {labels}; choose one lesion label")
        label = labels[0]
    elif label not in labels:
        raise MaskError(f"{name}: lesion label {label} not found; labels present: {labels}")
    return sitk.Cast(sitk.Equal(mask, float(label)), sitk.sitkUInt8)


def _runs(has_voxels: np.ndarray) -> list[tuple[int, int]]:
    """(first, stop) of each run of True in a 1D boolean array."""
    edges = np.diff(np.concatenate(([0], has_voxels.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def _bits(array: np.ndarray) -> np.ndarray:
    """``array`` (C-contiguous) viewed as unsigned integers of its item size: a voxel is 0 there
    exactly when all its bits are 0, so a bitwise OR tells whether a block holds anything but
    zeros (NaN and −0.0 count as something; the value checks sort them out)."""
    return array.view(np.dtype(f"u{array.dtype.itemsize}"))


def _slices_with_voxels(array: np.ndarray) -> np.ndarray:
    """Boolean per slice (first axis): any voxel with a non-zero bit. One pass of bitwise ORs
    over the widest words that tile a slice (8 uint8 voxels per 64-bit word)."""
    flat = np.ascontiguousarray(array).reshape(array.shape[0], -1)
    row_bytes = flat.shape[1] * flat.itemsize
    width = next(w for w in (8, 4, 2, 1) if row_bytes % w == 0)
    words = flat.view(np.uint8).view(np.dtype(f"u{width}"))
    return np.bitwise_or.reduce(words, axis=1) != 0


def _check_label_values(values: np.ndarray, name: str) -> None:
    """Lesion label values: finite, integer, ≥ 0 (a :class:`MaskError` naming ``name``)."""
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)):
            raise MaskError(f"{name}: contains NaN or infinite values")
        if not np.all(values == np.round(values)):
            raise MaskError(f"{name}: not a label image (non-integer values)")
    elif values.dtype.kind not in "iub":
        raise MaskError(f"{name}: pixel type {values.dtype} is not a label image")
    if values.min() < 0:
        raise MaskError(f"{name}: negative labels")


def label_image(image: sitk.Image, name: str = "lesion label image") -> sitk.Image:
    """``image`` as an unsigned-integer label image. A float image must hold whole numbers ≥ 0
    only where it is non-zero (checked like :func:`label_regions`, which reads only the blocks
    holding labels): a probability map or a soft mask is a :class:`MaskError` naming ``name``."""
    if image.GetPixelID() in (sitk.sitkUInt8, sitk.sitkUInt16, sitk.sitkUInt32):
        return image
    label_regions(image, name)
    return sitk.Cast(image, sitk.sitkUInt32)


# Labels up to this value get their boxes from one scipy pass over a block; beyond, per label.
_MAX_FIND_OBJECTS_LABEL = 1 << 16


def _block_boxes(block: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{label: (low, high)} in array (z, y, x) order, high exclusive, of labels > 0 in a
    block of checked (finite, integer, ≥ 0) label values."""
    from scipy import ndimage

    top = int(block.max())
    if top == 0:
        return {}
    boxes = {}
    if top <= _MAX_FIND_OBJECTS_LABEL:
        labels = block.astype(np.int32, copy=False)
        for number, found in enumerate(ndimage.find_objects(labels, max_label=top), start=1):
            if found is not None:
                boxes[number] = (
                    np.array([s.start for s in found]),
                    np.array([s.stop for s in found]),
                )
        return boxes
    for label in np.unique(block):
        if label == 0:
            continue
        where = np.nonzero(block == label)
        boxes[int(label)] = (
            np.array([int(a.min()) for a in where]),
            np.array([int(a.max()) + 1 for a in where]),
        )
    return boxes


def label_regions(lesions: sitk.Image, name: str = "lesion label image") -> dict[int, Region]:
    """Voxel box of every label > 0 of a label image, reading only the blocks that hold labels.

    One pass of bitwise ORs finds the slices holding non-zero voxels; in each run of such
    slices the OR over the run finds the rows, and in each run of rows the columns: every
    non-zero voxel lies in exactly one of these (small) blocks, whose values are then checked
    (non-integer, negative, NaN or infinite values are a :class:`MaskError` naming ``name``) and
    measured. An image without a label > 0 is a :class:`MaskError` as well.
    """
    array = sitk.GetArrayViewFromImage(lesions)
    if array.ndim != 3:
        raise MaskError(f"{name}: expected a 3D label image, got {array.ndim}D")
    bits = _bits(array)
    boxes: dict[int, list[np.ndarray]] = {}
    for z0, z1 in _runs(_slices_with_voxels(array)):
        plane = np.bitwise_or.reduce(bits[z0:z1], axis=0)
        for y0, y1 in _runs(np.any(plane != 0, axis=1)):
            for x0, x1 in _runs(np.any(plane[y0:y1] != 0, axis=0)):
                block = array[z0:z1, y0:y1, x0:x1]
                _check_label_values(block, name)
                offset = np.array([z0, y0, x0])
                for label, (low, high) in _block_boxes(block).items():
                    low, high = low + offset, high + offset
                    if label in boxes:
                        low = np.minimum(low, boxes[label][0])
                        high = np.maximum(high, boxes[label][1])
                    boxes[label] = [low, high]
    if not boxes:
        raise MaskError(f"{name}: empty (no voxel > 0)")
    size = tuple(int(n) for n in lesions.GetSize())
    return {
        label: Region(
            tuple(int(v) for v in low[::-1]),  # type: ignore[arg-type]
            tuple(int(v) for v in (high - low)[::-1]),  # type: ignore[arg-type]
            size,  # type: ignore[arg-type]
        )
        for label, (low, high) in sorted(boxes.items())
    }
