"""Claims (llm_line/evaluation/claims.py): one holder per cell; dead holders are taken over, live ones respected."""

import json
import os
import socket
import subprocess
import sys
import time

import psutil

from llm_line.evaluation import claims, store
from llm_line.files import write_json

CELL = {"model": "m", "revision": "main", "task": "t", "shots": 0, "limit": None}


def test_first_claim_wins_and_a_live_holder_is_respected(tmp_path):
    assert claims.acquire(tmp_path, CELL) is None
    record = json.loads((tmp_path / store.RUNNING).read_text())
    assert record["pid"] == os.getpid() and record["host"] == socket.gethostname() and record["cell"] == CELL
    # another process of this host finds it held by a live pid (ours) and gets the holder back
    code = (
        f"from pathlib import Path; from llm_line.evaluation import claims; "
        f"print(claims.acquire(Path({str(tmp_path)!r}), {CELL!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert f"'pid': {os.getpid()}" in out
    claims.release(tmp_path)
    assert not (tmp_path / store.RUNNING).exists()
    assert not list(tmp_path.iterdir())  # no temp files left


def test_a_dead_holder_is_taken_over(tmp_path):
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = {"cell": CELL, "host": socket.gethostname(), "pid": int(proc.stdout)}
    write_json(tmp_path / store.RUNNING, dead)
    assert claims.acquire(tmp_path, CELL) is None
    assert json.loads((tmp_path / store.RUNNING).read_text())["pid"] == os.getpid()
    assert sorted(p.name for p in tmp_path.iterdir()) == [store.RUNNING]


def test_slurm_holders_are_judged_by_the_queue(tmp_path, monkeypatch):
    holder = {"cell": CELL, "host": "node7", "pid": 1, "slurm_job_id": "42"}
    assert claims.alive(holder, queue={"42", "41_3", "array:41"})
    assert not claims.alive(holder, queue={"43"})
    requeued = claims.SlurmQueue({"42", "array:41"}, restarts={"42": 1})  # job 42 requeued since the claim
    assert not claims.alive(holder, queue=requeued)
    assert claims.alive({**holder, "slurm_restart_count": "1"}, queue=requeued)
    monkeypatch.setattr(claims, "slurm_queue", lambda jobs=None: {"42"})
    assert claims.alive(holder)
    monkeypatch.setenv("SLURM_JOB_ID", "42")  # the same allocation on another node, same restart: alive
    assert claims.alive(holder)
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")  # the same job, requeued: its earlier run's claim is its own
    assert not claims.alive(holder)
    write_json(tmp_path / store.RUNNING, holder)
    assert claims.acquire(tmp_path, CELL) is None


def test_a_reused_pid_or_a_zombie_holds_no_claim(tmp_path):
    """pid 1 runs, but not since the claim was made; a zombie's pid exists but computes nothing."""
    here = socket.gethostname()
    assert not claims.alive({"host": here, "pid": 1, "pid_started": claims.process_started(1) - 3600})
    assert claims.alive({"host": here, "pid": os.getpid(), "pid_started": claims.process_started(os.getpid())})
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    while psutil.Process(zombie.pid).status() != psutil.STATUS_ZOMBIE:  # exited, not yet reaped
        time.sleep(0.05)
    assert not claims.alive({"host": here, "pid": zombie.pid})
    zombie.wait()
    write_json(tmp_path / store.RUNNING, {"host": here, "pid": 1, "pid_started": 0.0, "started": "2019"})
    assert claims.acquire(tmp_path, CELL) is None


def test_two_processes_of_one_slurm_job_never_share_a_cell(tmp_path, monkeypatch):
    """Same SLURM_JOB_ID and restart (two commands in one job script): the live first holder keeps the cell."""
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    first = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; sys.stdin.read()"], stdin=subprocess.PIPE, env=os.environ.copy()
    )
    try:
        record = {**claims.holder_record(CELL), "pid": first.pid, "pid_started": claims.process_started(first.pid)}
        write_json(tmp_path / store.RUNNING, record)
        assert claims.acquire(tmp_path, CELL)["pid"] == first.pid
    finally:
        first.communicate(b"")
    assert claims.acquire(tmp_path, CELL) is None  # gone: taken over


def test_a_claim_from_a_host_that_is_gone_is_taken_over(tmp_path):
    gone = {"cell": CELL, "host": "no-such-host.invalid", "pid": 7, "started": "2019"}
    assert not claims.alive(gone)
    assert claims.alive({**gone, "host": "localhost"})  # resolves: nothing here can tell, so it is respected
    assert "remove " in claims.describe(gone, tmp_path / store.RUNNING)
    write_json(tmp_path / store.RUNNING, gone)
    assert claims.acquire(tmp_path, CELL) is None
