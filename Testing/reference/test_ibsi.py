"""The project's radiomics path against the IBSI 1 digital phantom's consensus values.

The phantom (``../shared/data/ibsi1_digital_phantom``: 5×4×4 voxels of 2 mm, integer intensities
1–9, a 74-voxel ROI) is extracted by :func:`extract_image_features` — the path of
``bone-oligomet radiomics`` and, with the protocol's params, of every lesion — with the packaged
``ibsi1_phantom.yaml`` (no resampling, no re-segmentation, bin width 1, NGLDM alpha 0) and four
texture aggregations chosen through validated overrides:

- ``3D_avg``: 13 directions, features per direction averaged (pyradiomics' default);
- ``3D_comb``: the directions' matrices merged first (``weightingNorm: no_weighting``);
- ``2_5D_avg`` / ``2_5D_comb``: in-slice directions, each direction's matrix summed over the
  slices (``force2D``), then averaged / merged.

Every row of ``reference_values.csv`` is either in :data:`MAPPED` (IBSI tag -> pyradiomics
feature, or a conversion of pyradiomics features where the definitions differ by a known
factor) and must match, or in :data:`DIFFERENT` with the reason. IBSI gives its values to three
significant digits (tolerance 0 for most): a value matches when it lies within the listed
tolerance or half a unit of the third significant digit, whichever is larger.
"""

from __future__ import annotations

import csv
import math
from typing import Callable, Union

import pytest

from BoneOligoMetLib.cli import main
from BoneOligoMetLib.features.radiomics import extract_image_features
from BoneOligoMetLib.features.radiomics_params import load_params
from BoneOligoMetLib.io.images import read_image

# Aggregations as overrides of the packaged file (merged, then validated like any params file).
CONFIGS = {
    "3D_avg": {},
    "3D_comb": {"setting": {"weightingNorm": "no_weighting"}},
    "2_5D_avg": {"setting": {"force2D": True, "force2Ddimension": 0}},
    "2_5D_comb": {
        "setting": {"force2D": True, "force2Ddimension": 0, "weightingNorm": "no_weighting"}
    },
}
VOXEL_MM3 = 8.0  # 2 × 2 × 2 mm

Feature = Union[str, Callable[[dict], float]]


def _f(name: str) -> Callable[[dict], float]:
    return lambda f: f[f"original_{name}"]


def _voxels(f: dict) -> float:
    return f["original_shape_VoxelVolume"] / VOXEL_MM3


def _pca(axis: str) -> Callable[[dict], float]:
    # pyradiomics divides the ROI's coordinate covariance by N, IBSI by N − 1.
    return lambda f: f[f"original_shape_{axis}"] * math.sqrt(_voxels(f) / (_voxels(f) - 1))


# IBSI tag (without the aggregation suffix) -> pyradiomics name (class_Feature) or conversion.
MORPHOLOGY: dict[str, Feature] = {
    "morph_volume": "shape_MeshVolume",
    "morph_vol_approx": "shape_VoxelVolume",
    "morph_area_mesh": "shape_SurfaceArea",
    "morph_av": "shape_SurfaceVolumeRatio",
    # pyradiomics' Compactness1/2 and SphericalDisproportion are deprecated: from Sphericity.
    "morph_comp_1": lambda f: (
        f["original_shape_MeshVolume"]
        / (math.sqrt(math.pi) * f["original_shape_SurfaceArea"] ** 1.5)
    ),
    "morph_comp_2": lambda f: f["original_shape_Sphericity"] ** 3,
    "morph_sph_dispr": lambda f: 1.0 / f["original_shape_Sphericity"],
    "morph_sphericity": "shape_Sphericity",
    "morph_asphericity": lambda f: 1.0 / f["original_shape_Sphericity"] - 1.0,
    "morph_diam": "shape_Maximum3DDiameter",
    "morph_pca_maj_axis": _pca("MajorAxisLength"),
    "morph_pca_min_axis": _pca("MinorAxisLength"),
    "morph_pca_least_axis": _pca("LeastAxisLength"),
    "morph_pca_elongation": "shape_Elongation",
    "morph_pca_flatness": "shape_Flatness",
    # integrated intensity = mean intensity × (mesh) volume
    "morph_integ_int": lambda f: f["original_firstorder_Mean"] * f["original_shape_MeshVolume"],
}
STATISTICS: dict[str, Feature] = {
    "stat_mean": "firstorder_Mean",
    "stat_var": "firstorder_Variance",
    "stat_skew": "firstorder_Skewness",
    "stat_kurt": lambda f: f["original_firstorder_Kurtosis"] - 3.0,  # IBSI: excess kurtosis
    "stat_median": "firstorder_Median",
    "stat_min": "firstorder_Minimum",
    "stat_p10": "firstorder_10Percentile",
    "stat_p90": "firstorder_90Percentile",
    "stat_max": "firstorder_Maximum",
    "stat_iqr": "firstorder_InterquartileRange",
    "stat_range": "firstorder_Range",
    "stat_mad": "firstorder_MeanAbsoluteDeviation",
    "stat_rmad": "firstorder_RobustMeanAbsoluteDeviation",
    "stat_cov": lambda f: (
        math.sqrt(f["original_firstorder_Variance"]) / f["original_firstorder_Mean"]
    ),
    "stat_energy": "firstorder_Energy",  # voxelArrayShift 0: no intensity shift
    "stat_rms": "firstorder_RootMeanSquared",
}
# pyradiomics computes Entropy and Uniformity on the discretised intensities: IBSI's histogram
# features. Its other first-order features use the original intensities; on this phantom the
# discretisation (bin width 1 from intensity 1) is the identity, so IBSI's histogram statistics
# equal them too.
HISTOGRAM: dict[str, Feature] = {
    "ih_entropy": "firstorder_Entropy",
    "ih_uniformity": "firstorder_Uniformity",
    **{f"ih_{k[5:]}": v for k, v in STATISTICS.items() if k not in ("stat_energy", "stat_rms")},
}
GLCM = {
    "cm_joint_max": "MaximumProbability",
    "cm_joint_avg": "JointAverage",
    "cm_joint_var": "SumSquares",
    "cm_joint_entr": "JointEntropy",
    "cm_diff_avg": "DifferenceAverage",
    "cm_diff_var": "DifferenceVariance",
    "cm_diff_entr": "DifferenceEntropy",
    "cm_sum_var": "ClusterTendency",  # IBSI: sum variance and cluster tendency are one feature
    "cm_sum_entr": "SumEntropy",
    "cm_energy": "JointEnergy",
    "cm_contrast": "Contrast",
    "cm_dissimilarity": "DifferenceAverage",
    "cm_inv_diff": "Id",
    "cm_inv_diff_norm": "Idn",
    "cm_inv_diff_mom": "Idm",
    "cm_inv_diff_mom_norm": "Idmn",
    "cm_inv_var": "InverseVariance",
    "cm_corr": "Correlation",
    "cm_auto_corr": "Autocorrelation",
    "cm_clust_tend": "ClusterTendency",
    "cm_clust_shade": "ClusterShade",
    "cm_clust_prom": "ClusterProminence",
    "cm_info_corr1": "Imc1",
    "cm_info_corr2": "Imc2",
}
GLRLM = {
    "rlm_sre": "ShortRunEmphasis",
    "rlm_lre": "LongRunEmphasis",
    "rlm_lgre": "LowGrayLevelRunEmphasis",
    "rlm_hgre": "HighGrayLevelRunEmphasis",
    "rlm_srlge": "ShortRunLowGrayLevelEmphasis",
    "rlm_srhge": "ShortRunHighGrayLevelEmphasis",
    "rlm_lrlge": "LongRunLowGrayLevelEmphasis",
    "rlm_lrhge": "LongRunHighGrayLevelEmphasis",
    "rlm_glnu": "GrayLevelNonUniformity",
    "rlm_glnu_norm": "GrayLevelNonUniformityNormalized",
    "rlm_rlnu": "RunLengthNonUniformity",
    "rlm_rlnu_norm": "RunLengthNonUniformityNormalized",
    "rlm_r_perc": "RunPercentage",
    "rlm_gl_var": "GrayLevelVariance",
    "rlm_rl_var": "RunVariance",
    "rlm_rl_entr": "RunEntropy",
}
GLSZM = {
    "szm_sze": "SmallAreaEmphasis",
    "szm_lze": "LargeAreaEmphasis",
    "szm_lgze": "LowGrayLevelZoneEmphasis",
    "szm_hgze": "HighGrayLevelZoneEmphasis",
    "szm_szlge": "SmallAreaLowGrayLevelEmphasis",
    "szm_szhge": "SmallAreaHighGrayLevelEmphasis",
    "szm_lzlge": "LargeAreaLowGrayLevelEmphasis",
    "szm_lzhge": "LargeAreaHighGrayLevelEmphasis",
    "szm_glnu": "GrayLevelNonUniformity",
    "szm_glnu_norm": "GrayLevelNonUniformityNormalized",
    "szm_zsnu": "SizeZoneNonUniformity",
    "szm_zsnu_norm": "SizeZoneNonUniformityNormalized",
    "szm_z_perc": "ZonePercentage",
    "szm_gl_var": "GrayLevelVariance",
    "szm_zs_var": "ZoneVariance",
    "szm_zs_entr": "ZoneEntropy",
}
NGTDM = {
    "ngt_coarseness": "Coarseness",
    "ngt_contrast": "Contrast",
    "ngt_busyness": "Busyness",
    "ngt_complexity": "Complexity",
    "ngt_strength": "Strength",
}
# pyradiomics' GLDM with alpha 0 is IBSI's NGLDM (dependence count includes the centre voxel).
NGLDM: dict[str, Feature] = {
    "ngl_lde": "SmallDependenceEmphasis",
    "ngl_hde": "LargeDependenceEmphasis",
    "ngl_lgce": "LowGrayLevelEmphasis",
    "ngl_hgce": "HighGrayLevelEmphasis",
    "ngl_ldlge": "SmallDependenceLowGrayLevelEmphasis",
    "ngl_ldhge": "SmallDependenceHighGrayLevelEmphasis",
    "ngl_hdlge": "LargeDependenceLowGrayLevelEmphasis",
    "ngl_hdhge": "LargeDependenceHighGrayLevelEmphasis",
    "ngl_glnu": "GrayLevelNonUniformity",
    "ngl_dcnu": "DependenceNonUniformity",
    "ngl_dcnu_norm": "DependenceNonUniformityNormalized",
    "ngl_gl_var": "GrayLevelVariance",
    "ngl_dc_var": "DependenceVariance",
    "ngl_dc_entr": "DependenceEntropy",
}


def _mapped() -> dict[str, tuple[str, Feature]]:
    """IBSI tag -> (configuration, pyradiomics feature or conversion)."""
    table: dict[str, tuple[str, Feature]] = {}
    for tag, feature in {**MORPHOLOGY, **STATISTICS, **HISTOGRAM}.items():
        table[tag] = ("3D_avg", feature)
    for suffix, config in (("3D_avg", "3D_avg"), ("3D_comb", "3D_comb"),
                           ("2_5D_avg", "2_5D_avg"), ("2_5D_comb", "2_5D_comb")):  # fmt: skip
        for tag, name in GLCM.items():
            table[f"{tag}_{suffix}"] = (config, f"glcm_{name}")
        # pyradiomics' SumAverage is 2 × JointAverage for a symmetric GLCM (left out of the file)
        table[f"cm_sum_avg_{suffix}"] = (config, lambda f: 2 * f["original_glcm_JointAverage"])
        for tag, name in GLRLM.items():
            table[f"{tag}_{suffix}"] = (config, f"glrlm_{name}")
    for suffix, config in (("3D", "3D_avg"), ("2_5D", "2_5D_avg")):
        for classname, names in (("glszm", GLSZM), ("ngtdm", NGTDM), ("gldm", NGLDM)):
            for tag, name in names.items():
                table[f"{tag}_{suffix}"] = (config, f"{classname}_{name}")
        # NGLDM's normalised grey-level non-uniformity: pyradiomics' is deprecated (it equals
        # first-order Uniformity); GLNU over the number of voxels.
        table[f"ngl_glnu_norm_{suffix}"] = (
            config,
            lambda f: f["original_gldm_GrayLevelNonUniformity"] / _voxels(f),
        )
    return table


MAPPED = _mapped()

# IBSI features with no pyradiomics counterpart of the same definition, and why.
DIFFERENT: dict[str, str] = {
    "morph_com": "centre-of-mass shift: not computed by pyradiomics",
    "morph_vol_dens_": "volume densities (AABB, OMBB, AEE, MVEE, convex hull): not computed",
    "morph_area_dens_": "area densities (AABB, OMBB, AEE, MVEE, convex hull): not computed",
    "morph_moran_i": "Moran's I: not computed",
    "morph_geary_c": "Geary's C: not computed",
    "loc_peak_": "local/global intensity peak: not in pyradiomics; metabolic.py computes them "
    "(SUVpeak, checked on this phantom in test_metabolic.py)",
    "stat_medad": "median absolute deviation: not computed (pyradiomics has mean and robust MAD)",
    "ih_medad": "median absolute deviation: not computed (pyradiomics has mean and robust MAD)",
    "stat_qcod": "quartile coefficient of dispersion needs Q1 and Q3; pyradiomics gives only "
    "their difference (InterquartileRange)",
    "ih_qcod": "quartile coefficient of dispersion needs Q1 and Q3; pyradiomics gives only "
    "their difference (InterquartileRange)",
    "ih_mode": "histogram mode: not computed",
    "ih_max_grad": "histogram gradients: not computed",
    "ih_min_grad": "histogram gradients: not computed",
    "ivh_": "intensity-volume histogram: not computed",
    "dzm_": "grey level distance zone matrix: not in pyradiomics",
    "ngl_dc_perc": "dependence count percentage is 1 by definition; pyradiomics' "
    "DependencePercentage is deprecated for that reason",
    "ngl_dc_energy": "dependence count energy: not computed",
    "_2D": "IBSI 2D: features per slice, then averaged over slices; pyradiomics' force2D pools "
    "the slices' matrices per direction, which is IBSI 2.5D (mapped above)",
}


def _reference(shared_data) -> list[tuple[str, float, float]]:
    path = shared_data / "ibsi1_digital_phantom" / "reference_values.csv"
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle, delimiter=";"))[1:]
    return [(tag, float(value), float(tol or 0)) for value, tol, tag in rows if value]


def _tolerance(value: float, listed: float) -> float:
    """The listed tolerance, or half a unit of the third significant digit if larger."""
    if value == 0:
        return listed
    return max(listed, 0.5 * 10 ** (math.floor(math.log10(abs(value))) - 2))


def _why_different(tag: str) -> str:
    for key, reason in DIFFERENT.items():
        prefix = key if key.endswith("_") else key + "_"
        if tag == key or tag.startswith(prefix) or (key == "_2D" and "_2D" in tag):
            return reason
    return ""


@pytest.fixture
def extracted(shared_data):
    folder = shared_data / "ibsi1_digital_phantom"
    image = read_image(folder / "image.nii.gz")
    mask = read_image(folder / "mask.nii.gz")
    return {
        name: extract_image_features(image, mask, load_params("ibsi1_phantom", overrides))
        for name, overrides in CONFIGS.items()
    }


def _value(features: dict, feature: Feature) -> float:
    return feature(features) if callable(feature) else features[f"original_{feature}"]


def test_every_reference_row_is_mapped_or_explained(shared_data):
    unaccounted = [
        tag
        for tag, _, _ in _reference(shared_data)
        if tag not in MAPPED and not _why_different(tag)
    ]
    assert unaccounted == []
    both = [tag for tag in MAPPED if _why_different(tag)]
    assert both == []


def test_mapped_features_reproduce_the_ibsi_reference(shared_data, extracted):
    checked, failures = 0, []
    for tag, reference, listed in _reference(shared_data):
        if tag not in MAPPED:
            continue
        config, feature = MAPPED[tag]
        value = _value(extracted[config], feature)
        tolerance = _tolerance(reference, listed)
        checked += 1
        if not abs(value - reference) <= tolerance * (1 + 1e-9):
            failures.append(f"{tag}: {value:.6g} vs {reference:g} ± {tolerance:g}")
    assert failures == []
    assert checked == len(MAPPED) == 284  # every mapped tag has a reference value


def test_the_radiomics_command_runs_the_ibsi_configuration(shared_data, tmp_path, capsys):
    folder = shared_data / "ibsi1_digital_phantom"
    out = tmp_path / "ibsi.csv"
    args = ["radiomics", "--image", str(folder / "image.nii.gz"), "--mask",
            str(folder / "mask.nii.gz"), "--params", "ibsi1_phantom", "-o", str(out)]  # fmt: skip
    assert main(args) == 0
    with out.open() as handle:
        row = next(csv.DictReader(handle))
    assert float(row["original_shape_MeshVolume"]) == pytest.approx(556, abs=4)  # morph_volume
    assert float(row["original_glcm_JointAverage"]) == pytest.approx(2.14, abs=0.005)
    capsys.readouterr()
