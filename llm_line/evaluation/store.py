"""The results store: one `result.json` (or `failure.json`) per cell run dir, and the one decision whether a
result may be reused.

A result is either whole or absent: it is written with llm_line.files.write_json (a temp file in the same
folder, fsynced, renamed over the final name), so a killed job, a full disk or a concurrent reader never sees
half a file. The cell writes it; the plan, `status` and `collect` read it through here. A file that does not
parse or lacks what a result must hold is set aside under a new name (never deleted) so that the cell is
recomputed and the evidence kept.

Cheap to import on purpose: the resume decision is made here before torch is loaded.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from pathlib import Path
from typing import Any

from llm_line.errors import CellError
from llm_line.evaluation import fingerprint
from llm_line.evaluation.identity import CellId

log = logging.getLogger(__name__)

RESULT = "result.json"
FAILURE = "failure.json"
RUNNING = "running.json"  # the claim of a computing cell (llm_line/evaluation/claims.py); left behind by a killed job
SCHEMA_VERSION = 1
REQUIRED = ("schema", "cell", "metrics", "n_docs")
# the keys every result's `cell` holds; CellId (llm_line/evaluation/identity.py) adds `fewshot_seed` (older results
# derive it)
IDENTITY = ("model", "revision", "task", "shots", "limit")
MAX_BYTES = 64 * 2**20  # no result or record is near this; anything larger is not one of ours


class CorruptResult(ValueError):
    """A result file exists but is not a complete result."""


class UnreadableResult(CorruptResult):
    """A result file exists but this user may not read it: never set aside, the user must fix the permission."""


def read_json(path: Path, max_bytes: int = MAX_BYTES) -> Any:
    """Parse the JSON file `path`; raise CorruptResult unless it is a readable regular file of sane size.

    Checked before opening, because opening a FIFO blocks forever and reading a link to /dev/zero never ends.
    A file this user may not read raises UnreadableResult: that is a permission to fix, not corruption.
    """
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise CorruptResult(f"{path}: not a regular file")
        if info.st_size > max_bytes:
            raise CorruptResult(f"{path}: {info.st_size} bytes, more than a result holds ({max_bytes})")
        with path.open("rb") as f:
            text = f.read(max_bytes + 1)
    except PermissionError as e:
        raise UnreadableResult(
            f"{path}: permission denied; give this user read access (chmod/chown) or use a results_dir of your own"
        ) from e
    except OSError as e:
        raise CorruptResult(f"{path}: unreadable ({e})") from e
    try:
        return json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorruptResult(f"{path}: unreadable ({e})") from e


def read_result(path: Path) -> dict[str, Any]:
    """Read and validate a result file; raise CorruptResult unless it is a complete, successful result.

    Complete means what every reader relies on: the schema version, the cell's identity, the task's own
    metrics entry and the document count. The resume decision, `status` and `collect` all call this, so a
    file counts as done for all of them or for none.
    """
    data = read_json(path)
    if not isinstance(data, dict) or any(key not in data for key in REQUIRED):
        raise CorruptResult(f"{path}: missing one of {REQUIRED}")
    if data["schema"] != SCHEMA_VERSION:
        raise CorruptResult(f"{path}: schema {data['schema']!r}, expected {SCHEMA_VERSION}")
    if data.get("status", "ok") != "ok":
        raise CorruptResult(f"{path}: status {data.get('status')!r}, not 'ok'")
    cell = data["cell"]
    if not isinstance(cell, dict) or any(key not in cell for key in IDENTITY):
        raise CorruptResult(f"{path}: cell lacks one of {IDENTITY}")
    metrics = data["metrics"]
    if not isinstance(metrics, dict) or not isinstance(metrics.get(cell["task"]), dict):
        raise CorruptResult(f"{path}: metrics lack the task's own entry {cell['task']!r}")
    n_docs = data["n_docs"]
    if isinstance(n_docs, bool) or not isinstance(n_docs, int) or n_docs < 0:
        raise CorruptResult(f"{path}: n_docs is {n_docs!r}, not a count")
    return data


def set_aside(path: Path) -> Path:
    """Rename a bad file to `<name>.corrupt-<timestamp>` so it is kept but no longer counts."""
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    os.replace(path, aside)
    return aside


class OtherCellResult(CellError):
    """A valid result in a run dir that belongs to another cell (copied there, or two cells share a path)."""


def current_result(
    run_dir: Path, cell: CellId, settings: dict[str, Any] | None = None, force: bool = False
) -> dict[str, Any] | None:
    """Read-only: the result of `cell` in `run_dir` if it may be reused, else None. The one reuse decision of
    the runner, the plan, `status` and `collect`: reused only when identity and fingerprint match.

    Raises CorruptResult for a bad file, OtherCellResult for another cell's result (also with `force`: a forced
    recompute never replaces another cell's result) and ChangedSettings for this cell's result computed with
    other `settings` (llm_line.evaluation.fingerprint; None: not compared). `force`: None for this cell's own result,
    which is to be replaced. A `failure.json` newer than the result (a forced recompute that failed) wins: the cell
    counts as failed, for jobs, the sweeper and status alike.
    """
    path = run_dir / RESULT
    if not path.exists():
        return None
    result = read_result(path)
    found = CellId.of_result(result)
    if found != cell:
        raise OtherCellResult(
            f"{path} holds the result of another cell ({found.record()}), not {cell.record()}: it was copied there, "
            "or two cells map to one results folder (rename one model: model.name=...); force=true does not replace it"
        )
    if force:
        return None
    if settings is not None:
        fingerprint.check_reusable(result, settings, path)
    failure = run_dir / FAILURE
    if failure.exists() and failure.stat().st_mtime_ns > path.stat().st_mtime_ns:
        return None
    return result


def finished_result(
    run_dir: Path,
    cell: CellId,
    settings: dict[str, Any] | None = None,
    force: bool = False,
    repair: bool = True,
) -> dict[str, Any] | None:
    """The reusable result of this cell in `run_dir` (current_result), or None if it must be (re)computed.

    A corrupt file is set aside with a warning where `repair` (a job about to compute the cell), left as it is
    otherwise (a plan, a dry run: nothing on disk changes). A file this user cannot read is not corrupt: that is
    an error (CellError), as is a valid result of a *different* cell in this folder (OtherCellResult) or of
    other settings (ChangedSettings); none is overwritten.
    """
    try:
        return current_result(run_dir, cell, settings, force)
    except UnreadableResult as e:
        raise CellError(str(e)) from None
    except CorruptResult as e:
        if repair:
            aside = set_aside(run_dir / RESULT)
            log.warning("%s; moved to %s and recomputing", e, aside.name)
        return None


def set_aside_for_recompute(run_dir: Path) -> Path | None:
    """A forced recompute starts: the old result no longer counts (kept as `result.json.replaced-<time>`)."""
    path = run_dir / RESULT
    if not path.exists():
        return None
    aside = path.with_name(f"{path.name}.replaced-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    os.replace(path, aside)
    return aside


def remove_stale(run_dir: Path) -> None:
    """Drop what an earlier attempt may have left: temp files of interrupted writes, an old failure record."""
    for tmp in run_dir.glob(".*.tmp"):  # atomic_file names its temp files .<name>.<random>.tmp
        tmp.unlink(missing_ok=True)
    (run_dir / FAILURE).unlink(missing_ok=True)
