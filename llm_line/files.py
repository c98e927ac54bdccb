"""Atomic writes: a file appears whole or not at all. Every file llm-line writes goes through here (results,
records, tables, figures, exports), so a killed job, a full disk or a concurrent reader never sees half a file.

Cheap to import: the standard library only.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_file(path: Path, mode: str = "w") -> Iterator[IO]:
    """A file that appears at `path` whole or not at all: a temp file in the same folder, fsynced, renamed.

    An OS error of the write itself (a full disk on a write, flush or fsync, which name no file; or one naming
    the temp file) is raised naming `path`, so its one line (llm_line.errors.os_error_line) says which file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are shared like any file the user writes
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno is not None and e.filename in (None, tmp):
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise
    _fsync_dir(path.parent)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write `payload` to `path` atomically."""
    text = json.dumps(payload, indent=2, sort_keys=False, default=str, allow_nan=True)
    with atomic_file(path) as f:
        f.write(text + "\n")


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); harmless where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
