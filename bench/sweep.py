"""Wall time of an N-cell local sweep in one process vs the same cells as separate `lm_eval` CLI runs.

    python bench/sweep.py            # N = 8: demo tiny/small x demo_sounds/demo_colors x 0/2 shots

Prints, side by side: the sweep (`python evaluate.py -m ...`, one process, each model loaded once), the
same cells as N separate `python -m lm_eval` processes (what a shell loop over cells costs), and the
re-run of the finished sweep (every cell skipped before torch is imported). Targets: sweep <= 0.3 x the
separate runs; re-run < 1 s per cell. Runs offline on the demo model; uses a temporary results folder.

    python bench/sweep.py --startup [--probe] [--backend hf]

The demo model tiny at two revisions x 2 tasks x 0/2 shots, in this process as a local sweep runs its cells
(harness.evaluate: the task index built once, each revision loaded once), with
lm-eval's functions wrapped in timers for the run only: per cell, the seconds spent before its first forward
pass (lm-eval's task index, task loading, request building, batch-size probing, model load) and after it
(scoring, lm-eval's metrics, its environment record). `--probe`: batch_size=auto, probed even on CPU.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import itertools
import os
import subprocess
import sys
import tempfile
import time
import unittest.mock
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SIZES, TASKS, SHOTS = ("tiny", "small"), ("demo_sounds", "demo_colors"), (0, 2)
REVISIONS = ("step200", "main")  # --startup: one model's checkpoints, as a SLURM pack or a local sweep holds them


def timed(cmd: list[str], **kwargs) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, **kwargs)
    return time.perf_counter() - start


class Clock:
    """Seconds spent inside wrapped functions, per phase; a phase called inside another is not counted twice."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = collections.defaultdict(float)
        self.stack: list[str] = []

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed_call(*args: Any, **kwargs: Any) -> Any:
            if name in self.stack:  # a recursive call (get_task_dict of a group): counted by the outer one
                return function(*args, **kwargs)
            self.stack.append(name)
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent = time.perf_counter() - start
                self.stack.pop()
                self.totals[name] += spent
                if self.stack:  # exclusive times: the caller's phase did not spend these seconds itself
                    self.totals[self.stack[-1]] -= spent

        return timed_call

    def take(self) -> dict[str, float]:
        totals, self.totals = dict(self.totals), collections.defaultdict(float)
        return totals


@contextlib.contextmanager
def patched(clock: Clock, targets: dict[str, tuple[Any, str]]) -> Iterator[None]:
    """Wrap each `owner.attribute` in the clock for the block; restore the originals afterwards."""
    saved = [(owner, attribute, owner.__dict__[attribute]) for owner, attribute in targets.values()]
    for name, (owner, attribute) in targets.items():
        setattr(owner, attribute, clock.wrap(name, getattr(owner, attribute)))
    try:
        yield
    finally:
        for owner, attribute, original in saved:
            setattr(owner, attribute, original)


PHASES = ("index", "tasks", "requests", "probe", "model")


def startup(cache: Path, backend: str, probe: bool) -> None:
    """Per-cell seconds before the first forward pass, in one process, as a local sweep runs its cells."""
    import lm_eval.evaluator
    import lm_eval.tasks
    from hydra import compose, initialize_config_dir
    from lm_eval.api.task import Task
    from lm_eval.models.huggingface import HFLM

    from llm_line.evaluation import harness

    clock = Clock()
    targets = {
        "index": (lm_eval.tasks.TaskManager, "__init__"),  # lm-eval's index of every task YAML
        "tasks": (lm_eval.tasks.TaskManager, "load"),  # get_task_dict: task objects, datasets, few-shot pools
        "tasks_dict": (lm_eval.tasks, "get_task_dict"),
        "requests": (Task, "build_all_requests"),  # construct_requests over every document
        "probe": (HFLM, "_detect_batch_size"),  # batch_size=auto
        "model": (harness, "load_model"),  # the weights; a cache hit after the first cell of a model
        "score": (HFLM, "loglikelihood"),  # tokenization and forward passes (less any probe inside)
        "metrics": (lm_eval.evaluator, "evaluate"),  # the rest of lm-eval's evaluate: filters, metrics, samples
        "env": (lm_eval.evaluator, "add_env_info"),  # what simple_evaluate records about the machine
        "git": (lm_eval.evaluator, "get_git_commit_hash"),
    }
    overrides = [f"model.backend={backend}", f"cache_dir={cache}"] + (["model.batch_size=auto"] if probe else [])
    rows = []
    with contextlib.ExitStack() as stack:
        if probe:  # on CPU harness turns auto into 8 (no OOM to catch there); the demo model's probe fits in memory
            resolve = harness.resolve_batch_size

            def auto(batch_size: str, device: str) -> int | str:
                return batch_size if batch_size == "auto" else resolve(batch_size, device)

            stack.enter_context(unittest.mock.patch.object(harness, "resolve_batch_size", auto))
        stack.enter_context(initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"))
        stack.enter_context(patched(clock, targets))
        for revision, task, shots in itertools.product(REVISIONS, TASKS, SHOTS):
            cell = ["model=demo", f"model.revision={revision}", f"task={task}", f"shots={shots}"]
            cfg = compose("config", [*overrides, *cell])
            start = time.perf_counter()
            harness.evaluate(cfg.model, cfg.task, cfg.shots, cfg.fewshot_seed)
            total = time.perf_counter() - start
            spent = clock.take()
            spent["tasks"] = spent.get("tasks", 0.0) + spent.pop("tasks_dict", 0.0)
            spent["env"] = spent.get("env", 0.0) + spent.pop("git", 0.0)
            rows.append((f"{revision} {task} {shots}", spent, total))
    after = ("score", "metrics", "env")
    columns = [*PHASES, "before", *after, "other", "total"]
    print(
        f"per-cell seconds, one process, backend {backend}, batch_size {'auto' if probe else 'fixed'}, "
        f"{os.cpu_count()} CPUs; before = {' + '.join(PHASES)}, other = total - before - {' - '.join(after)}"
    )
    print(f"{'cell':26}" + "".join(f"{c:>9}" for c in columns))
    for name, spent, total in rows:
        before = sum(spent.get(p, 0.0) for p in PHASES)
        values = [*(spent.get(p, 0.0) for p in PHASES), before, *(spent.get(p, 0.0) for p in after)]
        values += [total - before - sum(spent.get(p, 0.0) for p in after), total]
        print(f"{name:26}" + "".join(f"{v:>9.3f}" for v in values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default=os.environ.get("LLM_LINE_CACHE", "~/.cache/llm_line"))
    parser.add_argument("--startup", action="store_true", help="per-cell seconds before the first forward pass")
    parser.add_argument("--backend", default="hf-shared", help="with --startup: model.backend")
    parser.add_argument("--probe", action="store_true", help="with --startup: batch_size=auto (probed)")
    args = parser.parse_args()
    cache = Path(args.cache).expanduser()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "LLM_LINE_CACHE": str(cache)}
    sys.path.insert(0, str(ROOT))

    from llm_line.evaluation import demo

    for size in SIZES:  # build outside the timings
        demo.ensure(cache / "demo" / size, size)
    if args.startup:
        os.environ.update(env)
        startup(cache, args.backend, args.probe)
        return
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
