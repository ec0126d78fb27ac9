"""A fused PET/CT axial slice as a PNG (CT grey, PET hot overlay, lesion contours) for the demo."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np
import SimpleITK as sitk

from BoneOligoMetLib.image.geometry import resample_pet_to_ct, resample_to_reference


def lesion_slice_index(lesion_mask: sitk.Image, label: Optional[int] = None) -> int:
    """The axial slice (z index) holding the most voxels of ``label`` (any lesion if None)."""
    array = sitk.GetArrayViewFromImage(lesion_mask)
    selected = array > 0 if label is None else array == label
    per_slice = selected.reshape(selected.shape[0], -1).sum(axis=1)
    if not per_slice.any():
        raise ValueError("lesion mask is empty: no slice to show")
    return int(np.argmax(per_slice))


def fused_slice_png(
    ct: sitk.Image,
    pet_suv: sitk.Image,
    lesion_mask: sitk.Image,
    path: Union[str, Path],
    label: Optional[int] = None,
    slice_index: Optional[int] = None,
    window_hu: tuple[float, float] = (400.0, 40.0),
    suv_range: tuple[float, float] = (0.0, 8.0),
    title: Optional[str] = None,
) -> Path:
    """Save an axial slice of ``ct`` (grey, ``window_hu`` = (width, level)) with ``pet_suv``
    resampled onto it (``inferno``, SUV ``suv_range``, transparent below 20 % of the range) and
    lesion contours, through lesion ``label`` (largest cross-section) or ``slice_index``.

    Displayed in radiological convention: patient right on the image left, anterior up.
    """
    from matplotlib.figure import Figure  # no pyplot: never touches the host's backend

    k = lesion_slice_index(lesion_mask, label) if slice_index is None else int(slice_index)
    pet_on_ct = sitk.GetArrayFromImage(resample_pet_to_ct(pet_suv, ct))[k]
    ct_slice = sitk.GetArrayFromImage(ct)[k].astype(np.float32)
    mask = resample_to_reference(lesion_mask, ct, sitk.sitkNearestNeighbor)
    mask_slice = sitk.GetArrayFromImage(mask)[k]

    width, level = window_hu
    spacing = ct.GetSpacing()
    nx, ny = ct_slice.shape[1], ct_slice.shape[0]
    extent = (0, nx * spacing[0], ny * spacing[1], 0)  # x right = patient left (LPS +x)
    figure = Figure(figsize=(6.4, 6.4 * ny * spacing[1] / (nx * spacing[0]) + 0.4), dpi=120)
    axes = figure.add_axes((0, 0, 1, 0.94))
    axes.imshow(
        ct_slice, cmap="gray", vmin=level - width / 2, vmax=level + width / 2, extent=extent
    )
    low, high = suv_range
    overlay = np.ma.masked_less(pet_on_ct, low + 0.2 * (high - low))
    axes.imshow(overlay, cmap="inferno", vmin=low, vmax=high, alpha=0.55, extent=extent)
    if mask_slice.any():
        x = (np.arange(nx) + 0.5) * spacing[0]
        y = (np.arange(ny) + 0.5) * spacing[1]
        for value in np.unique(mask_slice[mask_slice > 0]):
            axes.contour(
                x,
                y,
                (mask_slice == value).astype(float),
                levels=[0.5],
                colors="cyan",
                linewidths=1.0,
            )
    axes.set_axis_off()
    z_mm = ct.TransformIndexToPhysicalPoint((0, 0, k))[2]
    figure.suptitle(title or f"fused PET/CT, z = {z_mm:.1f} mm (SUV {low:g}–{high:g})", fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, metadata={"Software": None})
    return path
