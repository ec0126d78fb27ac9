"""The BoneOligoMet Slicer module's helpers: what runs beside the panel rather than in it.

``background``: the classifier's worker process (``Resources/Scripts/classify_worker.py``) and
the job that follows it. ``dependencies``: which of ``Resources/requirements.txt`` this Slicer
lacks and how to install it without replacing Slicer's own packages.

These modules import ``slicer`` and ``qt`` (unlike ``BoneOligoMetLib``, which never does) and
nothing heavy: ``BoneOligoMet.py`` imports them when Slicer loads the module. The package sits
next to ``BoneOligoMet.py``, whose folder Slicer puts on ``sys.path``.
"""
