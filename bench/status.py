"""How long `python -m llm_line.sweeps.status` takes on a large grid: 10,000 cells by default.

    python bench/status.py [--cells 10000]

Writes a synthetic results root (half the cells done with a realistic result file, some failed, some
running, the rest queued) and a sweep manifest into a temporary folder, then times the status command
in a fresh process, as a user runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=10_000)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))

    from llm_line.evaluation import store
    from llm_line.files import write_json
    from llm_line.sweeps import manifests

    metrics = {f"mmlu_{i}": {"acc": 0.5, "loss": 1.0, "bpb": 0.5, "n_docs": 100} for i in range(60)}
    with tempfile.TemporaryDirectory() as tmp:
        root, cells = Path(tmp), []
        for i in range(args.cells):
            cell = {"model": f"m{i // 1000}", "revision": f"step{i % 1000}", "task": "mmlu", "shots": 0, "limit": None}
            run_dir = root / f"m{i // 1000}" / f"step{i % 1000}" / "mmlu" / "0shot"
            run_dir.mkdir(parents=True)
            if i % 2 == 0:
                (run_dir / store.RESULT).write_text(
                    json.dumps({"schema": 1, "cell": cell, "metrics": metrics, "n_docs": 1})
                )
            elif i % 7 == 1:
                (run_dir / store.FAILURE).write_text(json.dumps({"error": "CellError: example"}))
            cells.append({"run_dir": str(run_dir.relative_to(root)), "cell": cell, "launched": True})
        manifest = {"cells": cells, "pid": os.getpid(), "host": os.uname().nodename, "launcher": "BasicLauncher"}
        write_json(root / manifests.MANIFESTS / "bench.json", manifest)
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "llm_line.sweeps.status", str(root), "--show", ""],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        elapsed = time.perf_counter() - start
    print(out.strip())
    print(f"status of {args.cells} cells: {elapsed:.2f} s ({1e6 * elapsed / args.cells:.0f} us per cell)")


if __name__ == "__main__":
    main()
