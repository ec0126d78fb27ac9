"""BoneOligoMet core library: PET/CT bone-lesion analysis that runs with or without 3D Slicer.

Importing the package is cheap; heavy dependencies are imported by the modules that use them.
The library never imports ``slicer``/``qt``/``vtk`` and never configures logging.
"""

from __future__ import annotations

__version__ = "0.1.0"

from BoneOligoMetLib import _compat

_compat.install()  # the 0.1 module paths (model bundles, scripts) as aliases of their new homes
