"""Long work reported where it is seen, on a terminal or not: an estimate up front, then progress lines.

A progress bar (tqdm) shows only on a terminal; a fit run under SLURM, `nohup` or a pipe would be silent for
hours. `batches` splits the work into batches, times the first (kept small so the estimate comes quickly),
warns when the whole will take longer than `LONG` seconds, and logs a progress line every `EVERY` seconds
through `logging` (logger `llm_line.analysis.progress`), which the analysis commands send to stderr
(`command_logging`).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator

log = logging.getLogger(__name__)

LONG = 60.0  # seconds: work expected to take longer is announced with its estimate
EVERY = 30.0  # seconds between two progress lines


def duration(seconds: float) -> str:
    """A duration as a person says it: 0.3 s, 45 s, 12 min, 3.5 h, 2.1 days."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def batches(
    total: int, size: int, what: str, *, unit: str = "items", first: int | None = None, hint: str = ""
) -> Iterator[int]:
    """The sizes of consecutive batches that add up to `total` items: `first` items, then `size` at a time.

    After the first batch the rest is estimated from its time, and a warning says so when it is longer than
    `LONG` (`hint`: how to make it shorter); then a line every `EVERY` seconds says how far the work is.
    """
    start = last = time.monotonic()
    done = 0
    while done < total:
        count = min(first if done == 0 and first else size, total - done)
        yield count
        done += count
        now = time.monotonic()
        if done >= total:
            break
        left = (now - start) / done * (total - done)
        if done == count and left > LONG:
            log.warning(
                "%s: %d %s will take about %s more (the first %d took %s)%s",
                what,
                total,
                unit,
                duration(left),
                done,
                duration(now - start),
                f"; {hint}" if hint else "",
            )
            last = now
        elif now - last >= EVERY:
            log.info(
                "%s: %d of %d %s (%.1f%%), about %s left", what, done, total, unit, 100 * done / total, duration(left)
            )
            last = now


def command_logging() -> None:
    """Send the package's warnings and progress lines to stderr, for a command line; a caller (a notebook,
    a test, a script) that configured logging itself keeps its own handlers."""
    package = logging.getLogger("llm_line")
    if logging.getLogger().handlers or package.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    package.addHandler(handler)
    package.setLevel(logging.INFO)
