"""Sweeps as a user runs them: distinct run dirs, resume without loading a model, force, corrupt files, kills."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT

from llm_line.evaluation import store

pytestmark = pytest.mark.slow  # sweeps through the CLI: minutes on 2 cores

GRID = ["-m", "model=demo", "model.size=tiny,small", "task=demo_sounds,demo_colors", "shots=0,2"]


def results(root):
    return sorted(root.rglob(store.RESULT))


def started(path):
    return json.loads(path.read_text())["run"]["started"], path.stat().st_mtime_ns


@pytest.fixture(scope="module")
def swept(tmp_path_factory, cache_dir):
    from conftest import run_evaluate

    root = tmp_path_factory.mktemp("results")
    proc = run_evaluate(*GRID, results_dir=root)
    return root, proc


def test_grid_writes_one_result_per_cell_in_distinct_run_dirs(swept):
    root, proc = swept
    found = results(root)
    assert len(found) == 8
    cells = {tuple(json.loads(p.read_text())["cell"].values()) for p in found}
    assert len(cells) == 8
    for path in found:
        result = store.read_result(path)
        cell = result["cell"]
        assert (
            path.parent
            == root / f"llm-line--demo-{cell['model'].split('-')[-1]}" / "main" / cell["task"] / f"{cell['shots']}shot"
        )
        assert result["metrics"][cell["task"]]["n_docs"] == 32
        assert (path.parent / "evaluate.log").exists()
        assert (path.parent / ".hydra" / "config.yaml").exists()
        logged = (path.parent / "metrics.csv").read_text().splitlines()  # logger=csv, the default
        acc = result["metrics"][cell["task"]]["acc"]
        assert any(row.endswith(f",{cell['task']},acc,{acc!r}") for row in logged)
    # one process loads each model once, not once per cell
    assert (proc.stdout + proc.stderr).count("[llm_line.evaluation.harness][INFO] - Loading ") == 2


def test_rerun_launches_nothing_and_never_imports_torch(swept, cli):
    root, _ = swept
    before = {p: started(p) for p in results(root)}
    proc = cli(*GRID, results_dir=root, block_torch=True)
    assert "8 of 8 cells already have a result; launching 0" in proc.stdout + proc.stderr
    proc = cli("model=demo", "task=demo_sounds", results_dir=root, block_torch=True)  # a cell run directly
    assert "Skipping llm-line/demo-tiny@main on demo_sounds (0-shot)" in proc.stdout + proc.stderr
    assert {p: started(p) for p in results(root)} == before


def test_sweep_launches_only_missing_cells(swept, cli):
    root, _ = swept
    path = root / "llm-line--demo-small" / "main" / "demo_sounds" / "0shot" / store.RESULT
    path.unlink()
    proc = cli(*GRID, results_dir=root)
    assert "7 of 8 cells already have a result; launching 1" in proc.stdout + proc.stderr
    assert store.read_result(path)["cell"]["model"] == "llm-line/demo-small"


def test_force_recomputes(swept, cli):
    root, _ = swept
    path = root / "llm-line--demo-tiny" / "main" / "demo_sounds" / "0shot" / store.RESULT
    before = started(path)
    cli("model=demo", "task=demo_sounds", "force=true", results_dir=root)
    assert started(path) != before
    assert store.read_result(path)["cell"]["task"] == "demo_sounds"


def test_truncated_result_is_set_aside_and_recomputed(swept, cli):
    root, _ = swept
    path = root / "llm-line--demo-small" / "main" / "demo_colors" / "2shot" / store.RESULT
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    cli("model=demo", "model.size=small", "task=demo_colors", "shots=2", results_dir=root)
    assert store.read_result(path)["cell"]["shots"] == 2
    (aside,) = path.parent.glob("result.json.corrupt-*")
    assert aside.read_text() == text[: len(text) // 2]


def test_one_bad_cell_is_reported_and_the_others_run(swept, cli):
    """A result copied from another cell's folder: that cell is an error, the missing one still runs."""
    root, _ = swept
    source = root / "llm-line--demo-tiny" / "main" / "demo_colors" / "0shot" / store.RESULT
    copied = root / "llm-line--demo-small" / "main" / "demo_colors" / "0shot" / store.RESULT
    missing = root / "llm-line--demo-tiny" / "main" / "demo_sounds" / "2shot" / store.RESULT
    copied.write_bytes(source.read_bytes())
    missing.unlink()
    proc = cli(*GRID, results_dir=root, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "6 of 8 cells already have a result; launching 1" in out
    assert "1 with errors" in out and "holds the result of another cell" in out
    assert store.read_result(missing)["cell"]["shots"] == 2


def test_two_identical_local_sweeps_at_once_evaluate_each_cell_once(tmp_path):
    args = [
        sys.executable,
        "evaluate.py",
        "-m",
        "model=demo",
        "task=demo_sounds,demo_colors",
        "task.limit=4",
        f"results_dir={tmp_path}",
    ]
    procs = [
        subprocess.Popen(
            args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy()
        )
        for _ in range(2)
    ]
    outs = [proc.communicate(timeout=600)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outs
    evaluated = [
        line for out in outs for line in out.splitlines() if "[llm_line.evaluation.cell][INFO] - Evaluating" in line
    ]
    assert len(evaluated) == 2, outs
    assert len(results(tmp_path)) == 2 and not list(tmp_path.rglob(store.RUNNING))


def test_killed_sweep_resumes_to_exactly_one_valid_result_per_cell(tmp_path, cli):
    """SIGKILL the sweep at random moments, several times, then finish it: nothing lost, nothing corrupt."""
    rng = random.Random(7)
    args = [*GRID, f"results_dir={tmp_path}"]
    for _ in range(4):
        proc = subprocess.Popen(
            [sys.executable, "evaluate.py", *args],
            cwd=ROOT,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=os.environ.copy(),
        )
        time.sleep(rng.uniform(2.0, 12.0))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for path in results(tmp_path):  # whatever exists after a kill is a whole result
            store.read_result(path)
    cli(*GRID, results_dir=tmp_path)
    found = results(tmp_path)
    assert len(found) == 8
    for path in found:
        store.read_result(path)
        assert not list(path.parent.glob(".*.tmp"))
        assert not list(path.parent.glob("*.corrupt-*"))
        assert not (path.parent / store.FAILURE).exists()
