"""*Find candidate lesions* on real Slicer MRML (``slicer-core``; see ``slicer_shims.py``): the
Logic's background search (``Resources/Scripts/candidates_worker.py``), the seed points it
fills, cancel and scene close, and the panel's button with its progress dialog.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from slicer_shims import unavailableReason
from test_slicer_logic import OURS, core, importModule  # noqa: F401 - the shared session fixture
from test_slicer_widget import panel  # noqa: F401 - the panel with fake Qt widgets

pytestmark = pytest.mark.skipif(unavailableReason() is not None, reason=str(unavailableReason()))
NAME = re.compile(r"^C(\d+) SUV \d+\.\d$")


@pytest.fixture
def loaded(core, monkeypatch):  # noqa: F811 - the fixture imported above
    module, _slicer = importModule(core, monkeypatch)
    logic = module.BoneOligoMetLogic()
    node = logic.getParameterNode()
    logic.loadSyntheticPatient(node)
    return module, logic, node


def _search(logic, node, **callbacks):
    job = logic.findCandidates(node, **callbacks)
    job.wait(timeoutSeconds=120)
    return job


def test_candidates_become_seed_points_named_by_rank_and_suvmax(loaded, core):  # noqa: F811
    import slicer

    from BoneOligoMetLib.io.coords import lps_to_ras_points
    from BoneOligoMetLib.lesions.candidates import PROPOSAL_NOTE, slicer_candidates

    module, logic, node = loaded
    own = node.seedPoints  # the sample's seeds: the reader's own list
    progress = []
    job = _search(logic, node, onProgress=lambda fraction, text: progress.append(fraction))
    found = logic.finishCandidates(node, job)
    assert not Path(job.folder).exists()  # the job folder is cleaned up
    assert progress
    assert progress == sorted(progress)
    assert progress[-1] == 1.0

    # What the library proposes for the same images, as seed points, best first.
    ct, suv = logic._images(node)
    expected = slicer_candidates(ct, suv, max_candidates=module.MAX_CANDIDATES)
    assert [c["name"] for c in found] == [c["name"] for c in expected]
    assert 0 < len(found) <= module.MAX_CANDIDATES
    seeds = node.seedPoints
    assert seeds is not own
    assert seeds.GetName() == module.CANDIDATES_NAME
    labels = [seeds.GetNthControlPointLabel(i) for i in range(seeds.GetNumberOfControlPoints())]
    assert [int(NAME.match(label).group(1)) for label in labels] == list(range(1, len(found) + 1))
    ras = slicer.util.arrayFromMarkupsControlPoints(seeds)
    np.testing.assert_allclose(ras, lps_to_ras_points([c["point_lps"] for c in found]), atol=1e-4)
    assert PROPOSAL_NOTE in seeds.GetNthControlPointDescription(0)
    red = core.sliceLogics["Red"].GetSliceNode()
    assert red.GetSliceOffset() == pytest.approx(ras[0][2], abs=1e-6)  # the views at C1
    assert own.GetNumberOfControlPoints() == len(module.SAMPLE_LESIONS)  # left as it was

    # The candidates are seeds like any other: they grow; a second search refills the same list.
    problems = logic.segmentFromSeeds(node)
    grown = node.segmentation.GetSegmentation().GetNumberOfSegments()
    assert grown > 0
    assert grown + len(problems) <= len(found)
    logic.finishCandidates(node, _search(logic, node))
    assert node.seedPoints is seeds
    assert seeds.GetNumberOfControlPoints() == len(found)
    lists = slicer.util.getNodesByClass("vtkMRMLMarkupsFiducialNode")
    assert sum(bool(n.GetAttribute(module.CANDIDATES_TAG)) for n in lists) == 1


def test_a_cancelled_search_changes_nothing(loaded):
    _module, logic, node = loaded
    seeds = node.seedPoints
    job = logic.findCandidates(node)
    job.cancel()
    job.wait(timeoutSeconds=60)
    assert job.cancelled
    assert job.returnCode != 0
    assert logic.finishCandidates(node, job) is None
    assert node.seedPoints is seeds
    assert not Path(job.folder).exists()


def test_a_failing_search_names_its_reason(loaded):
    _module, logic, node = loaded
    node.petVolume = node.ctVolume  # HU where SUV is expected
    job = _search(logic, node)
    with pytest.raises(RuntimeError, match=r"candidate search stopped.*(SUV|PET)"):
        logic.finishCandidates(node, job)
    assert not Path(job.folder).exists()


def test_closing_the_scene_cancels_a_running_search(loaded, core):  # noqa: F811
    _module, logic, node = loaded
    completed = []
    job = logic.findCandidates(node, onCompleted=completed.append)
    core.scene.Clear(0)  # File > Close Scene
    assert job.cancelled
    job.wait(timeoutSeconds=60)
    assert completed == [job]
    assert logic.finishCandidates(None, job) is None
    assert not Path(job.folder).exists()


def test_the_button_runs_the_search_with_a_progress_dialog(panel):  # noqa: F811
    module, widget, dialogs, messages = panel
    assert widget.ui.findCandidatesButton.enabled is False  # no CT or PET yet
    assert any(c[0] == "clicked(bool)" for c in widget.ui.findCandidatesButton.connections)
    widget.logic.loadSyntheticPatient(widget._parameterNode)
    assert widget.ui.findCandidatesButton.enabled is True
    widget.onFindCandidates()
    job = widget._job
    assert job is not None
    assert widget.ui.findCandidatesButton.enabled is False  # one job at a time
    assert widget.ui.classifyButton.enabled is False
    assert dialogs[-1].slots["canceled()"] == job.cancel
    job.wait(timeoutSeconds=120)
    assert widget._job is None
    assert dialogs[-1].closed
    assert widget._parameterNode.seedPoints.GetName() == module.CANDIDATES_NAME
    assert re.match(r"\d+ candidate lesions as seed points: automatic proposals", messages[-1])
    assert widget.ui.findCandidatesButton.enabled is True
