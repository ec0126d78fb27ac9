"""What a reader or a researcher gets to read: the training report (HTML, figures, CSVs beside the
study's tables), one patient's outputs and lesion snapshots, and the DICOM SEG + SR export."""
