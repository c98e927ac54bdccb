"""Claims: a cell's `running.json`, created exclusively before it computes, so no cell is computed twice.

Two jobs or processes may reach the same cell (a sweep re-run while its jobs run, two identical local sweeps,
a requeued job). The first to create the claim computes the cell; the claim is written to a temporary file
and hard-linked to its final name, which fails if the name exists: exclusive like O_CREAT|O_EXCL, and never
seen half-written.

A claim names its holder exactly: host, pid and the process's start time, and under SLURM the job, array task,
step, task rank (procid) and restart count. It is alive only while that very process runs (on its host: same
pid, same start time, not a zombie) or, seen from another host, while that very job is queued or running at
the same restart count. So two processes in one allocation (same SLURM job) never compute one cell, a requeued
job takes over its own earlier claim, a reused pid never keeps a claim alive, and a claim of a job that SLURM
no longer knows is taken over. A claim from another host without SLURM is alive while that host name still
resolves (nothing else can tell): `describe` says how to clear it by hand.

Cheap to import: no torch, no Hydra.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psutil

from llm_line.evaluation import store

SLURM_VARS = (
    "SLURM_JOB_ID",
    "SLURM_ARRAY_JOB_ID",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_STEP_ID",
    "SLURM_PROCID",
    "SLURM_RESTART_COUNT",
)


def holder_record(cell: dict[str, Any]) -> dict[str, Any]:
    """Who holds a claim on `cell` (the record of its id, CellId.record): host, pid and its start time, user,
    SLURM job/array/step/rank/restart, since when."""
    return {
        "cell": cell,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "pid_started": process_started(os.getpid()),
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
    """Is the holder of a claim still at work? On its own host the process decides; elsewhere SLURM does.

    `queue`: the ids from `slurm_queue()`, to ask squeue once for many claims; None asks for this one job.
    """
    if holder.get("host") == socket.gethostname() and "pid" in holder:
        return process_alive(int(holder["pid"]), holder.get("pid_started"))
    job = holder.get("slurm_job_id")
    if job is None:
        return host_exists(str(holder.get("host", "")))
    restarts = int(holder.get("slurm_restart_count", 0))
    if job == os.environ.get("SLURM_JOB_ID"):  # this allocation, on another of its nodes: alive unless requeued since
        return restarts >= int(os.environ.get("SLURM_RESTART_COUNT", 0))
    if queue is None:
        queue = slurm_queue([str(job)])
    if queue is None:  # SLURM cannot be asked from here: assume the job runs
        return True
    return str(job) in queue and getattr(queue, "restarts", {}).get(str(job), restarts) == restarts


def describe(holder: dict[str, Any], path: Path) -> str:
    """Who holds a claim, and how to clear it if that holder is gone."""
    job = holder.get("slurm_job_id")
    where = f"SLURM job {job} (restart {holder.get('slurm_restart_count', 0)}) on " if job else ""
    return (
        f"{where}{holder.get('host', '?')} pid {holder.get('pid', '?')} since {holder.get('started', '?')}; "
        f"if that is gone, the next run takes the claim over (or remove {path})"
    )


def process_started(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), None if it does not run: with the pid, it names
    one process, never a later one that reuses the pid."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def process_alive(pid: int, started: float | None = None) -> bool:
    """Does process `pid` run on this host (not a zombie), and is it the one started at `started` (if given)?"""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or abs(process.create_time() - float(started)) < 0.01
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # exists, but not ours to inspect
        return True


@functools.lru_cache(maxsize=256)
def host_exists(host: str) -> bool:
    """Does the name of a claim's host still resolve? A host that is gone cannot hold a claim."""
    try:
        socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False
    return True


class SlurmQueue(set):
    """The ids squeue shows (a set of strings), with each job's restart count in `restarts`."""

    def __init__(self, ids: Iterable[str] = (), restarts: dict[str, int] | None = None) -> None:
        super().__init__(ids)
        self.restarts: dict[str, int] = restarts or {}


def slurm_queue(jobs: list[str] | None = None) -> SlurmQueue | None:
    """Ids of the jobs SLURM still has queued or running: job id, `array_task` and `array:<array job id>`,
    with their restart counts. Only `jobs` when given, else all of this user's jobs; None where SLURM cannot
    be asked.
    """
    if shutil.which("squeue") is None:
        return None
    cmd = ["squeue", "-h", "-r", "-O", "JobArrayID:64,JobID:32,ArrayJobID:32,RestartCnt:8"]
    cmd += ["-j", ",".join(jobs)] if jobs else ["-u", getpass.getuser()]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (subprocess.SubprocessError, OSError):
        return None
    if proc.returncode != 0:  # squeue -j with only finished jobs says "Invalid job id specified"
        return SlurmQueue() if jobs and "Invalid job id" in proc.stderr else None
    queue = SlurmQueue()
    for line in proc.stdout.splitlines():
        shown, job_id, array_id, restarts = line.split()
        queue.update({shown, job_id, f"array:{array_id}"})
        queue.restarts[job_id] = int(restarts)
    return queue
