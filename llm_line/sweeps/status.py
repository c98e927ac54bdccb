"""Where a sweep stands: which cells are done, failed, running, queued or missing.

    python -m llm_line.sweeps.status results                 # every cell any sweep launched into `results`
    python -m llm_line.sweeps.status results --all           # each sweep launched there, one grid each
    python -m llm_line.sweeps.status results --show failed,missing

A cell's state comes from its run dir alone — `result.json` (done), `failure.json` (failed), `running.json`
(running) — and from the sweep manifests that the sweeper wrote at launch (which cells were launched, by
whom, in which SLURM job); all of them are combined, each cell in its newest state, so a re-run that
launched nothing never hides what an earlier sweep queued (llm_line/sweeps/manifests.py). SLURM's own view
(`squeue`) is consulted when available, to tell a queued or running cell from one whose job is gone
(cancelled, killed, node failure): such cells count as missing and a re-submission runs them. A claim whose
holder is gone is shown as such, with how to clear it; it never hides a live submission of its cell.
Read-only: nothing is moved or deleted. Reads only small JSON files, so 10,000 cells take seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from llm_line.arguments import prog
from llm_line.errors import run_command
from llm_line.evaluation import claims, fingerprint, store
from llm_line.evaluation.identity import CellId
from llm_line.sweeps import manifests

STATES = ("done", "failed", "running", "queued", "missing")


def cell_state(run_dir: Path, entry: dict[str, Any], sweep_alive: bool, queue: set[str] | None) -> tuple[str, str]:
    """(state, detail) of one cell; `entry` is its manifest record (run_dir, cell identity, fingerprint,
    launched, job, submitted), `sweep_alive` whether its sweep's launcher still runs. The reuse decision is the
    runner's (llm_line.evaluation.store.current_result): done only for the cell's own result with its settings.
    Without a manifest (`cell` unknown), a result counts as done only in the run dir its own identity maps to."""
    cell = CellId.of_record(entry["cell"]) if entry.get("cell") is not None else None
    wanted = (entry.get("fingerprint") or {}).get("settings")
    try:
        if cell is None and (run_dir / store.RESULT).exists():
            cell = CellId.of_result(store.read_result(run_dir / store.RESULT))
            if not f"/{Path(entry['run_dir']).as_posix()}".endswith(f"/{cell.run_dir}"):
                return "failed", (
                    f"{run_dir / store.RESULT} holds the result of another cell ({cell.record()}), whose run dir is "
                    f"{cell.run_dir}: it was copied there"
                )
        if cell is not None and store.current_result(run_dir, cell, wanted) is not None:
            return "done", ""
    except store.CorruptResult:
        pass
    except (store.OtherCellResult, fingerprint.ChangedSettings) as e:
        return "failed", str(e)
    running = claims.read(run_dir / store.RUNNING)
    if running is not None and claims.alive(running, queue):
        where = running.get("slurm_job_id") or running.get("host", "")
        return "running", f"since {running.get('started', '?')} ({where})"
    submitted = manifests.submission_alive(entry, sweep_alive, queue)
    failure = claims.read(run_dir / store.FAILURE)
    if failure is not None and not (submitted and older_than_submission(run_dir / store.FAILURE, entry)):
        return "failed", str(failure.get("error", "?")).splitlines()[0][:300]
    # a stale claim never hides a queued SLURM job (a requeued job resumes the cell); without a job, a claim
    # left since the submission means this sweep's attempt at the cell died
    stale = running is not None and not (entry.get("job") or older_than_submission(run_dir / store.RUNNING, entry))
    if submitted and not stale:
        return "queued", str(entry.get("job", ""))
    if running is not None:
        return "missing", "stale claim: " + claims.describe(running, run_dir / store.RUNNING)
    return "missing", ""


def older_than_submission(path: Path, entry: dict[str, Any]) -> bool:
    """Was `path` written before the cell's submission (`entry["submitted"]`), i.e. by an earlier attempt?"""
    try:
        return path.stat().st_mtime < entry.get("submitted", 0)
    except OSError:
        return True


def grid_status(root: Path, manifest: dict[str, Any], queue: set[str] | None) -> list[dict[str, Any]]:
    alive = manifests.launcher_alive(manifest)
    rows = []
    for entry in manifest["cells"]:
        entry = {"submitted": manifest.get("created_s", 0), **entry}
        state, detail = cell_state(root / entry["run_dir"], entry, entry.get("launcher_alive", alive), queue)
        rows.append({"run_dir": entry["run_dir"], "state": state, "detail": detail})
    return rows


def combined(found: list[dict[str, Any]], queue: set[str] | None) -> dict[str, Any]:
    """One manifest holding every cell of `found` (oldest first) in its newest state: a cell's entry is the
    newest one whose submission is still alive, else the newest one (a later no-op re-run lists a queued cell
    as not launched; it must not hide the earlier sweep's live job)."""
    entries: dict[str, tuple[dict[str, Any], bool]] = {}
    for manifest in found:
        alive = manifests.launcher_alive(manifest)
        for entry in manifest["cells"]:
            entry = {"submitted": manifest.get("created_s", 0), **entry, "launcher_alive": alive}
            before = entries.get(entry["run_dir"])
            if (
                before is None
                or not manifests.submission_alive(before[0], before[1], queue)
                or manifests.submission_alive(entry, alive, queue)
            ):
                entries[entry["run_dir"]] = (entry, alive)
    return {"cells": [entry for entry, _ in entries.values()]}


def unlisted_cells(root: Path) -> list[dict[str, Any]]:
    """Cells under `root` that no sweep manifest lists (single runs): found by their files."""
    dirs = {p.parent for name in (store.RESULT, store.FAILURE, store.RUNNING) for p in root.rglob(name)}
    return [{"run_dir": str(d.relative_to(root)), "launched": False} for d in sorted(dirs)]


def progress(done: int, total: int, width: int = 30) -> str:
    """`[#########.....]  60.0% done` for a sweep of `total` cells."""
    share = done / total if total else 1.0
    filled = round(share * width)
    return f"[{'#' * filled}{'.' * (width - filled)}] {100 * share:5.1f}% done"


def report(name: str, rows: list[dict[str, Any]], show: set[str]) -> None:
    if not rows:
        print(
            f"{name}: no cells (no sweep was launched into this folder and it holds no result); launch one with "
            "`python evaluate.py -m ... results_dir=<this folder>`"
        )
        return
    counts = Counter(row["state"] for row in rows)
    print(f"{name}: {len(rows)} cells  " + "  ".join(f"{s} {counts.get(s, 0)}" for s in STATES))
    print(f"  {progress(counts.get('done', 0), len(rows))}")
    for state in STATES:
        if state not in show:
            continue
        for row in rows:
            if row["state"] == state:
                detail = f"  {row['detail']}" if row["detail"] else ""
                print(f"  {state:<8} {row['run_dir']}{detail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog("llm_line.sweeps.status"), description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="results root (the sweep dir, `results_dir` of the sweep)")
    parser.add_argument(
        "--all", action="store_true", help="each sweep launched into ROOT as its own grid, not all combined"
    )
    parser.add_argument(
        "--show",
        default="failed,running,missing",
        help=f"states whose cells are listed one per line (of {','.join(STATES)}; default %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print the cells and their states as JSON")
    args = parser.parse_args(argv)
    args.root = args.root.expanduser()
    if not args.root.is_dir():
        parser.error(f"{args.root} is not a folder")
    queue = claims.slurm_queue()
    found = list(manifests.read_all(args.root))
    grids = []
    if args.all:
        for path, manifest in found:
            grids.append(
                (f"sweep {path.stem} ({manifest.get('created', '?')})", grid_status(args.root, manifest, queue))
            )
    elif found:
        name = f"sweep {found[-1][0].stem}" if len(found) == 1 else f"{len(found)} sweeps combined"
        grids.append(
            (
                f"{name} (latest {found[-1][1].get('created', '?')})",
                grid_status(args.root, combined([m for _, m in found], queue), queue),
            )
        )
    else:
        grids.append(
            (
                f"{args.root} (no sweep manifest; cells found on disk)",
                grid_status(args.root, {"cells": unlisted_cells(args.root)}, queue),
            )
        )
    if args.json:
        print(json.dumps([{"grid": name, "cells": rows} for name, rows in grids], indent=1))
    else:
        show = set(args.show.split(",")) if args.show else set()
        for name, rows in grids:
            report(name, rows, show)
    return 0


if __name__ == "__main__":
    sys.exit(run_command("python -m llm_line.sweeps.status", main, None))
