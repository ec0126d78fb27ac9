"""Synthetic PET/CT patients (the phantom), DICOM series written from them, and the builder of the
packaged synthetic demo model: the data of the demo, the tests and the benchmarks."""
