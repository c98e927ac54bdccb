"""`llm-line`: one command whose subcommands are the modules' own mains."""

import shutil
import subprocess

import pytest

from llm_line import cli, files
from llm_line.evaluation import store

CELL = {"model": "m", "revision": "main", "task": "t", "shots": 0, "limit": None}


def test_help_lists_every_subcommand(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in cli.COMMANDS) and "python evaluate.py" in out


def test_unknown_subcommand_is_an_error(capsys):
    assert cli.main(["stats"]) == 2
    assert "unknown command 'stats'" in capsys.readouterr().err


def test_subcommand_runs_its_module(tmp_path, capsys):
    files.write_json(tmp_path / "m/main/t/0shot" / store.FAILURE, {"cell": CELL, "error": "CellError: boom"})
    assert cli.main(["status", str(tmp_path)]) == 0
    assert "CellError: boom" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("llm-line") is None, reason="the package is not installed (pip install -e .)")
def test_installed_console_script():
    proc = subprocess.run(["llm-line", "fit", "--help"], capture_output=True, text=True, check=True)
    assert proc.stdout.startswith("usage: llm-line fit")
