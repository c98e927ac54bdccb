"""Planning cost of large sweeps (not a timed test): a 2,000-cell grid, and the paper's table.

    python bench/plan.py                   # both; --skip-paper for the 2,000-cell grid only
    python bench/plan.py --cells 100000    # the paper's full scale (6,000+ checkpoints x 15 tasks ~ 90,000)

1. 2,000 cells (Pythia-410m at 200 steps x the ten tasks; `--cells N`: N/10 steps) planned in process by
   `llm_line.sweeps.plan.make_plan`, exactly as the sweeper plans them (compose, validate, classify, pack): seconds,
   ms per cell and peak memory.
2. `+experiment=paper_hf` as a SLURM dry run (`hydra.sweeper.dry_run=true`, `hydra/launcher=slurm`): cells,
   jobs and model loads per cell, and the dry run's wall time. Nothing is submitted; no hub access.
Runs in a temporary results folder.
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASKS = "piqa,social_iqa,commonsense_qa,copa,hellaswag,arc_easy,arc_challenge,openbookqa,mmlu,winogrande"


def plan_grid(results: Path, n_cells: int) -> None:
    sys.path.insert(0, str(ROOT))
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import open_dict

    from llm_line.sweeps.plan import make_plan

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        config = compose("config", overrides=[f"results_dir={results}"], return_hydra_config=True)
        with open_dict(config):
            config.hydra.job.config_name = "config"
            config.hydra.overrides.hydra = []
        cells = [
            ["model=pythia", "model.size=410m", f"model.step={step}", f"task={task}", f"results_dir={results}"]
            for step in range(0, 1000 * (n_cells // 10), 1000)
            for task in TASKS.split(",")
        ]
        start, cpu = time.perf_counter(), time.process_time()
        plan = make_plan(GlobalHydra.instance().config_loader(), config, cells, cells_per_job=32)
        took, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{len(cells):,}-cell grid (peak RSS {peak_mb:.0f} MB): planned {len(plan.cells)} cells in {took:.1f} s "
        f"wall, {cpu:.1f} s CPU "
        f"({1000 * cpu / len(plan.cells):.1f} ms CPU per cell); {len(plan.packs)} jobs of <= 32 cells, "
        f"{len(plan.packs) / len(plan.cells):.3f} jobs per cell"
    )


def paper_dry_run(results: Path) -> None:
    cmd = [
        sys.executable,
        "evaluate.py",
        "-m",
        "+experiment=paper_hf",
        "hydra/launcher=slurm",
        "hydra.sweeper.dry_run=true",
        f"results_dir={results}",
    ]
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    took = time.perf_counter() - start
    text = out.stdout + out.stderr
    cells = int(re.search(r"(\d+) cells in the grid", text).group(1))
    errors = int(re.search(r"(\d+) with errors", text).group(1))
    launch = int(re.search(r"(\d+) to launch", text).group(1))
    jobs = int(re.search(r"(\d+) jobs \(one model load each", text).group(1))
    print(
        f"paper_hf dry run: {cells} cells, {errors} error cells (hub revisions the preflight could not find; "
        f"offline, patterns need a cached branch list), {launch} to launch -> {jobs} jobs = {jobs} model loads "
        f"({jobs / launch:.3f} per cell, was 1 per cell); dry run {took:.1f} s wall"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-paper", action="store_true")
    parser.add_argument("--cells", type=int, default=2000, help="grid size, a multiple of 10 (default %(default)s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        plan_grid(Path(tmp) / "grid", args.cells)
        if not args.skip_paper:
            paper_dry_run(Path(tmp) / "paper")


if __name__ == "__main__":
    main()
