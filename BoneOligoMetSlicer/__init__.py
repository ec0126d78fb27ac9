"""The BoneOligoMet Slicer module's helpers: the Slicer glue beside the panel.

``mrml``: volume nodes <-> SimpleITK images (world geometry), the segmentation <-> a lesion label
image, table nodes <-> rows. ``tables``: the panel's clinical, rule and result tables.
``display``: the fused PET/CT, the probability overlay and its legend. ``export``: the case to a
folder. ``background``: the classifier's worker process and pip, followed from the GUI thread.
``candidates``: the whole-body candidate search in a worker process of its own.
``dependencies``: which of ``Resources/requirements.txt`` this Slicer lacks and how to install it
without replacing Slicer's own packages.

These modules import ``slicer``, ``qt`` and ``vtk`` (unlike ``BoneOligoMetLib``, which never
does) and nothing heavy at their top: ``BoneOligoMet.py`` imports them when Slicer loads the
module. The package sits next to ``BoneOligoMet.py``, whose folder Slicer puts on ``sys.path``.
"""
