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

from llm_line.evaluation import store
from llm_line.sweeps import manifests

pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("slurm"),  # one worker: the tests read the one cluster's queue and accounting
    pytest.mark.skipif(
        shutil.which("sinfo") is None or subprocess.run(["sinfo"], capture_output=True).returncode != 0,
        reason="no SLURM cluster reachable: run `tests/slurm/start.sh` and "
        "`export SLURM_CONF=/tmp/llm-line-slurm/slurm.conf`",
    ),
]

LAUNCHER = [
    "hydra/launcher=slurm",
    "hydra.launcher.gpus_per_node=null",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=10",
]
# demo_sounds and gated_sounds (tests/slurm/gated: demo_sounds whose first cell to reach the gate waits there,
# inside its work, until its job is signalled): the signal tests act at a known point, never racing the work
GATED = ["task=demo_sounds", "task.name=demo_sounds,gated_sounds", f"task.include_path={ROOT / 'tests/slurm/gated'}"]
# two one-cell jobs, one of them the gated cell
GRID = ["-m", *LAUNCHER, "model=demo", *GATED, "shots=0", "hydra.sweeper.cells_per_job=1"]
# two model loads (tiny, small) x 4 cells each: two jobs of 4 cells
PACKED = ["-m", *LAUNCHER, "model=demo", "model.size=tiny,small", "task=demo_sounds,demo_colors", "shots=0,2"]


def sweep_cmd(root, grid=GRID, *extra):
    return [sys.executable, "evaluate.py", *grid, f"results_dir={root}", *extra]


def results(root):
    return {p: p.stat().st_mtime_ns for p in root.rglob(store.RESULT)}


def grid_states(root):
    proc = subprocess.run(
        [sys.executable, "-m", "llm_line.sweeps.status", str(root), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
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


def start_gated(root, grid, *extra):
    """The sweep, its gated cell to wait at `root/gate` (tests/slurm/gated/gate.py)."""
    (root / "gate").mkdir()
    return subprocess.Popen(
        sweep_cmd(root, grid, *extra),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "LLM_LINE_TEST_GATE": str(root / "gate")},
    )


def wait_at_gate(root, sweep, timeout=420):
    """Until the gated cell waits inside its work: (its run dir, its claim)."""
    entered = root / "gate" / "entered"
    deadline = time.time() + timeout
    while not (entered.exists() and entered.read_text()):
        assert time.time() < deadline and sweep.poll() is None, "the gated cell never started"
        time.sleep(0.2)
    (marker,) = [p for p in root.rglob(store.RUNNING) if "gated_sounds" in p.parts]
    claim = json.loads(marker.read_text())
    assert claim["slurm_job_id"] == entered.read_text()
    return marker.parent, claim


@pytest.fixture(scope="module")
def finished(tmp_path_factory, cache_dir, demo_model):
    """The packed grid, submitted without waiting, then submitted again while its jobs are queued or running."""

    from llm_line.evaluation import demo

    demo.ensure(cache_dir / "demo" / "small", "small")
    root = tmp_path_factory.mktemp("slurm_results")
    first = subprocess.run(
        sweep_cmd(root, PACKED, "hydra.sweeper.wait=false"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=300,
    )
    assert first.returncode == 0, first.stderr[-4000:]
    again = subprocess.run(
        sweep_cmd(root, PACKED), cwd=ROOT, capture_output=True, text=True, env=os.environ.copy(), timeout=300
    )
    assert again.returncode == 0, again.stderr[-4000:]
    wait_until_queue_is_empty()
    return root, first.stdout + first.stderr, again.stdout + again.stderr


def job_logs(root):
    return {p: p.read_text() for p in (root / ".submitit").rglob("*_log.out")}


def test_packed_sweep_loads_each_model_once_per_job(finished):
    root, first, _ = finished
    assert "8 to launch" in first and "2 jobs (one model load each, at most 32 cells per job)" in first
    assert "follow them with: python -m llm_line.sweeps.status" in first
    found = results(root)
    assert len(found) == 8
    jobs = {}
    for path in found:
        result = store.read_result(path)
        run = result["run"]
        jobs.setdefault(run["slurm_job_id"], set()).add(result["cell"]["model"])
        assert os.path.exists(run["submitit_log"])  # submitit's log is findable from the cell
    assert sorted(len(models) for models in jobs.values()) == [1, 1] and len(jobs) == 2
    logs = job_logs(root)
    assert len(logs) == 2
    for text in logs.values():
        assert text.count("[llm_line.evaluation.harness][INFO] - Loading ") == 1
        assert text.count("[llm_line.evaluation.cell][INFO] - Evaluating ") == 4
    assert set(grid_states(root).values()) == {"done"}
    assert not [p for p in ROOT.iterdir() if p.name in ("outputs", "multirun", ".submitit")]


def test_resubmitting_while_jobs_run_submits_nothing_and_computes_nothing_twice(finished):
    root, _, again = finished
    assert "launching 0" in again and "8 to launch" not in again
    evaluated = [line for text in job_logs(root).values() for line in text.splitlines() if "- Evaluating " in line]
    assert len(evaluated) == 8


def test_resubmitting_a_finished_sweep_queues_nothing(finished):
    root = finished[0]
    before_jobs, before = array_jobs(), results(root)
    proc = subprocess.run(
        sweep_cmd(root, PACKED), cwd=ROOT, capture_output=True, text=True, env=os.environ.copy(), timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "8 of 8 cells already have a result; launching 0" in proc.stdout + proc.stderr
    assert array_jobs() == before_jobs
    assert results(root) == before


def test_a_grid_larger_than_max_array_size_becomes_several_arrays(tmp_path):
    """1,002 one-cell jobs, held (nothing runs): at least two arrays below MaxArraySize, every cell queued."""
    proc = subprocess.run(
        sweep_cmd(
            tmp_path,
            [
                "-m",
                *LAUNCHER,
                "model=demo",
                "task=demo_sounds",
                "task.limit=range(1,1003)",
                "hydra.sweeper.cells_per_job=1",
                "hydra.sweeper.wait=false",
                "+hydra.launcher.additional_parameters.hold=true",
            ],
        ),
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    (manifest,) = (tmp_path / manifests.MANIFESTS).glob("*.json")
    arrays = json.loads(manifest.read_text())["arrays"]
    try:
        assert len(arrays) >= 2
        queued = subprocess.run(
            ["squeue", "-h", "-r", "-o", "%i", "-j", ",".join(arrays)], capture_output=True, text=True, check=True
        ).stdout.split()
        assert len(queued) == 1002
        assert set(grid_states(tmp_path).values()) == {"queued"}
    finally:
        subprocess.run(["scancel", *arrays], check=True)
    assert not list((tmp_path / ".submitit").glob("*.pkl"))  # every pickle moved to its job's folder


def test_cancelled_cell_is_missing_and_resubmission_completes_it(tmp_path, cache_dir, demo_model):
    sweep = start_gated(tmp_path, GRID)
    run_dir, claim = wait_at_gate(tmp_path, sweep)
    subprocess.run(["scancel", f"{claim['slurm_array_job_id']}_{claim['slurm_array_task_id']}"], check=True)
    out, _ = sweep.communicate(timeout=600)
    assert sweep.returncode != 0, out  # the launcher reports the cancelled cell ...
    wait_until_queue_is_empty()  # ... while the other cell's job runs on
    assert not (run_dir / store.RESULT).exists()
    assert grid_states(tmp_path)[str(run_dir.relative_to(tmp_path))] == "missing"
    assert (run_dir / store.RUNNING).exists()  # the killed job's claim: the next run takes it over
    others = results(tmp_path)
    assert len(others) == 1

    proc = subprocess.run(
        sweep_cmd(tmp_path), cwd=ROOT, capture_output=True, text=True, env=os.environ.copy(), timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "1 of 2 cells already have a result; launching 1" in proc.stdout + proc.stderr
    store.read_result(run_dir / store.RESULT)
    assert not (run_dir / store.RUNNING).exists()
    assert {p: m for p, m in results(tmp_path).items() if p in others} == others
    assert set(grid_states(tmp_path).values()) == {"done"}


def test_requeued_cell_comes_back_and_completes(tmp_path, cache_dir, demo_model):
    sweep = start_gated(tmp_path, GRID)
    run_dir, claim = wait_at_gate(tmp_path, sweep)
    # the array task, not SLURM_JOB_ID: a task's own id can be its array's, and requeueing that requeues every task
    subprocess.run(["scontrol", "requeue", f"{claim['slurm_array_job_id']}_{claim['slurm_array_task_id']}"], check=True)
    out, _ = sweep.communicate(timeout=600)
    assert sweep.returncode == 0, out
    result = store.read_result(run_dir / store.RESULT)
    assert result["run"].get("slurm_restart_count") == "1"
    assert len(results(tmp_path)) == 2
    assert not list(tmp_path.rglob(store.RUNNING))


# one model load, four cells: one job of four cells, whose third (gated_sounds 0-shot) waits at the gate
PACK4 = ["-m", *LAUNCHER, "model=demo", *GATED, "shots=0,2", "hydra.sweeper.cells_per_job=4"]


def cells(root):
    """The pack's cells, {(task, shots): run dir}, in the pack's order."""
    return {
        (task, shots): root / "llm-line--demo-tiny" / "main" / task / f"{shots}shot"
        for task in ("demo_sounds", "gated_sounds")
        for shots in (0, 2)
    }


def test_usr2_mid_pack_requeues_the_job_and_the_blocking_launcher_succeeds(tmp_path, cache_dir, demo_model):
    """Preemption (or the time-limit warning): submitit requeues the job, which resumes at the cell it was in."""
    sweep = start_gated(tmp_path, PACK4, "hydra.launcher.max_num_timeout=1")
    run_dir, claim = wait_at_gate(tmp_path, sweep)
    assert run_dir == cells(tmp_path)[("gated_sounds", 0)]
    subprocess.run(["scancel", "--signal=USR2", claim["slurm_job_id"]], check=True)
    out, _ = sweep.communicate(timeout=600)
    assert sweep.returncode == 0, out
    restarts = {
        cell: store.read_result(d / store.RESULT)["run"].get("slurm_restart_count")
        for cell, d in cells(tmp_path).items()
    }
    # the cells done before the signal are kept; the interrupted one and the next are the requeued job's
    assert list(restarts.values()) == [None, None, "1", "1"]
    assert not list(tmp_path.rglob(store.RUNNING)) and not list(tmp_path.rglob(store.FAILURE))
    (log,) = job_logs(tmp_path).values()
    assert "Exiting gracefully after preemption/timeout" in log
    assert log.count("- Evaluating ") == 5  # four cells, the interrupted one twice: none started after the signal


def test_requeues_exhausted_blame_the_cells_of_the_pack_that_never_ran(tmp_path, cache_dir, demo_model):
    """The time-limit warning with no requeue left (max_num_timeout=0; with timeout_min <= 10 submitit counts
    every USR2 as a timeout, so scancel --signal=USR2 is what SLURM sends signal_delay_s before the limit)."""
    sweep = start_gated(tmp_path, PACK4, "hydra.launcher.max_num_timeout=0")
    run_dir, claim = wait_at_gate(tmp_path, sweep)
    subprocess.run(["scancel", "--signal=USR2", claim["slurm_job_id"]], check=True)
    out, _ = sweep.communicate(timeout=600)
    assert sweep.returncode != 0 and "timed-out too many times" in out, out
    wait_until_queue_is_empty()
    pack = cells(tmp_path)
    assert {p.parent for p in results(tmp_path)} == {pack[("demo_sounds", 0)], pack[("demo_sounds", 2)]}
    failed = {p.parent: json.loads(p.read_text())["error"] for p in tmp_path.rglob(store.FAILURE)}
    assert set(failed) == {pack[("gated_sounds", 0)], pack[("gated_sounds", 2)]}
    assert not list(tmp_path.rglob(store.RUNNING))
    # the cell computing when the signal came keeps its own error; the one never started names it
    interrupted, never_ran = failed[pack[("gated_sounds", 0)]], failed[pack[("gated_sounds", 2)]]
    assert interrupted.startswith("UncompletedJobError: Job not requeued because: timed-out too many times")
    assert never_ran.startswith("NotRunError: not run: Job not requeued because: timed-out too many times")
    assert {"task.name=gated_sounds", "shots=0"} <= set(never_ran.split())
    states = grid_states(tmp_path)
    assert sorted(states.values()) == ["done", "done", "failed", "failed"]
    plan = subprocess.run(
        sweep_cmd(tmp_path, PACK4, "hydra.sweeper.dry_run=true"), cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "2 failed before, 0 with errors; 2 to launch" in plan.stdout + plan.stderr


def test_two_processes_in_one_allocation_compute_a_cell_once(tmp_path, cache_dir, demo_model):
    """Two commands in one job script share SLURM_JOB_ID: the claim's pid and start time keep them apart."""
    run = f"{sys.executable} evaluate.py model=demo task=demo_sounds results_dir={tmp_path}"
    script = tmp_path / "job.sh"
    script.write_text(f"#!/bin/bash\ncd {ROOT}\n{run} > {tmp_path}/a.log 2>&1 &\n{run} > {tmp_path}/b.log 2>&1\nwait\n")
    sbatch = ["sbatch", "--wait", "-c", "1", "--mem=1G", "-o", str(tmp_path / "job.out"), str(script)]
    subprocess.run(sbatch, check=True)
    logs = (tmp_path / "a.log").read_text() + (tmp_path / "b.log").read_text()
    assert logs.count("- Evaluating ") == 1, logs
    assert "Skipping " in logs and len(results(tmp_path)) == 1


def test_two_tasks_per_node_split_the_pack(tmp_path, cache_dir, demo_model):
    proc = subprocess.run(
        sweep_cmd(tmp_path, PACK4, "hydra.launcher.tasks_per_node=2"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert len(results(tmp_path)) == 4
    logs = "".join(job_logs(tmp_path).values())
    assert logs.count("- Evaluating ") == 4 and "Skipping " not in logs


def test_a_killed_blocking_launcher_leaves_its_jobs_queued_and_a_rerun_submits_nothing(tmp_path):
    """kill -9 of the launcher right after its array is submitted (held: nothing runs); then a no-op re-run."""
    held = ["+hydra.launcher.additional_parameters.hold=true", "hydra.sweeper.cells_per_job=1"]
    wait_until_queue_is_empty()
    sweep = subprocess.Popen(
        sweep_cmd(tmp_path, PACK4, *held), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.time() + 120
    while not any(json.loads(p.read_text()).get("arrays") for p in (tmp_path / manifests.MANIFESTS).glob("*.json")):
        assert time.time() < deadline and sweep.poll() is None, "no array was recorded"
        time.sleep(0.2)
    sweep.kill()
    sweep.communicate()
    (manifest,) = (tmp_path / manifests.MANIFESTS).glob("*.json")
    arrays = json.loads(manifest.read_text())["arrays"]
    try:
        assert set(grid_states(tmp_path).values()) == {"queued"}
        before = array_jobs()
        again = subprocess.run(sweep_cmd(tmp_path, PACK4, *held), cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr[-4000:]
        assert "4 queued elsewhere" in again.stdout + again.stderr and "launching 0" in again.stdout + again.stderr
        assert array_jobs() == before
        assert len(list((tmp_path / manifests.MANIFESTS).glob("*.json"))) == 2
        assert set(grid_states(tmp_path).values()) == {"queued"}  # the no-op re-run hides nothing
    finally:
        subprocess.run(["scancel", *arrays], check=True)
    wait_until_queue_is_empty()
    assert set(grid_states(tmp_path).values()) == {"missing"}
