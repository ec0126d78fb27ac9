"""BoneOligoMet 3D Slicer module: a thin layer over BoneOligoMetLib.

The panel follows a reading: inputs (CT, PET in SUV, lesion segmentation, liver reference point,
clinical values) -> fused PET/CT display -> rule-guided delineation (Segment Editor, seed points
grown by the study's SUV >= 2.2 rule, the ROI-rule checks with "include part") -> one-click
classification -> results (table, probability overlay with a colour legend) -> .nii.gz export.

The Widget maps each button to one Logic call inside ``slicer.util.tryWithErrorDisplay``; the Logic
converts MRML nodes to and from SimpleITK images (RAS/LPS only through
``BoneOligoMetLib.io.coords``)
and calls the library. Nothing clinical or numerical lives here.

Classification runs in a background process (``Resources/Scripts/classify_worker.py`` under
PythonSlicer) that ``BoneOligoMetSlicer.background`` keeps warm between classifications and
follows; the classifier's packages are checked and, after asking, installed by
``BoneOligoMetSlicer.dependencies``. The whole-body candidate search (*Find candidate lesions*)
runs in a process of its own (``Resources/Scripts/candidates_worker.py``,
``BoneOligoMetSlicer.candidates``).
"""

import importlib
import json
import logging
import os
from typing import Annotated, Optional

import qt
import slicer
import vtk
from slicer import (
    vtkMRMLMarkupsFiducialNode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
    vtkMRMLTableNode,
)
from slicer.i18n import tr as _
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from BoneOligoMetSlicer import background, candidates, dependencies, display, export, mrml, tables

MODULE_DIR = os.path.dirname(os.path.abspath(__file__))
RESOURCES_DIR = os.path.join(MODULE_DIR, "Resources")

SAMPLE_NAME = "BoneOligoMet synthetic patient"
SAMPLE_SEED = 3  # a small synthetic patient with three lesions and necrotic/calcified parts
SAMPLE_LESIONS = ("osteolytic_metastasis", "mixed_metastasis", "healing_fracture")
SUBTYPES = ("unknown", "HR+", "HER2+", "triple-negative")
SEGMENTATION_METHODS = ("petct", "pet")  # lesions.segment: PET+CT border, plain 2.2
DEVICES = ("auto", "cpu", "cuda")
DEMO_MODEL_STATUS = "Packaged demo model: synthetic demo model — not for clinical use"
SEED_TAG = "BoneOligoMet.seed"  # marks segments grown from seed points (re-growing replaces them)
CANDIDATES_TAG = "BoneOligoMet.candidates"  # marks the point list the candidate search fills
CANDIDATES_NAME = "Candidate lesions"
MAX_CANDIDATES = 10  # the best-ranked candidates shown as seed points
# Slicer 5.8: parameterNodeWrapper's QLabel <-> str connector (the status lines) and Python 3.9.
MINIMUM_SLICER = (5, 8)
MINIMUM_SLICER_TEXT = "5.8"
DOCUMENTATION_URL = "https://github.com/BoneOligoMet/BoneOligoMet#3d-slicer"


def unsupportedSlicerMessage() -> Optional[str]:
    """One line when this Slicer is older than MINIMUM_SLICER, else None."""
    version = (slicer.app.majorVersion, slicer.app.minorVersion)
    if version >= MINIMUM_SLICER:
        return None
    return _("BoneOligoMet needs Slicer {needed} or later; this is Slicer {found}.").format(
        needed=MINIMUM_SLICER_TEXT, found=f"{version[0]}.{version[1]}"
    )


def registerSampleData():
    """Adds the synthetic patient to Sample Data: generated on this computer, not downloaded."""
    import SampleData

    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="BoneOligoMet",
        sampleName=SAMPLE_NAME,
        uris=[],
        fileNames=[],
        nodeNames=[],
        thumbnailFileName=os.path.join(RESOURCES_DIR, "Icons", "BoneOligoMetSyntheticPatient.png"),
        customDownloader=loadSampleData,
    )


def loadSampleData(source=None):
    """Sample Data's button: a synthetic PET/CT patient made by BoneOligoMetLib's generator."""
    with slicer.util.tryWithErrorDisplay(
        _("Failed to create the synthetic patient."), waitCursor=True
    ):
        logic = BoneOligoMetLogic()
        logic.loadSyntheticPatient(logic.getParameterNode())


class BoneOligoMet(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("BoneOligoMet")
        self.parent.categories = ["Nuclear Medicine"]
        self.parent.dependencies = []
        self.parent.contributors = ["BoneOligoMet developers"]
        self.parent.helpText = _(
            "Benign vs malignant bone lesions on 18F-FDG PET/CT in breast-cancer bone "
            "oligometastases: fused PET/CT display, lesion delineation by the study's ROI rules "
            "(SUV 2.2 seed growing, rule checks), one-click classification with a probability "
            "overlay, and .nii.gz export. Research software: the packaged model is trained on "
            "synthetic data and is not for clinical use. Needs Slicer {version} or later. "
            'See the <a href="{url}">documentation</a>.'
        ).format(version=MINIMUM_SLICER_TEXT, url=DOCUMENTATION_URL)
        self.parent.acknowledgementText = _(
            "Reproduces the protocol of the published study of a deep learning radiomics (DLR) "
            "model that integrates 18F-FDG PET/CT radiomics, BasicNet deep features and "
            "clinical and metabolic parameters to predict bone oligometastases (5 or fewer "
            "lesions) in breast cancer (207 patients, 312 bone lesions; DLR+Complex model with a "
            "random forest, AUC 0.990). Built on pyradiomics, SimpleITK and PyTorch; the panel "
            "follows Slicer's scripted-module template."
        )
        slicer.app.connect("startupCompleted()", registerSampleData)


@parameterNodeWrapper
class BoneOligoMetParameterNode:
    """Everything the panel shows; saved with the scene.

    suvWeightKg, suvDoseMBq, suvInjectionTime - override the PET DICOM header (0 / "" = header).
    age (0 = not given), subtype - clinical values; per-lesion site and bone change live in
    lesionClinicalTable. modelFolder - a trained bundle; "" = the packaged synthetic demo model.
    modelStatus, deviceStatus - what the panel says about the model and where it ran.
    """

    ctVolume: vtkMRMLScalarVolumeNode
    petVolume: vtkMRMLScalarVolumeNode
    suvWeightKg: Annotated[float, WithinRange(0.0, 400.0)] = 0.0
    suvDoseMBq: Annotated[float, WithinRange(0.0, 5000.0)] = 0.0
    suvInjectionTime: str = ""
    segmentation: vtkMRMLSegmentationNode
    liverPoint: vtkMRMLMarkupsFiducialNode
    age: Annotated[int, WithinRange(0, 120)] = 0
    subtype: Annotated[str, Choice(SUBTYPES)] = "unknown"
    lesionClinicalTable: vtkMRMLTableNode
    seedPoints: vtkMRMLMarkupsFiducialNode
    segmentationMethod: Annotated[str, Choice(SEGMENTATION_METHODS)] = "petct"
    ruleTable: vtkMRMLTableNode
    modelFolder: str = ""
    device: Annotated[str, Choice(DEVICES)] = "auto"
    modelStatus: str = DEMO_MODEL_STATUS
    deviceStatus: str = ""
    resultsTable: vtkMRMLTableNode
    probabilityVolume: vtkMRMLScalarVolumeNode
    exportFolder: str = ""
    exportPerLesion: bool = False
    exportDicom: bool = False


class BoneOligoMetWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel: every button is one Logic call; state lives in the parameter node."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._shownModelFolder = None
        self._job = None
        self._progressDialog = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        unsupported = unsupportedSlicerMessage()
        if unsupported:  # the panel's bindings need a newer Slicer: one line instead of errors
            label = qt.QLabel(unsupported)
            label.wordWrap = True
            self.layout.addWidget(label)
            return
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/BoneOligoMet.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = BoneOligoMetLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        # The place widgets act on the point list chosen above them; they hold no state.
        self.ui.seedPointsSelector.connect(
            "currentNodeChanged(vtkMRMLNode*)", self.ui.seedPlaceWidget.setCurrentNode
        )
        self.ui.liverPointSelector.connect(
            "currentNodeChanged(vtkMRMLNode*)", self.ui.liverPlaceWidget.setCurrentNode
        )
        self.ui.loadSampleButton.connect("clicked(bool)", self.onLoadSample)
        self.ui.loadPetDicomButton.connect("clicked(bool)", self.onLoadPetDicom)
        self.ui.fusedDisplayButton.connect("clicked(bool)", self.onFusedDisplay)
        self.ui.segmentEditorButton.connect("clicked(bool)", self.onSegmentEditor)
        self.ui.findCandidatesButton.connect("clicked(bool)", self.onFindCandidates)
        self.ui.segmentFromSeedsButton.connect("clicked(bool)", self.onSegmentFromSeeds)
        self.ui.checkRulesButton.connect("clicked(bool)", self.onCheckRules)
        self.ui.includePartsButton.connect("clicked(bool)", self.onIncludeParts)
        self.ui.modelFolderBrowseButton.connect("clicked(bool)", self.onBrowseModelFolder)
        self.ui.demoModelButton.connect("clicked(bool)", self.onDemoModel)
        self.ui.classifyButton.connect("clicked(bool)", self.onClassify)
        self.ui.exportFolderBrowseButton.connect("clicked(bool)", self.onBrowseExportFolder)
        self.ui.exportButton.connect("clicked(bool)", self.onExport)
        self.ui.resultsTableView.connect("selectionChanged()", self.onResultsSelection)
        self.ui.ruleTableView.connect("selectionChanged()", self.onRulesSelection)

        self.initializeParameterNode()

    def cleanup(self) -> None:
        if self._job is not None:
            self._job.cancel()
        background.stopWorker()  # the warm classifier's memory goes with the panel
        self.removeObservers()

    def onReload(self) -> None:
        """Developer mode's Reload: the helper package first, so that its edits take effect too."""
        for helper in (mrml, tables, display, export, background, candidates, dependencies):
            importlib.reload(helper)
        ScriptedLoadableModuleWidget.onReload(self)

    def enter(self) -> None:
        background.holdWorker()
        if self.logic is not None:
            self.initializeParameterNode()

    def exit(self) -> None:
        background.releaseWorker()  # its memory is returned unless the reader comes back soon
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._update)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, inputParameterNode: Optional[BoneOligoMetParameterNode]) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._update)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # Widgets carry a "SlicerParameterName" property in the .ui file.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._update)
            self._update()

    def _update(self, caller=None, event=None) -> None:
        """Buttons that can act, the tables shown, the model status for a new model folder."""
        node = self._parameterNode
        if node is None:
            return
        images = bool(node.ctVolume and node.petVolume)
        idle = self._job is None
        self.ui.fusedDisplayButton.enabled = images
        self.ui.segmentEditorButton.enabled = bool(node.ctVolume)
        self.ui.findCandidatesButton.enabled = images and idle
        self.ui.segmentFromSeedsButton.enabled = images and bool(node.seedPoints)
        self.ui.checkRulesButton.enabled = images and bool(node.segmentation)
        self.ui.includePartsButton.enabled = images and bool(node.ruleTable)
        self.ui.classifyButton.enabled = images and bool(node.segmentation) and idle
        self.ui.exportButton.enabled = bool(node.ctVolume) and bool(node.exportFolder)
        views = (
            (self.ui.lesionClinicalTableView, node.lesionClinicalTable),
            (self.ui.ruleTableView, node.ruleTable),
            (self.ui.resultsTableView, node.resultsTable),
        )
        for view, table in views:
            if view.mrmlTableNode() != table:  # setting it again would reset the view
                view.setMRMLTableNode(table)
        if node.modelFolder != self._shownModelFolder:
            self._shownModelFolder = node.modelFolder
            node.modelStatus = self.logic.modelStatusText(node.modelFolder)

    def onLoadSample(self) -> None:
        with slicer.util.tryWithErrorDisplay(
            _("Failed to create the synthetic patient."), waitCursor=True
        ):
            self.logic.loadSyntheticPatient(self._parameterNode)

    def onLoadPetDicom(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(
            slicer.util.mainWindow(), _("PET DICOM series folder")
        )
        if not folder:
            return
        with slicer.util.tryWithErrorDisplay(_("Failed to read the PET as SUV."), waitCursor=True):
            summary = self.logic.loadPetDicomAsSuv(self._parameterNode, folder)
            slicer.util.showStatusMessage(summary, 8000)

    def onFusedDisplay(self) -> None:
        with slicer.util.tryWithErrorDisplay(
            _("Failed to show the fused PET/CT."), waitCursor=True
        ):
            self.logic.showFusedPetCt(self._parameterNode)

    def onSegmentEditor(self) -> None:
        with slicer.util.tryWithErrorDisplay(
            _("Failed to open the Segment Editor."), waitCursor=True
        ):
            segmentation = self.logic.ensureSegmentation(self._parameterNode)
            slicer.util.selectModule("SegmentEditor")
            editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
            editor.setSegmentationNode(segmentation)
            editor.setSourceVolumeNode(self._parameterNode.ctVolume)

    def onFindCandidates(self) -> None:
        """Candidate lesions as seed points, found in a background process followed by a
        progress dialog (Cancel stops it)."""
        with slicer.util.tryWithErrorDisplay(
            _("Failed to start the candidate search."), waitCursor=True
        ):
            job = self.logic.findCandidates(
                self._parameterNode, self._onProgress, self._onCandidatesDone
            )
            self._follow(job, _("Looking for candidate lesions..."))

    def _onCandidatesDone(self, job) -> None:
        self._endJob()  # a closed scene cancelled the job and left no parameter node
        with slicer.util.tryWithErrorDisplay(_("The candidate search failed."), waitCursor=True):
            found = self.logic.finishCandidates(self._parameterNode, job)
            if found is None:
                slicer.util.showStatusMessage(_("Candidate search cancelled."), 5000)
            else:
                slicer.util.showStatusMessage(
                    _(
                        "{count} candidate lesions as seed points: automatic proposals, "
                        "confirm each (delete, move, add), then grow them"
                    ).format(count=len(found)),
                    10000,
                )

    def onSegmentFromSeeds(self) -> None:
        with slicer.util.tryWithErrorDisplay(
            _("Failed to grow lesions from seeds."), waitCursor=True
        ):
            problems = self.logic.segmentFromSeeds(self._parameterNode)
        if problems:
            slicer.util.warningDisplay("\n".join(problems), windowTitle=_("Seeds not grown"))

    def onCheckRules(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to check the ROI rules."), waitCursor=True):
            self.logic.checkRules(self._parameterNode)

    def onIncludeParts(self) -> None:
        segment = self._selectedSegment(self.ui.ruleTableView)
        with slicer.util.tryWithErrorDisplay(_("Failed to include the parts."), waitCursor=True):
            self.logic.includeParts(self._parameterNode, segment)

    def onBrowseModelFolder(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(
            slicer.util.mainWindow(), _("Model bundle folder"), self._parameterNode.modelFolder
        )
        if folder:
            self._parameterNode.modelFolder = folder

    def onDemoModel(self) -> None:
        self._parameterNode.modelFolder = ""

    def onClassify(self) -> None:
        """Installs what the classifier lacks (after asking), then classifies; both run in a
        background process followed by a progress dialog."""
        with slicer.util.tryWithErrorDisplay(
            _("Failed to start the classification."), waitCursor=True
        ):
            missing = dependencies.missingPackages()
            if missing:
                if not dependencies.confirmInstall(missing):
                    return
                job = dependencies.startInstall(missing, self._onProgress, self._onInstallDone)
                if job is not None:
                    self._follow(job, _("Installing the classifier's packages..."))
                    return
            job = self.logic.startClassification(
                self._parameterNode, self._onProgress, self._onClassificationDone
            )
            self._follow(job, _("Starting the classifier..."))

    def _follow(self, job, labelText) -> None:
        """A progress dialog for a started job (opened only once the job runs); Cancel stops it."""
        self._job = job
        self._progressDialog = slicer.util.createProgressDialog(
            labelText=labelText,
            windowTitle=_("BoneOligoMet"),
            autoClose=False,
            autoReset=False,
            windowModality=qt.Qt.WindowModal,
        )
        self._progressDialog.connect("canceled()", job.cancel)
        self._update()

    def _onProgress(self, fraction: Optional[float], message: str) -> None:
        if self._progressDialog is not None:
            if fraction is not None:
                self._progressDialog.value = min(99, int(100 * fraction))
            self._progressDialog.labelText = message

    def _endJob(self) -> None:
        self._job = None
        if self._progressDialog is not None:
            self._progressDialog.close()
            self._progressDialog = None
        self._update()

    def _onInstallDone(self, job) -> None:
        self._endJob()
        with slicer.util.tryWithErrorDisplay(_("Installing the classifier's packages failed.")):
            dependencies.finishInstall(job)
        if self._parameterNode is not None:  # None: the scene was closed meanwhile
            self.onClassify()

    def _onClassificationDone(self, job) -> None:
        self._endJob()  # a closed scene cancelled the job and left no parameter node
        with slicer.util.tryWithErrorDisplay(_("Classification failed."), waitCursor=True):
            if self.logic.finishClassification(self._parameterNode, job) is None:
                slicer.util.showStatusMessage(_("Classification cancelled."), 5000)

    def onBrowseExportFolder(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(
            slicer.util.mainWindow(), _("Export folder"), self._parameterNode.exportFolder
        )
        if folder:
            self._parameterNode.exportFolder = folder

    def onExport(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Export failed."), waitCursor=True):
            written = self.logic.exportCase(self._parameterNode)
            slicer.util.showStatusMessage(
                _("Exported {count} files to {folder}").format(
                    count=len(written), folder=self._parameterNode.exportFolder
                ),
                8000,
            )

    def onResultsSelection(self) -> None:
        self.logic.jumpToLesion(
            self._parameterNode, self._selectedSegment(self.ui.resultsTableView)
        )

    def onRulesSelection(self) -> None:
        self.logic.jumpToLesion(self._parameterNode, self._selectedSegment(self.ui.ruleTableView))

    @staticmethod
    def _selectedSegment(tableView) -> Optional[str]:
        """The segment name in the first column of the selected row (the tables start with it)."""
        index = tableView.currentIndex()
        if not index.isValid():
            return None
        model = tableView.model()
        name = model.data(model.index(index.row(), 0))
        return name or None


class BoneOligoMetLogic(ScriptedLoadableModuleLogic):
    """MRML <-> library calls (conversions in ``BoneOligoMetSlicer``); usable without the GUI."""

    def getParameterNode(self):
        return BoneOligoMetParameterNode(super().getParameterNode())

    def _images(self, parameterNode):
        if not (parameterNode.ctVolume and parameterNode.petVolume):
            raise ValueError(_("Select a CT volume and a PET volume in SUV."))
        return (
            mrml.imageFromVolumeNode(parameterNode.ctVolume),
            mrml.imageFromVolumeNode(parameterNode.petVolume),
        )

    def _liverLps(self, parameterNode):
        """The liver reference point (LPS mm), or None when none is placed."""
        from BoneOligoMetLib.io.coords import ras_to_lps

        points = parameterNode.liverPoint
        if points is None or points.GetNumberOfControlPoints() == 0:
            return None
        return ras_to_lps(slicer.util.arrayFromMarkupsControlPoints(points, world=True)[0])

    # --- inputs ----------------------------------------------------------------------------

    def loadSyntheticPatient(self, parameterNode, seed=SAMPLE_SEED, showResult=True):
        """A synthetic PET/CT patient (BoneOligoMetLib.synthetic.phantom): CT, SUV, liver, seeds.

        The lesion seeds are the generator's lesion centres; the clinical table starts with the
        generator's site and bone change of each lesion.
        """
        from BoneOligoMetLib.io.coords import lps_to_ras, lps_to_ras_points
        from BoneOligoMetLib.synthetic.phantom import generate_patient

        patient = generate_patient(seed, "small", lesion_types=list(SAMPLE_LESIONS))
        name = f"{patient.patient_id} synthetic"
        parameterNode.ctVolume = mrml.volumeNodeFromImage(patient.ct, f"{name} CT")
        parameterNode.petVolume = mrml.volumeNodeFromImage(patient.suv, f"{name} PET SUV")
        liver = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Liver reference")
        liver.AddControlPoint(*lps_to_ras(patient.liver_seed_lps_mm), "liver")
        seeds = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Lesion seeds")
        centres = lps_to_ras_points([lesion.centre_mm for lesion in patient.lesions])
        for number, point in enumerate(centres, 1):
            seeds.AddControlPoint(*point, f"Lesion {number}")
        parameterNode.liverPoint = liver
        parameterNode.seedPoints = seeds
        parameterNode.age = int(patient.clinical.age_years)
        parameterNode.subtype = patient.clinical.subtype
        parameterNode.segmentation = None
        self.ensureSegmentation(parameterNode)
        records = {record["lesion_label"]: record for record in patient.lesion_records()}
        table = mrml.ensureTable(parameterNode, "lesionClinicalTable", "clinical")
        table.RemoveAllColumns()
        tables.fillClinical(table, [f"Lesion {label}" for label in records], records)
        if showResult:
            self.showFusedPetCt(parameterNode)
        return patient

    def loadPetDicomAsSuv(self, parameterNode, folder) -> str:
        """A PET DICOM series as an SUVbw volume (header values, or the panel's overrides)."""
        from BoneOligoMetLib.io.suv import pet_dicom_to_suv

        image, parameters = pet_dicom_to_suv(
            folder,
            weight_kg=parameterNode.suvWeightKg or None,
            injected_dose_mbq=parameterNode.suvDoseMBq or None,
            injection_time=parameterNode.suvInjectionTime.strip() or None,
        )
        name = f"{os.path.basename(os.path.normpath(folder))} SUV"
        parameterNode.petVolume = mrml.volumeNodeFromImage(image, name)
        for source in parameters.provenance:
            logging.info(f"BoneOligoMet SUV: {source}")
        return (
            f"{name}: SUVbw factor {parameters.suv_factor:.6g} g/mL per Bq/mL ({parameters.units})"
        )

    def showFusedPetCt(self, parameterNode) -> None:
        """CT grey background (bone window), PET foreground (PET heat, SUV window), linked views."""
        if not (parameterNode.ctVolume and parameterNode.petVolume):
            raise ValueError(_("Select a CT volume and a PET volume in SUV."))
        display.showFusedPetCt(parameterNode.ctVolume, parameterNode.petVolume)

    def ensureSegmentation(self, parameterNode):
        """The lesion segmentation, created on the CT's geometry when there is none."""
        if parameterNode.segmentation is None:
            if parameterNode.ctVolume is None:
                raise ValueError(_("Select a CT volume first."))
            node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Lesions")
            node.CreateDefaultDisplayNodes()
            node.GetDisplayNode().SetOpacity2DFill(0.0)  # outlines: PET and overlay stay legible
            node.SetReferenceImageGeometryParameterFromVolumeNode(parameterNode.ctVolume)
            parameterNode.segmentation = node
        return parameterNode.segmentation

    # --- lesions ---------------------------------------------------------------------------

    def lesionImage(self, parameterNode):
        """The segmentation as a label image on the CT grid: segment i (in order) = label i+1.

        Returns (SimpleITK image, segment IDs in label order).
        """
        return mrml.lesionImage(parameterNode.segmentation, parameterNode.ctVolume)

    def segmentFromSeeds(self, parameterNode):
        """One segment per seed point: SUV >= 2.2 grown within bone (lesions.segment).

        Segments this tool made before are replaced, so moving a seed and growing again updates
        them; hand-drawn segments are kept. Returns a message per seed that grew nothing.
        """
        from BoneOligoMetLib.io.coords import ras_to_lps_points
        from BoneOligoMetLib.lesions.segment import segment_lesions

        seeds = parameterNode.seedPoints
        if seeds is None or seeds.GetNumberOfControlPoints() == 0:
            raise ValueError(_("Place at least one seed point on a lesion."))
        ct, suv = self._images(parameterNode)
        ras = slicer.util.arrayFromMarkupsControlPoints(seeds, world=True)
        points = [tuple(point) for point in ras_to_lps_points(ras)]  # a list: seeds are a Sequence
        grown = segment_lesions(
            ct, suv, points, skip_failed=True, method=parameterNode.segmentationMethod
        )
        grownSeeds, problems = [], []  # label i+1 of grown.labels: the i-th seed that grew alone
        for number, outcome in enumerate(grown.seeds, 1):
            name = seeds.GetNthControlPointLabel(number - 1)
            if outcome.label is None:
                problems.append(f"{name}: {outcome.error}")
            elif not outcome.merged:
                grownSeeds.append((str(number), name or f"Lesion {number}"))
        segmentation = self.ensureSegmentation(parameterNode)
        mrml.replaceTaggedSegments(segmentation, SEED_TAG, grown.labels, grownSeeds)
        self.updateLesionClinicalTable(parameterNode)
        return problems

    def findCandidates(self, parameterNode, onProgress=None, onCompleted=None):
        """Looks for candidate bone lesions over the whole body (BoneOligoMetLib.lesions.candidates)
        in a background process; returns the job.

        ``onCompleted(job)`` is called on the GUI thread; pass the job to finishCandidates.
        """
        ct, suv = self._images(parameterNode)
        return candidates.startCandidates(ct, suv, MAX_CANDIDATES, onProgress, onCompleted)

    def finishCandidates(self, parameterNode, job):
        """Puts a finished search's candidates, best first, into the seed points and centres the
        views on the first; returns them (dicts: name, rank, point_lps, suv_max, score, site,
        why, note), None when the search was cancelled, an error when it failed.

        The points are named with rank and SUVmax ("C1 SUV 4.1"; the reason and the site in
        each point's description) in a point list of their own ("Candidate lesions", filled
        again by the next search), which becomes the seed points: the reader's own seed list
        stays in the scene. They are automatic proposals that the reader must confirm.
        ``parameterNode`` None (the scene was closed, which cancels the job): nothing is shown.
        """
        from BoneOligoMetLib.io.coords import lps_to_ras

        found = candidates.readCandidates(job)
        if found is None or parameterNode is None:
            return None
        seeds = self._candidatePoints(parameterNode)
        seeds.RemoveAllControlPoints()
        for candidate in found:
            index = seeds.AddControlPoint(*lps_to_ras(candidate["point_lps"]), candidate["name"])
            seeds.SetNthControlPointDescription(
                index, f"{candidate['site']}: {candidate['why']} ({candidate['note']})"
            )
        parameterNode.seedPoints = seeds
        if found:
            display.jumpToPoint(lps_to_ras(found[0]["point_lps"]))
        return found

    def _candidatePoints(self, parameterNode):
        """The point list the candidate search fills: the seed points when they are it, else
        the scene's one, else a new one."""
        seeds = parameterNode.seedPoints
        if seeds is not None and seeds.GetAttribute(CANDIDATES_TAG):
            return seeds
        for node in slicer.util.getNodesByClass("vtkMRMLMarkupsFiducialNode"):
            if node.GetAttribute(CANDIDATES_TAG):
                return node
        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", CANDIDATES_NAME)
        node.SetAttribute(CANDIDATES_TAG, "1")
        return node

    def _assess(self, parameterNode):
        """The library's ROI-rule report on the segmentation; (report, lesions, segment IDs)."""
        from BoneOligoMetLib.lesions.rules import assess_lesions

        ct, suv = self._images(parameterNode)
        lesions, segmentIds = self.lesionImage(parameterNode)
        liver = self._liverLps(parameterNode)
        return assess_lesions(ct, suv, lesions, liver_seed_lps=liver), lesions, segmentIds

    def checkRules(self, parameterNode):
        """The study's ROI rules per lesion (BoneOligoMetLib.lesions.rules) into the rule table."""
        report, _lesions, segmentIds = self._assess(parameterNode)
        names = [mrml.segmentName(parameterNode.segmentation, i) for i in segmentIds]
        tables.fillRules(mrml.ensureTable(parameterNode, "ruleTable", "ROI rules"), report, names)
        self.updateLesionClinicalTable(parameterNode)
        return report

    def includeParts(self, parameterNode, segmentName=None):
        """Adds the necrotic / calcified parts over 10 % of a lesion to it (§2.3), then re-checks.

        ``segmentName`` picks one lesion; None (or the patient row) = every lesion. Parts of
        10 % or less stay out.
        """
        from BoneOligoMetLib.lesions.parts import include_parts

        if segmentName == tables.PATIENT_ROW:
            segmentName = None
        report, lesions, segmentIds = self._assess(parameterNode)
        segmentation = parameterNode.segmentation
        labels = [
            label
            for label, segmentId in enumerate(segmentIds, 1)
            if segmentName in (None, mrml.segmentName(segmentation, segmentId))
        ]
        labels = [label for label in labels if label in report.parts]
        if labels:  # only the lesions that get parts are written back
            grown = include_parts(lesions, [report.parts[label] for label in labels])
            ids = [i if label in labels else "" for label, i in enumerate(segmentIds, 1)]
            mrml.importLabels(grown, segmentation, ids)
        return self.checkRules(parameterNode)

    def jumpToLesion(self, parameterNode, segmentName) -> bool:
        """Centres the slice views on a lesion (segment name); False when there is none."""
        return display.jumpToSegment(parameterNode.segmentation, segmentName)

    def updateLesionClinicalTable(self, parameterNode) -> None:
        """One row per segment (site, bone change), keeping what was typed for each segment.

        A new lesion's bone change starts from its CT appearance (mean HU).
        """
        table = mrml.ensureTable(parameterNode, "lesionClinicalTable", "clinical")
        segmentation = parameterNode.segmentation
        if segmentation is None:
            return
        names = [mrml.segmentName(segmentation, i) for i in mrml.segmentIds(segmentation)]
        defaults = None
        if tables.newSegments(table, names):
            defaults = self._clinicalDefaults(parameterNode)
        tables.fillClinical(table, names, defaults)

    def _clinicalDefaults(self, parameterNode):
        """{label: {"bone_change": ...}} from each lesion's mean HU, by the library's rule (the
        one classify_case applies when none is given); the site is the reader's to type."""
        from BoneOligoMetLib.classify import bone_change_from_hu
        from BoneOligoMetLib.errors import BoneOligoMetError
        from BoneOligoMetLib.lesions.metabolic import metabolic_table

        try:
            ct, suv = self._images(parameterNode)
            lesions = metabolic_table(suv, self.lesionImage(parameterNode)[0], ct=ct)
        except (BoneOligoMetError, mrml.SegmentOverlapError) as error:  # no defaults, no harm
            logging.info(f"BoneOligoMet: no clinical defaults ({error})")
            return {}
        return {
            lesion.label: {"bone_change": bone_change_from_hu(lesion.hu_mean)} for lesion in lesions
        }

    def clinicalValues(self, parameterNode):
        """The panel's clinical fields as classify_case takes them (per-lesion values by label)."""
        values = {}
        if parameterNode.age > 0:
            values["age"] = parameterNode.age
        if parameterNode.subtype != "unknown":
            values["subtype"] = parameterNode.subtype
        if parameterNode.lesionClinicalTable is not None:
            values.update(tables.clinicalValues(parameterNode.lesionClinicalTable))
        return values

    # --- classification --------------------------------------------------------------------

    @staticmethod
    def modelStatusText(modelFolder) -> str:
        if not modelFolder:
            return DEMO_MODEL_STATUS
        return _("Model folder: {folder} (checked when you classify)").format(folder=modelFolder)

    def missingClassifierPackages(self):
        """Lines of Resources/requirements.txt that this Slicer's Python does not satisfy."""
        return dependencies.missingPackages()

    def startClassification(self, parameterNode, onProgress=None, onCompleted=None):
        """Classifies the segmentation's lesions in a background process; returns the job.

        ``onCompleted(job)`` is called on the GUI thread; pass the job to finishClassification.
        """
        ct, suv = self._images(parameterNode)
        self.updateLesionClinicalTable(parameterNode)
        lesions, segmentIds = self.lesionImage(parameterNode)
        liver = self._liverLps(parameterNode)
        job = {
            "clinical": self.clinicalValues(parameterNode),
            "bundle": parameterNode.modelFolder or None,
            "liver_seed_lps_mm": list(liver) if liver else None,
            "device": parameterNode.device,
        }
        images = {"ct": ct, "suv": suv, "lesions": lesions}
        running = background.startClassification(images, job, segmentIds, onProgress, onCompleted)
        parameterNode.deviceStatus = _("Running ({device})...").format(device=job["device"])
        return running

    def finishClassification(self, parameterNode, job):
        """Shows a finished job's results; None when it was cancelled, an error when it failed.

        ``parameterNode`` None (the scene was closed, which cancels the job): nothing is shown.
        """
        try:
            result = background.readResult(job)
        except RuntimeError:
            if parameterNode is not None:
                parameterNode.deviceStatus = _("Failed.")
            raise
        if result is None or parameterNode is None:
            if parameterNode is not None:
                parameterNode.deviceStatus = _("Cancelled.")
            return None
        summary, overlay = result
        self._showClassification(parameterNode, summary, overlay, job.segmentIds)
        return summary

    def _showClassification(self, parameterNode, summary, overlay, segmentIds) -> None:
        """Results table (lesion, probability, label at threshold, metabolics, rule flags) and
        the probability overlay over the CT with its colour legend."""
        names = [mrml.segmentName(parameterNode.segmentation, i) for i in segmentIds]
        table = mrml.ensureTable(parameterNode, "resultsTable", "results")
        tables.fillResults(table, summary["rows"], names)
        model = {key: summary[key] for key in export.SUMMARY_KEYS}
        table.SetAttribute(export.SUMMARY_ATTRIBUTE, json.dumps(model))
        status = _("Model: {name}, threshold {threshold:.3g}").format(
            name=summary["bundle_name"], threshold=summary["threshold"]
        )
        if summary["synthetic"] or summary["warning"]:
            status += f"\n{summary['warning'] or DEMO_MODEL_STATUS}"
        parameterNode.modelStatus = status
        parameterNode.deviceStatus = _("Ran on {device}").format(device=summary["device"])
        volume = mrml.volumeNodeFromImage(
            overlay, "BoneOligoMet malignancy probability", node=parameterNode.probabilityVolume
        )
        parameterNode.probabilityVolume = volume
        display.showProbability(volume, parameterNode.ctVolume)

    # --- export ----------------------------------------------------------------------------

    def exportCase(self, parameterNode):
        """Writes the case to the export folder; returns the paths written.

        lesions.nii.gz (segment i = label i+1 on the CT grid), lesion_NN.nii.gz per lesion when
        asked, ct.nii.gz, suv.nii.gz, probability.nii.gz, and the panel's tables as CSV
        (results.csv with classification.json, rules.csv, clinical.csv); with *DICOM* also
        dicom/seg.dcm and dicom/sr.dcm (the CT must come from the DICOM database). The DICOM
        files are made first: a CT that cannot be referenced stops the export before any file.
        """
        node = parameterNode
        if not node.exportFolder or node.ctVolume is None:
            raise ValueError(_("Choose an export folder and a CT volume."))
        dicomFiles = []
        if node.exportDicom:
            seedGrown = (
                any(
                    node.segmentation.GetSegmentation().GetSegment(segmentId).HasTag(SEED_TAG)
                    for segmentId in mrml.segmentIds(node.segmentation)
                )
                if node.segmentation is not None
                else False
            )
            dicomFiles, _notes = export.exportDicom(
                node.exportFolder,
                node.ctVolume,
                node.petVolume,
                node.segmentation,
                node.resultsTable,
                seedGrown,
            )
        volumes = {"ct": node.ctVolume, "suv": node.petVolume}
        volumes["probability"] = node.probabilityVolume
        tables = {"results": node.resultsTable, "rules": node.ruleTable}
        tables["clinical"] = node.lesionClinicalTable
        written = export.exportCase(
            node.exportFolder,
            volumes,
            node.segmentation,
            node.ctVolume,
            node.exportPerLesion,
            tables,
        )
        return written + dicomFiles


class BoneOligoMetTest(ScriptedLoadableModuleTest):
    """Runs the panel's steps on a synthetic patient built in the scene; nothing is downloaded.

    The classification step runs when the classifier's packages are present in this Slicer
    (the test never installs anything) and is reported as skipped otherwise.
    """

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_GeometryRoundTrip()
        self.setUp()
        self.test_ReadingWorkflow()

    def test_GeometryRoundTrip(self):
        import numpy as np

        volume = np.arange(20 * 30 * 40, dtype=np.float32).reshape(20, 30, 40)
        c, s = np.cos(0.3), np.sin(0.3)  # an oblique grid: 0.3 rad about the S axis
        ijkToRas = np.array([[-4 * c, 4 * s, 0, 100], [-4 * s, -4 * c, 0, 80], [0, 0, 4, -300]])
        ijkToRas = np.vstack([ijkToRas, [0, 0, 0, 1]])
        node = slicer.util.addVolumeFromArray(volume, ijkToRas, "SUV")
        image = mrml.imageFromVolumeNode(node)
        # Voxel (i=15, j=15, k=10) at RAS = matrix @ index; LPS negates x and y.
        ras = ijkToRas @ [15, 15, 10, 1]
        lps = image.TransformIndexToPhysicalPoint((15, 15, 10))
        np.testing.assert_allclose(lps, [-ras[0], -ras[1], ras[2]], atol=1e-6)
        back = mrml.volumeNodeFromImage(image, "roundtrip")
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(back), volume)
        np.testing.assert_allclose(mrml.ijkToRas(back), ijkToRas, atol=1e-9)
        self.delayDisplay("RAS/LPS round trip passed")

    def test_ReadingWorkflow(self):
        import tempfile

        import numpy as np

        from BoneOligoMetLib.io.images import read_image

        registerSampleData()
        sources = slicer.modules.sampleDataSources["BoneOligoMet"]
        source = next(s for s in sources if s.sampleName == SAMPLE_NAME)
        source.customDownloader(source)  # what Sample Data's button does: generated, not downloaded
        logic = BoneOligoMetLogic()
        node = logic.getParameterNode()
        self.assertEqual(node.seedPoints.GetNumberOfControlPoints(), len(SAMPLE_LESIONS))
        nodesBefore = _temporaryNodeCounts()
        self.delayDisplay("Synthetic patient loaded")

        problems = logic.segmentFromSeeds(node)
        segments = node.segmentation.GetSegmentation().GetNumberOfSegments()
        self.assertEqual(segments + len(problems), len(SAMPLE_LESIONS))
        self.assertGreater(segments, 0)
        logic.segmentFromSeeds(node)  # growing again replaces the seed-grown segments
        self.assertEqual(node.segmentation.GetSegmentation().GetNumberOfSegments(), segments)
        self.delayDisplay(f"{segments} lesions grown from seeds")

        report = logic.checkRules(node)
        rules = mrml.readTable(node.ruleTable)
        self.assertEqual(len(rules), len(report.checks))
        self.assertEqual({row["status"] for row in rules} - {"pass", "warn", "info"}, set())
        self.assertEqual((rules[0]["rule"], rules[0]["lesion"]), ("lesion_count", ""))
        before = _arrayOf(logic.lesionImage(node)[0])
        logic.includeParts(node)
        after = _arrayOf(logic.lesionImage(node)[0])
        self.assertEqual(after.shape, slicer.util.arrayFromVolume(node.ctVolume).shape)
        kept = before != 0
        self.assertTrue(np.all(after[kept] == before[kept]), "including parts removed voxels")
        self.assertTrue(logic.jumpToLesion(node, rules[1]["segment"]))
        self.delayDisplay("ROI rules checked, parts included")

        missing = logic.missingClassifierPackages()
        if missing:
            self.delayDisplay(f"Classification skipped: missing {', '.join(missing)}")
        else:
            job = logic.startClassification(node)
            job.wait(timeoutSeconds=900)
            summary = logic.finishClassification(node, job)
            self.assertIsNotNone(summary, job.errorMessage or "\n".join(job.log[-10:]))
            results = mrml.readTable(node.resultsTable)
            self.assertEqual(len(results), segments)
            for row in results:  # a lesion outside the model's domain gets no probability
                if row["probability"]:
                    self.assertTrue(0.0 <= float(row["probability"]) <= 1.0)
                    self.assertIn(row["label"], ("malignant", "benign"))
                else:
                    self.assertEqual(row["label"], "outside model domain")
            self.assertTrue(summary["synthetic"])
            self.assertIn("not for clinical use", node.modelStatus)
            overlayDisplay = node.probabilityVolume.GetDisplayNode()
            colorNode = display.probabilityColorNode()
            self.assertEqual(overlayDisplay.GetColorNodeID(), colorNode.GetID())
            legend = slicer.modules.colors.logic().GetColorLegendDisplayNode(node.probabilityVolume)
            self.assertTrue(legend.GetVisibility())
            self.delayDisplay(f"Classified on {summary['device']}")

        with tempfile.TemporaryDirectory() as folder:
            node.exportFolder = folder
            node.exportPerLesion = True
            written = logic.exportCase(node)
            self.assertIn(os.path.join(folder, "lesions.nii.gz"), written)
            ct = mrml.imageFromVolumeNode(node.ctVolume)
            lesions = read_image(os.path.join(folder, "lesions.nii.gz"))
            self.assertEqual(lesions.GetSize(), ct.GetSize())
            np.testing.assert_allclose(lesions.GetOrigin(), ct.GetOrigin(), atol=1e-4)
            np.testing.assert_allclose(lesions.GetSpacing(), ct.GetSpacing(), atol=1e-5)
            np.testing.assert_allclose(lesions.GetDirection(), ct.GetDirection(), atol=1e-6)
            exported = set(np.unique(_arrayOf(lesions)).tolist())
            self.assertEqual(exported, set(range(segments + 1)))
            for label in range(1, segments + 1):
                single = read_image(os.path.join(folder, f"lesion_{label:02d}.nii.gz"))
                self.assertEqual(set(np.unique(_arrayOf(single)).tolist()), {0, 1})
        self.delayDisplay("Export read back: CT grid and labels 1..n")
        self.assertEqual(_temporaryNodeCounts(), nodesBefore, "nodes left behind")


def _temporaryNodeCounts():
    """Nodes that temporary labelmaps would leave behind if not removed (the self-test's check)."""
    classes = (
        "vtkMRMLColorTableNode",
        "vtkMRMLLabelMapVolumeNode",
        "vtkMRMLLabelMapVolumeDisplayNode",
    )
    return {name: slicer.mrmlScene.GetNumberOfNodesByClass(name) for name in classes}


def _arrayOf(image):
    """Voxels of a SimpleITK image (the self-test's checks; the module itself does no numerics)."""
    from BoneOligoMetLib.io.coords import array_from_image

    return array_from_image(image)[0]
