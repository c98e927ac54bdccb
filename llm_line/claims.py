"""Claims: a cell's `running.json`, created exclusively before it computes, so no cell is computed twice.

Two jobs or processes may reach the same cell (a sweep re-run while its jobs run, two identical local sweeps,
a requeued job). The first to create the claim computes the cell; the claim is written to a temporary file
and hard-linked to its final name, which fails if the name exists: exclusive like O_CREAT|O_EXCL, and never
seen half-written. A claim whose holder is gone (its pid no longer runs on this host, or its SLURM job is no
longer queued or running) is taken over; a live one makes the other process skip the cell and say so.

Cheap to import: no torch, no Hydra.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from llm_line import store

SLURM_VARS = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT")


def holder_record(cell: dict[str, Any]) -> dict[str, Any]:
    """Who holds a claim: host, pid, user, SLURM job/array ids, since when."""
    return {
        "cell": cell,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "user": getpass.getuser(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **{k.lower(): os.environ[k] for k in SLURM_VARS if k in os.environ},
    }


def acquire(run_dir: Path, cell: dict[str, Any]) -> dict[str, Any] | None:
    """Claim the cell in `run_dir`: None once claimed by this process, else the record of its live holder."""
    path = run_dir / store.RUNNING
    for _ in range(5):
        if _create_exclusively(path, holder_record(cell)):
            return None
        holder = read(path)
        if holder is None:  # vanished between the two calls, or not a claim at all: retry / take over
            if path.exists() and time.time() - path.stat().st_mtime < 60:
                return {"host": "?", "started": "just now"}
            _take_over(path, holder)
            continue
        if alive(holder):
            return holder
        _take_over(path, holder)
    raise RuntimeError(f"could not claim {path}: other processes keep taking it over")


def release(run_dir: Path) -> None:
    """Remove this process's claim (and only its own)."""
    path = run_dir / store.RUNNING
    holder = read(path)
    if holder is not None and holder.get("host") == socket.gethostname() and holder.get("pid") == os.getpid():
        path.unlink(missing_ok=True)


def read(path: Path) -> dict[str, Any] | None:
    """A claim or failure record; None when absent, unreadable, not a regular file (a FIFO would block) or not JSON."""
    try:
        data = store.read_json(path)
    except store.CorruptResult:
        return None
    return data if isinstance(data, dict) else None


def _create_exclusively(path: Path, record: dict[str, Any]) -> bool:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}-claim-{socket.gethostname()}-{os.getpid()}")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def _take_over(path: Path, dead: dict[str, Any] | None) -> None:
    """Set a dead claim aside (renamed, so that of two processes taking it over only one succeeds)."""
    aside = path.with_name(f"{path.name}.dead-{socket.gethostname()}-{os.getpid()}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    if read(aside) != dead:  # another process claimed it in between: put its live claim back
        with contextlib.suppress(FileExistsError):
            os.link(aside, path)
    aside.unlink(missing_ok=True)


def alive(holder: dict[str, Any], queue: set[str] | None = None) -> bool:
    """Is the holder of a claim still at work? SLURM decides for SLURM jobs; the pid for a local process.

    `queue`: the ids from `slurm_queue()`, to ask squeue once for many claims; None asks for this one job.
    Unknown (another host without SLURM) counts as alive: the user removes such a claim by hand.
    """
    job = holder.get("slurm_job_id")
    if job is not None:
        if job == os.environ.get("SLURM_JOB_ID"):  # this very job, requeued: its earlier run is over
            return False
        if queue is None:
            queue = slurm_queue([str(job)])
        return True if queue is None else str(job) in queue
    if holder.get("host") != socket.gethostname() or "pid" not in holder:
        return True
    return pid_alive(int(holder["pid"]))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def slurm_queue(jobs: list[str] | None = None) -> set[str] | None:
    """Ids of the jobs SLURM still has queued or running: job id, `array_task` and `array:<array job id>`.

    Only `jobs` when given, else all of this user's jobs; None where SLURM cannot be asked.
    """
    if shutil.which("squeue") is None:
        return None
    cmd = ["squeue", "-h", "-r", "-o", "%i|%A|%F"]
    cmd += ["-j", ",".join(jobs)] if jobs else ["-u", getpass.getuser()]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (subprocess.SubprocessError, OSError):
        return None
    if proc.returncode != 0:  # squeue -j with only finished jobs says "Invalid job id specified"
        return set() if jobs and "Invalid job id" in proc.stderr else None
    ids = set()
    for line in proc.stdout.splitlines():
        shown, job_id, array_id = (part.strip() for part in line.split("|"))
        ids.update({shown, job_id, f"array:{array_id}"})
    return ids
