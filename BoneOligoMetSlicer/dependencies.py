"""The classifier's Python packages: which this Slicer lacks, and installing them after a yes.

torch comes through the PyTorch extension's PyTorchUtils (a build that matches the GPU driver),
pyradiomics only from the SlicerRadiomics extension (PyPI has no wheel for Slicer's Python); the
rest of ``Resources/requirements.txt`` from pip with Slicer's own packages pinned. Nothing is
installed without the user's agreement.
"""

import importlib.util
import os

import slicer
from slicer.i18n import tr as _

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
# Slicer's own packages, pinned to the installed version whenever anything is installed.
PROTECTED_PACKAGES = ("numpy", "scipy", "SimpleITK", "vtk")


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


def installPackages(requirements) -> None:
    """Installs ``requirements`` (the user agreed) without replacing Slicer's own packages.

    What needs an extension that is not installed is reported in one error, after the rest is
    installed.
    """
    byName = {_requirementName(requirement): requirement for requirement in requirements}
    needExtension = []
    if byName.pop("pyradiomics", None):
        needExtension.append(EXTENSION_PACKAGES["pyradiomics"])
    torch = byName.pop("torch", None)
    if torch:
        try:
            import PyTorchUtils
        except ImportError:
            needExtension.append(EXTENSION_PACKAGES["torch"])
        else:
            specifier = torch[len("torch") :].strip() or None
            logic = PyTorchUtils.PyTorchUtilsLogic()
            if logic.installTorch(askConfirmation=False, torchVersionRequirement=specifier) is None:
                raise RuntimeError("PyTorch was not installed.")
    if byName:
        slicer.util.pip_install([*byName.values(), "-c", writeConstraints()])
    if needExtension:
        raise RuntimeError("Still missing: " + "; ".join(needExtension) + ". Then restart Slicer.")


def confirmAndInstall(requirementsFile=REQUIREMENTS_FILE) -> bool:
    """Asks before installing what the classifier lacks; never installs without a yes.

    True when nothing is missing (any more).
    """
    missing = missingPackages(requirementsFile)
    if not missing:
        return True
    text = _(
        "The classifier needs Python packages this Slicer does not have:\n\n{packages}\n\n"
        "Install them now? Slicer's own numpy, scipy, SimpleITK and VTK are kept as they are."
    ).format(packages="\n".join(f"  {line}" for line in installPlan(missing)))
    if not slicer.util.confirmOkCancelDisplay(text, windowTitle=_("BoneOligoMet")):
        return False
    installPackages(missing)
    return not missingPackages(requirementsFile)


def writeConstraints() -> str:
    """A pip constraints file pinning Slicer's own packages to their installed versions."""
    from importlib import metadata

    lines = []
    for name in PROTECTED_PACKAGES:
        try:
            lines.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    path = os.path.join(slicer.util.tempDirectory("BoneOligoMet-pip-"), "constraints.txt")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def _requirements(path):
    with open(path, encoding="utf-8") as handle:
        lines = [line.split("#")[0].strip() for line in handle]
    return [line for line in lines if line and not line.startswith("-")]


def _requirementName(requirement):
    from packaging.requirements import Requirement

    return Requirement(requirement).name.lower()


def _satisfied(requirement) -> bool:
    from importlib import metadata

    from packaging.requirements import Requirement

    parsed = Requirement(requirement)
    try:
        installed = metadata.version(parsed.name)
    except metadata.PackageNotFoundError:
        return False
    return parsed.specifier.contains(installed, prereleases=True)
