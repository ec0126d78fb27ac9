"""Where "not a bone lesion" starts: the ROI rules' outside-bone fraction and the median distance
to bone of true bone lesions against spheres placed in soft tissue (synthetic patients).

    python bench/bench_bone_domain.py [--first 100] [--patients 130]

For each patient of the `small` preset (seeds first … first+patients−1) it measures every true
lesion's mask and one sphere of 6–15 mm radius in each of liver, spleen, kidney, lung and muscle
(where the patient has them), on the rule checks' own crop: the fraction outside the bone mask
and the median distance of the mask's voxels to the nearest voxel ≥ the bone threshold. It prints
how many of each would be called "not a bone lesion" (RuleConfig.not_bone_*) and the largest
distance of a true bone lesion, and how many of the lesions confined to bone (the generator's
``outside_bone_mm`` 0: their cortex intact) lie more than 10 % outside the bone mask: the numbers
the README quotes.
"""

from __future__ import annotations

import argparse

import numpy as np
import SimpleITK as sitk

from BoneOligoMetLib.image.bone import bone_mask
from BoneOligoMetLib.image.geometry import crop_region
from BoneOligoMetLib.image.labels import label_regions
from BoneOligoMetLib.lesions.rule_config import RuleConfig
from BoneOligoMetLib.lesions.rules import _median_bone_distance_mm
from BoneOligoMetLib.synthetic.phantom import generate_patient
from BoneOligoMetLib.synthetic.phantom.anatomy import Tissue

SOFT = (Tissue.LIVER, Tissue.SPLEEN, Tissue.KIDNEY, Tissue.LUNG, Tissue.SOFT_TISSUE)


def measure(ct, labels, label, config):
    """(fraction outside the bone mask, median distance to bone in mm) on the rules' crop."""
    margin_mm = config.neighbourhood_mm + config.bone_closing_mm
    margin = [int(np.ceil(margin_mm / s)) + 1 for s in ct.GetSpacing()]
    region = label_regions(labels)[label]
    ct_crop, _ = crop_region(ct, region, margin)
    mask = sitk.GetArrayFromImage(crop_region(labels, region, margin)[0]) == label
    bone = sitk.GetArrayFromImage(bone_mask(ct_crop, config.bone)).astype(bool)
    dense = sitk.GetArrayFromImage(ct_crop) >= config.bone_threshold_hu
    outside = 1.0 - float(bone[mask].mean())
    return outside, _median_bone_distance_mm(mask, dense, ct_crop.GetSpacing()[::-1])


def sphere(patient, tissue, rng):
    """A label image with one sphere of 6–15 mm in ``tissue``, or None when there is none."""
    tissues = sitk.GetArrayViewFromImage(patient.tissues)
    where = np.argwhere(tissues == tissue)
    if not len(where):
        return None
    centre = where[rng.integers(len(where))]
    spacing = np.asarray(patient.ct.GetSpacing())[::-1]
    grid = np.ogrid[tuple(slice(0, n) for n in tissues.shape)]
    distance2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, spacing))
    image = sitk.GetImageFromArray((distance2 <= rng.uniform(6, 15) ** 2).astype(np.uint8))
    image.CopyInformation(patient.ct)
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first", type=int, default=100)
    parser.add_argument("--patients", type=int, default=130)
    args = parser.parse_args()
    config, rng = RuleConfig(), np.random.default_rng(0)
    bone_rows, soft_rows, confined = [], [], []
    for seed in range(args.first, args.first + args.patients):
        patient = generate_patient(seed, "small")
        kept = {lesion.label for lesion in patient.lesions if lesion.outside_bone_mm == 0}
        for label in sorted(label_regions(patient.lesion_labels)):
            bone_rows.append(measure(patient.ct, patient.lesion_labels, label, config))
            if label in kept:
                confined.append(bone_rows[-1][0])
        for tissue in SOFT:
            image = sphere(patient, tissue, rng)
            if image is not None:
                soft_rows.append(measure(patient.ct, image, 1, config))

    def not_bone(rows):
        return sum(
            f > config.not_bone_fraction and d > config.not_bone_distance_mm for f, d in rows
        )

    mostly = sum(f > config.not_bone_fraction for f, _ in bone_rows)
    print(
        f"{len(bone_rows)} bone lesions: {mostly} ({mostly / len(bone_rows):.0%}) mostly "
        f"outside the bone mask, largest median distance to bone "
        f"{max(d for _, d in bone_rows):.1f} mm; called not a bone lesion: {not_bone(bone_rows)}"
    )
    print(
        f"{len(confined)} of them confined to bone: {sum(f > 0.1 for f in confined)} more than "
        f"10 % outside the bone mask (largest {max(confined, default=0.0):.1%})"
    )
    n_soft = not_bone(soft_rows)
    print(
        f"{len(soft_rows)} soft-tissue spheres: called not a bone lesion: {n_soft} "
        f"({n_soft / len(soft_rows):.0%})"
    )


if __name__ == "__main__":
    main()
