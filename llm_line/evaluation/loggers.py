"""Loggers: where a finished cell's metrics go besides its `result.json`.

`result.json` is the record the store, status and collect rely on; loggers are views of it for humans and
dashboards, chosen with the `logger` config group (as lightning-hydra-template does):

    python evaluate.py -m model=pythia task=piqa,copa                 # logger=csv (default)
    python evaluate.py -m model=pythia task=piqa,copa logger=wandb logger.wandb.project=my-project

- CSV, always: `metrics.csv` in the cell's run dir, one row per (task or group, metric), written atomically.
- Weights & Biases, when asked for (`logger=wandb`): one W&B run per cell, grouped by model, named by the run
  dir, with the cell's resolved config and its metrics. Needs `pip install wandb`; `logger.wandb.mode=offline`
  on compute nodes without internet (then `wandb sync`).

A logger runs after the result is written: a logger that fails (W&B unreachable) is reported and never
loses or fails the cell.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any

from llm_line.errors import CellError
from llm_line.files import atomic_file

log = logging.getLogger(__name__)

METRICS_CSV = "metrics.csv"


def metric_rows(result: dict[str, Any]) -> list[tuple[str, str, float]]:
    """(task or group, metric, value) for every number of a result's metrics, in the result's order."""
    return [
        (task, name, value)
        for task, values in result["metrics"].items()
        for name, value in values.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    ]


def write_csv(run_dir: Path, result: dict[str, Any]) -> Path:
    """`metrics.csv` beside `result.json`: the cell's identity on every row, then task, metric, value."""
    cell = result["cell"]
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow([*cell, "task_or_group", "metric", "value"])
    for task, metric, value in metric_rows(result):
        writer.writerow([*cell.values(), task, metric, repr(float(value))])
    path = run_dir / METRICS_CSV
    with atomic_file(path) as f:
        f.write(text.getvalue())
    return path


def check_wandb(settings: Any) -> None:
    """Fail before any work when W&B is asked for but not installed (a cell must not run for nothing)."""
    if settings is None:
        return
    try:
        import wandb  # noqa: F401
    except ImportError:
        raise CellError("logger=wandb needs the wandb package: `pip install wandb` (or drop logger=wandb)") from None


def send_wandb(settings: Any, run_dir: Path, result: dict[str, Any]) -> None:
    """One W&B run for the cell: its config, its metrics as `<task>/<metric>`, its identity as tags."""
    import wandb

    cell = result["cell"]
    run = wandb.init(
        project=settings.project,
        entity=settings.entity,
        mode=settings.mode,
        group=str(cell["model"]),
        name=str(run_dir),
        job_type=str(cell["task"]),
        tags=list(settings.tags or []),
        config=result.get("config"),
        dir=str(run_dir),
        reinit="finish_previous",
    )
    try:
        run.log({f"{task}/{metric}": value for task, metric, value in metric_rows(result)})
    finally:
        run.finish()


def log_result(logger: Any, run_dir: Path, result: dict[str, Any]) -> None:
    """Hand a finished cell's result to every configured logger; their failures are warnings, not losses."""
    try:
        write_csv(run_dir, result)
    except OSError as e:
        log.warning("could not write %s: %s (the result itself is saved)", run_dir / METRICS_CSV, e)
    if logger is not None and logger.wandb is not None:
        try:
            send_wandb(logger.wandb, run_dir, result)
        except Exception as e:  # a dashboard outage must not fail a cell whose result is already saved
            log.warning("W&B logging of %s failed: %s: %s (the result itself is saved)", run_dir, type(e).__name__, e)
