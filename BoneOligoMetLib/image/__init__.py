"""Whole images in memory: grids, overlap and crops, label images, unit guards (HU, SUV), the CT
bone mask, the fused PET/CT image and spherical VOIs (SUVpeak, liver sphere). Above ``io``."""
