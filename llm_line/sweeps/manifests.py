"""Reading the sweep manifests of a results dir, and whether what they submitted can still run.

The sweeper (hydra_plugins/llm_line_sweeper.py) writes one manifest per sweep, `<results>/.llm_line/sweeps/
<time>-<pid>.json`, before it launches anything, and records each launched cell's SLURM job as soon as its
job array is submitted. A launched cell's submission is alive while SLURM still has its job (squeue, from
any login node) or, before its job is recorded (its array not yet submitted, or a launcher without SLURM),
while the sweep's launcher process still runs. The next plan (llm_line/sweeps/plan.py) launches nothing whose
submission is alive, and `status` (llm_line/sweeps/status.py) reads every manifest, so a re-run that launched
nothing never hides the cells an earlier sweep queued.

Cheap to import: no torch, no Hydra.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llm_line.evaluation import claims

log = logging.getLogger(__name__)

MANIFESTS = Path(".llm_line") / "sweeps"  # below a sweep dir: one manifest per launched sweep


def read_all(root: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every readable manifest below `root`, oldest first (their names start with the time); an unreadable
    one is skipped with a warning."""
    for path in sorted((root / MANIFESTS).glob("*.json")):
        manifest = claims.read(path)
        if manifest is None or not isinstance(manifest.get("cells"), list):
            log.warning(
                "skipping sweep manifest %s: %s; the other manifests are read (delete it to silence this)",
                path,
                "not readable JSON" if manifest is None else "it lists no cells",
            )
            continue
        yield path, manifest


def launcher_alive(manifest: dict[str, Any]) -> bool:
    """Does the process that launched this sweep still run (on this host: same pid, same start time)?"""
    if manifest.get("host") != socket.gethostname() or "pid" not in manifest:
        return False
    return claims.process_alive(int(manifest["pid"]), manifest.get("pid_started"))


def submission_alive(entry: dict[str, Any], launcher: bool, queue: set[str] | None) -> bool:
    """Can this launched cell still start? Its recorded SLURM job is queued or running, or (no job recorded,
    or SLURM cannot be asked from here) its sweep's launcher still runs (`launcher`)."""
    if not entry.get("launched"):
        return False
    job = entry.get("job")
    if job and queue is not None:
        return str(job) in queue
    return launcher
