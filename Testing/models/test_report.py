"""The run report (self-contained HTML + CSVs) and the ``bone-oligomet train`` command."""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import pytest
from conftest import SHARED
from test_modeling import FAST, synthetic_rows, synthetic_table

from BoneOligoMetLib.cli import main
from BoneOligoMetLib.io.tables import write_table
from BoneOligoMetLib.models.study_grid import run_grid
from BoneOligoMetLib.report.figures import FIGURES
from BoneOligoMetLib.report.html import render_html
from BoneOligoMetLib.report.outputs import DELONG_COLUMNS, PREDICTION_COLUMNS, write_outputs
from BoneOligoMetLib.report.study import reported_results

TABLES = (
    "settings-table",
    "cohort-table",
    "characteristics-label",
    "characteristics-set",
    "study-table-2",
    "study-table-3",
    "study-table-4",
    "grid-table",
    "delong-table",
    "selected-features",
)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    table = synthetic_table(n_patients=50, seed=2)
    result = run_grid(table, ["pet", "complex", "dl_petct", "dlr_complex"], config=FAST)
    out = tmp_path_factory.mktemp("run")
    paths = write_outputs(result, out, data_label="synthetic data")
    return result, out, paths


def _rows(path: Path) -> tuple[list[str], list[dict]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def test_report_is_self_contained_and_holds_every_table_and_figure(run_dir):
    _, out, paths = run_dir
    text = (out / "report.html").read_text(encoding="utf-8")
    assert paths["report"] == out / "report.html"
    assert "http://" not in text
    assert "https://" not in text
    assert not re.search(r"""(src|href)=["']?(?!data:)[a-z]+:""", text)
    assert "<link" not in text
    assert "<script" not in text
    for ident in TABLES:
        assert f'id="{ident}"' in text, ident
    for figure in FIGURES:
        match = re.search(rf'<img id="{figure}"[^>]*src="data:image/png;base64,([^"]+)"', text)
        assert match, figure
        assert len(match.group(1)) > 2000  # a real picture
    images = re.findall(r"<img [^>]*>", text)
    assert len(images) == len(FIGURES)


def test_report_shows_published_numbers_beside_ours_clearly_labelled(run_dir):
    result, out, _ = run_dir
    text = (out / "report.html").read_text(encoding="utf-8")
    assert "published study" in text
    assert "this run, synthetic data" in text
    table4 = text.split('id="study-table-4"')[1].split("</table>")[0]
    assert "DLR+Complex" in table4
    assert "0.990" in table4  # the study's DLR+Complex AUC, as printed
    assert "reference" in table4  # our DLR+Complex is the DeLong reference
    assert "SUVmax &gt; liver (reader)" in table4
    ours = result.run("dlr_complex", "rf").evaluations["test"].auc
    assert f"{ours.auc:.3f} [{ours.low:.3f}–{ours.high:.3f}]" in table4
    assert "not in this run" in text.split('id="study-table-2"')[1].split("</table>")[0]  # CT


def test_csvs_have_the_expected_columns(run_dir):
    _, _, paths = run_dir
    columns, rows = _rows(paths["metrics"])
    for name in (
        "model",
        "classifier",
        "set",
        "n_lesions",
        "auc",
        "auc_low",
        "auc_high",
        "threshold",
        "sensitivity",
        "sensitivity_low",
        "specificity_high",
        "accuracy",
        "precision",
        "f1",
        "average_precision",
        "brier",
        "delong_p_vs_reference",
    ):
        assert name in columns, name
    assert {r["set"] for r in rows} == {"train", "train_oof", "test"}
    assert len({(r["model"], r["classifier"], r["set"]) for r in rows}) == len(rows)
    columns, rows = _rows(paths["predictions"])
    assert columns == list(PREDICTION_COLUMNS)
    test_patients = {r["patient_id"] for r in rows if r["set"] == "test"}
    train_patients = {r["patient_id"] for r in rows if r["set"] == "train"}
    assert test_patients
    assert not test_patients & train_patients
    columns, rows = _rows(paths["delong"])
    assert columns == list(DELONG_COLUMNS)
    assert {r["reference_model"] for r in rows} == {"dlr_complex"}
    columns, rows = _rows(paths["selected_features"])
    assert {"model", "fit", "lambda", "rank", "feature", "coefficient"} <= set(columns)
    assert {r["model"] for r in rows} == {"pet", "complex", "dl_petct", "dlr_complex"}
    columns, rows = _rows(paths["characteristics"])
    assert columns[:4] == ["variable", "level", "benign", "malignant"]
    assert {"clin_age", "clin_subtype", "met_suv_max"} <= {r["variable"] for r in rows}
    columns, _ = _rows(paths["characteristics_by_set"])
    assert columns[2:5] == ["training set", "test set", "test"]


def test_packaged_study_results_match_the_shared_file():
    path = SHARED / "data" / "study" / "reported_results.csv"
    if not path.is_file():
        pytest.skip(f"{path} is not beside the checkout")
    assert reported_results() == reported_results(path)


def test_k_fold_report_has_no_training_curves_but_every_table():
    result = run_grid(synthetic_table(n_patients=30, seed=4), ["pet", "complex"], ["lr"], cv=3)
    text = render_html(result)
    assert "held out (pooled k-fold CV)" in text
    assert 'id="fig-roc"' in text
    assert 'id="characteristics-set"' not in text  # no single training/test split
    assert "your data" in text  # patient ids are not the phantom's


# ---------------------------------------------------------------------------------------------
# The command


@pytest.fixture(scope="module")
def table_file(tmp_path_factory):
    columns, rows = synthetic_rows(n_patients=40, seed=6)
    path = tmp_path_factory.mktemp("features") / "features.parquet"
    write_table(columns, rows, path)
    return path


def test_train_command_prints_the_table_and_the_report_path(table_file, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--features",
            str(table_file),
            "--out",
            str(out),
            "--small",
            "--models",
            "complex,DLR+Complex",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "DeLong p vs DLR+Complex" in printed
    assert re.search(r"Complex\s+RF\s+\d\.\d{3} \[", printed)
    assert f"report: {(out / 'report.html').resolve()}" in printed
    for name in ("metrics", "delong", "selected_features", "predictions", "characteristics"):
        assert (out / f"{name}.csv").is_file()
    _, rows = _rows(out / "metrics.csv")
    assert {r["classifier"] for r in rows} == {"rf", "lr", "rule"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--models", "dlr_complx"], "unknown model 'dlr_complx'; did you mean 'dlr_complex'?"),
        (["--classifiers", "rf,lgbmm"], "unknown classifier 'lgbmm'; did you mean"),
        (["--cv", "5", "--external", "TABLE"], "choose k-fold CV or an external test set"),
        (["--external", "missing.parquet"], "missing.parquet: no such feature table"),
    ],
)
def test_train_command_errors_are_one_line(table_file, tmp_path, capsys, extra, message):
    extra = [str(table_file) if e == "TABLE" else e for e in extra]
    code = main(["train", "--features", str(table_file), "--out", str(tmp_path), *extra])
    error = capsys.readouterr().err
    assert code == 2
    assert message in error
    assert error.count("\n") == 1


def test_train_command_refuses_nan_and_missing_labels(tmp_path, capsys):
    columns, rows = synthetic_rows(n_patients=20, seed=1)
    rows[3]["petct_noise0"] = None
    write_table(columns, rows, tmp_path / "holed.parquet")
    assert main(["train", "--features", str(tmp_path / "holed.parquet"), "--out", "x"]) == 2
    assert "'petct_noise0' at patient P" in capsys.readouterr().err
    unlabelled = [c for c in columns if c != "label"]
    write_table(unlabelled, rows, tmp_path / "unlabelled.csv")
    assert main(["train", "--features", str(tmp_path / "unlabelled.csv"), "--out", "x"]) == 2
    assert "no 'label' column" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# A real (synthetic) cohort: phantom -> extract -> train


@pytest.mark.large
def test_train_small_on_an_extracted_phantom_cohort(tmp_path, capsys):
    cohort = tmp_path / "cohort"
    features = tmp_path / "features.parquet"
    assert main(["phantom", "--patients", "30", "--seed", "3", "--out", str(cohort)]) == 0
    manifest = str(cohort / "manifest.csv")
    assert main(["extract", "--manifest", manifest, "--out", str(features), "--workers", "1"]) == 0
    capsys.readouterr()
    out = tmp_path / "run"
    assert main(["train", "--features", str(features), "--out", str(out), "--small"]) == 0
    printed = capsys.readouterr().out
    assert "DeLong p vs Complex" in printed  # the phantom has no deep features yet
    text = (out / "report.html").read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert text.rstrip().endswith("</html>")
    for figure in FIGURES:
        assert f'id="{figure}"' in text
    _, rows = _rows(out / "metrics.csv")
    tested = [r for r in rows if r["set"] == "test"]
    assert {r["model"] for r in tested} >= {"ct", "pet", "petct", "complex", "suvmax_liver"}
    for row in tested:
        assert math.isfinite(float(row["auc"]))
        assert 0.0 <= float(row["auc_low"]) <= float(row["auc_high"]) <= 1.0
