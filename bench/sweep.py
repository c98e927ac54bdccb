"""Wall time of an N-cell local sweep in one process vs the same cells as separate `lm_eval` CLI runs.

    python bench/sweep.py            # N = 8: demo tiny/small x demo_sounds/demo_colors x 0/2 shots

Prints, side by side: the sweep (`python evaluate.py -m ...`, one process, each model loaded once), the
same cells as N separate `python -m lm_eval` processes (what a shell loop over cells costs), and the
re-run of the finished sweep (every cell skipped before torch is imported). Targets: sweep <= 0.3 x the
separate runs; re-run < 1 s per cell. Runs offline on the demo model; uses a temporary results folder.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES, TASKS, SHOTS = ("tiny", "small"), ("demo_sounds", "demo_colors"), (0, 2)


def timed(cmd: list[str], **kwargs) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, **kwargs)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default=os.environ.get("LLM_LINE_CACHE", "~/.cache/llm_line"))
    args = parser.parse_args()
    cache = Path(args.cache).expanduser()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "LLM_LINE_CACHE": str(cache)}
    sys.path.insert(0, str(ROOT))
    from llm_line import demo

    for size in SIZES:  # build outside the timings
        demo.ensure(cache / "demo" / size, size)
    cells = list(itertools.product(SIZES, TASKS, SHOTS))

    with tempfile.TemporaryDirectory() as tmp:
        sweep = [
            sys.executable,
            "evaluate.py",
            "-m",
            "model=demo",
            f"model.size={','.join(SIZES)}",
            f"task={','.join(TASKS)}",
            f"shots={','.join(map(str, SHOTS))}",
            f"results_dir={tmp}/results",
        ]
        t_sweep = timed(sweep, env=env)
        t_rerun = timed(sweep, env=env)
        t_separate = sum(
            timed(
                [
                    sys.executable,
                    "-m",
                    "lm_eval",
                    "--model",
                    "hf",
                    "--model_args",
                    f"pretrained={cache / 'demo' / size},dtype=float32",
                    "--tasks",
                    task,
                    "--num_fewshot",
                    str(shots),
                    "--include_path",
                    str(ROOT / "llm_line" / "tasks"),
                    "--device",
                    "cpu",
                    "--batch_size",
                    "32",
                    "--output_path",
                    f"{tmp}/lm_eval/{size}-{task}-{shots}",
                ],
                env=env,
            )
            for size, task, shots in cells
        )

    n = len(cells)
    print(f"cells: {n} (demo model sizes {SIZES} x tasks {TASKS} x shots {SHOTS}), {os.cpu_count()} CPUs")
    print(f"{'':32}{'total s':>10}{'s / cell':>10}")
    print(f"{'separate lm_eval CLI runs':32}{t_separate:>10.1f}{t_separate / n:>10.2f}")
    print(f"{'llm-line sweep (one process)':32}{t_sweep:>10.1f}{t_sweep / n:>10.2f}")
    print(f"{'llm-line re-run (all skipped)':32}{t_rerun:>10.1f}{t_rerun / n:>10.2f}")
    print(
        f"sweep / separate = {t_sweep / t_separate:.2f} (target <= 0.30); "
        f"re-run {t_rerun / n:.2f} s per cell (target < 1)"
    )


if __name__ == "__main__":
    main()
