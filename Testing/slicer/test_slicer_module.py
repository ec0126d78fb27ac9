"""Static checks of the Slicer module (Slicer itself cannot run here; its self-test runs in Slicer).

The module (``BoneOligoMet.py`` and its helper package ``BoneOligoMetSlicer/``) must stay
importable by Slicer's Python (3.9 in Slicer 5.8), import nothing heavy when Slicer loads it, only
call library functions that exist and only Slicer APIs that exist (the last one against a Slicer
source checkout: ``SLICER_SOURCE_DIR``, optional ``CTK_SOURCE_DIR``). The classifier's background
worker is run for real.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "BoneOligoMet.py"
# The module's helpers (background job, dependency installer), imported by BoneOligoMet.py.
HELPERS = tuple(sorted((ROOT / "BoneOligoMetSlicer").glob("*.py")))
WORKER = ROOT / "Resources" / "Scripts" / "classify_worker.py"
SLICER_CLASSES = {"BoneOligoMet", "BoneOligoMetWidget", "BoneOligoMetLogic", "BoneOligoMetTest"}
# Modules that must not be loaded when Slicer imports BoneOligoMet.py (at startup).
HEAVY = ("torch", "monai", "sklearn", "radiomics", "SimpleITK", "scipy", "numpy", "BoneOligoMetLib")
# What the module and its helpers may import at their top level: standard library, Slicer's own
# modules, the helper package.
TOP_LEVEL_ALLOWED = {
    "contextlib", "csv", "importlib", "json", "logging", "math", "numbers", "os", "queue",
    "shutil", "subprocess", "sys", "tempfile", "threading", "time", "typing", "qt", "vtk",
    "slicer", "BoneOligoMetSlicer",
}  # fmt: skip


def _tree(path: Path = MODULE) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _library_imports(tree: ast.Module) -> list[tuple[str, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("BoneOligoMetLib"):
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(a.name, "") for a in node.names if a.name.startswith("BoneOligoMetLib")]
    return found


def test_module_defines_slicer_classes():
    names = {node.name for node in _tree().body if isinstance(node, ast.ClassDef)}
    assert names >= SLICER_CLASSES


def test_helper_package_holds_the_job_and_the_installer():
    """Slicer finds the module and its test in BoneOligoMet.py; the rest lives beside it."""
    assert {"__init__.py", "background.py", "dependencies.py"} <= {path.name for path in HELPERS}
    defined = {
        path.stem: {
            node.name
            for node in _tree(path).body
            if isinstance(node, (ast.ClassDef, ast.FunctionDef))
        }
        for path in HELPERS
    }
    assert {"ClassificationJob", "ClassifierWorker", "startClassification"} <= defined["background"]
    assert {"missingPackages", "installPlan", "startInstall", "confirmInstall"} <= defined[
        "dependencies"
    ]
    assert {"imageFromVolumeNode", "lesionImage", "importLabels", "fillTable"} <= defined["mrml"]
    assert {"showFusedPetCt", "showProbability"} <= defined["display"]


def test_library_names_used_by_the_module_and_worker_exist():
    imported = _library_imports(_tree()) + _library_imports(_tree(WORKER))
    imported += [name for path in HELPERS for name in _library_imports(_tree(path))]
    assert imported, "the module should call into BoneOligoMetLib"
    for module_name, name in imported:
        if importlib.util.find_spec(module_name) is None and module_name.endswith(".classify"):
            pytest.skip(f"{module_name} is not in the library yet (issue 8's classify_case)")
        module = importlib.import_module(module_name)
        assert not name or hasattr(module, name), f"missing {module_name}.{name}"


def test_module_does_no_numerics_of_its_own():
    """Nothing clinical or numerical in the module: no scipy/SimpleITK filters, no SUV maths."""
    for path in (MODULE, *HELPERS, WORKER):
        source = path.read_text(encoding="utf-8")
        for forbidden in (
            "import SimpleITK",
            "import scipy",
            "from scipy",
            "RescaleSlope",
            "PatientWeight",
            "sitk.",
        ):
            assert forbidden not in source, f"{path.name}: {forbidden}"


def test_library_never_imports_slicer():
    for path in (ROOT / "BoneOligoMetLib").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top not in {"slicer", "qt", "ctk", "vtk", "mrml"}, f"{path} imports {name}"


def test_top_level_imports_are_light():
    for path in (MODULE, *HELPERS):
        for node in _tree(path).body:
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in TOP_LEVEL_ALLOWED, f"{path.name}: top-level import of {name}"


# Stand-ins for Slicer's Python modules (slicer, qt, ctk, vtk): any name is a do-nothing class.
_STUBS = r"""
import importlib.abc, importlib.machinery, json, sys, types

class _Stub(types.ModuleType):
    def __init__(self, name):
        super().__init__(name)
        self.__path__ = []
        self._made = {}
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        if name not in self._made:
            self._made[name] = type(name, (), {
                "__init__": lambda self, *a, **k: None,
                "__call__": lambda self, *a, **k: self,
                "__class_getitem__": classmethod(lambda cls, item: cls),
            })
        return self._made[name]

class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    ROOTS = {"slicer", "qt", "ctk", "vtk"}
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in self.ROOTS:
            return importlib.machinery.ModuleSpec(name, self)
        return None
    def create_module(self, spec):
        return _Stub(spec.name)
    def exec_module(self, module):
        pass

sys.meta_path.insert(0, _Finder())
"""
# Loads BoneOligoMet.py with the stand-ins and reports what else got imported.
_IMPORT_PROBE = (
    _STUBS
    + r"""
before = set(sys.modules)
sys.path.insert(0, sys.argv[1])
import BoneOligoMet
print(json.dumps(sorted(set(sys.modules) - before)))
"""
)
# Runs the panel's warm worker (BoneOligoMetSlicer.background.ClassifierWorker) on a real process,
# polling by hand for the QTimer (what ClassificationJob.wait() does in Slicer). Each job is
# "ok" (a job folder whose images are missing: the worker answers with an error and stays
# up), "cancelled" (its cancel file is there before the job starts), "cancel" (cancelled
# once it reports progress) or "kill" (the worker is killed before the job is handed over).
_WORKER_PROBE = (
    _STUBS
    + r"""
import os, signal, time
sys.path.insert(0, sys.argv[1])
import qt, slicer
from BoneOligoMetSlicer import background

class Timer:
    def setInterval(self, ms): pass
    def connect(self, signal, slot): pass
    def start(self): pass
    def stop(self): pass

qt.QTimer = Timer
slicer.util = types.SimpleNamespace(startupEnvironment=lambda: dict(os.environ))
slicer.mrmlScene = None  # no scene: nothing to stop the worker on closing
slicer.app = types.SimpleNamespace(processEvents=lambda: None)
command, root, kinds = sys.argv[2], sys.argv[3], sys.argv[4].split(",")
STUBBORN = (  # says it is ready, takes a job, reports progress, ignores the cancel
    "import sys, time; print('BOM-READY 1', flush=True); sys.stdin.readline(); "
    "print('BOM-PROGRESS 0.5 half way', flush=True); time.sleep(60)"
)
if command == "stubborn":
    command = [sys.executable, "-c", STUBBORN]
else:
    command = [sys.executable, background.WORKER_SCRIPT, "--serve"]
background.ClassifierWorker.CANCEL_GRACE_S = 1.0
worker = background.ClassifierWorker(command)
results = []
for number, kind in enumerate(kinds):
    folder = os.path.join(root, f"job{number}")
    os.makedirs(folder)
    with open(os.path.join(folder, "job.json"), "w") as handle:
        json.dump({"ct": "ct.nrrd", "suv": "suv.nrrd", "lesions": "lesions.nrrd",
                   "clinical": {"age": 61, "subtype": "HR+"}, "liver_seed_lps_mm": [0, 0, 0],
                   "device": "cpu"}, handle)
    if kind == "cancelled":
        open(os.path.join(folder, "cancel"), "w").close()
    if kind == "kill" and worker.alive():
        os.kill(worker.process.pid, signal.SIGKILL)
        worker.process.wait()
    progress, completed = [], []
    job = background.ClassificationJob(
        folder, ["segment"], None, lambda f, m: progress.append([f, m]), completed.append
    )
    started = time.monotonic()
    worker.submit(job)
    if kind == "cancel":
        while not progress and not job.finished:
            worker.poll()
            time.sleep(0.05)
        job.cancel()
    job.wait(timeoutSeconds=120)
    results.append({
        "returnCode": job.returnCode, "cancelled": job.cancelled, "error": job.errorMessage,
        "progress": progress, "completed": [j is job for j in completed],
        "seconds": time.monotonic() - started, "started": worker.started,
        "pid": worker.process.pid if worker.alive() else None,
    })
worker.stop()
results.append({"alive after stop": worker.alive()})
print(json.dumps(results))
"""
)


def test_importing_the_module_loads_nothing_heavy():
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE, str(ROOT)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"BoneOligoMet", "BoneOligoMetSlicer.background"} <= set(loaded)
    assert "BoneOligoMetSlicer.dependencies" in loaded
    heavy = [name for name in loaded if name.split(".")[0] in HEAVY]
    assert not heavy, f"importing BoneOligoMet.py loads {heavy}"


def _worker_jobs(command: str, kinds: list[str], folder: Path) -> list[dict]:
    result = subprocess.run(
        [sys.executable, "-c", _WORKER_PROBE, str(ROOT), command, str(folder), ",".join(kinds)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_warm_worker_answers_job_after_job_and_survives_a_cancel(tmp_path):
    """One process for every job: a refused job, a cancelled one and the next all get their
    answer from the same worker, which the panel's stop then ends."""
    jobs = _worker_jobs("worker", ["ok", "cancelled", "ok"], tmp_path)
    refused, cancelled, again, stopped = jobs
    for job in (refused, again):
        assert job["returnCode"] == 2
        assert not job["cancelled"]
        assert "ct.nrrd" in job["error"] or "classifier" in job["error"]
        assert job["completed"] == [True]
    assert cancelled["returnCode"] == 3
    assert cancelled["cancelled"]
    assert cancelled["completed"] == [True]
    assert refused["pid"] is not None
    assert refused["pid"] == cancelled["pid"] == again["pid"]  # the same warm process
    assert again["started"] == 1
    assert again["seconds"] < refused["seconds"]  # no imports the second time
    assert stopped == {"alive after stop": False}


def test_a_worker_that_died_is_started_again(tmp_path):
    first, second, _ = _worker_jobs("worker", ["ok", "kill"], tmp_path)
    assert first["returnCode"] == second["returnCode"] == 2
    assert second["started"] == 2
    assert second["pid"] != first["pid"]


def test_a_worker_that_ignores_the_cancel_is_killed_and_replaced(tmp_path):
    stubborn, replaced, _ = _worker_jobs("stubborn", ["cancel", "cancel"], tmp_path)
    for job in (stubborn, replaced):
        assert job["progress"] == [[0.5, "half way"]]
        assert job["cancelled"]
        assert job["returnCode"] not in (0, 2, 3)  # killed, not answered
        assert job["completed"] == [True]
        assert job["seconds"] < 20  # the worker would have slept 60 s
    assert replaced["started"] == 2


def test_module_and_worker_are_python39_syntax():
    """Slicer 5.8 runs Python 3.9: no newer syntax, no ``X | Y`` evaluated at run time."""
    for path in (MODULE, *HELPERS, WORKER):
        ast.parse(path.read_text(encoding="utf-8"), feature_version=(3, 9))
    for path in (MODULE, *HELPERS):  # no `from __future__ import annotations` in these
        for node in ast.walk(_tree(path)):
            where = f"{path.name} line {getattr(node, 'lineno', '?')}"
            if isinstance(node, (ast.AnnAssign, ast.arg)) and node.annotation is not None:
                ops = [n for n in ast.walk(node.annotation) if isinstance(n, ast.BinOp)]
                assert not ops, f"{where}: `X | Y` annotation fails on Python 3.9"
            if isinstance(node, ast.FunctionDef) and node.returns is not None:
                ops = [n for n in ast.walk(node.returns) if isinstance(n, ast.BinOp)]
                assert not ops, f"{where}: `X | Y` return annotation fails on Python 3.9"


def test_requirements_file_names_classifier_packages_only():
    """Slicer's own packages are never listed (they would be replaced); every line parses."""
    from packaging.requirements import Requirement

    lines = [
        line.split("#")[0].strip()
        for line in (ROOT / "Resources" / "requirements.txt").read_text().splitlines()
    ]
    names = {Requirement(line).name.lower() for line in lines if line}
    assert {"torch", "pyradiomics", "scikit-learn", "skops", "safetensors", "monai"} <= names
    assert not names & {"numpy", "simpleitk", "vtk", "scipy", "pydicom"}


# --- the classifier's worker process -------------------------------------------------------------


def _run_worker(folder: Path, timeout: float = 120) -> tuple[int, list[str]]:
    result = subprocess.run(
        [sys.executable, str(WORKER), str(folder)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=folder,
    )
    return result.returncode, result.stdout.splitlines()


def test_worker_without_a_job_prints_usage(tmp_path):
    assert _run_worker(tmp_path)[0] == 2


def test_worker_stops_when_the_panel_cancels(tmp_path):
    (tmp_path / "job.json").write_text(json.dumps({"ct": "ct.nrrd"}))
    (tmp_path / "cancel").write_text("cancel\n")
    code, lines = _run_worker(tmp_path)
    assert code == 3
    assert "BOM-CANCELLED stopped on request" in lines


def test_worker_reports_a_bad_input_in_one_line(tmp_path):
    job = {"ct": "ct.nrrd", "suv": "suv.nrrd", "lesions": "lesions.nrrd", "device": "cpu"}
    job.update(clinical={"age": 61, "subtype": "HR+"}, liver_seed_lps_mm=[0, 0, 0])
    (tmp_path / "job.json").write_text(json.dumps(job))
    code, lines = _run_worker(tmp_path)
    assert code == 2
    errors = [line for line in lines if line.startswith("BOM-ERROR ")]
    assert len(errors) == 1
    assert "ct.nrrd" in errors[0] or "classifier" in errors[0]


@pytest.mark.large
def test_worker_classifies_a_synthetic_patient(tmp_path):
    """The panel's background route end to end: job folder in, results and overlay out."""
    if importlib.util.find_spec("BoneOligoMetLib.classify") is None:
        pytest.skip("BoneOligoMetLib.classify is not in the library yet")
    from BoneOligoMetLib.models.bundle import default_bundle_path

    if not (default_bundle_path() / "manifest.json").is_file():
        pytest.skip("the packaged demo bundle is not built yet")

    from BoneOligoMetLib.io.images import write_image
    from BoneOligoMetLib.synthetic.phantom import generate_patient

    patient = generate_patient(3, "small", n_lesions=2)
    for role, image in (("ct", patient.ct), ("suv", patient.suv)):
        write_image(image, tmp_path / f"{role}.nrrd", compress=False)
    write_image(patient.lesion_labels, tmp_path / "lesions.nrrd", compress=False)
    job = {
        "ct": "ct.nrrd",
        "suv": "suv.nrrd",
        "lesions": "lesions.nrrd",
        "clinical": {"age": 61, "subtype": "HR+", "site": {"1": "vertebrae"}},
        "bundle": None,
        "liver_seed_lps_mm": list(patient.liver_seed_lps_mm),
        "device": "cpu",
    }
    (tmp_path / "job.json").write_text(json.dumps(job))
    code, lines = _run_worker(tmp_path, timeout=900)
    assert code == 0, "\n".join(lines[-20:])
    assert lines[-1] == "BOM-RESULT result.json"
    fractions = [float(line.split()[1]) for line in lines if line.startswith("BOM-PROGRESS ")]
    assert fractions
    assert all(0.0 <= f <= 1.0 for f in fractions)
    summary = json.loads((tmp_path / "result.json").read_text())
    assert [row["lesion_label"] for row in summary["rows"]] == [1, 2]
    assert summary["synthetic"] is True
    assert "not for clinical use" in summary["warning"]
    # The probabilities the panel draws its overlay from: every lesion in the model's domain.
    in_domain = {
        str(row["lesion_label"]): row["probability"]
        for row in summary["rows"]
        if not isinstance(row["probability"], str)
    }
    assert in_domain
    assert summary["probabilities"] == in_domain
    assert all(0.0 <= p <= 1.0 for p in in_domain.values())
    assert not (tmp_path / "overlay.nrrd").exists()  # no 0.3 GB file between the processes


# --- Slicer's API, against its source -----------------------------------------------------------


def _api_checker():
    slicer_dir = os.environ.get("SLICER_SOURCE_DIR")
    if not slicer_dir:
        pytest.skip("set SLICER_SOURCE_DIR to a Slicer source checkout to check the Slicer API")
    sys.path.insert(0, str(ROOT / "Testing" / "tools"))
    try:
        import check_slicer_api
    finally:
        sys.path.pop(0)
    ctk = os.environ.get("CTK_SOURCE_DIR")
    return check_slicer_api, Path(slicer_dir), Path(ctk) if ctk else None


def test_every_slicer_api_used_exists_in_slicer_source():
    """Run with SLICER_SOURCE_DIR=<Slicer checkout> (and CTK_SOURCE_DIR=<CTK checkout>)."""
    checker, slicer_dir, ctk_dir = _api_checker()
    report = checker.check(slicer_dir, ctk_dir)
    assert len(report.found) > 100, "the checker found almost nothing: wrong folder?"
    assert not report.missing, "Slicer names not found:\n" + "\n".join(sorted(report.missing))


def test_the_api_checker_finds_misspelt_names(tmp_path):
    checker, slicer_dir, ctk_dir = _api_checker()
    module = MODULE.read_text(encoding="utf-8")
    for good, bad in (
        ('_("Export failed."), waitCursor=True', '_("Export failed."), waitcursor=True'),
        ("self.ui.exportButton.connect", "self.ui.exportPushButton.connect"),
    ):
        assert good in module
        module = module.replace(good, bad)
    (tmp_path / "BoneOligoMet.py").write_text(module, encoding="utf-8")
    ui = (ROOT / "Resources" / "UI" / "BoneOligoMet.ui").read_text(encoding="utf-8")
    (tmp_path / "BoneOligoMet.ui").write_text(
        ui.replace('name="buttonsVisible"', 'name="buttonVisible"'), encoding="utf-8"
    )
    helpers = []
    for path in HELPERS:
        text = path.read_text(encoding="utf-8")
        for good, bad in (
            ("updateEnvironment=self.environment", "updateEnv=self.environment"),
            ("slicer.util.confirmOkCancelDisplay(", "slicer.util.confirmOKCancelDisplay("),
            ("composite.SetLinkedControl(True)", "composite.SetLinkedControls(True)"),
            ("slicer.util.arrayFromVTKMatrix(", "slicer.util.arrayFromVtkMatrix("),
            (".GetMatrixTransformToWorld(", ".GetMatrixToWorld("),
        ):
            text = text.replace(good, bad)
        helpers.append(tmp_path / path.name)
        helpers[-1].write_text(text, encoding="utf-8")
    report = checker.check(
        slicer_dir, ctk_dir, tmp_path / "BoneOligoMet.py", tmp_path / "BoneOligoMet.ui", helpers
    )
    missing = "\n".join(report.missing)
    for name in ("waitcursor", "exportPushButton"):
        assert name in missing
    assert "updateEnv" in missing  # background.py: launchConsoleProcess's keyword
    assert "confirmOKCancelDisplay" in missing  # dependencies.py
    assert "SetLinkedControls" in missing  # display.py
    assert "arrayFromVtkMatrix" in missing  # mrml.py
    assert "GetMatrixToWorld" in missing  # mrml.py: vtkMRMLTransformNode
    assert "buttonVisible" in missing


# --- extension build and Extensions Index entry --------------------------------------------------


def _cmake_value(name: str) -> str:
    text = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    match = re.search(rf'set\({name} "([^"]*)"\)', text)
    assert match, f"CMakeLists.txt sets no {name}"
    return match.group(1)


def test_extensions_index_entry_matches_the_extension_description():
    entry = json.loads((ROOT / "BoneOligoMet.json").read_text(encoding="utf-8"))
    assert entry["$schema"].startswith("https://raw.githubusercontent.com/Slicer/Slicer/main/")
    assert entry["category"] == _cmake_value("EXTENSION_CATEGORY")
    assert entry["build_dependencies"] == _cmake_value("EXTENSION_DEPENDS").split()
    slicer_dir = os.environ.get("SLICER_SOURCE_DIR")
    if slicer_dir:  # the catalog's JSON schema, as checked in Slicer's ExtensionsIndex
        name = entry["$schema"].rsplit("/", 1)[1].rstrip("#")
        schema = json.loads((Path(slicer_dir) / "Schemas" / name).read_text(encoding="utf-8"))
        assert set(schema["required"]) <= set(entry)
        assert set(entry) <= set(schema["properties"])
        types = {"string": str, "array": list, "integer": int, "boolean": bool}
        for key, value in entry.items():
            assert isinstance(value, types[schema["properties"][key]["type"]]), key


def test_cmake_installs_every_resource_the_module_reads():
    text = (
        (ROOT / "CMakeLists.txt")
        .read_text(encoding="utf-8")
        .replace("${MODULE_NAME}", "BoneOligoMet")
    )
    listed = set(re.findall(r"^\s+(Resources/\S+)$", text, re.M))
    for path in listed:
        assert (ROOT / path).is_file(), f"CMakeLists.txt lists missing {path}"
    needed = {
        str(path.relative_to(ROOT))
        for folder in ("UI", "Icons", "Scripts")
        for path in (ROOT / "Resources" / folder).iterdir()
        if path.is_file()
    } | {"Resources/requirements.txt"}
    assert needed <= listed, f"not installed by the extension build: {sorted(needed - listed)}"
    # The helper package's Python files go with the module's scripts (a glob, as for the library).
    assert re.search(r"file\(GLOB \w+ RELATIVE \S+\s+BoneOligoMetSlicer/\*\.py\s", text)
    assert "${BoneOligoMetSlicer_PYTHON_SCRIPTS}" in text
    assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text.replace(
        "BoneOligoMet.py", "${MODULE_NAME}.py"
    )


def _module_constant(name: str):
    for node in _tree().body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"BoneOligoMet.py defines no {name}")


def test_extensions_index_readiness():
    """What an Extensions Index review checks in the repository: licence, minimum Slicer,
    documentation link, the study cited, a screenshot that exists."""
    license_text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in license_text
    assert "Version 2.0, January 2004" in license_text
    assert 'license = "Apache-2.0"' in (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    minimum = ".".join(str(part) for part in _module_constant("MINIMUM_SLICER"))
    assert _module_constant("MINIMUM_SLICER_TEXT") == minimum
    assert _cmake_value("EXTENSION_MINIMUM_SLICER_VERSION") == minimum
    cmake = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    assert "find_package(Slicer ${EXTENSION_MINIMUM_SLICER_VERSION} REQUIRED)" in cmake
    screenshot = _cmake_value("EXTENSION_SCREENSHOTURLS").split("/main/", 1)[1]
    assert (ROOT / screenshot).is_file()
    assert _cmake_value("EXTENSION_HOMEPAGE") == _module_constant("DOCUMENTATION_URL")
    source = MODULE.read_text(encoding="utf-8")
    assert '<a href="{url}">documentation</a>' in source
    assert "207 patients, 312 bone lesions" in source  # the acknowledgement cites the study
