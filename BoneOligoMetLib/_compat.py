"""The module paths of the flat layout before 0.2, as aliases of their new homes.

A model bundle's skops file names the classes it holds by module path (a bundle saved by 0.1
holds ``BoneOligoMetLib.modeling.TableEncoder`` and ``BoneOligoMetLib.selection.*``), and
scripts import ``BoneOligoMetLib.stats``: both keep working. An alias IS the new module (the
same object, imported on first use), so there is one copy of everything; submodules of a moved
package (``BoneOligoMetLib.phantom.anatomy``) follow it. Old paths that are new packages now
(``features``, ``report``) cannot be aliases.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from typing import Optional

PACKAGE = "BoneOligoMetLib"
MOVED = {
    "agreement": "lesions.agreement",
    "bone": "image.bone",
    "bundle": "models.bundle",
    "characteristics": "models.characteristics",
    "classifiers": "models.classifiers",
    "coords": "io.coords",
    "deep.cohort": "deep.train_cohort",
    "demo": "cli.demo",
    "demo_bundle": "synthetic.demo_bundle",
    "dicom_ct": "synthetic.dicom_ct",
    "dicom_pet": "synthetic.dicom_pet",
    "dicom_series": "io.dicom_writer",
    "dicom_tags": "io.dicom_tags",
    "evaluation": "models.evaluation",
    "extract": "features.cohort",
    "feature_groups": "models.groups",
    "feature_table": "models.table",
    "fusion": "image.fusion",
    "geometry": "image.geometry",
    "grid": "models.study_grid",
    "image_io": "io.images",
    "manifest": "io.manifest",
    "metabolic": "lesions.metabolic",
    "modeling": "models.fit",
    "peak": "image.peak",
    "phantom": "synthetic.phantom",
    "phantom.figures": "report.snapshots",
    "radiomics": "features.radiomics",
    "roi_rules": "lesions.rules",
    "segmentation": "lesions.segment",
    "selection": "models.selection",
    "splits": "models.splits",
    "stats": "models.stats",
    "store": "features.store",
    "suv": "io.suv",
    "units": "image.units",
}


def new_name(old: str) -> Optional[str]:
    """The new dotted name of an old module path (``BoneOligoMetLib.x.y``), or None."""
    if not old.startswith(PACKAGE + "."):
        return None
    parts = old[len(PACKAGE) + 1 :].split(".")
    for cut in range(len(parts), 0, -1):
        head = ".".join(parts[:cut])
        if head in MOVED:
            return ".".join([PACKAGE, MOVED[head], *parts[cut:]])
    return None


class _Aliases(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        return importlib.util.spec_from_loader(fullname, self) if new_name(fullname) else None

    def create_module(self, spec):
        return importlib.import_module(new_name(spec.name))

    def exec_module(self, module) -> None:
        pass  # the new module ran when it was imported


def install() -> None:
    """Put the alias finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, _Aliases) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Aliases())  # before the path finder, which would load a copy
