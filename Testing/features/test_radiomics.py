"""Radiomics per the protocol: parameter files and their validation, crop-then-resample equal to
pyradiomics on the whole image, PET and CT grids, the fused image, and one row per lesion."""

from __future__ import annotations

import copy
import csv
import logging
import math

import numpy as np
import pytest
import SimpleITK as sitk
from radiomics import featureextractor, imageoperations

from BoneOligoMetLib.cli import main
from BoneOligoMetLib.errors import ConfigError, ParamsError
from BoneOligoMetLib.features.config import ExtractionConfig
from BoneOligoMetLib.features.radiomics import (
    _extractor,
    analysis_grid,
    clamp,
    compute,
    extract_image_features,
    onto_grid,
    reads_beyond_mask,
    tight_grid,
)
from BoneOligoMetLib.features.radiomics_params import PACKAGED, load_params, params_path
from BoneOligoMetLib.features.row import lesion_feature_groups, lesion_features, prepare_case
from BoneOligoMetLib.image.fusion import FusionConfig, fuse
from BoneOligoMetLib.image.geometry import Region, crop_region
from BoneOligoMetLib.image.labels import label_regions
from BoneOligoMetLib.io.images import write_image
from BoneOligoMetLib.synthetic.phantom import generate_patient

# --- synthetic images ------------------------------------------------------------------------


def _image(array_zyx, spacing, origin=(0.0, 0.0, 0.0), dtype=np.float32):
    image = sitk.GetImageFromArray(np.ascontiguousarray(array_zyx, dtype=dtype))
    image.SetSpacing([float(s) for s in spacing])
    image.SetOrigin([float(o) for o in origin])
    return image


@pytest.fixture(scope="module")
def textured():
    """A 0.98×0.98×3.27 mm CT-like image (smooth pattern + noise, HU) and a two-lesion mask."""
    rng = np.random.default_rng(7)
    z, y, x = np.meshgrid(np.arange(24), np.arange(70), np.arange(80), indexing="ij")
    pattern = 300 + 200 * np.sin(x / 4.0) * np.cos(y / 5.0) + 30 * z
    array = pattern + rng.normal(0, 40, pattern.shape)
    array[:, :, :3] = -1000  # some air, as a body CT has
    ct = _image(array, (0.977, 0.977, 3.27), (-31.7, 12.2, -40.3))
    mask = np.zeros(array.shape, np.uint8)
    mask[8:15, 20:42, 30:52] = 1
    mask[10:13, 25:30, 33:40] = 0  # a hole
    mask[16:20, 50:60, 55:66] = 2
    return ct, _image(mask, ct.GetSpacing(), ct.GetOrigin(), np.uint8)


@pytest.fixture(scope="module")
def patient():
    """A small synthetic patient (CT, SUV, lesion labels on the CT grid, liver seed)."""
    return generate_patient(3, "small", n_lesions=2)


def _relative_difference(a: dict, b: dict) -> float:
    assert list(a) == list(b)
    return max(abs(a[k] - b[k]) / max(abs(b[k]), 1e-9) for k in a)


# --- parameter files -------------------------------------------------------------------------


@pytest.mark.parametrize("name", PACKAGED)
def test_packaged_params_pass_both_schemas(name):
    params = load_params(name)
    assert params.source == str(params_path(name))
    assert len(params.digest) == 64
    if name in ("ct", "pet", "petct", "ct_binwidth32"):
        assert params.spacing_mm == (1.0, 1.0, 1.0)  # §2.5: 1×1×1 mm³
        assert params.image == name.split("_")[0]
        classes = set(params.pyradiomics["featureClass"])
        assert classes == {"shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm"}


def test_protocol_numbers():
    assert load_params("pet").settings["binWidth"] == pytest.approx(50 / 63)  # §2.5
    assert load_params("pet").intensity_range == (0.0, 50.0)
    ct = load_params("ct")
    assert ct.intensity_range == (-1000.0, 3000.0)
    span = ct.intensity_range[1] - ct.intensity_range[0]
    assert span / ct.settings["binWidth"] == 400  # default: 400 levels
    assert load_params("ct_binwidth32").settings["binWidth"] == 32
    petct = load_params("petct")
    assert petct.fusion == FusionConfig(0.5, (-1000.0, 3000.0), (0.0, 50.0))


def test_digest_follows_content_not_layout(tmp_path):
    text = params_path("pet").read_text()
    reformatted = tmp_path / "pet_commented.yaml"
    reformatted.write_text("# a comment\n\n" + text.replace("  ", "    "))
    assert load_params(reformatted).digest == load_params("pet").digest
    changed = tmp_path / "pet_changed.yaml"
    changed.write_text(text.replace("binWidth: 0.7936507936507936", "binWidth: 0.5"))
    assert load_params(changed).digest != load_params("pet").digest


def test_unknown_and_invalid_settings_name_the_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("setting:\n  binWidht: 25\n")
    with pytest.raises(ParamsError, match=r"bad\.yaml.*binWidht"):
        load_params(bad)
    bad.write_text("setting:\n  binWidth: -3\n")
    with pytest.raises(ParamsError, match="binWidth"):
        load_params(bad)
    bad.write_text("boneOligoMet:\n  intensityRnage: [0, 50]\n")
    with pytest.raises(ParamsError, match="did you mean 'intensityRange'"):
        load_params(bad)
    bad.write_text("settings:\n  binWidth: 2\n")
    with pytest.raises(ParamsError, match="did you mean 'setting'"):
        load_params(bad)
    bad.write_text("imageType:\n  Gabor: {}\n")
    with pytest.raises(ParamsError, match="Gabor"):
        load_params(bad)
    bad.write_text("setting:\n  normalize: true\n")
    with pytest.raises(ParamsError, match="normalize"):
        load_params(bad)
    with pytest.raises(ParamsError, match="did you mean 'petct'"):
        load_params("pect")


def test_overrides_cannot_bypass_the_schema():
    # pyradiomics' own keyword overrides skip its schema; ours are merged, then validated.
    with pytest.raises(ParamsError, match="binWidth"):
        load_params("ct", overrides={"setting": {"binWidth": -1}})
    with pytest.raises(ParamsError, match="binWitdh"):
        load_params("ct", overrides={"setting": {"binWitdh": 5}})
    with pytest.raises(ParamsError, match="Bogus"):
        load_params("ct", overrides={"featureClass": {"Bogus": None}})
    merged = load_params("ct", overrides={"setting": {"binWidth": 32.0}})
    assert merged.settings["binWidth"] == 32.0
    assert merged.settings["resampledPixelSpacing"] == [1.0, 1.0, 1.0]  # the rest kept
    with pytest.raises(ParamsError, match="fusion alpha"):
        load_params("petct", overrides={"boneOligoMet": {"fusion": {"alpha": 2}}})
    assert ExtractionConfig(fusion=FusionConfig(alpha=0.7)).params("petct").fusion.alpha == 0.7


def test_a_file_for_one_image_refuses_another():
    with pytest.raises(ParamsError, match="made for the pet image"):
        load_params("pet", image="ct")
    with pytest.raises(ConfigError, match="did you mean 'pet_params'"):
        ExtractionConfig.from_mapping({"pet_param": "pet"})
    with pytest.raises(ConfigError, match="images"):
        ExtractionConfig(images=("ct", "mri"))
    with pytest.raises(ConfigError, match="filter"):
        ExtractionConfig(filters=("Gabor",))
    assert ExtractionConfig.from_mapping(ExtractionConfig().as_mapping()) == ExtractionConfig()


def test_filters_add_image_types_through_validation():
    params = ExtractionConfig(filters=("LoG", "Wavelet")).params("ct")
    assert params.pyradiomics["imageType"]["LoG"] == {"sigma": [1.0, 3.0, 5.0]}
    assert "Wavelet" in params.pyradiomics["imageType"]
    assert params.digest != load_params("ct").digest


# --- crop, then resample: the same as pyradiomics on the whole image ---------------------------


def _bounding_region(mask: sitk.Image, label: int) -> Region:
    shapes = sitk.LabelShapeStatisticsImageFilter()
    shapes.Execute(mask)
    box = shapes.GetBoundingBox(label)
    return Region(tuple(box[:3]), tuple(box[3:]), tuple(mask.GetSize()))


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 2.0, 2.0), (0.7, 0.7, 0.7)])
def test_analysis_grid_is_pyradiomics_grid_on_the_whole_mask(textured, spacing):
    ct, mask = textured
    params = load_params("ct", overrides={"setting": {"resampledPixelSpacing": list(spacing)}})
    for label in (1, 2):
        binary = sitk.Cast(sitk.Equal(mask, label), sitk.sitkUInt8)
        region = _bounding_region(binary, 1)
        crop, start = crop_region(binary, region)
        grid = analysis_grid(crop, start, region, params)
        _, expected = imageoperations.resampleImage(
            ct, binary, resampledPixelSpacing=list(spacing), padDistance=5, label=1
        )
        assert grid.GetSize() == expected.GetSize()
        assert np.allclose(grid.GetOrigin(), expected.GetOrigin(), atol=1e-9)
        assert np.allclose(grid.GetSpacing(), expected.GetSpacing())
        assert np.array_equal(sitk.GetArrayFromImage(grid), sitk.GetArrayFromImage(expected))


@pytest.mark.filterwarnings("ignore:the load_module:DeprecationWarning")  # pykwalify
def test_crop_then_resample_equals_pyradiomics_on_the_whole_image(textured):
    ct, mask = textured
    params = load_params({"setting": {"binWidth": 10.0, "resampledPixelSpacing": [1, 1, 1]}})
    extractor = featureextractor.RadiomicsFeatureExtractor(
        {"setting": {"binWidth": 10.0, "resampledPixelSpacing": [1, 1, 1]}}
    )
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    for label in (1, 2):
        ours = extract_image_features(ct, mask, params, label=label)
        whole = extractor.execute(ct, mask, label=label)
        whole = {k: float(v) for k, v in whole.items() if not k.startswith("diagnostics_")}
        assert _relative_difference(ours, whole) < 1e-6


def _lesion_on_grid(textured, params, label=1):
    ct, mask = textured
    binary = sitk.Cast(sitk.Equal(mask, label), sitk.sitkUInt8)
    region = _bounding_region(binary, 1)
    crop, start = crop_region(binary, region)
    grid = analysis_grid(crop, start, region, params)
    return ct, grid


@pytest.mark.filterwarnings("ignore:the load_module:DeprecationWarning")  # pykwalify
@pytest.mark.parametrize("filters", [None, {"LoG": {"sigma": [1.0]}}])
def test_tight_grid_gives_the_padded_grids_features(textured, filters):
    """Cut to the mask's box, the images are interpolated only where features are computed:
    the values are the same, bit for bit; a filter reads around the lesion and keeps the pad."""
    overrides = {"imageType": {"Original": {}, **filters}} if filters else None
    params = load_params("ct", overrides=overrides, image="ct")
    for label in (1, 2):
        ct, padded = _lesion_on_grid(textured, params, label)
        tight = tight_grid(padded, params)
        if filters:
            assert reads_beyond_mask(params)
            assert tight is padded
            continue
        assert np.prod(tight.GetSize()) < np.prod(padded.GetSize())
        assert (sitk.GetArrayViewFromImage(tight) == 0).any()  # lesion 2 fills its box
        values = [
            compute(clamp(onto_grid(ct, grid, params), params), grid, params)
            for grid in (padded, tight)
        ]
        assert values[0] == values[1]


@pytest.mark.filterwarnings("ignore:the load_module:DeprecationWarning")  # pykwalify
@pytest.mark.parametrize(
    "overrides",
    [
        None,
        {"imageType": {"Original": {}, "LoG": {"sigma": [1.0, 2.0]}}},
        {"featureClass": {"glcm": None}},
    ],
)
def test_mask_checked_once_for_several_images_gives_pyradiomics_execute(textured, overrides):
    """compute(shared=...) skips pyradiomics' repeated mask preparation, not its results."""
    params = load_params("ct", overrides=overrides, image="ct")
    ct, grid = _lesion_on_grid(textured, params)
    images = [onto_grid(ct, grid, params), onto_grid(sitk.Abs(ct), grid, params)]
    images.append(sitk.Cast(images[0] * 0.5 + 30.0, sitk.sitkFloat32))
    shared: dict = {}
    for number, image in enumerate(images):
        shape = number == 0
        ours = compute(image, grid, params, shape=shape, shared=shared)
        plain = _extractor(params, shape).execute(image, grid, label=1)
        plain = {k: float(v) for k, v in plain.items() if not k.startswith("diagnostics_")}
        assert list(ours) == list(plain)
        assert ours == plain
        assert any(k.startswith("original_shape_") for k in ours) == (
            shape and "shape" in _extractor(params, True).enabledFeatures
        )
    assert len(shared) == 1  # one mask preparation for the three images


def test_clamp_returns_the_image_when_nothing_is_outside_the_range():
    params = load_params("pet")
    inside = _image([[[0.0, 12.5, 50.0]]], (1, 1, 1))
    assert clamp(inside, params) is inside
    outside = clamp(_image([[[-1.0, 12.5, 60.0]]], (1, 1, 1)), params)
    assert sitk.GetArrayFromImage(outside).ravel().tolist() == [0.0, 12.5, 50.0]


def test_features_do_not_depend_on_the_crop_margin(textured):
    ct, mask = textured
    params = load_params("ct")
    narrow = extract_image_features(ct, mask, params, label=1)
    wide = extract_image_features(ct, mask, params, label=1, margin_mm=40.0)
    assert _relative_difference(narrow, wide) < 1e-6


@pytest.mark.filterwarnings("ignore:the load_module:DeprecationWarning")  # pykwalify
def test_pet_on_its_own_grid_meets_the_ct_grid_mask_on_the_1mm_grid(patient):
    # pyradiomics resamples image and mask onto the grid of the mask when they differ; a PET
    # crop with a CT-grid mask gives the same features as pyradiomics on the whole PET.
    params = load_params("pet")
    lesion = sitk.Cast(sitk.Equal(patient.lesion_labels, 1), sitk.sitkUInt8)
    ours = extract_image_features(patient.suv, lesion, params, label=1)
    settings = copy.deepcopy(params.pyradiomics)
    extractor = featureextractor.RadiomicsFeatureExtractor(settings)
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    clamped = sitk.Clamp(patient.suv, sitk.sitkFloat32, 0.0, 50.0)  # within range already
    whole = {
        k: float(v)
        for k, v in extractor.execute(clamped, lesion, label=1).items()
        if not k.startswith("diagnostics_")
    }
    assert _relative_difference(ours, whole) < 1e-5


# --- the fused image -------------------------------------------------------------------------


def test_fused_image_formula_and_grid():
    ct = _image([[[-1000.0, 1000.0, 3000.0, 5000.0]]], (1, 1, 1))
    suv = _image([[[0.0, 25.0, 50.0, 80.0]]], (1, 1, 1))
    fused = sitk.GetArrayFromImage(fuse(ct, suv))[0, 0]
    expected = 0.5 * np.clip((np.array([-1000, 1000, 3000, 5000]) + 1000) / 4000, 0, 1)
    expected += 0.5 * np.clip(np.array([0, 25, 50, 80]) / 50, 0, 1)
    assert np.allclose(fused, expected)
    assert np.allclose(
        sitk.GetArrayFromImage(fuse(ct, suv, FusionConfig(alpha=1.0)))[0, 0],
        np.clip((np.array([-1000, 1000, 3000, 5000]) + 1000) / 4000, 0, 1),
    )
    # A PET on a coarser grid is interpolated onto the CT grid; geometry is the CT's.
    ct = _image(np.zeros((4, 8, 8)), (1, 1, 1))
    pet = _image(np.full((2, 4, 4), 25.0), (2, 2, 2), origin=(0.5, 0.5, 0.5))
    fused = fuse(ct, pet)
    assert fused.GetSize() == ct.GetSize()
    assert fused.GetOrigin() == ct.GetOrigin()
    inner = sitk.GetArrayFromImage(fused)[1:3, 2:6, 2:6]
    assert np.allclose(inner, 0.5 * 0.25 + 0.5 * 0.5)
    with pytest.raises(ValueError, match="alpha"):
        FusionConfig(alpha=1.5)
    with pytest.raises(ValueError, match="suvRange"):
        FusionConfig(suv_range=(50, 0))


# --- one row per lesion ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def case(patient):
    return prepare_case(
        patient.ct, patient.suv, patient.lesion_labels, liver_seed_lps_mm=patient.liver_seed_lps_mm
    )


def test_row_columns_are_prefixed_and_ordered(case):
    rows = [lesion_features(case, label, clinical={"age": 61, "clin_subtype": "HR+"})
            for label in case.labels]  # fmt: skip
    columns = list(rows[0])
    assert columns[:3] == ["lesion_label", "clin_age", "clin_subtype"]
    groups = [c.split("_")[0] for c in columns[3:]]
    assert groups == sorted(groups, key=["met", "ct", "pet", "petct"].index)
    assert all(list(row) == columns for row in rows)  # stable order across lesions
    for prefix in ("ct_", "pet_", "petct_"):
        names = [c[len(prefix) :] for c in columns if c.startswith(prefix)]
        assert names[0].startswith("original_shape_")
        assert "original_glcm_JointAverage" in names
        assert "original_ngtdm_Busyness" in names
        assert "original_glcm_SumAverage" not in names  # = 2 × JointAverage
    for row in rows:
        assert all(not (isinstance(v, float) and not math.isfinite(v)) for v in row.values()), (
            "no NaN"
        )
        assert row["met_liver_suv_mean"] > 0
        assert row["met_hu_mean"] is not None
        # One mask on one 1 mm grid: the same shape for the three images.
        shape = [c for c in columns if c.startswith("ct_original_shape_")]
        for name in shape:
            assert row[name] == row[name.replace("ct_", "pet_", 1)]
            assert row[name] == row[name.replace("ct_", "petct_", 1)]


def test_row_radiomics_equal_the_single_image_path(case, patient):
    config = ExtractionConfig()
    groups = lesion_feature_groups(case, 1, config)
    lesion = sitk.Cast(sitk.Equal(patient.lesion_labels, 1), sitk.sitkUInt8)
    ct = extract_image_features(patient.ct, lesion, config.params("ct"), prefix="ct_")
    pet = extract_image_features(patient.suv, lesion, config.params("pet"), prefix="pet_")
    assert _relative_difference(groups["ct"], ct) < 1e-6
    assert _relative_difference(groups["pet"], pet) < 1e-6
    # metabolic parameters are those of metabolic.py on the PET's own grid
    from BoneOligoMetLib.lesions.metabolic import lesion_metabolics

    reference = lesion_metabolics(patient.suv, patient.lesion_labels, 1, ct=patient.ct)
    assert groups["met"]["met_suv_max"] == pytest.approx(reference.suv_max)
    assert groups["met"]["met_suv_peak"] == pytest.approx(reference.suv_peak)
    assert groups["met"]["met_hu_mean"] == pytest.approx(reference.hu_mean)


def test_fusion_override_changes_only_petct(case):
    base = lesion_feature_groups(case, 1, ExtractionConfig(images=("petct",), metabolic=False))
    ct_heavy = lesion_feature_groups(
        case, 1, ExtractionConfig(images=("petct",), metabolic=False, fusion=FusionConfig(0.9))
    )
    assert base["petct"]["petct_original_firstorder_Mean"] != pytest.approx(
        ct_heavy["petct"]["petct_original_firstorder_Mean"]
    )
    assert ExtractionConfig(fusion=FusionConfig(0.9)).group_digest("petct") != (
        ExtractionConfig().group_digest("petct")
    )
    assert ExtractionConfig(fusion=FusionConfig(0.9)).group_digest("ct") == (
        ExtractionConfig().group_digest("ct")
    )


def test_label_regions_reads_only_lesion_slices(patient):
    regions = label_regions(patient.lesion_labels)
    shapes = sitk.LabelShapeStatisticsImageFilter()
    shapes.Execute(patient.lesion_labels)
    for label in shapes.GetLabels():
        box = shapes.GetBoundingBox(label)
        assert regions[label] == Region(box[:3], box[3:], patient.lesion_labels.GetSize())
    empty = sitk.Image(patient.lesion_labels.GetSize(), sitk.sitkUInt8)
    with pytest.raises(ValueError, match="empty"):
        label_regions(empty)
    halves = sitk.Cast(patient.lesion_labels, sitk.sitkFloat32) * 0.5
    with pytest.raises(ValueError, match="non-integer"):
        label_regions(halves)


def test_unit_and_label_errors_name_the_case(patient):
    with pytest.raises(ValueError, match=r"BOM9: PET.*Bq/mL"):
        prepare_case(patient.ct, patient.pet_bqml, patient.lesion_labels, name="BOM9")
    case = prepare_case(patient.ct, patient.suv, patient.lesion_labels, name="BOM9")
    with pytest.raises(ValueError, match=r"BOM9: lesion label 7 not found"):
        lesion_features(case, 7)


def _with(image, values_at):
    """A copy of ``image`` with {(x, y, z) index: value} written (float32)."""
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    for (x, y, z), value in values_at.items():
        array[z, y, x] = value
    copy_ = sitk.GetImageFromArray(array)
    copy_.CopyInformation(image)
    return copy_


def _unsampled_index(image, near_xyz):
    """The voxel index nearest ``near_xyz`` (x, y, z) in a slice and row the unit sample skips."""
    from BoneOligoMetLib.image.units import sample_slices

    nx, ny, nz = image.GetSize()
    index = np.arange(nz * ny).reshape(nz, ny, 1).repeat(nx, axis=2)  # slice and row numbers
    sampled = set(np.unique(sample_slices(index)).tolist())
    x, y, z = near_xyz
    for dz in range(nz):
        for k in (z + dz, z - dz):
            if 0 <= k < nz and k * ny + y not in sampled:
                return (x, y, k)
    raise AssertionError("every slice sampled")


def _lesion_voxel(patient, label, on):
    """A voxel index of image ``on`` at the centre of lesion ``label``'s box (CT-grid labels)."""
    region = label_regions(patient.lesion_labels)[label]
    centre = [s + n // 2 for s, n in zip(region.start, region.size)]
    point = patient.lesion_labels.TransformIndexToPhysicalPoint(centre)
    return on.TransformPhysicalPointToIndex(point)


def test_nan_in_a_lesion_crop_is_refused_naming_the_lesion(patient):
    """prepare_case judges units on sampled slices; each crop a lesion reads is checked whole."""
    pet_voxel = _unsampled_index(patient.suv, _lesion_voxel(patient, 1, patient.suv))
    nan_pet = _with(patient.suv, {pet_voxel: np.nan})
    case = prepare_case(patient.ct, nan_pet, patient.lesion_labels, name="BOM9")  # not sampled
    with pytest.raises(ValueError, match=r"^BOM9 lesion 1: PET crop: 1 voxel\(s\) are NaN"):
        lesion_features(case, 1)
    metabolic_off = ExtractionConfig(metabolic=False, images=("pet",))
    with pytest.raises(ValueError, match=r"BOM9 lesion 1: PET crop: .*NaN"):
        lesion_feature_groups(case, 1, metabolic_off)
    negative = prepare_case(
        patient.ct, _with(patient.suv, {pet_voxel: -4.0}), patient.lesion_labels, name="BOM9"
    )
    with pytest.raises(ValueError, match="BOM9 lesion 1: PET crop: minimum -4 is not a plausible"):
        lesion_features(negative, 1)
    ct_voxel = _unsampled_index(patient.ct, _lesion_voxel(patient, 2, patient.ct))
    nan_ct = _with(patient.ct, {ct_voxel: np.inf})  # a float CT can hold NaN and inf
    case = prepare_case(nan_ct, patient.suv, patient.lesion_labels, name="BOM9")
    with pytest.raises(ValueError, match=r"BOM9 lesion 2: CT crop: 1 voxel\(s\) are NaN"):
        lesion_features(case, 2)


def test_nan_in_the_sample_or_the_liver_sphere_is_refused_by_prepare_case(patient):
    from BoneOligoMetLib.image.units import sample_slices

    nx, ny, nz = patient.suv.GetSize()
    index = np.arange(nz * ny * nx).reshape(nz, ny, nx)
    sampled = int(sample_slices(index).ravel()[len(sample_slices(index).ravel()) // 2])
    z, rest = divmod(sampled, ny * nx)
    y, x = divmod(rest, nx)
    nan_pet = _with(patient.suv, {(x, y, z): np.nan})
    with pytest.raises(ValueError, match=r"^BOM9: PET: 1 voxel\(s\) are NaN or infinite$"):
        prepare_case(patient.ct, nan_pet, patient.lesion_labels, name="BOM9")
    seed = patient.liver_seed_lps_mm
    liver_voxel = _unsampled_index(patient.suv, patient.suv.TransformPhysicalPointToIndex(seed))
    nan_liver = _with(patient.suv, {liver_voxel: np.nan})
    prepare_case(patient.ct, nan_liver, patient.lesion_labels, name="BOM9")  # no liver: fine
    with pytest.raises(ValueError, match=r"^BOM9: PET: NaN or infinite voxels in the 30 mm liver"):
        prepare_case(
            patient.ct, nan_liver, patient.lesion_labels, liver_seed_lps_mm=seed, name="BOM9"
        )


def test_nan_outside_every_voxel_read_changes_nothing(patient, case):
    """What is not read (not sampled, in no crop, not in the liver sphere) cannot change a
    value: the extraction goes on with the same numbers."""
    far = _unsampled_index(patient.suv, (2, 2, 2))
    nan_pet = _with(patient.suv, {far: np.nan})
    unread = prepare_case(
        patient.ct,
        nan_pet,
        patient.lesion_labels,
        liver_seed_lps_mm=patient.liver_seed_lps_mm,
    )
    assert lesion_features(unread, 1) == lesion_features(case, 1)


def test_wrong_ct_units_and_empty_labels_are_refused_by_prepare_case(patient):
    shifted = sitk.Cast(patient.ct, sitk.sitkFloat32) + 1024.0
    with pytest.raises(ValueError, match=r"^BOM9: CT: minimum value .* rescale intercept"):
        prepare_case(shifted, patient.suv, patient.lesion_labels, name="BOM9")
    empty = sitk.Image(patient.lesion_labels.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(patient.lesion_labels)
    with pytest.raises(ValueError, match=r"^BOM9: lesion label image: empty"):
        prepare_case(patient.ct, patient.suv, empty, name="BOM9")


def test_a_lesion_filling_its_box_on_the_1mm_grid(patient):
    """A cuboid lesion: the cut analysis grid keeps background around it."""
    labels = sitk.Image(patient.lesion_labels.GetSize(), sitk.sitkUInt8)
    labels.CopyInformation(patient.lesion_labels)
    labels[90:96, 80:86, 70:73] = 1
    case = prepare_case(patient.ct, patient.suv, labels)
    row = lesion_features(case, 1)
    assert row["ct_original_shape_VoxelVolume"] > 0


# --- the command -------------------------------------------------------------------------------


def test_radiomics_command(tmp_path, patient, capsys):
    write_image(patient.ct, tmp_path / "ct.nii.gz")
    write_image(patient.suv, tmp_path / "suv.nii.gz")
    write_image(patient.lesion_labels, tmp_path / "lesions.nii.gz")
    out = tmp_path / "ct.csv"
    image, mask = str(tmp_path / "ct.nii.gz"), str(tmp_path / "lesions.nii.gz")
    args = ["radiomics", "--image", image, "--mask", mask, "--label", "2", "--prefix", "ct_",
            "-o", str(out)]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "ct_original_glcm_Contrast" in printed
    with out.open() as handle:
        row = next(csv.DictReader(handle))
    assert row["lesion_label"] == "2"
    lesion = sitk.Cast(sitk.Equal(patient.lesion_labels, 2), sitk.sitkUInt8)
    expected = extract_image_features(patient.ct, lesion, load_params("ct"), prefix="ct_")
    assert float(row["ct_original_firstorder_Mean"]) == pytest.approx(
        expected["ct_original_firstorder_Mean"]
    )
    # A PET params file on the CT: the units check refuses it (one line, exit 2).
    args = ["radiomics", "--image", image, "--mask", mask, "--label", "2", "--params", "pet"]
    assert main(args) == 2
    assert "not SUV" in capsys.readouterr().err
