"""The study's published results (Tables 2–4), for the report to set ours beside."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Union

# Tables 2–4 of the published study as printed (test cohort of 94 lesions); the same rows as
# ../shared/data/study/reported_results.csv, kept here so an installed package can show them.
# Some printed intervals do not contain their estimate: they are shown as printed, never tuned to.
REPORTED_COLUMNS = (
    "table",
    "model",
    "modality_or_backbone",
    "auc",
    "sensitivity",
    "sens_ci_low",
    "sens_ci_high",
    "specificity",
    "spec_ci_low",
    "spec_ci_high",
    "accuracy",
    "acc_ci_low",
    "acc_ci_high",
    "classifier",
)


REPORTED_MODELS = {2: "radiomics", 3: "deep (transfer learning)", 4: "fusion"}


# (table, modality_or_backbone, "AUC sens low high spec low high acc low high", classifier)
REPORTED_ROWS = (
    (2, "CT", "0.970 0.868 0.793 0.897 0.882 0.893 0.929 0.939 0.875 0.979", "SVM"),
    (2, "PET", "0.970 0.926 0.875 0.978 0.947 0.812 0.973 0.978 0.817 0.983", "RF"),
    (2, "PET/CT", "0.980 0.934 0.803 0.975 0.963 0.862 0.983 0.981 0.892 0.996", "XGBoost"),
    (2, "Complex", "0.987 0.961 0.757 0.994 0.982 0.881 0.996 0.989 0.896 0.995", "LightGBM"),
    (3, "CT", "0.960 0.833 0.784 0.881 0.880 0.781 0.946 0.956 0.812 0.976", "SVM"),
    (3, "PET", "0.980 0.904 0.860 0.984 0.959 0.863 0.985 0.947 0.881 0.982", "ExtraTrees"),
    (3, "PET/CT", "0.979 0.975 0.857 0.987 0.903 0.819 0.925 0.963 0.916 0.972", "RF"),
    (3, "Complex", "0.986 0.932 0.884 0.965 0.916 0.835 0.967 0.970 0.832 0.979", "SVM+KNN"),
    (4, "BasicNet", "0.985 0.985 0.818 0.993 0.965 0.894 0.985 0.970 0.884 0.996", "SVM"),
    (4, "ResNet-101", "0.786 0.768 0.660 0.842 0.718 0.631 0.775 0.774 0.619 0.795", "KNN"),
    (4, "DCU-Net", "0.814 0.895 0.754 0.908 0.712 0.683 0.772 0.794 0.730 0.837", "Mamba"),
    (4, "S-Net", "0.807 0.871 0.716 0.912 0.642 0.584 0.716 0.743 0.695 0.810", "ExtraTrees"),
    (4, "DLR", "0.954 0.937 0.861 0.992 0.925 0.868 0.969 0.957 0.892 0.979", "RF"),
    (4, "DLR+Complex", "0.990 0.986 0.896 1.000 0.998 0.905 1.000 0.997 0.917 0.999", "RF"),
)


STUDY_TABLES = {
    2: "Table 2 — radiomics models",
    3: "Table 3 — deep-learning models",
    4: "Table 4 — fusion models",
}


def reported_results(path: Union[str, Path, None] = None) -> list[dict[str, Any]]:
    """The study's reported rows (from ``path``, else the packaged copy), numbers as floats."""
    if path is None:
        return [
            dict(
                zip(
                    REPORTED_COLUMNS,
                    (table, REPORTED_MODELS[table], row, *map(float, numbers.split()), name),
                )
            )
            for table, row, numbers, name in REPORTED_ROWS
        ]
    rows = []
    for row in csv.DictReader(io.StringIO(Path(path).read_text())):
        parsed: dict[str, Any] = {}
        for key, value in row.items():
            try:
                parsed[key] = int(value) if key == "table" else float(value)
            except ValueError:
                parsed[key] = value
        rows.append(parsed)
    return rows
