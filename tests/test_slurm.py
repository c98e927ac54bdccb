"""Sweeps on a real SLURM cluster (tests/slurm/start.sh starts a one-node one; CI does so before the tests).

The real command, `python evaluate.py -m hydra/launcher=slurm ...`, submits through hydra-submitit-launcher
to slurmctld; jobs run under slurmd and are tracked by slurmdbd, as on a cluster (CPU only: no GPUs here).
"""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from llm_line import store

pytestmark = pytest.mark.skipif(
    shutil.which("sinfo") is None or subprocess.run(["sinfo"], capture_output=True).returncode != 0,
    reason="no SLURM cluster reachable: run `tests/slurm/start.sh` and `export SLURM_CONF=/tmp/llm-line-slurm/slurm.conf`",
)

GRID = ["-m", "hydra/launcher=slurm", "hydra.launcher.gpus_per_node=null", "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=1", "hydra.launcher.timeout_min=10", "model=demo",
        "task=demo_sounds,demo_colors", "shots=0,2"]


def sweep_cmd(root):
    return [sys.executable, "evaluate.py", *GRID, f"results_dir={root}"]


def results(root):
    return {p: p.stat().st_mtime_ns for p in root.rglob(store.RESULT)}


def grid_states(root):
    proc = subprocess.run([sys.executable, "-m", "llm_line.status", str(root), "--json"], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    (grid,) = json.loads(proc.stdout)
    return {row["run_dir"]: row["state"] for row in grid["cells"]}


def array_jobs():
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "JobID"], capture_output=True, text=True).stdout
    return {line.split("_")[0] for line in out.split()}


def wait_until_queue_is_empty(timeout=300):
    deadline = time.time() + timeout
    while subprocess.run(["squeue", "-h"], capture_output=True, text=True).stdout.strip():
        assert time.time() < deadline, "SLURM jobs did not finish"
        time.sleep(0.5)


def wait_for_running_marker(root, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for marker in root.rglob(store.RUNNING):
            try:
                data = json.loads(marker.read_text())
            except ValueError:
                continue
            return marker.parent, data
        time.sleep(0.2)
    raise AssertionError("no cell started running")


@pytest.fixture(scope="module")
def finished(tmp_path_factory, cache_dir, demo_model):
    root = tmp_path_factory.mktemp("slurm_results")
    proc = subprocess.run(sweep_cmd(root), cwd=ROOT, capture_output=True, text=True, env=os.environ.copy(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return root


def test_sweep_on_slurm_writes_every_cell_and_status_says_done(finished):
    found = results(finished)
    assert len(found) == 4
    for path in found:
        result = store.read_result(path)
        run = result["run"]
        assert run["slurm_array_job_id"] and run["slurm_array_task_id"]
        assert os.path.exists(run["submitit_log"])  # submitit's log is findable from the cell
    assert set(grid_states(finished).values()) == {"done"}
    assert not [p for p in ROOT.iterdir() if p.name in ("outputs", "multirun", ".submitit")]


def test_resubmitting_a_finished_sweep_queues_nothing(finished):
    before_jobs, before = array_jobs(), results(finished)
    proc = subprocess.run(sweep_cmd(finished), cwd=ROOT, capture_output=True, text=True, env=os.environ.copy(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "4 of 4 cells already have a result; launching 0" in proc.stdout + proc.stderr
    assert array_jobs() == before_jobs
    assert results(finished) == before


def test_cancelled_cell_is_missing_and_resubmission_completes_it(tmp_path, cache_dir, demo_model):
    sweep = subprocess.Popen(sweep_cmd(tmp_path), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, env=os.environ.copy())
    run_dir, marker = wait_for_running_marker(tmp_path)
    subprocess.run(["scancel", f"{marker['slurm_array_job_id']}_{marker['slurm_array_task_id']}"], check=True)
    out, _ = sweep.communicate(timeout=600)
    assert sweep.returncode != 0, out  # the launcher reports the cancelled cell ...
    wait_until_queue_is_empty()  # ... while the other cells' jobs run on
    assert not (run_dir / store.RESULT).exists()
    assert grid_states(tmp_path)[str(run_dir.relative_to(tmp_path))] == "missing"
    others = results(tmp_path)
    assert len(others) == 3

    proc = subprocess.run(sweep_cmd(tmp_path), cwd=ROOT, capture_output=True, text=True, env=os.environ.copy(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "3 of 4 cells already have a result; launching 1" in proc.stdout + proc.stderr
    store.read_result(run_dir / store.RESULT)
    assert {p: m for p, m in results(tmp_path).items() if p in others} == others
    assert set(grid_states(tmp_path).values()) == {"done"}


def test_requeued_cell_comes_back_and_completes(tmp_path, cache_dir, demo_model):
    sweep = subprocess.Popen(sweep_cmd(tmp_path), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, env=os.environ.copy())
    run_dir, marker = wait_for_running_marker(tmp_path)
    subprocess.run(["scontrol", "requeue", marker["slurm_job_id"]], check=True)
    out, _ = sweep.communicate(timeout=600)
    assert sweep.returncode == 0, out
    result = store.read_result(run_dir / store.RESULT)
    assert result["run"].get("slurm_restart_count") == "1"
    assert len(results(tmp_path)) == 4
    assert not list(tmp_path.rglob(store.RUNNING))
