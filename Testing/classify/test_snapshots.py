"""Lesion panels: planes in the radiological convention whatever the image's axes, the slice the
rules name, outlines and the PET on the planes shown (report/snapshots.py)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from BoneOligoMetLib.lesions.rules import largest_slice
from BoneOligoMetLib.report.snapshots import PatientPlanes, lesion_panel_png, mip_png

SIZE = (50, 40, 30)  # i, j, k
SPACING = (2.0, 2.0, 3.0)  # mm
LESION = ((40, 52), (30, 42), (39, 51))  # LPS mm box: x, y, z
OTHER = ((10, 20), (30, 42), (39, 51))  # a second lesion on the patient's right, same slices
LEFT_ANTERIOR = ((80, 90), (6, 14), (39, 51))  # a dense marker, patient's left and front
SUPERIOR = ((40, 52), (30, 42), (75, 85))  # a dense marker above the lesion


def _inside(points, box):
    return np.logical_and.reduce([(p >= lo) & (p < hi) for p, (lo, hi) in zip(points, box)])


def _image(values, signs) -> sitk.Image:
    """``values(x, y, z)`` on a 100 × 80 × 90 mm box, stored with axis directions ``signs``
    (−1: the array runs from the far side, as in a RAS-stored or feet-first series)."""
    index = np.meshgrid(*(np.arange(n) for n in SIZE[::-1]), indexing="ij")  # k, j, i
    origin = [1.0 if s > 0 else n * d - 1.0 for s, n, d in zip(signs, SIZE, SPACING)]
    points = [origin[a] + signs[a] * SPACING[a] * index[2 - a] for a in range(3)]
    image = sitk.GetImageFromArray(values(*points))
    image.SetSpacing(SPACING)
    image.SetOrigin(origin)
    image.SetDirection((signs[0], 0, 0, 0, signs[1], 0, 0, 0, signs[2]))
    return image


def _case(signs=(1, 1, 1)):
    def hu(x, y, z):
        ct = np.full(x.shape, 40, dtype=np.int16)
        ct[_inside((x, y, z), LESION)] = 100
        ct[_inside((x, y, z), LEFT_ANTERIOR)] = 1500
        ct[_inside((x, y, z), SUPERIOR)] = 1200
        return ct

    def labels(x, y, z):
        out = np.zeros(x.shape, dtype=np.uint8)
        out[_inside((x, y, z), LESION)] = 1
        out[_inside((x, y, z), OTHER)] = 2
        return out

    pet = np.ones((23, 20, 25), dtype=np.float32)  # 4 mm voxels, identity axes
    pet[9:14, 7:11, 9:14] = 3.0  # around the lesion: x 38–54, y 30–42, z 38–54 mm
    suv = sitk.GetImageFromArray(pet)
    suv.SetSpacing((4.0, 4.0, 4.0))
    suv.SetOrigin((2.0, 2.0, 2.0))
    return _image(hu, signs), suv, _image(labels, signs)


def _where(plane, mask):
    rows, cols = np.nonzero(mask)
    return plane.u[cols].mean(), plane.v[rows].mean()


@pytest.mark.parametrize("signs", [(1, 1, 1), (-1, -1, 1), (1, 1, -1), (-1, 1, -1)])
def test_planes_are_radiological_whatever_the_axes(signs):
    ct, suv, labels = _case(signs)
    axial, coronal, centre, half = PatientPlanes(ct, suv, labels).lesion_planes(1)
    lesion_u, lesion_v = _where(axial, axial.labels == 1)
    marker_u, marker_v = _where(axial, axial.ct == 1500)
    assert axial.letters == ("R", "L", "A", "P")
    assert marker_u > lesion_u  # the patient's left on the image's right
    assert marker_v > lesion_v  # anterior up
    other_u, _ = _where(axial, axial.labels == 2)
    assert other_u < lesion_u  # the patient's right on the image's left
    _, top_v = _where(coronal, coronal.ct == 1200)
    lesion_u, lesion_v = _where(coronal, coronal.labels == 1)
    assert coronal.letters == ("R", "L", "S", "I")
    assert top_v > lesion_v  # superior up
    # The PET is sampled onto the same plane: hot where the lesion is.
    assert axial.suv[axial.labels == 1].mean() > 2.0 > axial.suv[axial.labels == 0].mean()
    assert coronal.suv[coronal.labels == 1].mean() > 2.0
    # The lesion box: x 40–52, y 30–42, z 39–51 mm in voxel centres ± half a voxel.
    assert np.allclose(centre, (46.0, 36.0, 45.5), atol=1.6)
    assert 5.0 <= half <= 8.0


def test_axial_plane_is_the_rules_largest_slice_in_the_images_own_numbering():
    ct, suv, labels = _case((1, 1, -1))  # slices stored head to feet
    array = sitk.GetArrayFromImage(labels)
    k = int(np.flatnonzero((array == 1).any(axis=(1, 2)))[0])
    array[k, 10:30, 15:35][array[k, 10:30, 15:35] == 0] = 1  # this slice is now the largest
    grown = sitk.GetImageFromArray(array)
    grown.CopyInformation(ct)
    expected = largest_slice(grown, 1)
    axial, *_ = PatientPlanes(ct, suv, grown).lesion_planes(1)
    assert expected.index == k
    assert axial.position == f"axial slice {k}, z = {expected.z_mm:.1f} mm"


def _colour_pixels(path, rgb, tolerance=0.08, images_only=False):
    """How many pixels of the PNG have colour ``rgb``; ``images_only``: left of the colour bar
    (which shows every colour of the PET scale)."""
    import matplotlib.image

    pixels = matplotlib.image.imread(str(path))[..., :3]
    if images_only:
        pixels = pixels[:, : int(0.92 * pixels.shape[1])]
    return int(np.all(np.abs(pixels - np.asarray(rgb)) < tolerance, axis=-1).sum())


def test_panel_outlines_this_lesion_cyan_and_the_others_dashed_yellow(tmp_path):
    ct, suv, labels = _case()
    planes = PatientPlanes(ct, suv, labels)
    first = lesion_panel_png(
        planes, 1, tmp_path / "lesion_1.png", title="lesion 1: test", liver_suv_mean=2.0
    )
    assert first.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cyan, yellow = (0.0, 1.0, 1.0), (1.0, 1.0, 0.0)
    assert _colour_pixels(first, cyan) > 200  # outlines in 2 rows × 4 images, legend, bar mark
    assert _colour_pixels(first, yellow, images_only=True) > 20  # lesion 2 is on the axial slice
    # Without another lesion on the slices shown, nothing is drawn (or listed) in yellow.
    alone = sitk.Equal(labels, 1)
    planes = PatientPlanes(ct, suv, sitk.Cast(alone, sitk.sitkUInt8))
    single = lesion_panel_png(planes, 1, tmp_path / "single.png", liver_suv_mean=2.0)
    assert _colour_pixels(single, yellow, images_only=True) == 0
    with pytest.raises(ValueError, match="lesion 3 is empty"):
        lesion_panel_png(planes, 3, tmp_path / "none.png")


def test_mip_is_a_picture_of_the_pet(tmp_path):
    _, suv, labels = _case()
    path = mip_png(suv, labels, tmp_path / "mip.png", title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _colour_pixels(path, (0.0, 0.0, 0.0), 0.05) > 20  # the hot lesion, black on white
