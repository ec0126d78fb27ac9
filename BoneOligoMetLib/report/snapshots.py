"""Pictures of a patient's lesions that a reader can check: PNG panels, a PET overview, a slice.

:func:`lesion_panel_png` (``lesion_N.png``): for one lesion, an axial and a coronal row through
it, each with

    whole slice (fused, the zoomed area boxed) | CT, bone window | PET (SUV) | fused PET/CT

and an SUV colour bar (the liver reference and the study's 2.2 MTV threshold marked), the outline
legend (this lesion cyan, other lesions dashed yellow), orientation letters on every image, the
slice's position (index in the CT and LPS mm) and a scale bar in mm. The axial slice is the one
where the lesion's area is largest (the ROI rules' "largest slice", same index), the coronal one
where its coronal area is. The zoomed images share one square window on the lesion, large enough
to show the bone around it.

:func:`mip_png`: the PET maximum-intensity projection seen from the front, each lesion numbered,
the overview a PET report opens with.

:func:`fused_slice_png`: a whole axial slice, fused, with every lesion's outline (the phantom's
``--png`` preview). :func:`anatomy_views_png`: axial, coronal and sagittal slices of a whole
study in a bone window with the hot PET over them (how a synthetic patient's anatomy looks).

Display follows the radiological convention: the patient's right on the image's left; anterior up
on axial images, superior up on coronal ones. Images are first turned to LPS axes
(``DICOMOrient``: axes are permuted or flipped, never resampled); the PET is sampled (linear)
onto each CT plane shown, so it is never resampled as a whole body.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import SimpleITK as sitk

from BoneOligoMetLib.image.geometry import resample_pet_to_ct, resample_to_reference, same_grid
from BoneOligoMetLib.protocol import SUV_THRESHOLD as MTV_THRESHOLD_SUV  # §2.3

# (width, level) in HU. Bone window: cortex white, marrow mid-grey, so the lytic (30–150 HU),
# fat-like (haemangioma) and sclerotic (400–1200 HU) changes read against the marrow.
BONE_WINDOW_HU = (1500.0, 300.0)
SUV_DISPLAY = (0.0, 8.0)  # the Slicer module's PET display range
PET_CMAP = "hot"  # close to Slicer's "PET-Heat"
FUSED_OPACITY = 0.6  # PET over CT, reached at SUV_OPAQUE; transparent below SUV_CLEAR
SUV_CLEAR, SUV_OPAQUE = 0.5, 2.0
ZOOM_MIN_HALF_MM = 30.0  # the zoomed window is at least 6 cm across
OUTLINE, OTHER_OUTLINE = "cyan", "yellow"
MTV_COLOUR, LIVER_COLOUR = "#3b7dff", "lime"  # their lines across the colour bar


def lesion_slice_index(lesion_mask: sitk.Image, label: Optional[int] = None) -> int:
    """The axial slice (z index) holding the most voxels of ``label`` (any lesion if None)."""
    array = sitk.GetArrayViewFromImage(lesion_mask)
    selected = array > 0 if label is None else array == label
    per_slice = selected.reshape(selected.shape[0], -1).sum(axis=1)
    if not per_slice.any():
        raise ValueError("lesion mask is empty: no slice to show")
    return int(np.argmax(per_slice))


# ---------------------------------------------------------------------------------------------
# Planes through a patient, oriented for display


@dataclass(frozen=True)
class Plane:
    """One image plane for display: rows go up (``origin="lower"``), columns to the right.

    ``u`` and ``v`` are the mm coordinates of the columns and rows (ascending); ``letters`` the
    patient directions at the (left, right, top, bottom) edges.
    """

    name: str
    ct: np.ndarray
    suv: np.ndarray
    labels: np.ndarray
    u: np.ndarray
    v: np.ndarray
    letters: tuple[str, str, str, str]
    position: str

    @property
    def extent(self) -> tuple[float, float, float, float]:
        du = self.u[1] - self.u[0] if len(self.u) > 1 else 1.0
        dv = self.v[1] - self.v[0] if len(self.v) > 1 else 1.0
        return (self.u[0] - du / 2, self.u[-1] + du / 2, self.v[0] - dv / 2, self.v[-1] + dv / 2)

    def body_box(self, margin_mm: float = 10.0) -> tuple[float, float, float, float]:
        """(u0, u1, v0, v1) around what is not air (HU > −500), the whole plane if none."""
        body = self.ct > -500
        if not body.any():
            u0, u1, v0, v1 = self.extent
            return u0, u1, v0, v1
        rows, cols = np.flatnonzero(body.any(axis=1)), np.flatnonzero(body.any(axis=0))
        return (
            self.u[cols[0]] - margin_mm,
            self.u[cols[-1]] + margin_mm,
            self.v[rows[0]] - margin_mm,
            self.v[rows[-1]] + margin_mm,
        )


class PatientPlanes:
    """CT, SUV PET and lesion labels of one patient, turned to LPS axes once, cut into planes."""

    def __init__(self, ct: sitk.Image, suv: sitk.Image, lesions: sitk.Image) -> None:
        if not same_grid(lesions, ct):
            lesions = resample_to_reference(lesions, ct, sitk.sitkNearestNeighbor)
        self.original = ct
        self.ct = sitk.DICOMOrient(ct, "LPS")
        self.hu = sitk.GetArrayViewFromImage(self.ct)
        self.labels = sitk.GetArrayFromImage(sitk.DICOMOrient(lesions, "LPS"))
        self.suv = suv
        origin, spacing = np.asarray(self.ct.GetOrigin()), np.asarray(self.ct.GetSpacing())
        self.axes_mm = [origin[a] + spacing[a] * np.arange(self.ct.GetSize()[a]) for a in range(3)]

    def _suv_on(self, reference: sitk.Image) -> np.ndarray:
        resampled = sitk.Resample(
            self.suv, reference, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32
        )
        return sitk.GetArrayFromImage(resampled)

    def _original_index(self, index_xyz: Sequence[int], axis: int) -> int:
        """The slice index along the original CT's axis that is this plane (rules' numbering)."""
        point = self.ct.TransformIndexToPhysicalPoint([int(i) for i in index_xyz])
        original = self.original.TransformPhysicalPointToIndex(point)
        direction = np.abs(np.asarray(self.original.GetDirection()).reshape(3, 3))
        return int(original[int(np.argmax(direction[axis]))])

    def axial(self, k: int) -> Plane:
        """Axial plane ``k`` (LPS-oriented index): anterior up, the patient's right left."""
        reference = self.ct[:, :, k : k + 1]
        z = float(self.axes_mm[2][k])
        original = self._original_index((0, 0, k), 2)
        return Plane(
            "axial",
            self.hu[k][::-1].astype(np.float32),
            self._suv_on(reference)[0][::-1],
            self.labels[k][::-1],
            self.axes_mm[0],
            -self.axes_mm[1][::-1],  # v = −y: anterior (smaller y) up
            ("R", "L", "A", "P"),
            f"axial slice {original}, z = {z:.1f} mm",
        )

    def coronal(self, j: int) -> Plane:
        """Coronal plane ``j`` (LPS-oriented index): superior up, the patient's right left."""
        reference = self.ct[:, j : j + 1, :]
        y = float(self.axes_mm[1][j])
        original = self._original_index((0, j, 0), 1)
        return Plane(
            "coronal",
            self.hu[:, j, :].astype(np.float32),
            self._suv_on(reference)[:, 0, :],
            self.labels[:, j, :],
            self.axes_mm[0],
            self.axes_mm[2],
            ("R", "L", "S", "I"),
            f"coronal slice {original}, y = {y:.1f} mm",
        )

    def lesion_planes(self, label: int) -> tuple[Plane, Plane, tuple[float, float, float], float]:
        """The axial and coronal planes of largest lesion area, the centre (x, y, z; LPS mm) of
        the lesion's box and its largest half-extent (mm)."""
        mask = self.labels == label
        if not mask.any():
            raise ValueError(f"lesion {label} is empty: no slice to show")
        k = int(np.argmax(mask.sum(axis=(1, 2))))
        j = int(np.argmax(mask.sum(axis=(0, 2))))
        centre, half = [], 0.0
        for axis_zyx, axis_xyz in ((2, 0), (1, 1), (0, 2)):
            index = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis_zyx)))
            low, high = self.axes_mm[axis_xyz][index[0]], self.axes_mm[axis_xyz][index[-1]]
            centre.append(float(low + high) / 2)
            half = max(half, float(high - low) / 2 + self.ct.GetSpacing()[axis_xyz] / 2)
        return self.axial(k), self.coronal(j), (centre[0], centre[1], centre[2]), half


# ---------------------------------------------------------------------------------------------
# Drawing


def _figure(width_in: float, height_in: float, dpi: int = 110) -> Any:
    from matplotlib.figure import Figure  # no pyplot: never touches the host's backend

    return Figure(figsize=(width_in, height_in), dpi=dpi, facecolor="white")


def _outlined(text_artist: Any) -> None:
    from matplotlib import patheffects

    text_artist.set_path_effects([patheffects.withStroke(linewidth=2.0, foreground="black")])


def _letters(axes: Any, letters: tuple[str, str, str, str], size: float = 8.0) -> None:
    """Orientation letters at the left, right, top and bottom edges of an image."""
    places = (
        (0.02, 0.5, "left", "center"),
        (0.98, 0.5, "right", "center"),
        (0.5, 0.98, "center", "top"),
        (0.5, 0.02, "center", "bottom"),
    )
    for letter, (x, y, ha, va) in zip(letters, places):
        text = axes.text(
            x,
            y,
            letter,
            transform=axes.transAxes,
            ha=ha,
            va=va,
            color="white",
            fontsize=size,
            fontweight="bold",
        )
        _outlined(text)


def _scale_bar(axes: Any, span_mm: float) -> None:
    """A white bar of a round length (about a fifth of ``span_mm``) at the lower right."""
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    length = next(n for n in (200, 100, 50, 20, 10, 5) if n <= span_mm / 4) if span_mm >= 20 else 5
    bar = AnchoredSizeBar(
        axes.transData,
        length,
        f"{length} mm",
        "lower right",
        pad=0.3,
        color="white",
        frameon=False,
        size_vertical=span_mm / 150,
        fontproperties={"size": 7},
    )
    _outlined(bar.txt_label._text)
    axes.add_artist(bar)


def _ct_image(axes: Any, plane: Plane, window_hu: tuple[float, float]) -> None:
    width, level = window_hu
    axes.imshow(
        plane.ct,
        cmap="gray",
        vmin=level - width / 2,
        vmax=level + width / 2,
        extent=plane.extent,
        origin="lower",
        interpolation="bilinear",
    )


def _pet_rgba(suv: np.ndarray, suv_range: tuple[float, float], opacity: bool) -> np.ndarray:
    from matplotlib import colormaps

    low, high = suv_range
    rgba = colormaps[PET_CMAP](np.clip((suv - low) / (high - low), 0.0, 1.0))
    if opacity:
        ramp = np.clip((suv - SUV_CLEAR) / (SUV_OPAQUE - SUV_CLEAR), 0.0, 1.0)
        rgba[..., 3] = FUSED_OPACITY * ramp
    return rgba


def _pet_image(axes: Any, plane: Plane, suv_range: tuple[float, float], fused: bool) -> None:
    axes.imshow(
        _pet_rgba(plane.suv, suv_range, fused),
        extent=plane.extent,
        origin="lower",
        interpolation="bilinear",
    )


def _outlines(axes: Any, plane: Plane, label: Optional[int], width: float = 1.3) -> None:
    """The lesion ``label`` in cyan, every other lesion dashed yellow (all cyan if None).

    Drawn along the voxels' edges (the mask upsampled 4× around the lesion), so the outline
    encloses exactly the voxels of the ROI rather than cutting through its border voxels.
    """
    fine = 4
    du, dv = plane.u[1] - plane.u[0], plane.v[1] - plane.v[0]
    for value in np.unique(plane.labels[plane.labels > 0]):
        mask = plane.labels == value
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        r0, r1 = max(rows[0] - 1, 0), min(rows[-1] + 2, mask.shape[0])
        c0, c1 = max(cols[0] - 1, 0), min(cols[-1] + 2, mask.shape[1])
        block = np.kron(mask[r0:r1, c0:c1], np.ones((fine, fine))).astype(float)
        u = plane.u[c0] - du / 2 + (np.arange(block.shape[1]) + 0.5) * du / fine
        v = plane.v[r0] - dv / 2 + (np.arange(block.shape[0]) + 0.5) * dv / fine
        mine = label is None or value == label
        axes.contour(
            u,
            v,
            block,
            levels=[0.5],
            colors=OUTLINE if mine else OTHER_OUTLINE,
            linewidths=width,
            linestyles="solid" if mine else "dashed",
        )


def _window(axes: Any, box: tuple[float, float, float, float]) -> None:
    u0, u1, v0, v1 = box
    axes.set_xlim(u0, u1)
    axes.set_ylim(v0, v1)
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_facecolor("black")
    for spine in axes.spines.values():
        spine.set_visible(False)


def _plane_row(
    figure: Any,
    cells: Sequence[Any],
    plane: Plane,
    label: int,
    zoom: tuple[float, float, float, float],
    window_hu: tuple[float, float],
    suv_range: tuple[float, float],
) -> None:
    """One row of a lesion panel: whole slice, CT, PET, fused."""
    from matplotlib.patches import Rectangle

    context, ct, pet, fused = (figure.add_subplot(cell) for cell in cells)
    _ct_image(context, plane, window_hu)
    _pet_image(context, plane, suv_range, fused=True)
    _outlines(context, plane, label, width=0.8)
    u0, u1, v0, v1 = zoom
    context.add_patch(
        Rectangle((u0, v0), u1 - u0, v1 - v0, fill=False, edgecolor="white", linewidth=0.9)
    )
    body = plane.body_box()
    _window(context, body)
    _scale_bar(context, body[1] - body[0])
    context.set_title(f"{plane.position}\nwhole slice, fused", fontsize=8)
    for axes, title in ((ct, "CT, bone window"), (pet, "PET (SUV)"), (fused, "fused PET/CT")):
        if axes is not pet:
            _ct_image(axes, plane, window_hu)
        if axes is not ct:
            _pet_image(axes, plane, suv_range, fused=axes is fused)
        _outlines(axes, plane, label)
        _window(axes, zoom)
        _scale_bar(axes, u1 - u0)
        axes.set_title(f"{title}, {plane.name}", fontsize=8)
    for axes in (context, ct, pet, fused):
        _letters(axes, plane.letters)


def _colour_bar(
    figure: Any, cell: Any, suv_range: tuple[float, float], liver: Optional[float]
) -> list[tuple[str, str]]:
    """The SUV colour bar with the MTV threshold and the liver reference drawn across it; their
    (legend text, colour)."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colorbar import Colorbar
    from matplotlib.colors import Normalize

    axes = figure.add_subplot(cell)
    low, high = suv_range
    mappable = ScalarMappable(Normalize(low, high), colormaps[PET_CMAP])
    bar = Colorbar(axes, mappable, orientation="vertical")
    bar.set_label("PET SUVbw (g/mL)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    marks = [(MTV_THRESHOLD_SUV, f"SUV {MTV_THRESHOLD_SUV:g}: MTV threshold (§2.3)", MTV_COLOUR)]
    if liver is not None and np.isfinite(liver):
        marks.append((float(liver), f"SUV {liver:.2f}: liver reference", LIVER_COLOUR))
    shown = []
    for value, text, colour in marks:
        if low < value < high:
            axes.axhline(value, color=colour, linewidth=2.0)
            shown.append((text, colour))
    return shown


def _legend(figure: Any, label: int, others: bool, marks: Sequence[tuple[str, str]], note: str):
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Line2D([], [], color=OUTLINE, linewidth=1.5, label=f"lesion {label} (ROI outline)")]
    if others:
        handles.append(
            Line2D(
                [], [], color=OTHER_OUTLINE, linewidth=1.5, linestyle="dashed", label="other lesion"
            )
        )
    handles.append(Patch(facecolor="none", edgecolor="black", label="zoomed area"))
    handles += [Line2D([], [], color=colour, linewidth=2.0, label=text) for text, colour in marks]
    height = figure.get_figheight()  # inches: the legend above the display note, both below
    figure.legend(
        handles=handles,
        loc="lower left",
        bbox_to_anchor=(0.005, 0.17 / height),
        ncol=len(handles),
        fontsize=7.5,
        frameon=False,
        handlelength=1.6,
        columnspacing=1.2,
    )
    figure.text(0.01, 0.05 / height, note, ha="left", va="bottom", fontsize=7, color="#333")


def lesion_panel_png(
    planes: PatientPlanes,
    label: int,
    path: Union[str, Path],
    *,
    title: str = "",
    liver_suv_mean: Optional[float] = None,
    window_hu: tuple[float, float] = BONE_WINDOW_HU,
    suv_range: tuple[float, float] = SUV_DISPLAY,
    views: Sequence[str] = ("axial", "coronal"),
    dpi: int = 110,
) -> Path:
    """Save lesion ``label``'s panel (see the module docstring); ``title``: one or two lines
    above it (what was found: probability, verdict, measures); ``views``: the rows, of
    "axial" and "coronal"."""
    from matplotlib.gridspec import GridSpec

    axial, coronal, centre, extent_mm = planes.lesion_planes(label)
    shown = [{"axial": axial, "coronal": coronal}[view] for view in views]
    half = max(ZOOM_MIN_HALF_MM, 1.6 * extent_mm + 8.0)
    x, y, z = centre
    zooms = {
        "axial": (x - half, x + half, -y - half, -y + half),
        "coronal": (x - half, x + half, z - half, z + half),
    }
    top_in, bottom_in, row_in = 0.9, 0.5, 2.75  # title, legend, one row of images (inches)
    height = top_in + bottom_in + row_in * len(shown)
    figure = _figure(11.6, height, dpi)
    grid = GridSpec(
        len(shown),
        5,
        figure=figure,
        width_ratios=[1.25, 1, 1, 1, 0.07],
        left=0.01,
        right=0.955,
        top=1 - top_in / height,
        bottom=bottom_in / height,
        wspace=0.06,
        hspace=0.2,
    )
    for row, plane in enumerate(shown):
        cells = [grid[row, column] for column in range(4)]
        _plane_row(figure, cells, plane, label, zooms[plane.name], window_hu, suv_range)
    marks = _colour_bar(figure, grid[:, 4], suv_range, liver_suv_mean)
    others = any(np.any((p.labels > 0) & (p.labels != label)) for p in shown)
    width, level = window_hu
    note = (
        f"CT window W {width:g} / L {level:g} HU; PET SUV {suv_range[0]:g}–{suv_range[1]:g}; "
        f"fused: PET transparent below SUV {SUV_CLEAR:g}; patient's right on the image left"
    )
    _legend(figure, label, others, marks, note)
    figure.suptitle(title or f"lesion {label}", fontsize=10, y=0.985, va="top")
    return _save(figure, path)


def lesion_panels(
    ct: sitk.Image,
    suv: sitk.Image,
    lesions: sitk.Image,
    out_dir: Union[str, Path],
    *,
    titles: Optional[Mapping[int, str]] = None,
    liver_suv_mean: Optional[float] = None,
) -> dict[int, Path]:
    """``lesion_N.png`` in ``out_dir`` for every lesion label N of ``lesions``; paths by label."""
    planes = PatientPlanes(ct, suv, lesions)
    labels = [int(v) for v in np.unique(planes.labels) if v > 0]
    titles = titles or {}
    return {
        label: lesion_panel_png(
            planes,
            label,
            Path(out_dir) / f"lesion_{label}.png",
            title=titles.get(label, ""),
            liver_suv_mean=liver_suv_mean,
        )
        for label in labels
    }


def mip_png(
    suv: sitk.Image,
    lesions: sitk.Image,
    path: Union[str, Path],
    *,
    title: str = "PET maximum-intensity projection, anterior view",
    suv_max: float = 6.0,
    dpi: int = 110,
) -> Path:
    """The PET's anterior maximum-intensity projection (inverted grey, SUV 0–``suv_max``) with
    each lesion numbered beside its centre."""
    oriented = sitk.DICOMOrient(suv, "LPS")
    mip = sitk.GetArrayViewFromImage(oriented).max(axis=1)  # (z, x): along y, front to back
    origin, spacing = np.asarray(oriented.GetOrigin()), np.asarray(oriented.GetSpacing())
    u = origin[0] + spacing[0] * np.arange(mip.shape[1])
    v = origin[2] + spacing[2] * np.arange(mip.shape[0])
    plane = Plane("mip", mip, mip, np.zeros(mip.shape, np.uint8), u, v, ("R", "L", "S", "I"), "")
    height_mm, width_mm = v[-1] - v[0], u[-1] - u[0]
    figure = _figure(4.2, 4.2 * height_mm / width_mm * 0.93 + 0.5, dpi)
    axes = figure.add_axes((0.02, 0.02, 0.96, 0.93 * (1 - 0.5 / figure.get_figheight())))
    axes.imshow(
        mip,
        cmap="gray_r",
        vmin=0.0,
        vmax=suv_max,
        extent=plane.extent,
        origin="lower",
        interpolation="bilinear",
    )
    array = sitk.GetArrayViewFromImage(lesions)
    for label in np.unique(array[array > 0]):
        k, j, i = np.argwhere(array == label).mean(axis=0)
        point = lesions.TransformContinuousIndexToPhysicalPoint((float(i), float(j), float(k)))
        x, z = point[0], point[2]
        axes.annotate(
            str(int(label)),
            (x, z),
            xytext=(x + 0.09 * width_mm, z + 0.02 * width_mm),
            color="#0050c8",
            fontsize=10,
            fontweight="bold",
            arrowprops={"arrowstyle": "-", "color": "#0050c8", "linewidth": 1.2},
        )
    _window(axes, plane.extent)
    axes.set_facecolor("white")
    for letter, (x, y, ha, va) in zip(
        plane.letters,
        (
            (0.02, 0.5, "left", "center"),
            (0.98, 0.5, "right", "center"),
            (0.5, 0.99, "center", "top"),
            (0.5, 0.01, "center", "bottom"),
        ),
    ):
        axes.text(
            x,
            y,
            letter,
            transform=axes.transAxes,
            ha=ha,
            va=va,
            fontsize=8,
            fontweight="bold",
            color="#333",
        )
    figure.suptitle(f"{title}\nSUV 0–{suv_max:g} (black = high); lesions numbered", fontsize=8)
    return _save(figure, path)


def _save(figure: Any, path: Union[str, Path]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, metadata={"Software": None})
    return path


def fused_slice_png(
    ct: sitk.Image,
    pet_suv: sitk.Image,
    lesion_mask: sitk.Image,
    path: Union[str, Path],
    label: Optional[int] = None,
    slice_index: Optional[int] = None,
    window_hu: tuple[float, float] = BONE_WINDOW_HU,
    suv_range: tuple[float, float] = SUV_DISPLAY,
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
    return _save(figure, path)


def anatomy_views_png(
    ct: sitk.Image,
    pet_suv: sitk.Image,
    path: Union[str, Path],
    axial_mm: tuple[float, ...] = (505.0, 400.0, 180.0, 80.0, 0.0),
    coronal_mm: float = 30.0,
    sagittal_mm: float = 0.0,
    window_hu: tuple[float, float] = (1500.0, 400.0),
    title: Optional[str] = None,
) -> Path:
    """Axial slices at ``axial_mm`` (z, LPS), a coronal (y = ``coronal_mm``) and a sagittal
    (x = ``sagittal_mm``) slice of ``ct`` in a bone window, with the SUV ≥ 2 overlaid: how the
    synthetic skeleton and its physiological uptake look (radiological orientation)."""
    from matplotlib.figure import Figure  # no pyplot: never touches the host's backend

    array = sitk.GetArrayFromImage(ct).astype(np.float32)
    pet = sitk.GetArrayFromImage(resample_pet_to_ct(pet_suv, ct))
    spacing = ct.GetSpacing()
    width, level = window_hu

    def index(axis: int, value: float) -> int:
        point = list(ct.GetOrigin())
        point[axis] = value
        k = ct.TransformPhysicalPointToIndex(point)[axis]
        return int(np.clip(k, 0, ct.GetSize()[axis] - 1))

    figure = Figure(figsize=(3.0 * len(axial_mm), 9.0), dpi=100)
    grid = figure.add_gridspec(2, max(len(axial_mm), 2), height_ratios=(1.0, 1.9))
    views = [(array[index(2, z)], pet[index(2, z)], f"axial z = {z:g} mm", spacing[1] / spacing[0])
             for z in axial_mm]  # fmt: skip
    j, i = index(1, coronal_mm), index(0, sagittal_mm)
    lower = [
        (array[::-1, j, :], pet[::-1, j, :], f"coronal y = {coronal_mm:g} mm",
         spacing[2] / spacing[0]),
        (array[::-1, :, i], pet[::-1, :, i], f"sagittal x = {sagittal_mm:g} mm",
         spacing[2] / spacing[1]),
    ]  # fmt: skip
    half = max(len(axial_mm), 2) // 2
    places = [grid[0, n] for n in range(len(axial_mm))] + [grid[1, :half], grid[1, half:]]
    for place, (image, suv, name, aspect) in zip(places, views + lower):
        rows, columns = np.nonzero(image > -500.0)  # the body, with a margin
        if rows.size:
            keep = (slice(max(rows.min() - 5, 0), rows.max() + 6),
                    slice(max(columns.min() - 5, 0), columns.max() + 6))  # fmt: skip
            image, suv = image[keep], suv[keep]
        axes = figure.add_subplot(place)
        axes.imshow(image, cmap="gray", vmin=level - width / 2, vmax=level + width / 2,
                    aspect=aspect)  # fmt: skip
        axes.imshow(np.ma.masked_less(suv, 2.0), cmap="inferno", vmin=0.0, vmax=8.0,
                    alpha=0.55, aspect=aspect)  # fmt: skip
        axes.set_title(name, fontsize=9)
        axes.set_axis_off()
    if title:
        figure.suptitle(title, fontsize=10)
    return _save(figure, path)
