"""The outside-bone rule measures the CT's bone, so a lesion reads outside bone where the CT
shows no cortex around it.

A fat-density lesion (haemangioma, −50…50 HU) inside a vertebral body whose cortex is intact
lies wholly inside the bone mask; the same lesion with its cortex replaced by lesion tissue reads
partly outside, and rightly so: the CT shows no bone there. The generator keeps the cortex of a
lesion confined to bone (``synthetic/phantom/lesion_render.rasterize_lesion``; it once painted
the lesion's HU over the cortex it touched, and the demo's haemangioma read 20 % outside bone).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from BoneOligoMetLib.lesions.rules import assess_lesions

SPACING = (2.0, 2.0, 3.27)  # the small preset's CT voxels, mm
SHAPE = (24, 40, 40)  # k, j, i


def _vertebra(cortex_kept: bool):
    """A vertebral body (elliptic cylinder, 2 mm cortex) with an 11 mm fat-density lesion
    touching its anterior cortex; (CT, SUV, lesion label image)."""
    k, j, i = np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij")
    x, y, z = (i - 19.5) * SPACING[0], (j - 19.5) * SPACING[1], (k - 11.5) * SPACING[2]
    radius = np.sqrt((x / 20.0) ** 2 + (y / 16.0) ** 2)  # 1 on the body's surface
    inside = (radius <= 1.0) & (np.abs(z) <= 25.0)
    cancellous = (np.sqrt((x / 18.0) ** 2 + (y / 14.0) ** 2) <= 1.0) & (np.abs(z) <= 23.0)
    cortex = inside & ~cancellous
    sphere = np.sqrt(x**2 + (y + 12.0) ** 2 + z**2) <= 11.0  # y < 0: anterior
    ct = np.full(SHAPE, 40.0, dtype=np.float32)  # soft tissue
    ct[:, :, :2] = -1000.0  # some air, as every CT has
    ct[cortex] = 1070.0
    ct[cancellous] = 210.0
    lesion = sphere & (cancellous if cortex_kept else inside)
    ct[lesion] = 0.0
    ct[lesion & ((i + j) % 5 == 0)] = 450.0  # "polka dots"
    images = []
    for array, kind in ((ct, sitk.sitkFloat32), (np.ones(SHAPE, np.float32), sitk.sitkFloat32),
                        (lesion.astype(np.uint8), sitk.sitkUInt8)):  # fmt: skip
        image = sitk.Cast(sitk.GetImageFromArray(array), kind)
        image.SetSpacing(SPACING)
        images.append(image)
    return images, float((lesion & cortex).sum()) / float(lesion.sum())


def _outside_bone(cortex_kept: bool) -> tuple[float, float]:
    (ct, suv, labels), on_cortex = _vertebra(cortex_kept)
    checks = assess_lesions(ct, suv, labels).checks
    check = next(c for c in checks if c.rule == "outside_bone")
    return check.value, on_cortex


def test_a_lesion_inside_an_intact_cortex_is_inside_bone():
    outside, on_cortex = _outside_bone(cortex_kept=True)
    assert on_cortex == 0.0
    assert outside == 0.0


def test_a_lesion_that_replaced_its_cortex_reads_partly_outside_bone():
    outside, on_cortex = _outside_bone(cortex_kept=False)
    assert on_cortex > 0.1  # the lesion took over a patch of the anterior cortex
    assert outside > 0.05  # where the CT shows no bone, the rule finds none


def test_the_generator_keeps_the_cortex_of_a_confined_lesion():
    from BoneOligoMetLib.synthetic.phantom import generate_patient
    from BoneOligoMetLib.synthetic.phantom.anatomy import Tissue

    for seed in range(100, 104):
        patient = generate_patient(seed, "small")
        tissues = sitk.GetArrayViewFromImage(patient.tissues)
        labels = sitk.GetArrayViewFromImage(patient.lesion_labels)
        for lesion in patient.lesions:
            if lesion.outside_bone_mm > 0:  # allowed to break through: not this test's
                continue
            voxels = tissues[labels == lesion.label]
            on_cortex = np.count_nonzero(voxels == Tissue.CORTICAL_BONE)
            assert on_cortex == 0, f"seed {seed} lesion {lesion.label}: {on_cortex} voxels"
