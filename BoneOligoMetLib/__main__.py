"""``python -m BoneOligoMetLib`` is the ``bone-oligomet`` command."""

import sys

from BoneOligoMetLib.cli import main

sys.exit(main())
