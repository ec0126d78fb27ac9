"""FDG PET of a synthetic patient: uptake per tissue, scanner blur, sampling, counting noise.

Pipeline (never at CT resolution for the full preset):

1. FDG level (SUV) per tissue and lesion on the *activity grid*, which splits each PET voxel
   2×2 in-plane (≈ 1.8–2 mm) over the body's box;
2. Gaussian blur with the part of the system resolution that precedes noise,
   FWHM_pre = √(FWHM² − FWHM_post²) (σ = FWHM / 2.3548, per axis in voxels);
3. area-averaging of each 2×2 block onto the PET grid (not point sampling);
4. Bq/mL = SUV × decayed dose / weight (SUVbw, F-18 T½ 6586.2 s, decayed to the scan start:
   the same factor ``suv.pet_dicom_to_suv`` reads back from the DICOM tags);
5. Poisson counts: expected counts = Bq/mL × voxel mL × frame seconds × ``COUNT_EFFICIENCY``,
   so noise falls with dose, scan time and voxel size; then the reconstruction's post-filter
   (FWHM_post), which correlates the noise as in a clinical OSEM image.

``COUNT_EFFICIENCY`` (detected-and-reconstructed counts per decay) is set so the liver's
voxel-wise coefficient of variation is ≈ 10–15 %, as in a clinical 2–3 min/bed study.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Optional

import numpy as np
from scipy import ndimage

from BoneOligoMetLib.io.dicom_tags import F18_HALF_LIFE_S
from BoneOligoMetLib.synthetic.phantom.anatomy import Tissue
from BoneOligoMetLib.synthetic.phantom.grid import Grid
from BoneOligoMetLib.synthetic.phantom.joints import Joint
from BoneOligoMetLib.synthetic.phantom.lesion_render import RasterLesion, lesion_suv, paint
from BoneOligoMetLib.synthetic.phantom.lesions import Lesion
from BoneOligoMetLib.synthetic.phantom.physiology import Physiology
from BoneOligoMetLib.synthetic.phantom.shapes import sdf_in_box

COUNT_EFFICIENCY = 1e-3


@dataclass(frozen=True)
class UptakeParameters:
    """Per-patient FDG levels (SUVbw) of normal tissues."""

    liver: float
    marrow: float
    myocardium: float
    bladder: float
    brain: float
    blood: float
    kidney: float
    spleen: float
    cortical_bone: float = 0.6
    soft_tissue: float = 0.7
    fat: float = 0.3
    lung: float = 0.35
    csf: float = 0.2
    # set from the patient's physiology (``physiology.Physiology``)
    cartilage: float = 0.5
    yellow_marrow: float = 0.45
    joint: float = 1.0
    bowel: float = 1.3
    bowel_content: float = 0.3
    renal_pelvis: float = 10.0
    ureter: float = 10.0  # where a bolus of urine is; 0.7 (soft tissue) elsewhere

    @classmethod
    def sample(cls, rng: np.random.Generator) -> UptakeParameters:
        liver = float(rng.uniform(2.0, 2.5))  # DESIGN: liver SUVmean 2.0–2.5
        return cls(
            liver=liver,
            marrow=float(rng.uniform(1.0, 2.0)),
            myocardium=float(np.clip(3.0 * np.exp(0.6 * rng.standard_normal()), 1.5, 12.0)),
            bladder=float(np.clip(20.0 * np.exp(0.45 * rng.standard_normal()), 8.0, 60.0)),
            brain=float(rng.uniform(7.0, 10.0)),
            blood=float(0.75 * liver * rng.uniform(0.9, 1.1)),
            kidney=float(rng.uniform(2.0, 3.5)),
            spleen=float(0.85 * liver * rng.uniform(0.9, 1.1)),
        )

    def table(self) -> np.ndarray:
        """SUV per tissue label."""
        suv = np.zeros(len(Tissue), dtype=np.float32)
        suv[Tissue.FAT] = self.fat
        suv[Tissue.SOFT_TISSUE] = self.soft_tissue
        suv[Tissue.LUNG] = self.lung
        suv[Tissue.CORTICAL_BONE] = self.cortical_bone
        suv[Tissue.CANCELLOUS_BONE] = self.marrow
        suv[Tissue.LIVER] = self.liver
        suv[Tissue.MYOCARDIUM] = self.myocardium
        suv[Tissue.BLOOD] = self.blood
        suv[Tissue.BLADDER] = self.bladder
        suv[Tissue.BRAIN] = self.brain
        suv[Tissue.KIDNEY] = self.kidney
        suv[Tissue.SPLEEN] = self.spleen
        suv[Tissue.CSF] = self.csf
        suv[Tissue.CARTILAGE] = self.cartilage
        suv[Tissue.YELLOW_MARROW] = self.yellow_marrow
        suv[Tissue.JOINT] = self.joint
        suv[Tissue.BOWEL_WALL] = self.bowel
        suv[Tissue.BOWEL_CONTENT] = self.bowel_content
        suv[Tissue.RENAL_PELVIS] = self.renal_pelvis
        suv[Tissue.URETER] = self.soft_tissue
        return suv

    def with_physiology(self, physiology: Physiology) -> UptakeParameters:
        """These levels with the patient's marrow activation, yellow marrow, joints, bowel
        and urine (the spleen rises with an activated marrow)."""
        metformin = physiology.metformin
        return replace(
            self,
            marrow=self.marrow * physiology.marrow_activation,
            spleen=self.spleen * (1.2 if physiology.marrow_activation > 1.0 else 1.0),
            yellow_marrow=physiology.yellow_marrow_suv,
            joint=physiology.joint_suv,
            bowel=physiology.bowel_suv,
            bowel_content=0.6 * physiology.bowel_suv if metformin else self.bowel_content,
            renal_pelvis=self.bladder * physiology.renal_pelvis_fraction,
            ureter=self.bladder * physiology.ureter_fraction,
        )

    def as_dict(self) -> dict:
        return asdict(self)


def suv_per_bqml(
    weight_kg: float,
    injected_dose_bq: float,
    injection: dt.datetime,
    scan_start: dt.datetime,
    half_life_s: float = F18_HALF_LIFE_S,
) -> float:
    """SUVbw per Bq/mL for activity at ``scan_start`` (QIBA: dose decayed to the scan start)."""
    uptake_s = (scan_start - injection).total_seconds()
    return weight_kg * 1000.0 / (injected_dose_bq * 2.0 ** (-uptake_s / half_life_s))


def _modulate(level, tissues, tissue, grid: Grid, factor) -> None:
    """Multiply the level of ``tissue``'s voxels by ``factor(x, y, z)`` (LPS mm)."""
    kk, jj, ii = np.nonzero(tissues == tissue)
    if kk.size:
        x, y, z = grid.axis(0)[ii], grid.axis(1)[jj], grid.axis(2)[kk]
        level[kk, jj, ii] *= np.asarray(factor(x, y, z), dtype=np.float32)


def fdg_level_map(
    tissues: np.ndarray,
    lesions: Sequence[tuple[Lesion, RasterLesion]],
    uptake: UptakeParameters,
    grid: Optional[Grid] = None,
    physiology: Optional[Physiology] = None,
    joints: Sequence[Joint] = (),
) -> np.ndarray:
    """FDG level (SUV, float32) per voxel of the activity grid, before blur and noise.

    With ``physiology`` (and the activity ``grid``): the red marrow's texture, hot bowel
    segments, boluses of urine in the ureters and the hot ``joints``.
    """
    level = uptake.table()[tissues]
    if physiology is not None and grid is not None:
        _modulate(level, tissues, Tissue.CANCELLOUS_BONE, grid, physiology.marrow_factor)
        _modulate(level, tissues, Tissue.BOWEL_WALL, grid, physiology.bowel_factor)
        if physiology.metformin:
            _modulate(level, tissues, Tissue.BOWEL_CONTENT, grid, physiology.bowel_factor)
        ureter = np.float32(uptake.ureter - uptake.soft_tissue)
        _modulate(
            level,
            tissues,
            Tissue.URETER,
            grid,
            lambda x, y, z: 1.0 + ureter / uptake.soft_tissue * physiology.ureter_bolus(x, y, z),
        )
        by_name = {joint.name: joint for joint in joints}
        for name, suv in physiology.hot_joints:
            focus = by_name[name].focus
            box = grid.box(*focus.bounds())
            if box.empty:
                continue
            inside = sdf_in_box(focus, box) <= 0
            inside &= np.isin(tissues[box.slices], (Tissue.JOINT, Tissue.SOFT_TISSUE, Tissue.FAT))
            level[box.slices][inside] = suv
    for lesion, raster in lesions:
        if raster.n_voxels:
            paint(level, raster, lesion_suv(lesion, raster))
    return level


def activity_grid_for(pet_grid: Grid, subdivision: Sequence[int], body_low, body_high, pad_mm):
    """The activity grid: PET voxels around the body's box, each split by ``subdivision``.

    Returns (activity grid, PET start index (x, y, z), PET block size (x, y, z)).
    """
    low = np.asarray(body_low, dtype=float) - pad_mm
    high = np.asarray(body_high, dtype=float) + pad_mm
    start, size = pet_grid.index_range(low, high)
    start[2], size[2] = 0, pet_grid.size[2]  # every slice: the body fills the whole z range
    return pet_grid.crop(start, size).subdivided(subdivision), start, size


def simulate_pet(
    level_suv: np.ndarray,
    activity_grid: Grid,
    pet_grid: Grid,
    pet_start: Sequence[int],
    subdivision: Sequence[int],
    fwhm_mm: float,
    post_filter_fwhm_mm: float,
    bqml_per_suv: float,
    frame_s: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """The reconstructed PET (Bq/mL, float32, (z, y, x) on ``pet_grid``) of an FDG level map."""
    pre_fwhm = float(np.sqrt(max(fwhm_mm**2 - post_filter_fwhm_mm**2, 0.0)))
    sigma = [pre_fwhm / 2.3548 / s for s in activity_grid.spacing[::-1]]  # (z, y, x) voxels
    blurred = ndimage.gaussian_filter(level_suv, sigma, mode="constant", truncate=3.0)
    mx, my, mz = (int(f) for f in subdivision)
    nz, ny, nx = blurred.shape
    block = blurred.reshape(nz // mz, mz, ny // my, my, nx // mx, mx).mean(axis=(1, 3, 5))
    expected = np.zeros(pet_grid.shape, dtype=np.float32)
    x0, y0, z0 = (int(v) for v in pet_start)
    bz, by, bx = block.shape
    expected[z0 : z0 + bz, y0 : y0 + by, x0 : x0 + bx] = block * np.float32(bqml_per_suv)

    counts_per_bqml = pet_grid.voxel_volume_ml * frame_s * COUNT_EFFICIENCY
    counts = rng.poisson(np.maximum(expected, 0.0) * counts_per_bqml).astype(np.float32)
    noisy = counts / np.float32(counts_per_bqml)
    post_sigma = [post_filter_fwhm_mm / 2.3548 / s for s in pet_grid.spacing[::-1]]
    return ndimage.gaussian_filter(noisy, post_sigma, mode="constant", truncate=3.0).astype(
        np.float32
    )
