"""Finding and reading `collect`'s inputs: the folders under the results roots that hold a result or failure
record, and the files not collected, with why (failed, corrupt, unreadable, duplicate), reported on stderr.

Its own module: the walk and the account of what was skipped are one concern, apart from what a result
becomes in the tables (`llm_line.analysis.long_table`, `llm_line.analysis.wide_table`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from llm_line.evaluation import store


@dataclass
class Skipped:
    """A file that was not collected, and why."""

    path: Path
    kind: str  # failed | corrupt | unreadable | duplicate
    reason: str


def find_run_dirs(roots: Iterable[os.PathLike], skipped: list[Skipped]) -> Iterable[tuple[Path, set[str]]]:
    """Every folder below the roots that holds a result or failure record, with the names it holds.

    A folder that cannot be listed (permissions) is added to `skipped`: it may hold results nobody sees.
    """
    wanted = {store.RESULT, store.FAILURE}

    def unreadable(error: OSError) -> None:
        skipped.append(Skipped(Path(error.filename), "unreadable", f"folder not searched ({error.strerror})"))

    for root in roots:
        root = Path(root).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"results root {root} does not exist or is not a folder")
        for folder, dirs, files in os.walk(root, onerror=unreadable):
            dirs[:] = sorted(d for d in dirs if d != ".hydra")
            found = wanted.intersection(files)
            if found:
                yield Path(folder), found


def failure_reason(path: Path) -> str:
    try:
        record = store.read_json(path)
    except store.CorruptResult as e:
        return f"failed; failure record unreadable ({str(e).removeprefix(f'{path}: ')})"
    error = record.get("error") if isinstance(record, dict) else None
    return str(error or "failed (no error recorded)")


def report_skipped(skipped: list[Skipped], stream=None) -> None:
    stream = stream or sys.stderr  # looked up per call: whatever stderr is now (redirected, captured)
    for item in skipped:
        print(f"skipped ({item.kind}) {item.path}: {item.reason}", file=stream)
    if skipped:
        counts = {
            kind: sum(s.kind == kind for s in skipped) for kind in ("failed", "corrupt", "unreadable", "duplicate")
        }
        print("skipped " + ", ".join(f"{n} {kind}" for kind, n in counts.items() if n), file=stream)
