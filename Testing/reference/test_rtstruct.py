"""RTSTRUCT in: contours rasterised onto a reference grid, checked against what MIRP publishes for
a real TCIA contour, against an independent point-in-polygon test (holes, islands, overlapping
and separate contours on one slice), against a ball on aligned, coarser and oblique grids, and
round-tripped from the synthetic patient's lesion masks; the cohort manifest takes an RTSTRUCT
with ROI names in place of a label image.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from matplotlib.path import Path as PolygonPath

from BoneOligoMetLib.cli import main
from BoneOligoMetLib.errors import GeometryError, MaskError
from BoneOligoMetLib.io.dicom_writer import UidSource, save_dataset
from BoneOligoMetLib.io.images import read_image
from BoneOligoMetLib.io.rtstruct import RTSTRUCT_STORAGE, rasterise_roi, read_rtstruct
from BoneOligoMetLib.io.suv import pet_dicom_to_suv
from BoneOligoMetLib.lesions.dicom_labels import labels_from_dicom, read_reference

MIRP = Path(__file__).resolve().parents[1] / "data" / "mirp_sts_001_pet"
# MIRP's published mask (mirp_mask.nii.gz) holds this many voxels of GTV_Mass_PET (measured).
MIRP_VOXELS = 5095
# MIRP's own expectations for this patient and ROI (test/pet_suv_conversion_test.py,
# test_pet_suv_conversion_body_weight, on the raw series converted to SUVbw).
MIRP_SUV_MAX = (7.9, 8.0)
MIRP_SUV_MIN = (0.15, 0.20)


# --- helpers: an RTSTRUCT writer and contours traced from a mask ------------------------------


def write_rtstruct(
    path: Path,
    rois: dict[str, list[np.ndarray]],
    frame_uid: str,
    kinds: dict[str, str] | None = None,
) -> Path:
    """A minimal RT Structure Set: each ROI's contours ((N, 3) LPS mm), CLOSED_PLANAR unless
    ``kinds`` says otherwise."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    uid = UidSource()
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = RTSTRUCT_STORAGE, uid(), "RTSTRUCT"
    ds.PatientName, ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID = (
        "T^T",
        "T",
        uid(),
        uid(),
    )
    ds.StructureSetLabel = "test"
    reference = Dataset()
    reference.FrameOfReferenceUID = frame_uid
    ds.ReferencedFrameOfReferenceSequence = Sequence([reference])
    rois_seq, contours_seq = [], []
    for number, (name, contours) in enumerate(rois.items(), start=1):
        roi = Dataset()
        roi.ROINumber, roi.ROIName, roi.ReferencedFrameOfReferenceUID = number, name, frame_uid
        roi.ROIGenerationAlgorithm = "MANUAL"
        rois_seq.append(roi)
        item = Dataset()
        item.ReferencedROINumber = number
        item.ContourSequence = Sequence()
        for points in contours:
            contour = Dataset()
            contour.ContourGeometricType = (kinds or {}).get(name, "CLOSED_PLANAR")
            contour.NumberOfContourPoints = len(points)
            contour.ContourData = [f"{v:.6f}" for v in np.asarray(points).ravel()]
            item.ContourSequence.append(contour)
        contours_seq.append(item)
    ds.StructureSetROISequence = Sequence(rois_seq)
    ds.ROIContourSequence = Sequence(contours_seq)
    return save_dataset(ds, path)


def mask_contours(mask_kji: np.ndarray, image: sitk.Image) -> list[np.ndarray]:
    """Outlines of a mask, slice by slice, half-way between voxel centres in and out (contourpy's
    marching squares): every centre is at least 0.35 voxel from a line, holes are separate
    lines inside outer ones, so the even-odd rule gives the mask back exactly."""
    import contourpy

    contours = []
    for k in np.flatnonzero(mask_kji.any(axis=(1, 2))):
        plane = np.pad(mask_kji[k].astype(float), 1)  # closed lines at the edges too
        for line in contourpy.contour_generator(z=plane, line_type="Separate").lines(0.5):
            points_ij = line[:-1] - 1.0  # drop the repeated end point and the padding
            contours.append(
                np.array(
                    [
                        image.TransformContinuousIndexToPhysicalPoint((x, y, float(k)))
                        for x, y in points_ij
                    ]
                )
            )
    return contours


def _grid(size, spacing, origin=(0.0, 0.0, 0.0), direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)):
    image = sitk.Image([int(s) for s in size], sitk.sitkUInt8)
    image.SetSpacing([float(s) for s in spacing])
    image.SetOrigin([float(o) for o in origin])
    image.SetDirection([float(d) for d in direction])
    return image


def _centres(image: sitk.Image) -> np.ndarray:
    """(k, j, i, 3) LPS centres of every voxel."""
    size = image.GetSize()
    k, j, i = np.meshgrid(*(np.arange(n) for n in size[::-1]), indexing="ij")
    index = np.stack([i, j, k], axis=-1).astype(float)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    return np.asarray(image.GetOrigin()) + (index * image.GetSpacing()) @ direction.T


def _rotation(axis, degrees) -> np.ndarray:
    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    angle = np.radians(degrees)
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


# --- a real RTSTRUCT: MIRP's STS_001 PET ------------------------------------------------------


def test_mirp_sts_001_gtv_matches_the_published_mask_and_suv():
    suv, _ = pet_dicom_to_suv(MIRP / "image")  # Units GML: the series stores SUVbw
    frame = pydicom.dcmread(next((MIRP / "image").glob("*.dcm"))).FrameOfReferenceUID
    labels, rois = labels_from_dicom(
        MIRP / "RS.dcm", suv, ["GTV_Mass_PET"], frame_of_reference_uid=frame
    )
    published = sitk.ReadImage(str(MIRP / "mirp_mask.nii.gz"))
    assert published.GetSize() == labels.GetSize()
    assert np.allclose(published.GetOrigin(), labels.GetOrigin(), atol=1e-3)
    assert np.allclose(published.GetSpacing(), labels.GetSpacing(), atol=1e-4)
    ours = sitk.GetArrayFromImage(labels) == 1
    theirs = sitk.GetArrayFromImage(published) > 0
    assert int(theirs.sum()) == MIRP_VOXELS
    assert int(ours.sum()) == MIRP_VOXELS
    assert rois[0].voxels == MIRP_VOXELS
    assert np.array_equal(ours, theirs)  # voxel for voxel
    values = sitk.GetArrayFromImage(suv)[ours]
    assert MIRP_SUV_MAX[0] < values.max() < MIRP_SUV_MAX[1]
    assert MIRP_SUV_MIN[0] < values.min() < MIRP_SUV_MIN[1]
    assert values.mean() == pytest.approx(2.5551, abs=1e-4)  # golden: on MIRP's mask too


def test_labels_command_on_the_mirp_rtstruct(tmp_path, capsys):
    out = tmp_path / "gtv.nii.gz"
    args = ["labels", "--from", str(MIRP / "RS.dcm"), "--reference", str(MIRP / "image")]
    assert main([*args, "--roi", "gtv_mass_pet", "-o", str(out)]) == 0  # case-insensitive
    printed = capsys.readouterr().out
    assert "GTV_Mass_PET" in printed
    assert str(MIRP_VOXELS) in printed
    assert int(sitk.GetArrayFromImage(read_image(out)).sum()) == MIRP_VOXELS

    missing = tmp_path / "none.nii.gz"
    assert main([*args, "--roi", "GTV", "-o", str(missing)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "no ROI named 'GTV'" in error
    assert "'GTV_Mass_PET'" in error
    assert not missing.exists()


# --- the rule: even-odd on each plane, nearest plane between planes ---------------------------


def _polygon(centre, radius, n=48, phase=0.1) -> np.ndarray:
    angles = phase + np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([centre[0] + radius * np.cos(angles), centre[1] + radius * np.sin(angles)], 1)


def test_even_odd_rule_holes_islands_overlaps_and_separate_contours():
    reference = _grid((60, 50, 1), (1.0, 1.0, 2.0), origin=(0.3, 0.2, 5.0))
    z = 5.0
    shapes = [
        _polygon((15.3, 15.1), 11.0),  # outer ring ...
        _polygon((15.3, 15.1), 6.0),  # ... its hole ...
        _polygon((15.3, 15.1), 2.5),  # ... and an island in the hole
        _polygon((42.2, 12.4), 7.0),  # two contours that overlap: the overlap is out
        _polygon((48.1, 14.3), 6.0),
        _polygon((40.7, 38.6), 5.0),  # a separate lesion part on the same slice
    ]
    roi_contours = [np.column_stack([s, np.full(len(s), z)]) for s in shapes]
    from BoneOligoMetLib.io.rtstruct import RoiContours

    roi = RoiContours(1, "test", "", tuple(roi_contours))
    mask = rasterise_roi(roi, reference)[0]
    centres = _centres(reference)[0].reshape(-1, 3)[:, :2]
    expected = np.zeros(len(centres), dtype=bool)
    for shape in shapes:  # matplotlib's point-in-polygon, toggled per contour
        expected ^= PolygonPath(shape).contains_points(centres)
    assert np.array_equal(mask.ravel(), expected)
    assert mask[15, 15]  # the island
    assert not mask[15, 19]  # the hole
    assert mask[15, 24]  # the ring
    assert not mask[13, 45]  # where two contours overlap
    assert mask[13, 37]  # covered once


@pytest.mark.parametrize(
    ("name", "spacing", "rotation"),
    [
        ("drawn grid", (1.0, 1.0, 1.0), None),
        ("3 mm slices", (0.8, 0.8, 3.0), None),
        ("oblique", (1.0, 1.0, 1.5), ((1.0, 2.0, 0.5), 35.0)),
    ],
)
def test_a_ball_drawn_on_axial_planes_fills_any_grid(name, spacing, rotation):
    radius, centre = 9.0, np.array([1.3, -2.1, 4.0])
    planes = np.arange(-8.0, 8.5, 1.0)  # axial contours every mm, as drawn on a 1 mm CT
    contours = [
        np.column_stack(
            [_polygon(centre[:2], math.sqrt(radius**2 - z**2), n=96), np.full(96, centre[2] + z)]
        )
        for z in planes
    ]
    from BoneOligoMetLib.io.rtstruct import RoiContours

    roi = RoiContours(1, "ball", "", tuple(contours))
    direction = np.eye(3) if rotation is None else _rotation(*rotation)
    extent = 2 * radius + 8
    origin = centre - direction @ (np.full(3, extent / 2))
    size = [int(extent / s) + 1 for s in spacing]
    reference = _grid(size, spacing, origin, direction.ravel())
    mask = rasterise_roi(roi, reference)
    distance = np.linalg.norm(_centres(reference) - centre, axis=-1)
    height = np.abs(_centres(reference)[..., 2] - centre[2])
    inside = (distance < radius - 1.0) & (height < planes.max())  # drawn from -8 to +8 mm
    outside = (distance > radius + 1.0) | (height > planes.max() + 0.5 + 0.01)  # + half a step
    assert mask[inside].all(), name
    assert not mask[outside].any(), name
    drawn_ml = sum(math.pi * (radius**2 - z**2) * 1.0 for z in planes) / 1000  # slabs of 1 mm
    volume_ml = mask.sum() * np.prod(spacing) / 1000
    assert volume_ml == pytest.approx(drawn_ml, rel=0.04), name


# --- the synthetic patient's lesions through an RTSTRUCT --------------------------------------


@pytest.fixture(scope="module")
def patient(tmp_path_factory):
    """A small synthetic patient with 3 lesions, DICOM CT, and an RTSTRUCT of its lesions."""
    from BoneOligoMetLib.synthetic.phantom import generate_patient, write_patient

    folder = tmp_path_factory.mktemp("patient")
    synthetic = generate_patient(seed=3, preset="small", n_lesions=3)
    write_patient(synthetic, folder, dicom=True)
    ct = read_image(folder / "dicom" / "CT")
    lesions = sitk.GetArrayFromImage(read_image(folder / "lesions.nii.gz"))
    frame = pydicom.dcmread(next((folder / "dicom" / "CT").glob("*.dcm"))).FrameOfReferenceUID
    rois = {f"Lesion_{n}": mask_contours(lesions == n, ct) for n in (1, 2, 3)}
    rois["Marker"] = [np.array([[0.0, 0.0, 0.0]])]
    write_rtstruct(folder / "RS.dcm", rois, frame, kinds={"Marker": "POINT"})
    return folder, lesions


def test_phantom_lesions_come_back_exactly_in_the_order_asked(patient, tmp_path, capsys):
    folder, lesions = patient
    rois = read_rtstruct(folder / "RS.dcm")
    assert [r.name for r in rois] == ["Lesion_1", "Lesion_2", "Lesion_3", "Marker"]
    assert rois[3].skipped == 1
    assert not rois[3].contours
    assert sum(len(r.contours) for r in rois) > 3 * 3  # several contours per lesion
    out = tmp_path / "labels.nii.gz"
    args = ["labels", "--from", str(folder / "RS.dcm"), "--reference", str(folder / "dicom" / "CT")]
    assert main([*args, "--roi", "Lesion_3", "Lesion_1", "-o", str(out)]) == 0
    back = sitk.GetArrayFromImage(read_image(out))
    assert np.array_equal(back == 1, lesions == 3)
    assert np.array_equal(back == 2, lesions == 1)
    assert set(np.unique(back)) == {0, 1, 2}
    # Without --roi: every ROI with contours (the point marker has none), in file order.
    assert main([*args, "-o", str(out)]) == 0
    assert np.array_equal(sitk.GetArrayFromImage(read_image(out)), lesions)
    capsys.readouterr()


def test_bad_rtstructs_are_refused_naming_the_roi(patient, tmp_path):
    folder, _ = patient
    ct, frame = read_reference(folder / "dicom" / "CT")
    with pytest.raises(MaskError, match="'Marker': no closed planar contour"):
        labels_from_dicom(folder / "RS.dcm", ct, ["Marker"], frame_of_reference_uid=frame)
    with pytest.raises(GeometryError, match="frame of reference"):
        labels_from_dicom(folder / "RS.dcm", ct, ["Lesion_1"], frame_of_reference_uid="1.2.3")
    ring = _polygon((0.0, 0.0), 8.0)
    far = [np.column_stack([ring + 5000.0, np.full(len(ring), 0.0)])]
    square = np.array([[-50.0, -50.0], [50.0, -50.0], [50.0, 50.0], [-50.0, 50.0]])
    z = ct.TransformIndexToPhysicalPoint((0, 0, 60))[2]
    big = [np.column_stack([square, np.full(4, z)])]
    small = [np.column_stack([square / 4, np.full(4, z)])]
    rs = write_rtstruct(tmp_path / "bad.dcm", {"Far": far, "Big": big, "Small": small}, frame)
    with pytest.raises(GeometryError, match=r"ROI 'Far' covers no voxel centre .*contours span"):
        labels_from_dicom(rs, ct, ["Far"])
    with pytest.raises(MaskError, match=r"ROIs 'Big' and 'Small' share \d+ voxels"):
        labels_from_dicom(rs, ct, ["Big", "Small"])


def _write_rows(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_manifest_takes_an_rtstruct_with_roi_names(patient, tmp_path):
    from BoneOligoMetLib.errors import ManifestError
    from BoneOligoMetLib.features.cohort import extract_cohort
    from BoneOligoMetLib.features.config import ExtractionConfig
    from BoneOligoMetLib.io.manifest import read_manifest
    from BoneOligoMetLib.io.tables import read_table

    folder, _ = patient
    common = {
        "patient_id": "P1",
        "ct_dicom": str(folder / "dicom" / "CT"),
        "suv": str(folder / "suv.nii.gz"),
    }
    image_rows = [
        {**common, "lesion_label": n, "lesions": str(folder / "lesions.nii.gz")} for n in (1, 3)
    ]
    roi_rows = [
        {
            **common,
            "lesion_label": n,
            "lesions": str(folder / "RS.dcm"),
            "lesion_roi": f"lesion_{n}",
        }
        for n in (1, 3)
    ]
    config = ExtractionConfig(images=())  # the metabolic group: enough to compare, and fast
    extract_cohort(
        _write_rows(tmp_path / "a.csv", image_rows), tmp_path / "a.csv.out.csv", config=config
    )
    extract_cohort(
        _write_rows(tmp_path / "b.csv", roi_rows), tmp_path / "b.csv.out.csv", config=config
    )
    columns_a, rows_a = read_table(tmp_path / "a.csv.out.csv")
    columns_b, rows_b = read_table(tmp_path / "b.csv.out.csv")
    assert columns_a == columns_b
    assert len(rows_a) == 2
    for row_a, row_b in zip(rows_a, rows_b):  # the same lesions, the same numbers (the NIfTI
        assert row_a.keys() == row_b.keys()  # grid's float32 spacing moves volumes by 1e-8)
        for key, value in row_a.items():
            same = value == row_b[key] or value == pytest.approx(row_b[key], rel=1e-6)
            assert same, (key, value, row_b[key])
    # Which ROI a label takes is part of the lesion's identity: swapping them recomputes.
    manifest = read_manifest(_write_rows(tmp_path / "b.csv", roi_rows))
    swapped = [{**row, "lesion_roi": f"lesion_{4 - row['lesion_label']}"} for row in roi_rows]
    other = read_manifest(_write_rows(tmp_path / "c.csv", swapped))
    assert manifest.cases[0].inputs != other.cases[0].inputs
    mixed = [roi_rows[0], {**roi_rows[1], "lesion_roi": ""}]
    with pytest.raises(ManifestError, match="lesion_roi on some rows"):
        read_manifest(_write_rows(tmp_path / "d.csv", mixed))
    twice = [roi_rows[0], {**roi_rows[1], "lesion_roi": "Lesion_1"}]
    with pytest.raises(ManifestError, match="listed twice"):
        read_manifest(_write_rows(tmp_path / "e.csv", twice))
