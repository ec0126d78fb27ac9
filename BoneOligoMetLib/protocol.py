"""The study's protocol numbers, each defined once, with the section of the paper it comes from.

Defaults everywhere else refer here; every one stays configurable where it is used. The
radiomics settings (1 mm resampling, PET bin width 50/63 SUV, CT −1000…3000 HU in 400 levels)
live in the packaged pyradiomics parameter files (``data/params``), the deep network's in
``deep.config``.
"""

from __future__ import annotations

# §2.3: the semi-automatic PET ROI is the region of SUV ≥ 2.2; MTV counts the voxels above it.
SUV_THRESHOLD = 2.2
# §2.3: the liver reference (physiological background) is the SUVmean of a 3 cm sphere.
LIVER_SPHERE_DIAMETER_MM = 30.0
# §2.3: necrotic or calcified parts are included in the ROI when over 10 % of the lesion volume.
PART_MIN_FRACTION = 0.10
# §2.1: oligometastatic disease, at most 5 bone lesions.
MAX_LESIONS = 5
# §2.1: the lesions are split 7:3 into training and test sets.
TEST_FRACTION = 0.3
# §2.4: the focal loss weighs benign 0.3 and malignant 0.7.
CLASS_WEIGHTS = (0.3, 0.7)
