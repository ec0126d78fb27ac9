"""Whole-body candidate bone lesions: the finder on small synthetic patients (one with no lesion
at all), the ranking model file, ``bone-oligomet candidates``, ``classify --find-lesions`` and
what the Slicer panel calls. The cohort-level numbers (FROC, full-size patients) are measured by
``bench/bench_candidates.py``."""

from __future__ import annotations

import csv
import functools
import json
import re

import numpy as np
import pytest
import SimpleITK as sitk

from BoneOligoMetLib.cli import main
from BoneOligoMetLib.lesions import candidate_ranking
from BoneOligoMetLib.lesions.candidate_features import FEATURES
from BoneOligoMetLib.lesions.candidate_maps import CandidateError
from BoneOligoMetLib.lesions.candidate_ranking import (
    load_ranking,
    match_lesions,
    model_from_dict,
)
from BoneOligoMetLib.lesions.candidates import (
    PROPOSAL_NOTE,
    candidate_rois,
    find_candidates,
    slicer_candidates,
)
from BoneOligoMetLib.synthetic import candidate_training
from BoneOligoMetLib.synthetic.phantom import generate_patient, write_patient

# Seeds never used to train the ranking (1701–1705) nor by the benchmarks (4242–5353).
AVID = (31, ("osteolytic_metastasis", "mixed_metastasis", "osteolytic_metastasis"))
HEALTHY = 32


@functools.lru_cache(maxsize=2)
def patient(seed: int, lesion_types: tuple = ()):
    if lesion_types:
        return generate_patient(seed, "small", lesion_types=list(lesion_types))
    return generate_patient(seed, "small", n_lesions=0)


@functools.lru_cache(maxsize=2)
def found(seed: int, lesion_types: tuple = ()):
    p = patient(seed, lesion_types)
    return find_candidates(p.ct, p.suv)


def test_avid_lesions_are_proposed_where_they_are():
    p = patient(*AVID)
    result = found(*AVID)
    suv_max = p.measured_suv_max
    avid = {lesion.label for lesion in p.lesions if suv_max[lesion.label] >= 2.2}
    hot = {lesion.label for lesion in p.lesions if suv_max[lesion.label] >= 5.0}
    assert len(avid) == 3
    assert len(hot) == 1
    # every avid lesion is among the foci the search scores; the hot ones are proposed (the
    # faint large lytic one in the ilium, SUVmax 3.8, ranks 4th, below the operating point:
    # the benchmark measures how often that happens)
    scored, _ = match_lesions([c.point_lps_mm for c in result.scored], p.lesion_labels)
    assert avid <= set(scored.tolist())
    points = [c.point_lps_mm for c in result.candidates]
    hits, _ = match_lesions(points, p.lesion_labels)
    assert hot <= set(hits.tolist())
    assert np.mean(hits > 0) >= 0.5
    # ranked best first, all above the operating point; the CSV row holds what the issue asks
    assert [c.rank for c in result.candidates] == list(range(1, len(result.candidates) + 1))
    scores = [c.score for c in result.candidates]
    assert scores == sorted(scores, reverse=True)
    assert all(s > result.threshold for s in scores)
    row = result.candidates[0].row()
    assert list(row)[:9] == [
        "rank", "x", "y", "z", "suvmax", "volume_ml", "site", "score", "why"
    ]  # fmt: skip
    assert re.match(r"SUVmax \d+\.\d, \d+\.\d× marrow, ", row["why"])
    for candidate in result.candidates:
        if hits[candidate.rank - 1]:
            assert candidate.suv_max >= 2.0
            assert candidate.site in {"spine", "pelvis", "ribs", "limbs"}


def test_a_patient_without_lesion_gets_no_candidate_or_only_low_scored_ones():
    result = found(HEALTHY)
    assert patient(HEALTHY).lesions == []
    assert len(result.scored) > 10  # plenty of foci were looked at (marrow, organs, joints)
    assert len(result.candidates) <= 1
    assert all(c.score < 0.5 for c in result.candidates)
    # deterministic: the same study gives the same table
    again = find_candidates(patient(HEALTHY).ct, patient(HEALTHY).suv)
    assert [c.row() for c in again.scored] == [c.row() for c in result.scored]


def test_rois_are_labelled_by_rank_and_cover_the_lesions():
    p = patient(*AVID)
    result = found(*AVID)
    labels = candidate_rois(p.ct, p.suv, result)
    assert labels.GetSize() == p.ct.GetSize()
    values = set(np.unique(sitk.GetArrayViewFromImage(labels)).tolist()) - {0}
    assert values <= {c.rank for c in result.candidates}
    truth = sitk.GetArrayViewFromImage(p.lesion_labels)
    rois = sitk.GetArrayViewFromImage(labels)
    assert np.mean(rois[truth == 0] > 0) < 1e-3  # little outside the lesions
    for lesion in p.lesions:
        suv_max = p.measured_suv_max[lesion.label]
        covered = np.mean(rois[truth == lesion.label] > 0)
        if suv_max >= 5.0:  # the proposed hot lesion grows whole
            assert covered >= 0.7, lesion.kind.name


def test_the_slicer_panel_gets_named_ranked_points_at_most_max():
    p = patient(*AVID)
    points = slicer_candidates(p.ct, p.suv, max_candidates=1)
    assert len(points) == 1
    assert points[0]["name"] == f"C1 SUV {points[0]['suv_max']:.1f}"
    assert points[0]["rank"] == 1
    assert points[0]["note"] == PROPOSAL_NOTE
    assert points[0]["point_lps"] == found(*AVID).candidates[0].point_lps_mm
    assert {"score", "site", "why"} <= set(points[0])
    with pytest.raises(CandidateError, match="max_candidates must be ≥ 0"):
        find_candidates(p.ct, p.suv, max_candidates=-1)


# --- the ranking model ------------------------------------------------------------------------


def test_packaged_ranking_model_is_current(capsys):
    assert candidate_training.main(["--check"]) == 0
    assert "up to date" in capsys.readouterr().out
    model = load_ranking()
    assert model.features == FEATURES
    assert 0.0 < model.threshold < 1.0
    assert model.training["recipe"]["cohorts"][0]["seed"] == 1701


def test_exported_trees_score_like_scikit_learn():
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, len(FEATURES)))
    X[rng.uniform(size=X.shape) < 0.02] = np.nan  # missing values take their learned side
    y = (np.nan_to_num(X[:, 0]) + 0.5 * np.nan_to_num(X[:, 3]) > 0.3).astype(int)
    fitted = HistGradientBoostingClassifier(max_depth=3, max_iter=30).fit(X, y)
    baseline, trees = candidate_training.export_trees(fitted)
    data = {"format": candidate_ranking.FORMAT, "features": list(FEATURES), "baseline": baseline,
            "threshold": 0.5, "trees": trees}  # fmt: skip
    model = model_from_dict(json.loads(json.dumps(data)), "test")
    np.testing.assert_allclose(model.score(X), fitted.predict_proba(X)[:, 1], atol=1e-6)


def test_a_damaged_or_foreign_model_file_is_refused(tmp_path):
    good = json.loads(candidate_ranking.DEFAULT_MODEL.read_text())
    tree = good["trees"][0]
    broken_tree = {**tree, "left": [99] * len(tree["left"])}
    cases = {
        "text": ("not json", r"not a ranking model \(not JSON\)"),
        "format": (json.dumps({**good, "format": "other"}), r"not a ranking model"),
        "features": (json.dumps({**good, "features": ["a"]}), r"features differ"),
        "child": (
            json.dumps({**good, "trees": [broken_tree]}),
            r"damaged ranking model \(a child index outside the tree\)",
        ),
    }
    for name, (text, pattern) in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_text(text)
        with pytest.raises(CandidateError, match=pattern) as raised:
            load_ranking(path)
        assert str(path) in str(raised.value)
    with pytest.raises(CandidateError, match="cannot read"):
        load_ranking(tmp_path / "missing.json")


# --- the command ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("candidates") / "patient"
    write_patient(patient(*AVID), folder)
    return folder


def test_candidates_command_writes_the_table_and_the_rois(written, tmp_path, capsys):
    table, rois = tmp_path / "c.csv", tmp_path / "c.nii.gz"
    argv = ["candidates", "--ct", str(written / "ct.nii.gz"), "--pet", str(written / "suv.nii.gz"),
            "-o", str(table), "--labels", str(rois), "--max", "2"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert PROPOSAL_NOTE in out
    with open(table, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert 1 <= len(rows) <= 2
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    labels = sitk.ReadImage(str(rois))
    assert set(np.unique(sitk.GetArrayViewFromImage(labels))) - {0} <= {1, 2}
    # the first row's point is a usable `segment` seed
    seed = f"--seed={rows[0]['x']},{rows[0]['y']},{rows[0]['z']}"
    argv = ["segment", "--ct", str(written / "ct.nii.gz"), "--pet", str(written / "suv.nii.gz"),
            seed, "-o", str(tmp_path / "seg.nii.gz")]  # fmt: skip
    assert main(argv) == 0


def test_candidates_command_refuses_bad_input_in_one_line_and_writes_nothing(
    written, tmp_path, capsys
):
    ct, suv = str(written / "ct.nii.gz"), str(written / "suv.nii.gz")
    bq = str(written / "pet_bqml.nii.gz")
    table = str(tmp_path / "c.csv")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    cases = [
        (["--pet", bq, "-o", table], r"look like Bq/mL, not SUV"),
        (["--pet", suv, "-o", str(tmp_path / "c.txt")], r"--output .*c\.txt: give a \.csv"),
        (["--pet", suv, "-o", table, "--max", "-1"], r"argument --max: expected a whole number"),
        (["--pet", suv, "-o", table, "--labels", str(tmp_path / "l.txt")],
         r"--labels .*l\.txt: cannot write this format"),
        (["--pet", suv, "-o", table, "--model", str(bad)], r"bad\.json: not a ranking model"),
        (["--pet", str(tmp_path / "none.nii.gz"), "-o", table], r"none\.nii\.gz"),
    ]  # fmt: skip
    for extra, pattern in cases:
        status = _status(["candidates", "--ct", ct, *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert status == 2, extra
        assert len(err) == 1, err
        assert re.search(pattern, err[0]), err[0]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json"], extra


def _status(argv) -> int:
    """The exit status of the command (argparse's usage errors exit)."""
    try:
        return main(argv)
    except SystemExit as exited:
        return int(exited.code)


def test_classify_find_lesions_reads_a_patient_with_no_click(written, tmp_path, capsys):
    p = patient(*AVID)
    liver = ",".join(f"{c:.1f}" for c in p.liver_seed_lps_mm)
    out = tmp_path / "read"
    argv = ["classify", "--ct", str(written / "ct.nii.gz"), "--pet", str(written / "suv.nii.gz"),
            "--find-lesions", "--clinical", "age=60", "--clinical", "subtype=HR+",
            f"--liver-seed={liver}", "--no-png", "--device", "cpu", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "lesions found automatically" in printed
    summary = json.loads((out / "results.json").read_text())
    assert PROPOSAL_NOTE in summary["notice"]
    with open(out / "candidates.csv", newline="") as handle:
        ranks = {int(r["rank"]) for r in csv.DictReader(handle)}
    classified = {row["lesion_label"] for row in summary["lesions"]}
    assert classified
    assert classified <= ranks
    lesions = sitk.ReadImage(str(out / "lesions.nii.gz"))
    assert set(np.unique(sitk.GetArrayViewFromImage(lesions))) - {0} == classified
