"""Claims (llm_line/claims.py): one holder per cell; dead holders are taken over, live ones respected."""

import json
import os
import socket
import subprocess
import sys

from llm_line import claims, store

CELL = {"model": "m", "revision": "main", "task": "t", "shots": 0, "limit": None}


def test_first_claim_wins_and_a_live_holder_is_respected(tmp_path):
    assert claims.acquire(tmp_path, CELL) is None
    record = json.loads((tmp_path / store.RUNNING).read_text())
    assert record["pid"] == os.getpid() and record["host"] == socket.gethostname() and record["cell"] == CELL
    # another process of this host finds it held by a live pid (ours) and gets the holder back
    code = (
        f"from pathlib import Path; from llm_line import claims; "
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
    store.write_json(tmp_path / store.RUNNING, dead)
    assert claims.acquire(tmp_path, CELL) is None
    assert json.loads((tmp_path / store.RUNNING).read_text())["pid"] == os.getpid()
    assert sorted(p.name for p in tmp_path.iterdir()) == [store.RUNNING]


def test_slurm_holders_are_judged_by_the_queue(tmp_path, monkeypatch):
    holder = {"cell": CELL, "host": "node7", "pid": 1, "slurm_job_id": "42"}
    assert claims.alive(holder, queue={"42", "41_3", "array:41"})
    assert not claims.alive(holder, queue={"43"})
    monkeypatch.setattr(claims, "slurm_queue", lambda jobs=None: {"42"})
    assert claims.alive(holder)
    monkeypatch.setenv("SLURM_JOB_ID", "42")  # the same job, requeued: its earlier run's claim is its own
    assert not claims.alive(holder)
    store.write_json(tmp_path / store.RUNNING, holder)
    assert claims.acquire(tmp_path, CELL) is None
