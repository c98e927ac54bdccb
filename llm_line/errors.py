"""Errors a user can fix, and the one way every entry point turns them into one line on the console.

Light on purpose: raising or catching one must not import torch or lm_eval.

Three kinds of failure reach a user, and each `llm-line` command and `python evaluate.py` reports them alike:

- `CellError`: the code found something the user can fix and says what and how;
- an operating-system error on a path (a full disk, a read-only or unwritable folder, a name too long, a
  directory where a file was meant): `os_error_line` names the path and the fix;
- a malformed argument: refused where it is parsed (argparse types in `llm_line.arguments`, the structured
  configs' checks in `llm_line.evaluation.checks`).

A bug keeps its traceback. `LLM_LINE_FULL_ERROR=1` prints the traceback of a one-line error too (for
`python evaluate.py`, Hydra's `HYDRA_FULL_ERROR=1` does the same; a cell's traceback is also in its log and
`failure.json`).
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any


class CellError(RuntimeError):
    """A cell cannot run for a reason the user can fix; the message says what is wrong and how to fix it."""


# errno -> (what happened, how to fix it): the failures of a path that a user, not the code, can mend.
_OS_ERRORS = {
    errno.ENOSPC: ("no space left on the device", "free space there or write somewhere else"),
    errno.EDQUOT: ("disk quota exceeded", "free space within your quota or write somewhere else"),
    errno.EROFS: ("the file system is read-only", "write to a writable location"),
    errno.EACCES: ("permission denied", "fix its permissions (chmod/chown) or use a location of your own"),
    errno.EPERM: ("operation not permitted (immutable or owned by another user?)", "use a location of your own"),
    errno.EISDIR: ("is a folder, not a file", "name a file path, not a folder"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "fix the path"),
    errno.ENAMETOOLONG: ("the file name is too long", "use a shorter name (at most 255 bytes per path part)"),
    errno.ENOENT: ("no such file or folder", "check the path"),
    errno.EEXIST: ("already exists", "remove it or choose another path"),
    errno.ENOTEMPTY: ("the folder is not empty", "remove its contents or choose another path"),
    errno.EMFILE: ("too many open files", "raise the limit (ulimit -n) or run fewer processes at once"),
}


def os_error_line(error: OSError) -> str | None:
    """One line for an OS error a user can fix: the path, what happened and the fix (for a full disk, which
    disk and how much is free there); None for any other."""
    known = _OS_ERRORS.get(error.errno or -1)
    if known is None:
        return None
    what, fix = known
    paths = [os.fsdecode(p) for p in (error.filename, error.filename2) if p is not None]
    where = " -> ".join(paths) if paths else "a file"
    space = f" ({disk_space(paths[0])})" if error.errno in (errno.ENOSPC, errno.EDQUOT) and paths else ""
    return f"{where}: {what}; {fix}{space}"


def disk_space(path: str) -> str:
    """How full the file system holding `path` is, named by its mount point: `1.2 MB free of 50.0 GB on /data`."""
    folder = os.path.abspath(path)
    while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    mount = folder
    while not os.path.ismount(mount):
        mount = os.path.dirname(mount)
    try:
        usage = shutil.disk_usage(folder)
    except OSError:
        return f"the file system at {mount}"
    return f"{size(usage.free)} free of {size(usage.total)} on the file system at {mount}"


def size(n: float) -> str:
    """A byte count for people: 512 B, 1.5 kB, 3.2 GB."""
    units = ("B", "kB", "MB", "GB", "TB")
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n, i = n / 1000, i + 1
    return f"{n:.0f} B" if i == 0 else f"{n:.1f} {units[i]}"


def user_error_line(error: BaseException) -> str | None:
    """The one line for an error the user can fix, or None for a bug (whose traceback must be seen)."""
    if isinstance(error, CellError):
        return str(error)
    if isinstance(error, OSError):
        return os_error_line(error)
    return None


def run_command(prog: str, main: Callable[[Any], int | None], argv: Sequence[str] | None) -> int:
    """Run a command's `main(argv)`: a user-fixable error prints `PROG: error: LINE` and returns 1,
    Ctrl-C returns 130 quietly, a bug raises with its traceback."""
    try:
        return int(main(argv) or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        line = user_error_line(e)
        if line is None:
            raise
        if os.environ.get("LLM_LINE_FULL_ERROR") == "1":
            traceback.print_exception(e, file=sys.stderr)
        print(f"{prog}: error: {line}", file=sys.stderr)
        return 1
