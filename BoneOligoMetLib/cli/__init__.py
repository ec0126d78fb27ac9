"""``bone-oligomet`` command line. ``--help`` is instant: each subcommand imports its heavy
dependencies only when it runs.

A subcommand is a module in this package with ``HELP`` (one line), ``add_arguments(parser)``,
``run(args) -> int`` and optionally ``OUTPUTS`` (the arguments naming what it writes, checked
before any work: see :func:`._common.check_outputs`). Every failure is one line on stderr, never
a traceback (``-v`` shows it for unexpected ones): library input errors exit with status 2, a
file the system refuses (permission, disk full) with 1, Ctrl-C with 130.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Sequence
from typing import Optional

# Subcommand name -> module in this package (kept as strings so --help imports nothing heavy).
COMMANDS = {
    "suv": "suv",
    "metabolic": "metabolic",
    "phantom": "phantom",
    "segment": "segment",
    "candidates": "candidates",
    "check": "check",
    "radiomics": "radiomics",
    "extract": "extract",
    "train-deep": "train_deep",
    "train": "train",
    "classify": "classify",
    "labels": "labels",
    "export-dicom": "export_dicom",
}


class _Parser(argparse.ArgumentParser):
    """A usage error is one line that names the argument and points to ``--help``."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from BoneOligoMetLib import __version__

    parser = _Parser(
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
        command.set_defaults(_run=module.run, _module=module)
    return parser


# Options whose value is a point X,Y,Z (mm): a value with a leading minus is still a point.
POINT_OPTIONS = ("--seed", "--liver-seed")


def join_negative_points(argv: Sequence[str]) -> list[str]:
    """``--seed -66.9,5.5,28`` as ``--seed=-66.9,5.5,28``: argparse takes a value starting with a
    minus for an option (it knows negative numbers, not points); every liver seed on the
    patient's left is negative in LPS."""
    out: list[str] = []
    tokens = list(argv)
    while tokens:
        token = tokens.pop(0)
        if token in POINT_OPTIONS and tokens and re.fullmatch(r"-[\d.]+,.+", tokens[0]):
            token = f"{token}={tokens.pop(0)}"
        out.append(token)
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(join_negative_points(sys.argv[1:] if argv is None else argv))
    if args.command is None:
        parser.print_help()
        return 0
    if args.verbose:
        import logging

        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from BoneOligoMetLib.cli._common import check_outputs
    from BoneOligoMetLib.errors import BoneOligoMetError

    def fail(message: object, status: int) -> int:
        text = " ".join(str(message).split())  # one line, whatever the message held
        print(f"bone-oligomet {args.command}: {text}", file=sys.stderr)
        return status

    try:
        check_outputs(args, getattr(args._module, "OUTPUTS", {}))
        return int(args._run(args) or 0)
    except BoneOligoMetError as error:
        return fail(f"error: {error}", 2)
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    except OSError as error:  # the system refused a file: permission, disk full, ...
        where = f"{error.filename}: " if error.filename else ""
        return fail(f"error: {where}{error.strerror or error}", 1)
    except MemoryError:
        return fail("error: out of memory", 1)
    except Exception as error:  # a bug: one line, the traceback with -v
        if args.verbose:
            raise
        return fail(f"internal error: {type(error).__name__}: {error} (rerun with -v)", 1)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
