"""The module's Logic and its self-test on real Slicer MRML (the ``slicer-core`` wheel).

Nodes, segmentations, the Segmentations module's export and import, tables, colours, transforms
and ``slicer.util`` are Slicer's own code; ``slicer_shims.py`` stands in only for what the
wheel lacks (Qt, ``slicer.app``, ``slicer.modules``, Slicer's source-tree Python modules) and says
why for each. Each bug found by running on real MRML has a test here that fails without its fix.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from slicer_shims import SlicerCore, unavailableReason

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(unavailableReason() is not None, reason=str(unavailableReason()))
OURS = ("BoneOligoMet", "BoneOligoMetSlicer")
# Nodes a temporary labelmap leaves behind when it is not cleaned up.
TEMPORARY_CLASSES = (
    "vtkMRMLColorTableNode",
    "vtkMRMLLabelMapVolumeNode",
    "vtkMRMLLabelMapVolumeDisplayNode",
)


@pytest.fixture(scope="module")
def core():
    session = SlicerCore()
    yield session
    session.close()


def importModule(core, monkeypatch, version=(5, 8)):
    """BoneOligoMet.py imported afresh against this session's scene and stand-ins."""
    core.scene.Clear(0)
    slicer = core.install(monkeypatch, version)
    monkeypatch.syspath_prepend(str(ROOT))
    for name in [name for name in sys.modules if name.split(".")[0] in OURS]:
        monkeypatch.delitem(sys.modules, name)
    return importlib.import_module("BoneOligoMet"), slicer


@pytest.fixture
def bom(core, monkeypatch):
    module, _slicer = importModule(core, monkeypatch)
    yield module
    module.background.stopWorker()  # the warm classifier of this import of the module
    for name in [name for name in sys.modules if name.split(".")[0] in OURS]:
        sys.modules.pop(name)


@pytest.fixture
def loaded(bom):
    logic = bom.BoneOligoMetLogic()
    node = logic.getParameterNode()
    logic.loadSyntheticPatient(node)
    return bom, logic, node


def _counts(scene, classes=TEMPORARY_CLASSES):
    return {name: scene.GetNumberOfNodesByClass(name) for name in classes}


def _segmentArrays(module, node):
    import slicer

    segmentation = node.segmentation
    return {
        module.mrml.segmentName(
            segmentation, segmentId
        ): slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, segmentId, node.ctVolume)
        for segmentId in module.mrml.segmentIds(segmentation)
    }


def _localIjkToRas(volume):
    """The volume's own IJK-to-RAS matrix (without parent transforms)."""
    import slicer
    import vtk

    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


def _shiftUnderTransform(volume, offsetMm):
    """Moves ``volume``'s grid by -offset (x, mm) and puts it under a +offset transform: where
    Slicer shows it (world) is unchanged, its own IJK-to-RAS matrix is not."""
    import slicer

    matrix = _localIjkToRas(volume)
    matrix[0, 3] -= offsetMm
    volume.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(matrix))
    transform = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "registration")
    toParent = np.eye(4)
    toParent[0, 3] = offsetMm
    transform.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(toParent))
    volume.SetAndObserveTransformNodeID(transform.GetID())


# --- the reading workflow ------------------------------------------------------------------------


def test_synthetic_patient_becomes_nodes_and_the_fused_display(loaded, core):
    import slicer

    module, _logic, node = loaded
    assert slicer.util.arrayFromVolume(node.ctVolume).dtype == np.int16
    assert slicer.util.arrayFromVolume(node.petVolume).dtype == np.float32
    assert node.seedPoints.GetNumberOfControlPoints() == len(module.SAMPLE_LESIONS)
    assert node.liverPoint.GetNumberOfControlPoints() == 1
    assert node.subtype in module.SUBTYPES
    assert node.age > 0
    clinical = module.mrml.readTable(node.lesionClinicalTable)
    assert [row["segment"] for row in clinical] == ["Lesion 1", "Lesion 2", "Lesion 3"]
    assert all(row["site"] for row in clinical)
    for logic in core.sliceLogics.values():  # Slicer's Red, Yellow, Green views
        composite = logic.GetSliceCompositeNode()
        assert composite.GetBackgroundVolumeID() == node.ctVolume.GetID()
        assert composite.GetForegroundVolumeID() == node.petVolume.GetID()
        assert composite.GetForegroundOpacity() == pytest.approx(module.display.PET_OPACITY)
    petDisplay = node.petVolume.GetDisplayNode()
    assert petDisplay.GetColorNode().GetName() == "PET-Heat"
    assert (petDisplay.GetWindow(), petDisplay.GetLevel()) == (8.0, 4.0)
    assert node.ctVolume.GetDisplayNode().GetWindow() == module.display.CT_WINDOW_HU[0]
    assert node.segmentation.GetDisplayNode().GetOpacity2DFill() == 0.0  # outlines only


def test_parameter_node_is_stored_on_the_scene(loaded, core):
    """The typed fields round-trip through the scene's vtkMRMLScriptedModuleNode."""
    _module, logic, node = loaded
    stored = core.scene.GetSingletonNode("BoneOligoMet", "vtkMRMLScriptedModuleNode")
    assert stored.GetNodeReferenceID("ctVolume") == node.ctVolume.GetID()
    again = logic.getParameterNode()
    assert (again.age, again.subtype, again.exportPerLesion) == (node.age, node.subtype, False)
    again.suvDoseMBq = 312.5
    assert node.suvDoseMBq == 312.5


def test_seeds_rules_parts_and_jump(loaded, core):
    module, logic, node = loaded
    assert logic.segmentFromSeeds(node) == []
    first = _segmentArrays(module, node)
    assert list(first) == ["Lesion 1", "Lesion 2", "Lesion 3"]
    assert all(mask.sum() > 0 for mask in first.values())
    logic.segmentFromSeeds(node)  # again: replaces the seed-grown segments
    assert node.segmentation.GetSegmentation().GetNumberOfSegments() == 3

    report = logic.checkRules(node)
    rows = module.mrml.readTable(node.ruleTable)
    assert len(rows) == len(report.checks)
    assert rows[0]["segment"] == module.tables.PATIENT_ROW
    assert {row["segment"] for row in rows[1:]} == {"Lesion 1", "Lesion 2", "Lesion 3"}
    logic.includeParts(node, module.tables.PATIENT_ROW)  # the patient row means every lesion
    after = _segmentArrays(module, node)
    for name, mask in first.items():  # parts are added, nothing is taken away
        assert np.all(after[name][mask != 0] != 0)
    assert logic.jumpToLesion(node, "Lesion 2")
    centre = node.segmentation.GetSegmentCenterRAS(
        node.segmentation.GetSegmentation().GetSegmentIdBySegmentName("Lesion 2")
    )
    red = core.sliceLogics["Red"].GetSliceNode()
    assert red.GetSliceOffset() == pytest.approx(centre[2], abs=1e-6)  # axial view at the lesion
    assert not logic.jumpToLesion(node, "no such lesion")
    values = logic.clinicalValues(node)
    assert set(values["site"]) == {1, 2, 3}
    assert values["subtype"] == node.subtype


def test_a_new_lesion_gets_its_bone_change_from_the_ct(loaded):
    module, logic, node = loaded
    logic.segmentFromSeeds(node)
    node.lesionClinicalTable.RemoveAllColumns()  # forget the sample's values
    logic.updateLesionClinicalTable(node)
    rows = module.mrml.readTable(node.lesionClinicalTable)
    assert {row["bone_change"] for row in rows} <= {"osteolytic", "mixed", "osteogenic"}
    assert all(row["site"] == "" for row in rows)


# --- bug: temporary labelmaps left colour tables and display nodes ------------------------------


def test_no_step_leaves_temporary_nodes_behind(loaded, core, tmp_path):
    """Each export of segments to a labelmap made a "<segmentation>_ColorTable" (saved with the
    scene) and left the labelmap's display node: +1 colour table per rule check, +2 per
    include-parts, +4 per lesion per export."""
    _module, logic, node = loaded
    logic.segmentFromSeeds(node)
    before = _counts(core.scene)
    logic.checkRules(node)
    logic.includeParts(node)
    logic.lesionImage(node)
    node.exportFolder = str(tmp_path)
    node.exportPerLesion = True
    logic.exportCase(node)
    logic.segmentFromSeeds(node)
    assert _counts(core.scene) == before


# --- bug: parent transforms were ignored ---------------------------------------------------------


def test_a_pet_under_a_transform_is_read_where_slicer_shows_it(loaded):
    """A PET registered to the CT by a linear transform: seeds grow and rules measure on the PET
    as displayed (before: lesion 1's SUVmax 4.48 against 1.78 displayed, 296 voxels not 1010)."""
    module, logic, node = loaded
    logic.segmentFromSeeds(node)
    logic.checkRules(node)
    expected = (_segmentArrays(module, node), module.mrml.readTable(node.ruleTable))
    _shiftUnderTransform(node.petVolume, 10.0)
    logic.segmentFromSeeds(node)
    logic.checkRules(node)
    grown = _segmentArrays(module, node)
    assert {name: int(mask.sum()) for name, mask in grown.items()} == {
        name: int(mask.sum()) for name, mask in expected[0].items()
    }
    assert module.mrml.readTable(node.ruleTable) == expected[1]


def test_a_ct_under_a_transform_exports_labels_where_slicer_shows_them(loaded, tmp_path):
    module, logic, node = loaded
    from BoneOligoMetLib.io.images import read_image

    logic.segmentFromSeeds(node)
    expected, _ids = logic.lesionImage(node)
    _shiftUnderTransform(node.ctVolume, -7.0)
    node.exportFolder = str(tmp_path)
    logic.exportCase(node)
    exported = read_image(tmp_path / "lesions.nii.gz")
    np.testing.assert_allclose(exported.GetOrigin(), expected.GetOrigin(), atol=1e-4)
    np.testing.assert_array_equal(module._arrayOf(exported), module._arrayOf(expected))
    ct = read_image(tmp_path / "ct.nii.gz")  # the CT is written at its world place too
    np.testing.assert_allclose(ct.GetOrigin(), expected.GetOrigin(), atol=1e-4)


def test_a_non_linear_transform_is_refused_with_its_name(loaded):
    import slicer
    from vtkmodules.vtkCommonTransforms import vtkThinPlateSplineTransform

    _module, logic, node = loaded
    warp = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTransformNode", "warp")
    warp.SetAndObserveTransformToParent(vtkThinPlateSplineTransform())
    node.petVolume.SetAndObserveTransformNodeID(warp.GetID())
    with pytest.raises(ValueError, match=r"non-linear transform 'warp'.*[Hh]arden"):
        logic.segmentFromSeeds(node)


def test_an_oblique_ct_and_pet_give_the_same_lesions_and_an_exact_overlay_grid(loaded):
    """The whole patient turned 0.4 rad about S: the same voxels grow, and the lesion image and
    probability overlay lie on the CT's grid exactly."""
    import slicer

    from BoneOligoMetLib.classify import probability_overlay

    module, logic, node = loaded
    logic.segmentFromSeeds(node)
    expected = {name: int(mask.sum()) for name, mask in _segmentArrays(module, node).items()}
    c, s = np.cos(0.4), np.sin(0.4)
    turn = np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    for volume in (node.ctVolume, node.petVolume):
        matrix = turn @ _localIjkToRas(volume)
        volume.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(matrix))
    for points in (node.seedPoints, node.liverPoint):
        ras = slicer.util.arrayFromMarkupsControlPoints(points)
        turned = (turn[:3, :3] @ ras.T).T
        slicer.util.updateMarkupsControlPointsFromArray(points, turned)
    node.segmentation.SetReferenceImageGeometryParameterFromVolumeNode(node.ctVolume)
    logic.segmentFromSeeds(node)
    grown = {name: int(mask.sum()) for name, mask in _segmentArrays(module, node).items()}
    assert grown == expected
    lesions, _ids = logic.lesionImage(node)
    ct = module.mrml.imageFromVolumeNode(node.ctVolume)
    for image in (lesions, probability_overlay(lesions, ct, {1: 0.9, 2: 0.2, 3: 0.6})):
        np.testing.assert_allclose(image.GetDirection(), ct.GetDirection(), atol=1e-12)
        np.testing.assert_allclose(image.GetOrigin(), ct.GetOrigin(), atol=1e-9)
        assert image.GetSize() == ct.GetSize()


# --- bug: overlapping segments were flattened and written back -----------------------------------


def _handDrawnAroundLesion1(module, node):
    """A hand-drawn segment that contains lesion 1 (Slicer puts it on a layer of its own)."""
    import slicer

    lesion1 = _segmentArrays(module, node)["Lesion 1"]
    box = np.zeros_like(lesion1)
    k, j, i = np.nonzero(lesion1)
    box[k.min() - 2 : k.max() + 3, j.min() - 2 : j.max() + 3, i.min() - 2 : i.max() + 3] = 1
    segments = node.segmentation.GetSegmentation()
    segmentId = segments.AddEmptySegment("", "Vertebra (hand-drawn)")
    slicer.util.updateSegmentBinaryLabelmapFromArray(
        box, node.segmentation, segmentId, node.ctVolume
    )
    return box


def test_overlapping_segments_are_refused_and_never_destroyed(loaded):
    """Before: "later segment wins" gave lesion 1 zero voxels, the rules saw 3 lesions, and
    include-parts wrote the flattened image back into every segment: lesion 1 was gone."""
    module, logic, node = loaded
    logic.segmentFromSeeds(node)
    box = _handDrawnAroundLesion1(module, node)
    before = _segmentArrays(module, node)
    for step in (logic.checkRules, logic.includeParts, logic.lesionImage):
        with pytest.raises(module.mrml.SegmentOverlapError, match="'Lesion 1' and 'Vertebra"):
            step(node)
    logic.segmentFromSeeds(node)  # regrowing the seeds leaves the hand-drawn segment alone
    after = _segmentArrays(module, node)
    assert set(after) == set(before)
    for name, mask in before.items():
        np.testing.assert_array_equal(after[name], mask, err_msg=name)
    assert int(after["Vertebra (hand-drawn)"].sum()) == int(box.sum())


def test_including_parts_writes_back_only_the_lesion_asked_for(loaded):
    """Including the parts of lesion 3 writes lesion 3 back (a new labelmap object) and leaves
    lesions 1 and 2 as they were, down to the labelmap object that holds them (before: every
    segment was rewritten from a flattened label image)."""
    module, logic, node = loaded
    logic.segmentFromSeeds(node)
    segments = node.segmentation.GetSegmentation()

    def labelmapObject(name):
        segment = segments.GetSegment(segments.GetSegmentIdBySegmentName(name))
        return segment.GetRepresentation("Binary labelmap").__this__

    objects = {name: labelmapObject(name) for name in ("Lesion 1", "Lesion 2", "Lesion 3")}
    before = _segmentArrays(module, node)
    logic.includeParts(node, "Lesion 3")
    after = _segmentArrays(module, node)
    assert labelmapObject("Lesion 3") != objects["Lesion 3"]
    assert np.all(after["Lesion 3"][before["Lesion 3"] != 0] != 0)
    for name in ("Lesion 1", "Lesion 2"):
        assert labelmapObject(name) == objects[name], f"{name} was written back"
        np.testing.assert_array_equal(after[name], before[name])


# --- bug: classification.json types, rules.csv patient row ----------------------------------------


def _summary(probabilities):
    rows = []
    for label, p in enumerate(probabilities, 1):
        verdict = "outside model domain" if isinstance(p, str) else "benign"
        if not isinstance(p, str) and p >= 0.639:
            verdict = "malignant"
        rows.append(
            {"lesion_label": label, "probability": p, "verdict": verdict, "met_suv_max": 4.0}
        )
    return {
        "rows": rows,
        "threshold": 0.639,
        "device": "cpu",
        "synthetic": True,
        "warning": "synthetic demo model — not for clinical use",
        "bundle_name": "demo",
    }


def test_results_overlay_legend_and_typed_export(loaded, tmp_path):
    """classification.json held "0.639" and "True" (strings); rules.csv gave the patient row
    lesion 0; a lesion outside the model's domain turned the probability column into text."""
    import slicer

    from BoneOligoMetLib.classify import probability_overlay

    module, logic, node = loaded
    logic.segmentFromSeeds(node)
    logic.checkRules(node)
    lesions, segmentIds = logic.lesionImage(node)
    ct = module.mrml.imageFromVolumeNode(node.ctVolume)
    overlay = probability_overlay(lesions, ct, {1: 0.9, 2: 0.2})
    logic._showClassification(
        node, _summary([0.9, 0.2, "outside model domain"]), overlay, segmentIds
    )
    rows = module.mrml.readTable(node.resultsTable)
    assert [row["label"] for row in rows] == ["malignant", "benign", "outside model domain"]
    assert [row["probability"] for row in rows] == ["0.9", "0.2", ""]
    assert node.resultsTable.GetTable().GetColumnByName("probability").GetDataTypeAsString() == (
        "double"
    )
    assert "not for clinical use" in node.modelStatus
    assert node.deviceStatus == "Ran on cpu"
    volume = node.probabilityVolume
    assert slicer.util.arrayFromVolume(volume).max() == pytest.approx(0.9)
    assert volume.GetDisplayNode().GetColorNodeID() == module.display.probabilityColorNode().GetID()
    legend = slicer.modules.colors.logic().GetColorLegendDisplayNode(volume)
    assert legend.GetVisibility()
    assert legend.GetTitleText() == "Malignancy probability"
    composite = slicer.mrmlScene.GetNodeByID("vtkMRMLSliceCompositeNodeRed")
    assert composite.GetForegroundVolumeID() == volume.GetID()

    node.exportFolder = str(tmp_path)
    logic.exportCase(node)
    saved = json.loads((tmp_path / "classification.json").read_text())
    assert saved["threshold"] == 0.639
    assert saved["synthetic"] is True
    assert saved["bundle_name"] == "demo"
    rules = (tmp_path / "rules.csv").read_text(encoding="utf-8").splitlines()
    assert rules[0] == ",".join(module.tables.RULE_COLUMNS)
    assert rules[1].startswith(f"{module.tables.PATIENT_ROW},,lesion_count,")


def test_export_writes_the_ct_grid_labels_and_tables(loaded, tmp_path):
    module, logic, node = loaded
    from BoneOligoMetLib.io.images import read_image

    logic.segmentFromSeeds(node)
    logic.checkRules(node)
    node.exportFolder = str(tmp_path / "out")
    node.exportPerLesion = True
    written = logic.exportCase(node)
    names = sorted(Path(path).name for path in written)
    assert names == [
        "clinical.csv",
        "ct.nii.gz",
        "lesion_01.nii.gz",
        "lesion_02.nii.gz",
        "lesion_03.nii.gz",
        "lesions.nii.gz",
        "rules.csv",
        "suv.nii.gz",
    ]
    ct = module.mrml.imageFromVolumeNode(node.ctVolume)
    lesions = read_image(tmp_path / "out" / "lesions.nii.gz")
    assert lesions.GetSize() == ct.GetSize()
    np.testing.assert_allclose(lesions.GetOrigin(), ct.GetOrigin(), atol=1e-4)
    labels = module._arrayOf(lesions)
    masks = _segmentArrays(module, node)
    for label, name in enumerate(("Lesion 1", "Lesion 2", "Lesion 3"), 1):
        np.testing.assert_array_equal(labels == label, masks[name] != 0)
        single = module._arrayOf(read_image(tmp_path / "out" / f"lesion_{label:02d}.nii.gz"))
        np.testing.assert_array_equal(single != 0, masks[name] != 0)


# --- the background classification ----------------------------------------------------------------


def test_a_failing_classification_names_its_reason(loaded, tmp_path):
    _module, logic, node = loaded
    logic.segmentFromSeeds(node)
    node.modelFolder = str(tmp_path / "no-bundle-here")
    job = logic.startClassification(node)
    job.wait(timeoutSeconds=120)
    with pytest.raises(RuntimeError, match=r"no-bundle-here|classifier"):
        logic.finishClassification(node, job)
    assert node.deviceStatus == "Failed."
    assert not Path(job.folder).exists()  # the job folder is cleaned up


def test_closing_the_scene_cancels_a_running_classification(loaded, core):
    """Before: the job ran on, and its end raised an AttributeError on the closed scene."""
    _module, logic, node = loaded
    logic.segmentFromSeeds(node)
    completed = []
    job = logic.startClassification(node, onCompleted=completed.append)
    core.scene.Clear(0)  # File > Close Scene
    assert job.cancelled
    job.wait(timeoutSeconds=60)
    assert completed == [job]
    assert job.returnCode != 0
    assert logic.finishClassification(None, job) is None
    assert not Path(job.folder).exists()


@pytest.mark.large
def test_the_second_classification_reuses_the_warm_worker(loaded, core):
    """The reader's second click is answered by the process the first one started (library
    imported, bundle loaded); the same probabilities come back; leaving the module lets the
    worker go (its memory returned), and the next click starts a new one."""
    from BoneOligoMetLib.models.bundle import default_bundle_path

    if not (default_bundle_path() / "manifest.json").is_file():
        pytest.skip("the packaged demo bundle is not built yet")
    module, logic, node = loaded
    background = module.background
    logic.segmentFromSeeds(node)
    summaries, pids = [], []
    for _ in range(2):
        job = logic.startClassification(node)
        job.wait(timeoutSeconds=900)
        summaries.append(logic.finishClassification(node, job))
        assert summaries[-1] is not None, job.errorMessage or "\n".join(job.log[-10:])
        assert not Path(job.folder).exists()
        worker = background._worker
        pids.append(worker.process.pid)
    assert pids[0] == pids[1]
    assert worker.started == 1
    assert summaries[0]["rows"] == summaries[1]["rows"]
    overlay = module.mrml.imageFromVolumeNode(node.probabilityVolume)
    values = module._arrayOf(overlay)
    labels = module._arrayOf(logic.lesionImage(node)[0])
    for row in summaries[1]["rows"]:
        if not isinstance(row["probability"], str):
            np.testing.assert_allclose(values[labels == row["lesion_label"]], row["probability"])
    assert np.all(values[labels == 0] == 0)
    process = worker.process
    background.releaseWorker(0)  # what leaving the module does once its grace is over
    assert process.poll() is not None  # ended: its memory is returned
    assert background._worker is None
    job = logic.startClassification(node)
    job.wait(timeoutSeconds=900)
    assert logic.finishClassification(node, job)["rows"] == summaries[0]["rows"]
    assert background._worker.process.pid != pids[0]
    core.scene.Clear(0)  # closing the scene ends the worker too
    assert background._worker.process is None or background._worker.process.poll() is not None


@pytest.mark.large
def test_the_self_test_runs_on_real_mrml(bom, core):
    """BoneOligoMetTest as Slicer runs it: Sample Data, seeds, rules, parts, classification with
    the packaged demo model in the background worker, overlay and legend, export, no leaks."""
    from BoneOligoMetLib.models.bundle import default_bundle_path

    if not (default_bundle_path() / "manifest.json").is_file():
        pytest.skip("the packaged demo bundle is not built yet")
    test = bom.BoneOligoMetTest()
    test.runTest()
    node = bom.BoneOligoMetLogic().getParameterNode()
    assert node.resultsTable.GetNumberOfRows() == 3  # the classification step did run
    assert node.deviceStatus.startswith("Ran on ")


def test_pyradiomics_from_the_maintained_fork_counts_as_installed(bom, core):
    """The environment make test builds has every classifier package (pyradiomics from
    pyradiomics-bhklab): the panel must see none missing, or it would skip classification."""
    assert bom.BoneOligoMetLogic().missingClassifierPackages() == []


class _DicomDatabase:
    """Stands in for ``slicer.dicomDatabase`` (ctkDICOMDatabase: Qt, not in slicer-core): the
    one call the export makes, ``fileForInstance(SOPInstanceUID)`` -> path ("" when unknown)."""

    def __init__(self, files):
        import pydicom

        self.files = {
            str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID): str(f) for f in files
        }

    def fileForInstance(self, uid):
        return self.files.get(uid, "")


def _ctFromDicom(module, node, folder, monkeypatch):
    """The panel's CT written as a DICOM series and registered as Slicer's DICOM plugin does
    (the volume's DICOM.instanceUIDs attribute, the files in the database)."""
    import datetime as dt

    import slicer

    from BoneOligoMetLib.synthetic.dicom_ct import write_ct_series

    ct = module.mrml.imageFromVolumeNode(node.ctVolume)
    files = write_ct_series(ct, folder, series_datetime=dt.datetime(2026, 1, 5, 9, 30))
    database = _DicomDatabase(files)
    monkeypatch.setattr(slicer, "dicomDatabase", database, raising=False)
    node.ctVolume.SetAttribute("DICOM.instanceUIDs", " ".join(database.files))
    return files


@pytest.mark.filterwarnings("error::UserWarning")  # e.g. pydicom: text not in the character set
def test_export_dicom_writes_a_seg_on_the_ct_series_and_an_sr_with_the_probabilities(
    loaded, tmp_path, monkeypatch
):
    import highdicom as hd

    from BoneOligoMetLib.io.images import read_image
    from BoneOligoMetLib.lesions.dicom_labels import labels_from_dicom

    module, logic, node = loaded
    files = _ctFromDicom(module, node, tmp_path / "ct", monkeypatch)
    logic.segmentFromSeeds(node)
    ids = module.mrml.segmentIds(node.segmentation)
    names = [module.mrml.segmentName(node.segmentation, i) for i in ids]
    table = module.mrml.ensureTable(node, "resultsTable", "results")
    summary = [  # as a classification leaves them; lesion 3 outside the model's domain
        {"lesion_label": 1, "probability": 0.8, "verdict": "malignant", "met_suv_max": 9.0},
        {"lesion_label": 2, "probability": 0.25, "verdict": "benign", "met_suv_max": 3.0},
        {"lesion_label": 3, "probability": "outside model domain", "verdict": "outside"},
    ]
    module.tables.fillResults(table, summary, names)
    table.SetAttribute(
        module.export.SUMMARY_ATTRIBUTE,
        json.dumps({"bundle_name": "demo model", "warning": "synthetic demo model"}),
    )
    node.exportFolder = str(tmp_path / "out")
    node.exportDicom = True
    written = {
        Path(path).relative_to(tmp_path / "out").as_posix() for path in logic.exportCase(node)
    }
    assert {"dicom/seg.dcm", "dicom/sr.dcm", "lesions.nii.gz", "results.csv"} <= written

    ct = read_image(Path(files[0]).parent)
    back, rois = labels_from_dicom(tmp_path / "out" / "dicom" / "seg.dcm", ct)
    exported = read_image(tmp_path / "out" / "lesions.nii.gz")
    np.testing.assert_array_equal(module._arrayOf(back), module._arrayOf(exported))
    assert len(rois) == 3
    sr = hd.sr.srread(str(tmp_path / "out" / "dicom" / "sr.dcm"))
    assert "synthetic demo model" in sr.SeriesDescription
    probabilities = {}
    for group in sr.content.get_volumetric_roi_measurement_groups():
        label = int(group.tracking_identifier.split()[-1])
        values = {m.name.value: m.value for m in group.get_measurements()}
        probabilities[label] = values.get("111047")  # probability of cancer, %
    assert probabilities == {1: pytest.approx(80.0), 2: pytest.approx(25.0), 3: None}


def test_export_dicom_of_a_ct_not_from_the_dicom_database_is_refused_before_any_file(
    loaded, tmp_path
):
    _module, logic, node = loaded
    logic.segmentFromSeeds(node)
    node.exportFolder = str(tmp_path / "out")
    node.exportDicom = True
    with pytest.raises(ValueError, match="was not loaded from Slicer's DICOM database"):
        logic.exportCase(node)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_export_dicom_without_highdicom_says_why_and_writes_nothing(loaded, tmp_path, monkeypatch):
    """Slicer ships pydicom 2.4 and highdicom needs pydicom 3: the panel never installs it and
    says so, before any file is written."""
    import importlib.util

    _module, logic, node = loaded
    findSpec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "highdicom" else findSpec(name, *a),
    )
    logic.segmentFromSeeds(node)
    node.exportFolder = str(tmp_path / "out")
    node.exportDicom = True
    with pytest.raises(ValueError, match="DICOM export needs highdicom, which needs pydicom 3"):
        logic.exportCase(node)
    assert not (tmp_path / "out").exists()
