"""The ``bone-oligomet`` command: cheap --help, every subcommand registered and documented."""

from __future__ import annotations

import subprocess
import sys

import pytest

from BoneOligoMetLib import cli

HEAVY = ("numpy", "SimpleITK", "scipy", "pydicom", "matplotlib", "radiomics", "torch", "pandas")


def test_help_imports_no_heavy_library():
    """``--help`` must be instant: building the parser may not import the numeric stack."""
    code = (
        "import sys, BoneOligoMetLib.cli as c; c.build_parser(); "
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_every_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main([name, "--help"])
    assert exited.value.code == 0
    assert name in capsys.readouterr().out


def test_no_command_prints_usage(capsys):
    assert cli.main([]) == 0
    assert "COMMAND" in capsys.readouterr().out
