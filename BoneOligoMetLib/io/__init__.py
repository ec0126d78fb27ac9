"""Reading and writing: images (DICOM series, NIfTI, NRRD, MetaImage) checked before their voxels
are trusted, DICOM tags and slice placement, PET → SUVbw (QIBA), the one RAS ↔ LPS conversion,
cohort manifests, tables and files, and the DICOM objects we exchange (SEG, SR, RTSTRUCT). The
lowest layer: it imports nothing else of the library."""
