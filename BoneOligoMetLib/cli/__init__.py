"""``bone-oligomet`` command line. ``--help`` is instant: each subcommand imports its heavy
dependencies only when it runs.

A subcommand is a module in this package with ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``. Library input errors are printed as one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Optional

# Subcommand name -> module in this package (kept as strings so --help imports nothing heavy).
COMMANDS = {
    "suv": "suv",
    "metabolic": "metabolic",
    "phantom": "phantom",
    "segment": "segment",
    "check": "check",
    "radiomics": "radiomics",
    "extract": "extract",
    "train-deep": "train_deep",
    "train": "train",
    "classify": "classify",
}


def build_parser() -> argparse.ArgumentParser:
    from BoneOligoMetLib import __version__

    parser = argparse.ArgumentParser(
        prog="bone-oligomet",
        description="BoneOligoMet: benign vs malignant bone lesions on 18F-FDG PET/CT.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"{__name__}.{module_name}")
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.verbose:
        import logging

        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from BoneOligoMetLib.errors import BoneOligoMetError

    try:
        return int(args._run(args) or 0)
    except BoneOligoMetError as error:
        print(f"bone-oligomet {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
