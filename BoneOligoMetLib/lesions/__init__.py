"""One lesion at a time: seeded delineation (SUV 2.2 in bone, refined with the CT), the study's ROI
rules and the necrotic / calcified parts, metabolic parameters, reader agreement, and lesion
labels from DICOM RTSTRUCT / SEG. Above ``image``."""
