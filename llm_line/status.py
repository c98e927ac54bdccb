"""Where a sweep stands: which cells are done, failed, running, queued or missing.

    python -m llm_line.status results                 # the latest sweep launched into `results`
    python -m llm_line.status results --all           # every sweep ever launched there, one grid each
    python -m llm_line.status results --show failed,missing

A cell's state comes from its run dir alone — `result.json` (done), `failure.json` (failed), `running.json`
(running) — and from the sweep manifest that the sweeper wrote at launch (which cells were launched, by whom).
SLURM's own view (`squeue`) is consulted when available, to tell a queued or running cell from one whose job
is gone (cancelled, killed, node failure): such cells count as missing and a re-submission runs them.
Read-only: nothing is moved or deleted. Reads only small JSON files, so 10,000 cells take seconds.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Optional

from llm_line import store

STATES = ("done", "failed", "running", "queued", "missing")


def slurm_jobs() -> Optional[set[str]]:
    """Ids (`123`, `123_4`) and names of this user's jobs in SLURM's queue; None where SLURM is not here."""
    if shutil.which("squeue") is None:
        return None
    try:
        out = subprocess.run(["squeue", "-h", "-r", "-u", getpass.getuser(), "-o", "%i|%j"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    jobs = set()
    for line in out.splitlines():
        job_id, _, name = line.partition("|")
        jobs.update({job_id.strip(), f"name:{name.strip()}"})
    return jobs


def process_alive(record: dict[str, Any]) -> Optional[bool]:
    """Whether the process that wrote a record still runs; None when that cannot be told from here."""
    if record.get("host") != socket.gethostname() or "pid" not in record:
        return None
    try:
        os.kill(int(record["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_alive(marker: dict[str, Any], queue: Optional[set[str]]) -> bool:
    """Is the job behind a `running.json` still there? Unknown counts as yes."""
    if queue is not None and "slurm_job_id" in marker:
        array = marker.get("slurm_array_job_id"), marker.get("slurm_array_task_id")
        ids = {marker["slurm_job_id"], f"{array[0]}_{array[1]}"}
        return bool(ids & queue)
    alive = process_alive(marker)
    return True if alive is None else alive


def cell_state(run_dir: Path, launched: bool, sweep_alive: bool, queue: Optional[set[str]]) -> tuple[str, str]:
    """(state, detail) of one cell."""
    try:
        store.read_result(run_dir / store.RESULT)
        return "done", ""
    except store.CorruptResult:
        pass
    running = _read(run_dir / store.RUNNING)
    if running is not None:
        if running_alive(running, queue):
            where = running.get("slurm_array_job_id") or running.get("slurm_job_id") or running.get("host", "")
            return "running", f"since {running.get('started', '?')} ({where})"
        return "missing", "its job ended without a result (killed or cancelled)"
    failure = _read(run_dir / store.FAILURE)
    if failure is not None:
        return "failed", str(failure.get("error", "?")).splitlines()[0][:300]
    if launched and sweep_alive:
        return "queued", ""
    return "missing", ""


def _read(path: Path) -> Optional[dict[str, Any]]:
    try:
        data = store.read_json(path)
    except store.CorruptResult:  # absent, unreadable, not a regular file (a FIFO would block), not JSON
        return None
    return data if isinstance(data, dict) else None


def sweep_alive(manifest: dict[str, Any], queue: Optional[set[str]]) -> bool:
    """Can launched-but-unstarted cells of this sweep still start? (its jobs are queued, or its launcher runs)"""
    if "slurm" in manifest.get("launcher", "").lower() and queue is not None:
        return f"name:{manifest.get('job_name')}" in queue
    alive = process_alive(manifest)
    return bool(alive)


def grid_status(root: Path, manifest: dict[str, Any], queue: Optional[set[str]]) -> list[dict[str, Any]]:
    alive = sweep_alive(manifest, queue)
    rows = []
    for entry in manifest["cells"]:
        state, detail = cell_state(root / entry["run_dir"], entry["launched"], alive, queue)
        rows.append({"run_dir": entry["run_dir"], "state": state, "detail": detail})
    return rows


def unlisted_cells(root: Path) -> list[dict[str, Any]]:
    """Cells under `root` that no sweep manifest lists (single runs): found by their files."""
    dirs = {p.parent for name in (store.RESULT, store.FAILURE, store.RUNNING) for p in root.rglob(name)}
    return [{"run_dir": str(d.relative_to(root)), "launched": False} for d in sorted(dirs)]


def report(name: str, rows: list[dict[str, Any]], show: set[str]) -> None:
    counts = Counter(row["state"] for row in rows)
    print(f"{name}: {len(rows)} cells  " + "  ".join(f"{s} {counts.get(s, 0)}" for s in STATES))
    for state in STATES:
        if state not in show:
            continue
        for row in rows:
            if row["state"] == state:
                detail = f"  {row['detail']}" if row["detail"] else ""
                print(f"  {state:<8} {row['run_dir']}{detail}")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llm_line.status", description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="results root (the sweep dir, `results_dir` of the sweep)")
    parser.add_argument("--all", action="store_true", help="every sweep launched into ROOT, not only the latest")
    parser.add_argument("--show", default="failed,running,missing",
                        help=f"states whose cells are listed one per line (of {','.join(STATES)}; default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the cells and their states as JSON")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        parser.error(f"{args.root} is not a folder")
    manifests = sorted((args.root / store.MANIFESTS).glob("*.json"))
    queue = slurm_jobs()
    grids = []
    if manifests:
        for path in manifests if args.all else manifests[-1:]:
            manifest = json.loads(path.read_text())
            grids.append((f"sweep {path.stem} ({manifest.get('created', '?')})", grid_status(args.root, manifest, queue)))
    else:
        grids.append((f"{args.root} (no sweep manifest; cells found on disk)",
                      grid_status(args.root, {"cells": unlisted_cells(args.root)}, queue)))
    if args.json:
        print(json.dumps([{"grid": name, "cells": rows} for name, rows in grids], indent=1))
    else:
        show = set(args.show.split(",")) if args.show else set()
        for name, rows in grids:
            report(name, rows, show)
    return 0


if __name__ == "__main__":
    sys.exit(main())
