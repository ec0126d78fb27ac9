"""Non-contrast CT (HU) of a synthetic patient: tissue values, bone texture, lesions, blur, noise.

Values follow DESIGN.md's table (120 kV, no contrast): fat −100, muscle 40, liver 58, lung
≈ −850, cortical bone 1000–1400 and cancellous bone 150–350 HU (lower with age), fatty marrow of
the femoral shafts −80…0, costal cartilage 110, joint fluid 20, bowel wall 35 with gas (−850) or
faeces (≈ −60…−20) in the lumen. Resolution is a Gaussian of ``ct_blur_fwhm_mm`` in-plane; noise
is white Gaussian, higher in heavier patients.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy import ndimage

from BoneOligoMetLib.synthetic.phantom.anatomy import Tissue
from BoneOligoMetLib.synthetic.phantom.grid import Grid
from BoneOligoMetLib.synthetic.phantom.lesion_render import RasterLesion, lesion_hu, paint
from BoneOligoMetLib.synthetic.phantom.lesions import Lesion
from BoneOligoMetLib.synthetic.phantom.physiology import Physiology

HU_MIN, HU_MAX = -1024, 3071  # 12-bit CT range stored as int16


@dataclass(frozen=True)
class CtParameters:
    """Per-patient CT values (HU) and noise (SD, HU)."""

    cortical_hu: float
    cancellous_hu: float
    noise_hu: float
    yellow_marrow_hu: float = -40.0  # set from the patient's physiology

    @classmethod
    def sample(
        cls, rng: np.random.Generator, age_years: float, weight_kg: float, base_noise_hu: float
    ) -> CtParameters:
        cancellous = 300.0 - 2.5 * max(age_years - 40.0, 0.0) + rng.normal(0.0, 25.0)
        return cls(
            cortical_hu=float(rng.uniform(1000.0, 1400.0)),
            cancellous_hu=float(np.clip(cancellous, 150.0, 350.0)),
            noise_hu=float(base_noise_hu * (weight_kg / 60.0) ** 0.75),
        )

    def table(self) -> np.ndarray:
        """HU per tissue label."""
        hu = np.zeros(len(Tissue), dtype=np.float32)
        hu[Tissue.AIR] = -1000.0
        hu[Tissue.FAT] = -100.0
        hu[Tissue.SOFT_TISSUE] = 40.0
        hu[Tissue.LUNG] = -850.0
        hu[Tissue.CORTICAL_BONE] = self.cortical_hu
        hu[Tissue.CANCELLOUS_BONE] = self.cancellous_hu
        hu[Tissue.LIVER] = 58.0
        hu[Tissue.MYOCARDIUM] = 40.0
        hu[Tissue.BLOOD] = 40.0
        hu[Tissue.BLADDER] = 8.0
        hu[Tissue.BRAIN] = 35.0
        hu[Tissue.KIDNEY] = 30.0
        hu[Tissue.SPLEEN] = 45.0
        hu[Tissue.CSF] = 8.0
        hu[Tissue.CARTILAGE] = 110.0
        hu[Tissue.YELLOW_MARROW] = self.yellow_marrow_hu
        hu[Tissue.JOINT] = 20.0
        hu[Tissue.BOWEL_WALL] = 35.0
        hu[Tissue.BOWEL_CONTENT] = -40.0  # faeces; gas where the physiology says
        hu[Tissue.RENAL_PELVIS] = 8.0
        hu[Tissue.URETER] = 10.0
        return hu


def synthesize_ct(
    grid: Grid,
    tissues: np.ndarray,
    lesions: Sequence[tuple[Lesion, RasterLesion]],
    params: CtParameters,
    blur_fwhm_mm: float,
    rng: np.random.Generator,
    physiology: Optional[Physiology] = None,
) -> np.ndarray:
    """The CT (int16 HU, (z, y, x)) of ``tissues`` with ``lesions`` painted in."""
    ct = params.table()[tissues]
    # Trabecular grain and lung parenchyma: white texture, smoothed by the blur below.
    for tissue, sd in ((Tissue.CANCELLOUS_BONE, 45.0), (Tissue.LUNG, 40.0)):
        where = tissues == tissue
        ct[where] += rng.normal(0.0, sd, int(np.count_nonzero(where))).astype(np.float32)
    if physiology is not None:  # gas pockets and mottled faeces in the bowel
        kk, jj, ii = np.nonzero(tissues == Tissue.BOWEL_CONTENT)
        if kk.size:
            x, y, z = grid.axis(0)[ii], grid.axis(1)[jj], grid.axis(2)[kk]
            gas = physiology.bowel_gas(x, y, z)
            mottle = 25.0 * physiology.bowel_field(x, y, z)
            ct[kk, jj, ii] = np.where(gas, -850.0, ct[kk, jj, ii] + mottle).astype(np.float32)
    for lesion, raster in lesions:
        if raster.n_voxels:
            paint(ct, raster, lesion_hu(lesion, raster))
    sigma_mm = blur_fwhm_mm / 2.3548
    sigma = (0.3, sigma_mm / grid.spacing[1], sigma_mm / grid.spacing[0])  # (z, y, x) voxels
    ct = ndimage.gaussian_filter(ct, sigma, mode="nearest", truncate=3.0)
    ct += rng.standard_normal(ct.shape, dtype=np.float32) * np.float32(params.noise_hu)
    return np.clip(np.rint(ct), HU_MIN, HU_MAX).astype(np.int16)
