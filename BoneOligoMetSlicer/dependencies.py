"""The classifier's Python packages: which this Slicer lacks, and installing them after a yes.

torch comes through the PyTorch extension's PyTorchUtils (a build that matches the GPU driver),
pyradiomics only from the SlicerRadiomics extension (PyPI has no wheel for Slicer's Python); the
rest of ``Resources/requirements.txt`` from pip, in a background process whose output the panel
shows, under a constraints file that pins Slicer's own packages and the installed torch (a
package that needs torch, such as monai, would otherwise pull a PyPI torch over the PyTorch
extension's build). Nothing is installed without the user's agreement.
"""

import importlib.util
import os
import tempfile

import slicer
from slicer.i18n import tr as _

from BoneOligoMetSlicer import background

MODULE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUIREMENTS_FILE = os.path.join(MODULE_DIR, "Resources", "requirements.txt")

# Packages the in-process steps use; every supported Slicer ships them.
CORE_PACKAGES = ("numpy", "scipy", "SimpleITK", "pydicom")
# Packages that come from another Slicer extension rather than from pip (see requirements.txt).
EXTENSION_PACKAGES = {
    "torch": "install the PyTorch extension from the Extensions Manager (PyTorchUtils picks "
    "a build for your GPU driver)",
    "pyradiomics": "install the SlicerRadiomics extension from the Extensions Manager (it "
    "builds pyradiomics for this Slicer; PyPI has no wheel for Slicer's Python)",
}
# Slicer's own packages and the PyTorch extension's torch, pinned to the installed version
# whenever anything is installed.
PROTECTED_PACKAGES = ("numpy", "scipy", "SimpleITK", "vtk", "pydicom", "torch")
# Other distributions that provide a requirement's package under the same import name
# (pyradiomics-bhklab is the maintained fork our pip install uses; its features are identical).
ALSO_PROVIDED_BY = {"pyradiomics": ("pyradiomics-bhklab",)}
# Requirements that depend on torch: pip would install a PyPI torch with them when there is none.
NEEDS_TORCH = ("monai",)


def missingPackages(requirementsFile=REQUIREMENTS_FILE):
    """Lines of the requirements file that this Slicer's Python does not satisfy."""
    return [line for line in _requirements(requirementsFile) if not _satisfied(line)]


def installPlan(requirements):
    """How each missing requirement would be installed (for the question to the user)."""
    plan = []
    for requirement in requirements:
        name = _requirementName(requirement)
        if name == "torch" and importlib.util.find_spec("PyTorchUtils") is not None:
            plan.append(f"{requirement}: through the PyTorch extension (for your GPU driver)")
        elif name in EXTENSION_PACKAGES:
            plan.append(f"{requirement}: {EXTENSION_PACKAGES[name]}")
        else:
            plan.append(f"{requirement}: pip")
    return plan


def startInstall(requirements, onProgress=None, onCompleted=None):
    """Installs ``requirements`` (the user agreed) without replacing Slicer's own packages.

    torch through the PyTorch extension (its own installer), then the pip packages in a
    background process (``onProgress(None, line)`` with pip's output, ``onCompleted(job)``);
    returns that job, or None when there is nothing for pip. What still needs an extension is
    in the job's ``stillMissing`` (``finishInstall`` reports it).
    """
    byName = {_requirementName(requirement): requirement for requirement in requirements}
    stillMissing = []
    if byName.pop("pyradiomics", None):
        stillMissing.append(EXTENSION_PACKAGES["pyradiomics"])
    torch = byName.pop("torch", None)
    if torch:
        try:
            import PyTorchUtils
        except ImportError:
            stillMissing.append(EXTENSION_PACKAGES["torch"])
        else:
            specifier = torch[len("torch") :].strip() or None
            logic = PyTorchUtils.PyTorchUtilsLogic()
            if logic.installTorch(askConfirmation=False, torchVersionRequirement=specifier) is None:
                raise RuntimeError("PyTorch was not installed.")
    if not _installed("torch"):
        for name in [name for name in byName if name in NEEDS_TORCH]:
            stillMissing.append(f"{byName.pop(name)} (needs torch: install the PyTorch extension)")
    job = None
    if byName:
        command = [background.pythonExecutable(), "-m", "pip", "install"]
        command += [*byName.values(), "-c", writeConstraints()]
        job = background.BackgroundProcess(command, None, onProgress, onCompleted)
        job.stillMissing = stillMissing
        job.start()
    elif stillMissing:
        raise RuntimeError(_stillMissingMessage(stillMissing))
    return job


def finishInstall(job) -> None:
    """Raises with pip's last lines when it failed, or with what still needs an extension."""
    if job.cancelled:
        raise RuntimeError("The installation was stopped; classify again to finish it.")
    if job.returnCode != 0:
        detail = "\n".join(job.log[-10:])
        raise RuntimeError(f"pip stopped (status {job.returnCode}):\n{detail}")
    if job.stillMissing:
        raise RuntimeError(_stillMissingMessage(job.stillMissing))


def _stillMissingMessage(stillMissing) -> str:
    return "Still missing: " + "; ".join(stillMissing) + ". Then restart Slicer."


def confirmInstall(missing) -> bool:
    """Asks before installing what the classifier lacks (``missing`` lines); True = yes."""
    text = _(
        "The classifier needs Python packages this Slicer does not have:\n\n{packages}\n\n"
        "Install them now? Slicer's own numpy, scipy, SimpleITK and VTK, and an installed "
        "PyTorch, are kept as they are."
    ).format(packages="\n".join(f"  {line}" for line in installPlan(missing)))
    return bool(slicer.util.confirmOkCancelDisplay(text, windowTitle=_("BoneOligoMet")))


def writeConstraints() -> str:
    """A pip constraints file pinning Slicer's own packages to their installed versions."""
    from importlib import metadata

    lines = []
    for name in PROTECTED_PACKAGES:
        try:
            lines.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    folder = tempfile.mkdtemp(prefix="BoneOligoMet-pip-", dir=slicer.app.temporaryPath)
    path = os.path.join(folder, "constraints.txt")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def _requirements(path):
    """The file's requirements that apply to this Python (environment markers evaluated)."""
    from packaging.requirements import Requirement

    with open(path, encoding="utf-8") as handle:
        lines = [line.split("#")[0].strip() for line in handle]
    requirements = [Requirement(line) for line in lines if line and not line.startswith("-")]
    return [str(r) for r in requirements if r.marker is None or r.marker.evaluate()]


def _requirementName(requirement):
    from packaging.requirements import Requirement

    return Requirement(requirement).name.lower()


def _installed(name) -> bool:
    from importlib import metadata

    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def _satisfied(requirement) -> bool:
    from importlib import metadata

    from packaging.requirements import Requirement

    parsed = Requirement(requirement)
    for name in (parsed.name, *ALSO_PROVIDED_BY.get(parsed.name.lower(), ())):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        if parsed.specifier.contains(installed, prereleases=True):
            return True
    return False
