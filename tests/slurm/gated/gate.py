"""The gate of gated_sounds, inside a cell's work (lm-eval's aggregation, after every document is scored):
the first cell to reach it while $LLM_LINE_TEST_GATE names a folder writes `entered` there (its SLURM job id)
and waits, until a signal ends its job (or WAIT_S); every later cell, a requeued job's included, passes. So
tests/test_slurm.py signals a pack at a known point of a known cell instead of racing the cells' work."""

import os
import time
from pathlib import Path

WAIT_S = 300  # a test that fails before it signals still ends


def mean(items):
    gate = os.environ.get("LLM_LINE_TEST_GATE")
    if gate:
        try:
            with open(Path(gate) / "entered", "x") as f:  # exclusive: exactly one cell ever waits
                f.write(os.environ.get("SLURM_JOB_ID", ""))
        except FileExistsError:
            pass
        else:
            deadline = time.time() + WAIT_S
            while time.time() < deadline:
                time.sleep(0.05)
    return sum(items) / len(items)
