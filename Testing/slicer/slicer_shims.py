"""Real Slicer MRML for the module's tests: the ``slicer-core`` wheel, plus stand-ins for the rest.

``slicer-core`` (PyPI, Python >= 3.10) is Slicer's own MRML, module logics and ``slicer.util``.
``SlicerCore()`` builds what Slicer's application builds at startup, the way ``trame-slicer``'s
``SlicerApp`` does: a scene, an application logic with its colour logic and default colour
nodes, and the module logics registered with the scene and the application logic. Everything the
module does to nodes, segmentations, tables, colours and files then runs on Slicer's code.

Stand-ins, only for what the wheel does not hold (Qt, the application object, Python modules that
live in Slicer's source tree rather than in the wheel). Each is the least the module touches:

==============================  ===================================================================
``qt``                          Qt is not in the wheel. ``QTimer`` never fires (a job's ``wait()``
                                polls, as the self-test does), ``Qt`` enum values, ``QLabel``.
``slicer.app``                  the Qt application: ``temporaryPath``, ``processEvents`` (no-op),
                                ``startupEnvironment()`` (this process's environment; used by the
                                real ``launchConsoleProcess``), version numbers, ``testingEnabled``,
                                cursors (no-op), ``connect`` (records), ``layoutManager()`` = None.
``slicer.modules``              module objects are made by the Qt application: ``<name>.logic()``
                                returns the logics registered here; ``sampleDataSources``.
``slicer.mrmlScene``            set to the real scene (Slicer sets it at startup).
``slicer.i18n``                 in Slicer's source, not the wheel: ``tr`` returns the text.
``slicer.ScriptedLoadableModule``  in Slicer's source, not the wheel: base classes with what the
                                module calls (``parent``, ``layout``, a singleton parameter node
                                per module as Slicer's ``getParameterNode``, ``delayDisplay``).
``slicer.parameterNodeWrapper``  in Slicer's source, not the wheel: typed fields stored on the real
                                ``vtkMRMLScriptedModuleNode`` (parameters as text, nodes as node
                                references, as Slicer stores them), observers forwarded to it;
                                ``connectGui`` binds nothing (the Widget's Qt is faked).
``SampleData``                  a scripted module of Slicer: ``registerCustomSampleDataSource``
                                files the source in ``slicer.modules.sampleDataSources``.
==============================  ===================================================================

Slicer's own ``ScriptedLoadableModule.py`` and ``parameterNodeWrapper/`` are not copied here (CI
has PyPI but not Slicer's source); these stand-ins are written from their documented behaviour.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import tempfile
import types
import typing
import unittest

MIN_PYTHON = (3, 10)  # slicer-core's wheels


def unavailableReason() -> str | None:
    """Why real MRML cannot run here (for pytest.skip), or None."""
    if sys.version_info < MIN_PYTHON:
        return "slicer-core (Slicer's MRML on PyPI) needs Python >= 3.10"
    if importlib.util.find_spec("slicer_core") is None:
        return "slicer-core is not installed (make install adds it)"
    return None


# --- qt ----------------------------------------------------------------------------------------


class _QTimer:
    """Never fires: ``ClassificationJob.wait()`` polls the job itself."""

    def setInterval(self, milliseconds):
        pass

    def connect(self, signal, slot):
        pass

    def start(self):
        pass

    def stop(self):
        pass


class _QLabel:
    def __init__(self, text=""):
        self.text = text
        self.wordWrap = False


def _qtModule():
    qt = types.ModuleType("qt")
    qt.QTimer = _QTimer
    qt.QLabel = _QLabel
    qt.Qt = types.SimpleNamespace(WindowModal=2, WaitCursor=3)
    return qt


# --- slicer.app, slicer.modules ----------------------------------------------------------------


class _Environment:
    """``QProcessEnvironment``: what ``slicer.util.startupEnvironment`` reads."""

    def keys(self):
        return list(os.environ)

    def value(self, name):
        return os.environ.get(name, "")


class _Application:
    def __init__(self, temporaryPath, version=(5, 8)):
        self.temporaryPath = temporaryPath
        self.majorVersion, self.minorVersion = version
        self.connections = []

    def processEvents(self):
        pass

    def startupEnvironment(self):
        return _Environment()

    def testingEnabled(self):
        return True  # tryWithErrorDisplay: raise, no message box

    def setOverrideCursor(self, cursor):
        pass

    def restoreOverrideCursor(self):
        pass

    def connect(self, signal, slot):
        self.connections.append((signal, slot))

    def layoutManager(self):
        return None


class _Module:
    def __init__(self, logic):
        self._logic = logic

    def logic(self):
        return self._logic


# --- slicer.ScriptedLoadableModule, slicer.parameterNodeWrapper, SampleData ----------------------


class _Layout:
    def __init__(self):
        self.widgets = []

    def addWidget(self, widget):
        self.widgets.append(widget)


class ScriptedLoadableModule:
    def __init__(self, parent):
        self.parent = parent
        self.moduleName = type(self).__name__


class ScriptedLoadableModuleWidget:
    def __init__(self, parent=None):
        self.parent = parent or types.SimpleNamespace(isEntered=False)
        self.moduleName = type(self).__name__.removesuffix("Widget")
        self.layout = _Layout()

    def resourcePath(self, filename):
        moduleFile = sys.modules[type(self).__module__].__file__
        return os.path.join(os.path.dirname(moduleFile), "Resources", filename)

    def setup(self):
        pass

    def cleanup(self):
        pass


class ScriptedLoadableModuleLogic:
    def __init__(self, parent=None):
        self.moduleName = type(self).__name__.removesuffix("Logic")

    def getParameterNode(self):
        """The module's singleton ``vtkMRMLScriptedModuleNode``, made on first use (as Slicer)."""
        import slicer

        scene = slicer.mrmlScene
        node = scene.GetSingletonNode(self.moduleName, "vtkMRMLScriptedModuleNode")
        if node is None:
            node = slicer.vtkMRMLScriptedModuleNode()
            node.SetSingletonTag(self.moduleName)
            node.SetAttribute("ModuleName", self.moduleName)
            node = scene.AddNode(node)
        return node


class ScriptedLoadableModuleTest(unittest.TestCase):
    def delayDisplay(self, message, msec=None):
        logging.info(message)


def WithinRange(minimum, maximum):
    return ("range", minimum, maximum)


def Choice(choices):
    return ("choice", tuple(choices))


def _field(name, annotation, default):
    kind = annotation
    if typing.get_origin(annotation) is typing.Annotated:
        kind = typing.get_args(annotation)[0]

    def read(self):
        node = self.parameterNode
        if isinstance(kind, type) and kind.__name__.startswith("vtkMRML"):
            return node.GetNodeReference(name)
        if not node.GetParameterNames() or name not in node.GetParameterNames():
            return default
        text = node.GetParameter(name)
        return text == "True" if kind is bool else kind(text)

    def write(self, value):
        node = self.parameterNode
        if isinstance(kind, type) and kind.__name__.startswith("vtkMRML"):
            node.SetNodeReferenceID(name, value.GetID() if value is not None else None)
        else:
            node.SetParameter(name, str(kind(value)))

    return property(read, write)


def parameterNodeWrapper(cls):
    """Fields of ``cls`` as properties on the wrapped ``vtkMRMLScriptedModuleNode``."""
    fields = {
        name: _field(name, annotation, cls.__dict__.get(name))
        for name, annotation in typing.get_type_hints(cls, include_extras=True).items()
    }

    def init(self, parameterNode):
        self.parameterNode = parameterNode

    methods = {
        "__init__": init,
        "__doc__": cls.__doc__,
        # No GUI binding: the Widget's tests give it Qt fakes with nothing to bind.
        "connectGui": lambda self, gui: object(),
        "disconnectGui": lambda self, tag: None,
        "AddObserver": lambda self, event, callback, priority=0.0: self.parameterNode.AddObserver(
            event, callback, priority
        ),
        "RemoveObserver": lambda self, tag: self.parameterNode.RemoveObserver(tag),
    }
    return type(cls.__name__, (), {**methods, **fields})


class SampleDataLogic:
    @staticmethod
    def registerCustomSampleDataSource(category, sampleName, customDownloader, **_unused):
        import slicer

        source = types.SimpleNamespace(sampleName=sampleName, customDownloader=customDownloader)
        slicer.modules.sampleDataSources.setdefault(category, []).append(source)


def _pythonModules():
    """The Python modules Slicer's source tree adds to ``slicer`` and to ``sys.path``."""
    modules = {
        "slicer.i18n": {"tr": lambda text: text},
        "slicer.ScriptedLoadableModule": {
            "ScriptedLoadableModule": ScriptedLoadableModule,
            "ScriptedLoadableModuleWidget": ScriptedLoadableModuleWidget,
            "ScriptedLoadableModuleLogic": ScriptedLoadableModuleLogic,
            "ScriptedLoadableModuleTest": ScriptedLoadableModuleTest,
        },
        "slicer.parameterNodeWrapper": {
            "parameterNodeWrapper": parameterNodeWrapper,
            "WithinRange": WithinRange,
            "Choice": Choice,
        },
        "SampleData": {"SampleDataLogic": SampleDataLogic},
    }
    made = {}
    for name, attributes in modules.items():
        made[name] = types.ModuleType(name)
        made[name].__dict__.update(attributes)
    return made


# --- the real part -------------------------------------------------------------------------------


class SlicerCore:
    """Slicer's startup without Qt: scene, application logic, colour nodes, module logics.

    As ``trame_slicer.core.SlicerApp.__init__`` (and ``qSlicerCoreApplication``) do it.
    """

    def __init__(self):
        import slicer
        from vtkmodules.vtkCommonCore import vtkCollection, vtkOutputWindow

        output = vtkOutputWindow()  # VTK warnings to stderr, where pytest shows them
        output.SetDisplayModeToAlwaysStdErr()
        vtkOutputWindow.SetInstance(output)
        self.scene = slicer.vtkMRMLScene()
        crosshair = slicer.vtkMRMLCrosshairNode()
        crosshair.SetCrosshairName("default")
        self.scene.AddNode(crosshair)
        self.appLogic = slicer.vtkSlicerApplicationLogic()
        # The wheel has no colour files: an empty colour folder instead of none (no error).
        home = tempfile.mkdtemp(prefix="slicer-home-")
        os.makedirs(os.path.join(home, "share", "ColorFiles"))
        self.appLogic.SetHomeDirectory(home)
        self.appLogic.SetShareDirectory("share")
        self.appLogic.SetMRMLScene(self.scene)
        self.appLogic.SetSliceLogics(vtkCollection())
        self.appLogic.SetViewLogics(vtkCollection())
        slicer.vtkMRMLSliceNode.AddDefaultSliceOrientationPresets(self.scene, True)
        # As qSlicerColorsModule: the Colors module's logic (colour legends) is the application
        # logic's colour logic.
        colors = slicer.vtkSlicerColorLogic()
        self.appLogic.SetColorLogic(colors)
        self.logics = {
            "colors": self._register(colors, "Colors"),
            "volumes": self._register(slicer.vtkSlicerVolumesLogic(), "Volumes"),
            "segmentations": self._register(
                slicer.vtkSlicerSegmentationsModuleLogic(), "Segmentations"
            ),
            "subjecthierarchy": self._register(
                slicer.vtkSlicerSubjectHierarchyModuleLogic(), "SubjectHierarchy"
            ),
            "markups": self._register(slicer.vtkSlicerMarkupsLogic(), "Markups"),
            "tables": self._register(slicer.vtkSlicerTablesLogic(), "Tables"),
        }
        self.appLogic.GetColorLogic().AddDefaultColorNodes()
        # Slicer's layout adds the Red, Yellow and Green views: slice logics make their slice
        # and slice-composite nodes (what setSliceViewerLayers and JumpAllSlices act on).
        self.sliceLogics = {}
        for name in ("Red", "Yellow", "Green"):
            logic = slicer.vtkMRMLSliceLogic()
            logic.SetMRMLApplicationLogic(self.appLogic)
            logic.SetMRMLScene(self.scene)
            logic.AddSliceNode(name)
            self.appLogic.GetSliceLogics().AddItem(logic)
            self.sliceLogics[name] = logic
        for logic, orientation in zip(self.sliceLogics.values(), ("Axial", "Sagittal", "Coronal")):
            logic.GetSliceNode().SetOrientation(orientation)

    def close(self):
        """Detaches the slice logics from the scene before they go (destroyed in another order
        after some workflows, they crash the interpreter)."""
        self.scene.Clear(0)
        for logic in self.sliceLogics.values():
            logic.SetMRMLScene(None)

    def _register(self, logic, name):
        logic.SetMRMLApplicationLogic(self.appLogic)  # first: the colour logic looks it up
        logic.SetMRMLScene(self.scene)
        self.appLogic.SetModuleLogic(name, logic)
        return logic

    def install(self, monkeypatch, version=(5, 8)):
        """Points ``slicer.*``, ``qt`` and Slicer's source-tree modules at this session.

        Undone by ``monkeypatch`` when the test ends.
        """
        import slicer
        import slicer.util

        temporary = tempfile.mkdtemp(prefix="slicer-app-")
        modules = types.SimpleNamespace(sampleDataSources={})
        for name, logic in self.logics.items():
            setattr(modules, name, _Module(logic))
        monkeypatch.setattr(slicer, "mrmlScene", self.scene, raising=False)
        monkeypatch.setattr(slicer, "app", _Application(temporary, version), raising=False)
        monkeypatch.setattr(slicer, "modules", modules, raising=False)
        monkeypatch.setitem(sys.modules, "qt", _qtModule())
        for name, module in _pythonModules().items():
            monkeypatch.setitem(sys.modules, name, module)
            if name.startswith("slicer."):
                monkeypatch.setattr(slicer, name.split(".", 1)[1], module, raising=False)
        return slicer
