"""Bad input to the `llm-line` commands (issue 18): one line, a non-zero exit, before any work, nothing written.

Each command's `main(argv)` is what `llm-line COMMAND` runs; one test goes through the installed command to
check the shared error path (`llm_line.errors.run_command`) end to end.
"""

import errno
import json
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import run_main

from llm_line import errors, files
from llm_line.analysis import collect, fit, plot
from llm_line.evaluation import store
from llm_line.lingua import prepare_data
from llm_line.sweeps import manifests, status


def law_table(path):
    """A small table on one shifted power law, enough for a fit."""
    x = np.linspace(2.5, 4.0, 12)
    pd.DataFrame({"x": x, "y": 1.5 + 0.8 * (x - 1.8) ** 1.1, "Pretraining Data": "a", "Architecture": "GPT"}).to_csv(
        path, index=False
    )
    return path


def error_of(main, argv, capsys):
    """The exit status and the last stderr line of `main(argv)`, whether it returns or exits (argparse)."""
    code, _, err = run_main(main, argv, capsys)
    return code, err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "content, message",
    [
        ("x;y\n2.5;3.1\n", "separated by semicolons, not commas"),
        ("x\ty\n2.5\t3.1\n", "separated by tabs, not commas"),
        ("", "empty table (0 bytes)"),
        ("x,y\n", "empty table (a header without rows)"),
    ],
)
def test_a_table_that_is_not_what_was_meant_is_one_line(tmp_path, capsys, content, message):
    table = tmp_path / "t.csv"
    table.write_text(content)
    code, line = error_of(fit.main, ["--data", str(table), "--x", "x", "--y", "y"], capsys)
    assert code == 2 and message in line and str(table) in line


def test_a_folder_given_as_the_table_names_the_file_to_give(tmp_path, capsys):
    code, line = error_of(plot.main, ["--data", str(tmp_path), "--x", "x", "--y", "y"], capsys)
    assert code == 2 and f"{tmp_path} is a folder" in line


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--predict", "nan", "not a finite number"),
        ("--predict", "inf", "not a finite number"),
        ("--bootstrap", "-1", "cannot be negative"),
        ("--bootstrap", "many", "not a whole number"),
        ("--in-domain-below", "nan", "not a finite number"),
    ],
)
def test_numbers_out_of_range_are_refused_where_parsed(tmp_path, capsys, option, value, message):
    table = law_table(tmp_path / "t.csv")
    code, line = error_of(fit.main, ["--data", str(table), "--x", "x", "--y", "y", option, value], capsys)
    assert code == 2 and f"argument {option}" in line and message in line


def test_outputs_are_checked_before_the_fit(tmp_path, capsys):
    """--csv onto a folder, --json below a file: refused at parse time, before any bootstrap runs."""
    table = law_table(tmp_path / "t.csv")
    base = ["--data", str(table), "--x", "x", "--y", "y", "--bootstrap", "5"]
    code, line = error_of(fit.main, [*base, "--csv", str(tmp_path)], capsys)
    assert code == 2 and "is a folder; name a file" in line
    code, line = error_of(fit.main, [*base, "--json", str(table / "fits.json")], capsys)
    assert code == 2 and f"{table} is a file" in line


def test_a_folder_as_output_means_inside_it(tmp_path, capsys):
    """`plot -o DIR/` writes DIR/loss_to_loss.png (not DIR.png beside it); `collect -o DIR` DIR/results.csv."""
    table = law_table(tmp_path / "t.csv")
    figures = tmp_path / "figs"
    figures.mkdir()
    assert plot.main(["--data", str(table), "--x", "x", "--y", "y", "-o", f"{figures}/"]) == 0
    assert sorted(p.name for p in figures.iterdir()) == ["loss_to_loss.pdf", "loss_to_loss.png"]
    assert not (tmp_path / "figs.png").exists()

    results = tmp_path / "results"
    cell = {"model": "m", "revision": "main", "task": "t", "shots": 0, "limit": None}
    files.write_json(
        results / "m/main/t/0shot" / store.RESULT,
        {"schema": 1, "cell": cell, "metrics": {"t": {"acc,none": 0.5}}, "n_docs": 1},
    )
    tables = tmp_path / "data"
    tables.mkdir()
    assert collect.main([str(results), "-o", str(tables)]) == 0
    assert (tables / "results.csv").is_file() and not (tmp_path / "data.csv").exists()


def test_status_of_a_folder_without_cells_says_so(tmp_path, capsys):
    assert status.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "no cells" in out and "100.0% done" not in out


def test_status_skips_a_manifest_without_cells_and_reads_the_others(tmp_path, capsys, caplog):
    cell = {"model": "m", "revision": "main", "task": "t", "shots": 0, "limit": None}
    (tmp_path / "m/main/t/0shot").mkdir(parents=True)
    older = {"cells": [{"run_dir": "m/main/t/0shot", "cell": cell, "launched": False}], "host": "gone", "pid": 1}
    files.write_json(tmp_path / manifests.MANIFESTS / "20260101T000000-1.json", older)
    files.write_json(tmp_path / manifests.MANIFESTS / "20260102T000000-1.json", {"created": "later"})
    (tmp_path / manifests.MANIFESTS / "20260103T000000-1.json").write_text("{not json")
    for args in ([], ["--all"]):
        assert status.main([str(tmp_path), "--json", *args]) == 0
        (grid,) = json.loads(capsys.readouterr().out)
        assert [row["run_dir"] for row in grid["cells"]] == ["m/main/t/0shot"]
    skipped = [r.getMessage() for r in caplog.records if "skipping sweep manifest" in r.getMessage()]
    assert any("20260102" in m and "lists no cells" in m for m in skipped)
    assert any("20260103" in m and "not readable JSON" in m for m in skipped)


@pytest.mark.parametrize(
    "option, value", [("--chunks", "0"), ("--max-files", "0"), ("--val-docs", "-1"), ("--memory", "0")]
)
def test_prepare_data_counts_are_range_checked(tmp_path, capsys, option, value):
    code, line = error_of(prepare_data.main, ["c4", str(tmp_path), option, value], capsys)
    assert code == 2 and f"argument {option}" in line


def test_os_errors_are_one_line_naming_the_path_and_the_fix():
    full = OSError(errno.ENOSPC, "No space left on device", "/scratch/results/x.json")
    assert re.fullmatch(  # and which disk, with its free space
        r"/scratch/results/x\.json: no space left on the device; free space there or write somewhere else "
        r"\([\d.]+ [kMGT]?B free of [\d.]+ [kMGT]?B on the file system at /\S*\)",
        errors.user_error_line(full),
    )
    assert "read-only" in errors.user_error_line(OSError(errno.EROFS, "Read-only file system", "/ro"))
    assert errors.user_error_line(OSError(errno.EIO, "I/O error")) is None  # not the user's to fix: traceback
    assert errors.user_error_line(ValueError("bug")) is None


def test_the_command_turns_an_os_error_into_one_line(tmp_path):
    """A disk that fills in the middle of a command is one line through `llm-line`, exit 1, no traceback;
    LLM_LINE_FULL_ERROR=1 adds the traceback."""
    table = law_table(tmp_path / "t.csv")
    target = tmp_path / "fits.json"
    script = (
        "import errno, sys; from llm_line import cli; from llm_line.analysis import fit\n"
        "def full(*a, **k): raise OSError(errno.ENOSPC, 'No space left on device', sys.argv.pop())\n"
        "fit.law_columns = full\n"
        "sys.argv[0] = 'llm-line'; sys.exit(cli.main(sys.argv[1:]))\n"
    )
    argv = [sys.executable, "-c", script, "fit", "--data", str(table), "--x", "x", "--y", "y", str(target)]
    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode == 1, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(
        f"llm-line fit: error: {target}: no space left on the device; free space there or write somewhere else ("
    )
    verbose = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "LLM_LINE_FULL_ERROR": "1"})
    assert verbose.returncode == 1 and "Traceback (most recent call last)" in verbose.stderr


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.batch_size=0"], "model.batch_size=0: use a whole number of rows of at least 1"),
        (["model.batch_size=-4"], "model.batch_size=-4: use a whole number of rows of at least 1"),
        (["model.max_length=0"], "model.max_length=0: must be at least 1 (tokens of context)"),
        (["task=val_demo", "task.corpus.batch_size=0"], "task.corpus.batch_size=0: must be at least 1"),
        (["model.step=300", "model.revision=step100"], "model.step=300 and model.revision=step100 both name"),
        (["model.name=.."], "model.name='..' cannot name a results folder"),
        (["task.name=."], "task.name='.' cannot name a results folder"),
        (["-m", "shots=range(0,4,0)"], "cannot expand the sweep: range() arg 3 must not be zero"),
        (["-m", "hydra.sweeper.cells_per_job=-3", "shots=0,1"], "hydra.sweeper.cells_per_job=-3: a job runs at least"),
    ],
)
def test_evaluate_refuses_bad_numbers_names_and_conflicts_before_any_folder(cli, tmp_path, overrides, message):
    """One line, exit 1, no traceback, nothing created: checked before Hydra makes the run dir (or, in a
    sweep, before anything is planned)."""
    results = tmp_path / "results"
    proc = cli(*overrides, results_dir=results, check=False)
    assert proc.returncode == 1, proc.stderr
    assert f"error: {message}" in proc.stderr and "Traceback" not in proc.stderr
    assert not results.exists()
