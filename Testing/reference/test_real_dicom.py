"""Real scanner DICOM: multi-bed PET with uneven slice steps at bed junctions, and slices that
are missing, duplicated or cut short.

The multi-bed series copies what a GE Discovery writes: 3.27 mm steps within a bed and
3.19–3.29 mm where two beds meet, each bed with its own acquisition and frame time, decay factor
and per-slice rescale slope, DecayCorrection START to the series time. SUVbw is checked against
an independent QIBA computation from the raw tags of each file (the test's own arithmetic).
"""

from __future__ import annotations

import datetime as dt
import logging
import re

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from BoneOligoMetLib.cli import main
from BoneOligoMetLib.errors import GeometryError, ImageReadError
from BoneOligoMetLib.io.images import read_image
from BoneOligoMetLib.io.slices import SNAP_FRACTION, slice_geometry
from BoneOligoMetLib.io.suv import pet_dicom_to_suv, read_suv_parameters
from BoneOligoMetLib.synthetic.dicom_ct import write_ct_series
from BoneOligoMetLib.synthetic.dicom_pet import write_pet_series

STEP_MM = 3.27
BED_SLICES = (8, 8, 8, 8, 8, 8)  # six beds: five junctions
JUNCTION_STEPS_MM = (3.19, 3.29, 3.23, 3.21, 3.25)  # as measured in a real GE Discovery series
INJECTION = dt.datetime(2024, 3, 1, 9, 2, 30)
SERIES = dt.datetime(2024, 3, 1, 10, 5, 0)
ORIGIN = (-40.0, -30.0, 250.0)
DIRECTION = (1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, -1.0)  # head first: slices run towards -z
SPACING_XY = (4.0, 4.2)


def _offsets_mm() -> list[float]:
    """Distance of each slice from the first along the normal: even within a bed, a junction
    step where the next bed starts."""
    starts = set(np.cumsum(BED_SLICES)[:-1].tolist())
    junctions = iter(JUNCTION_STEPS_MM)
    offsets = [0.0]
    for k in range(1, sum(BED_SLICES)):
        offsets.append(offsets[-1] + (next(junctions) if k in starts else STEP_MM))
    return offsets


def _activity(values_kji: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(values_kji)
    image.SetSpacing((*SPACING_XY, STEP_MM))
    image.SetOrigin(ORIGIN)
    image.SetDirection(DIRECTION)
    return image


def _in_plane_ramp() -> np.ndarray:
    """(k, j, i) Bq/mL: 6000–9000 across the slice, the same in every slice, but for one hot
    voxel (j = i = 0) of 9500 + 20 k that gives every slice its own rescale slope."""
    ramp = np.linspace(6000.0, 9000.0, 36).reshape(6, 6)
    values = np.repeat(ramp[None], sum(BED_SLICES), axis=0)
    values[:, 0, 0] = 9500.0 + 20.0 * np.arange(sum(BED_SLICES))
    return values


CONSTANT = np.ones((6, 6), dtype=bool)
CONSTANT[0, 0] = False  # the voxels that are the same in every slice


def _linear_in_z(offsets) -> np.ndarray:
    """(k, j, i) Bq/mL: 3000 + 20 per mm along the normal, times a small in-plane ramp."""
    plane = np.linspace(0.9, 1.1, 36).reshape(6, 6)
    return np.array([(3000.0 + 20.0 * z) * plane for z in offsets])


def _write_multibed(folder, values_kji, **options):
    settings = dict(
        weight_kg=71.5,
        injected_dose_bq=352e6,
        injection_datetime=INJECTION,
        series_datetime=SERIES,
        beds=BED_SLICES,
        bed_duration_s=150.0,
        slice_positions_mm=_offsets_mm(),
    )
    settings.update(options)
    return write_pet_series(_activity(values_kji), folder, **settings)


def _qiba_suv(path) -> tuple[np.ndarray, np.ndarray]:
    """(SUVbw plane, ImagePositionPatient) of one file by the QIBA pseudo-code for BQML and
    DecayCorrection START, straight from its tags."""
    ds = pydicom.dcmread(path)
    assert (ds.Units, ds.DecayCorrection) == ("BQML", "START")
    isotope = ds.RadiopharmaceuticalInformationSequence[0]
    injection = dt.datetime.strptime(isotope.RadiopharmaceuticalStartDateTime, "%Y%m%d%H%M%S")
    series = dt.datetime.strptime(ds.SeriesDate + ds.SeriesTime, "%Y%m%d%H%M%S")
    acquisition = dt.datetime.strptime(ds.SeriesDate + ds.AcquisitionTime, "%Y%m%d%H%M%S")
    assert series <= acquisition  # QIBA: then the series time is the scan reference
    decay_s = (series - injection).total_seconds()
    dose_at_scan = float(isotope.RadionuclideTotalDose) * 2 ** (
        -decay_s / float(isotope.RadionuclideHalfLife)
    )
    bqml = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    suv = bqml * float(ds.PatientWeight) * 1000.0 / dose_at_scan
    return suv, np.array([float(v) for v in ds.ImagePositionPatient])


def test_written_series_has_ge_multibed_tags(tmp_path):
    files = _write_multibed(tmp_path, _in_plane_ramp())
    headers = [pydicom.dcmread(path, stop_before_pixels=True) for path in files]
    z = [float(ds.ImagePositionPatient[2]) for ds in headers]
    steps = np.round(-np.diff(z), 4)  # the normal is -z
    assert sorted(set(steps.tolist())) == sorted({STEP_MM, *JUNCTION_STEPS_MM})
    assert np.count_nonzero(steps != STEP_MM) == 5
    assert len({ds.AcquisitionTime for ds in headers}) == 6
    assert len({ds.FrameReferenceTime for ds in headers}) == 6
    assert len({ds.DecayFactor for ds in headers}) == 6
    assert len({ds.RescaleSlope for ds in headers}) == 48


def test_multibed_geometry_is_a_regular_grid_from_the_first_slice(tmp_path, caplog):
    files = _write_multibed(tmp_path, _in_plane_ramp())
    datasets = [pydicom.dcmread(path, stop_before_pixels=True) for path in files]
    with caplog.at_level(logging.WARNING):
        geometry = slice_geometry(datasets, [str(path) for path in files])
        assert not caplog.records  # nothing yet: an error found later stays the only message
        assert geometry.stack(np.zeros((48, 6, 6))).shape == (48, 6, 6)
    offsets = _offsets_mm()
    # Extent 42 × 3.27 + 16.17 = 153.51 mm = 46.94 spacings: 48 planes, the last 0.18 mm past
    # the last slice.
    assert offsets[-1] == pytest.approx(153.51)
    assert geometry.resampled
    assert geometry.size_z == 48
    assert geometry.spacing == pytest.approx((*SPACING_XY, STEP_MM))
    assert geometry.origin == pytest.approx(ORIGIN)
    assert geometry.direction == pytest.approx(DIRECTION)
    assert geometry.uneven_steps == 5
    assert geometry.largest_step_deviation_mm == pytest.approx(0.08)
    assert geometry.step_range_mm == pytest.approx((3.19, 3.29))
    # After the beds the slices drift off the 3.27 mm grid: 0.08 − 0.02 + 0.04 + 0.06 + 0.02.
    assert geometry.largest_offset_mm == pytest.approx(0.18)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "largest deviation 0.08 mm" in warnings[0]
    assert "\n" not in warnings[0]


def test_multibed_suv_matches_independent_qiba(tmp_path):
    files = _write_multibed(tmp_path, _in_plane_ramp())
    image, parameters = pet_dicom_to_suv(tmp_path)
    assert image.GetSize() == (6, 6, 48)
    np.testing.assert_allclose(image.GetOrigin(), ORIGIN, atol=1e-6)
    np.testing.assert_allclose(image.GetSpacing(), (*SPACING_XY, STEP_MM), atol=1e-9)
    np.testing.assert_allclose(image.GetDirection(), DIRECTION, atol=1e-12)
    suv = sitk.GetArrayFromImage(image)
    qiba = [_qiba_suv(path)[0] for path in files]
    # Outside the hot voxel the activity is constant along z (int16 rounding differs per
    # slice by < 3e-5), so every grid plane can be compared with every true slice.
    for plane in suv:
        for expected in qiba:
            np.testing.assert_allclose(plane[CONSTANT], expected[CONSTANT], rtol=1e-4)
    # The factor itself: 71 500 g / (352e6 Bq × 2^(−3750 s / 6586.2 s)) = 3.0141e-4 g/mL.
    assert parameters.suv_factor == pytest.approx(71_500 / (352e6 * 2 ** (-3750 / 6586.2)))
    assert abs(parameters.suv_factor - 3.0141e-4) < 1e-8
    rows = {p.name: p.value for p in parameters.provenance}
    assert rows["slice spacing"] == "3.27 mm, resampled to 48 planes"
    assert rows["largest step deviation"] == "0.08 mm (steps 3.19–3.29 mm)"


def test_multibed_resampling_is_linear_between_true_slices(tmp_path):
    offsets = _offsets_mm()
    files = _write_multibed(tmp_path, _linear_in_z(offsets))
    suv = sitk.GetArrayFromImage(pet_dicom_to_suv(tmp_path)[0])
    qiba = [_qiba_suv(path) for path in files]
    first = qiba[0][1]
    true_mm = [float(-(position - first)[2]) for _values, position in qiba]  # along the normal
    np.testing.assert_allclose(true_mm, offsets, atol=1e-6)
    coinciding = 0
    for j, plane in enumerate(suv):
        z = j * STEP_MM
        k = int(np.searchsorted(true_mm, z, side="right")) - 1
        nearest = int(np.argmin(np.abs(np.array(true_mm) - z)))
        if abs(true_mm[nearest] - z) <= SNAP_FRACTION * STEP_MM:  # a true slice: its values
            np.testing.assert_allclose(plane, qiba[nearest][0], rtol=1e-6)
            coinciding += 1
        elif k == len(true_mm) - 1:  # the last plane, past the last slice
            np.testing.assert_allclose(plane, qiba[k][0], rtol=1e-6)
        else:  # linear between the slices around it; activity is linear in z, so exact
            t = (z - true_mm[k]) / (true_mm[k + 1] - true_mm[k])
            np.testing.assert_allclose(plane, (1 - t) * qiba[k][0] + t * qiba[k + 1][0], rtol=1e-6)
            np.testing.assert_allclose(plane, qiba[0][0] * (3000 + 20 * z) / 3000, rtol=1e-4)
    assert coinciding == 8  # the first bed lies on the grid


def test_generic_reader_gives_the_same_grid_for_pet_and_ct(tmp_path):
    offsets = _offsets_mm()
    _write_multibed(tmp_path / "pet", _linear_in_z(offsets))
    hu = np.round(np.array([(-500.0 + 5.0 * z) * np.ones((6, 6)) for z in offsets]))
    write_ct_series(
        _activity(hu), tmp_path / "ct", series_datetime=SERIES, slice_positions_mm=offsets
    )
    pet = read_image(tmp_path / "pet")
    ct = read_image(tmp_path / "ct")
    for image in (pet, ct):
        assert image.GetSize() == (6, 6, 48)
        np.testing.assert_allclose(image.GetOrigin(), ORIGIN, atol=1e-6)
        np.testing.assert_allclose(image.GetSpacing(), (*SPACING_XY, STEP_MM), atol=1e-9)
        np.testing.assert_allclose(image.GetDirection(), DIRECTION, atol=1e-12)
    ct_values = sitk.GetArrayFromImage(ct)
    for j in range(8):  # the first bed: grid planes are the true slices, HU exactly
        np.testing.assert_array_equal(ct_values[j], hu[j])
    # Between slices, linear in z: HU −500 + 5 per mm at the grid plane.
    expected = np.array([-500.0 + 5.0 * min(j * STEP_MM, offsets[-1]) for j in range(48)])
    np.testing.assert_allclose(ct_values[:, 0, 0], expected, atol=0.51)  # whole-HU rounding
    pet_bqml = sitk.GetArrayFromImage(pet)
    plane = np.linspace(0.9, 1.1, 36).reshape(6, 6)
    expected_pet = np.array(
        [(3000 + 20 * min(j * STEP_MM, offsets[-1])) * plane for j in range(48)]
    )
    np.testing.assert_allclose(pet_bqml, expected_pet, rtol=1e-4)


def _set_position(path, position):
    ds = pydicom.dcmread(path)
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.save_as(path)


def _read_all_ways(folder):
    """The errors of pet_dicom_to_suv, read_suv_parameters and read_image on one folder."""
    messages = []
    for read in (pet_dicom_to_suv, read_suv_parameters, read_image):
        with pytest.raises((GeometryError, ImageReadError)) as caught:
            read(folder)
        messages.append(str(caught.value))
    return messages


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("missing", r"PET_0011\.dcm and .*PET_0013\.dcm: slices 6\.54 mm apart .*1 slice"),
        ("duplicate", r"PET_0011\.dcm and .*PET_0012\.dcm: same slice position"),
        ("shifted", r"PET_0011\.dcm and .*PET_0012\.dcm: uneven slice spacing, 4\.27 mm"),
        ("missing junction", r"PET_0008\.dcm and .*PET_0010\.dcm: slices 6\.46 mm apart"),
    ],
)
def test_missing_duplicate_or_shifted_slices_are_refused_naming_both_files(
    tmp_path, damage, expected
):
    files = _write_multibed(tmp_path, _in_plane_ramp())
    if damage == "missing":
        files[11].unlink()
    elif damage == "missing junction":  # the first slice of bed 2: 3.19 + 3.27 mm
        files[8].unlink()
    else:
        neighbour = pydicom.dcmread(files[10]).ImagePositionPatient
        moved = [float(neighbour[0]), float(neighbour[1]), float(neighbour[2])]
        if damage == "shifted":  # 1 mm further along the normal (−z): a 4.27 mm step
            moved[2] -= STEP_MM + 1.0
        _set_position(files[11], moved)
    for message in _read_all_ways(tmp_path):
        assert "\n" not in message
        assert re.search(expected, message), message


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        # 6 × 6 int16 = 72 bytes of pixel data; 40 cut off the end
        ("pixels", r"PET_0005\.dcm: truncated DICOM file: pixel data holds 32 of 72 bytes"),
        ("header", r"PET_0005\.dcm: truncated DICOM file: ends inside tag \("),
        ("garbage", r"PET_0005\.dcm: (not a readable|truncated) DICOM file: "),
        ("empty", r"PET_0005\.dcm: not a readable DICOM file: "),
    ],
)
def test_cut_or_unreadable_slice_is_named_not_a_missing_slice(tmp_path, damage, expected):
    files = _write_multibed(tmp_path, _in_plane_ramp())
    target = files[4]
    size = target.stat().st_size
    if damage == "pixels":
        target.write_bytes(target.read_bytes()[: size - 40])
    elif damage == "header":
        target.write_bytes(target.read_bytes()[:700])
    elif damage == "garbage":
        target.write_bytes(b"\x00" * 128 + b"DICM" + bytes(range(256)) * 4)
    else:
        target.write_bytes(b"")
    assert str(target) not in sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(tmp_path))
    for message in _read_all_ways(tmp_path):
        assert "\n" not in message
        assert re.search(expected, message), message
        assert "slice(s) missing" not in message
    if damage in ("pixels", "header"):  # a list of files reaches the file itself
        with pytest.raises(ImageReadError, match=expected):
            pet_dicom_to_suv(files)


def test_plainly_non_dicom_files_in_the_folder_are_ignored(tmp_path):
    _write_multibed(tmp_path, _in_plane_ramp())
    (tmp_path / "DICOMDIR").write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00")
    (tmp_path / "notes.txt").write_text("scanned on a GE Discovery")
    (tmp_path / "export.xml").write_text("<study/>")
    (tmp_path / "meta.json").write_text("{}")
    (tmp_path / "snapshot.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    (tmp_path / "README").write_text("no suffix, no preamble, not DICOM")
    image, _parameters = pet_dicom_to_suv(tmp_path)
    assert image.GetSize() == (6, 6, 48)
    assert read_image(tmp_path).GetSize() == (6, 6, 48)


def test_cli_junction_series_prints_the_resampling_line(tmp_path, capsys):
    _write_multibed(tmp_path / "pet", _in_plane_ramp())
    output = tmp_path / "suv.nii.gz"
    assert main(["suv", str(tmp_path / "pet"), "-o", str(output)]) == 0
    printed = capsys.readouterr().out
    lines = [line for line in printed.splitlines() if line.startswith("largest step deviation")]
    assert len(lines) == 1
    assert "0.08 mm (steps 3.19–3.29 mm)" in lines[0]
    assert max(len(line) for line in printed.splitlines()) < 140  # the table stays readable
    assert sitk.ReadImage(str(output)).GetSize() == (6, 6, 48)


@pytest.mark.parametrize(
    ("damage", "names"),
    [
        ("missing", ["PET_0011.dcm", "PET_0013.dcm", "missing"]),
        ("truncated", ["PET_0005.dcm", "truncated DICOM file", "pixel data holds"]),
        ("late injection", ["RadiopharmaceuticalStartDateTime", "--injection-time"]),
    ],
)
def test_cli_refuses_with_one_line_and_writes_nothing(tmp_path, capsys, damage, names):
    options = {}
    if damage == "late injection":
        options["injection_datetime"] = SERIES + dt.timedelta(minutes=20)
    files = _write_multibed(tmp_path / "pet", _in_plane_ramp(), **options)
    if damage == "missing":
        files[11].unlink()
    elif damage == "truncated":
        files[4].write_bytes(files[4].read_bytes()[:-40])
    output = tmp_path / "out.nii.gz"
    assert main(["suv", str(tmp_path / "pet"), "-o", str(output)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    for name in names:
        assert name in lines[0]
    assert not output.exists()
    assert captured.out == ""


def test_file_cut_after_the_listing_is_named_by_the_reader(tmp_path):
    from BoneOligoMetLib.io.dicom_series import list_dicom_series, read_dicom_series

    files = _write_multibed(tmp_path, _in_plane_ramp())
    (series,) = list_dicom_series(tmp_path)
    files[4].write_bytes(files[4].read_bytes()[:-40])  # GDCM then fails on it
    with pytest.raises(ImageReadError, match=r"PET_0005\.dcm: truncated DICOM file: pixel data"):
        read_dicom_series(series)


def test_cli_process_stderr_one_warning_on_success_one_error_on_failure(tmp_path):
    # In a real process (no pytest log capture): the resampling warning is logged only once
    # the volume is read, so a refused series shows its error alone.
    import os
    import subprocess
    import sys
    from pathlib import Path

    import BoneOligoMetLib

    _write_multibed(tmp_path / "good", _in_plane_ramp())
    late = SERIES + dt.timedelta(minutes=20)
    _write_multibed(tmp_path / "late", _in_plane_ramp(), injection_datetime=late)
    env = {**os.environ, "PYTHONPATH": str(Path(BoneOligoMetLib.__file__).parents[1])}

    def run(name):
        command = [sys.executable, "-m", "BoneOligoMetLib", "suv", str(tmp_path / name)]
        command += ["-o", str(tmp_path / f"{name}.nii.gz")]
        return subprocess.run(command, capture_output=True, text=True, env=env, check=False)

    good, bad = run("good"), run("late")
    assert good.returncode == 0
    assert len(good.stderr.splitlines()) == 1
    assert "largest deviation 0.08 mm" in good.stderr
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert len(bad.stderr.splitlines()) == 1
    assert "RadiopharmaceuticalStartDateTime" in bad.stderr
    assert "resampled" not in bad.stderr
    assert not (tmp_path / "late.nii.gz").exists()


def test_generic_reader_sorts_files_given_in_any_order(tmp_path):
    from dataclasses import replace

    from BoneOligoMetLib.io.dicom_series import list_dicom_series, read_dicom_series

    offsets = _offsets_mm()
    _write_multibed(tmp_path, _linear_in_z(offsets))
    (series,) = list_dicom_series(tmp_path)
    reference = read_dicom_series(series)
    shuffled = replace(series, files=tuple(np.random.default_rng(1).permutation(series.files)))
    assert shuffled.files != series.files
    image = read_dicom_series(shuffled)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(reference))
    assert image.GetOrigin() == reference.GetOrigin()
    assert image.GetSpacing() == reference.GetSpacing()
