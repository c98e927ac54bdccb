"""One cell, end to end: skip it if done, else evaluate it and write its result into its run dir.

This is where a cell runs. The order matters: the resume decision comes first and costs only a JSON read
(no torch, no model); a failing cell writes `failure.json` (with the error) and re-raises, so a sweep
reports it and no half-written result ever exists.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
import time
import traceback
from importlib import metadata
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

import llm_line.config  # noqa: F401  (a SLURM job resolves hydra.sweep.subdir with its cell_dir resolver)
from llm_line import claims, loggers, store
from llm_line.checks import check_config
from llm_line.errors import CellError

log = logging.getLogger(__name__)


def identity(cfg: DictConfig) -> dict[str, Any]:
    """What makes a cell this cell; the run dir is a function of exactly these values."""
    return {
        "model": cfg.model.name,
        "revision": cfg.model.revision,
        "task": cfg.task.name,
        "shots": cfg.shots,
        "limit": cfg.task.limit,
    }


def finished(cfg: DictConfig, run_dir: Path) -> dict[str, Any] | None:
    """The valid result of the cell `cfg` in `run_dir`, or None if it must be computed (always with force).

    The one resume decision, shared by a job and by the sweeper that filters cells before launching them.
    """
    if cfg.force:
        return None
    done = store.finished_result(run_dir, identity(cfg))
    if done is not None:
        check_settings(cfg, done, run_dir)
    return done


def run_cell(cfg: DictConfig, run_dir: Path) -> dict[str, Any] | None:
    """Evaluate the cell `cfg` into `run_dir`, or return its existing result unless `cfg.force`.

    Returns None when another live job or process holds the cell's claim (it computes the cell, not us).
    A forced recompute sets the old result aside once it holds the claim, so a failure is never shadowed
    by the result it was meant to replace.
    """
    cell = identity(cfg)
    done = finished(cfg, run_dir)
    if done is not None:
        log.info("Skipping %s: result exists at %s (force=true recomputes)", describe(cell), run_dir / store.RESULT)
        return done
    holder = claims.acquire(run_dir, cell)
    if holder is not None:
        log.warning(
            "Skipping %s: it is being computed by %s", describe(cell), claims.describe(holder, run_dir / store.RUNNING)
        )
        return None
    try:
        done = finished(cfg, run_dir)  # finished by another process between the first check and the claim
        if done is not None:
            log.info("Skipping %s: finished meanwhile at %s", describe(cell), run_dir / store.RESULT)
            return done
        if cfg.force:
            store.set_aside_for_recompute(run_dir)
        store.remove_stale(run_dir)
        log.info("Evaluating %s -> %s", describe(cell), run_dir)
        started = time.time()
        try:
            result = compute(cfg, cell, started, run_dir)
        except Exception as e:
            store.write_json(run_dir / store.FAILURE, failure_record(cfg, cell, e, started))
            raise
        store.write_json(run_dir / store.RESULT, result)
    finally:
        claims.release(run_dir)
    log.info("%s\nWrote %s", summary(result), run_dir / store.RESULT)
    loggers.log_result(cfg.logger, run_dir, result)
    return result


def compute(cfg: DictConfig, cell: dict[str, Any], started: float, run_dir: Path) -> dict[str, Any]:
    """Evaluate the cell (through lm-eval, or the corpus loss for a corpus task) and assemble its result; an
    lm-eval cell also writes its per-document records into `run_dir` (llm_line/records.py)."""
    check_config(cfg)  # again here: in a sweep, each cell has its own settings
    loggers.check_wandb(cfg.logger.wandb)
    if cfg.task.corpus is not None:
        return compute_corpus(cfg, cell, started)
    from llm_line import harness, metrics, records  # heavy: torch, transformers, lm_eval

    out = harness.evaluate(cfg.model, cfg.task, cfg.shots, cfg.fewshot_seed)
    results, model = out["results"], out["model"]
    cell_metrics = metrics.cell_metrics(results, out["tasks"], out["group_map"], model)
    records.write(run_dir / records.RECORDS, results, out["tasks"], model)
    task = {
        "kind": "lm_eval",
        "display": cfg.task.display,
        "versions": {k: v for k, v in results["versions"].items()},
        "n_shot": results["n-shot"],
        "fewshot_seed": cfg.fewshot_seed,
        "groups": out["group_map"],
    }
    return record(cfg, cell, started, cell_metrics, model.info(), task)


def compute_corpus(cfg: DictConfig, cell: dict[str, Any], started: float) -> dict[str, Any]:
    """The validation loss on a corpus (llm_line/corpus.py)."""
    from llm_line import corpus  # heavy: torch, transformers

    if cfg.shots:
        raise CellError(f"task {cfg.task.name} is a corpus (validation loss): it has no shots (got shots={cfg.shots})")
    out = corpus.evaluate(cfg.model, cfg.task, cfg.cache_dir)
    task = {"kind": "corpus", "display": cfg.task.display, "settings": corpus_settings(cfg), **out["details"]}
    return record(cfg, cell, started, {cfg.task.name: out["metrics"]}, out["model"], task)


def record(
    cfg: DictConfig,
    cell: dict[str, Any],
    started: float,
    cell_metrics: dict[str, Any],
    model: dict[str, Any],
    task: dict[str, Any],
) -> dict[str, Any]:
    """The result record of a finished cell (the schema of `result.json`)."""
    return {
        "schema": store.SCHEMA_VERSION,
        "status": "ok",
        "cell": cell,
        "metrics": cell_metrics,
        "n_docs": cell_metrics[cfg.task.name]["n_docs"],
        "model": {**model, "meta": OmegaConf.to_container(cfg.model.meta, resolve=True)},
        "task": task,
        "versions": versions(),
        "run": run_info(started),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }


def corpus_settings(cfg: DictConfig) -> dict[str, Any] | None:
    """The settings of a corpus cell that change its numbers (all but the batch size); None for other cells."""
    if cfg.task.corpus is None:
        return None
    settings = cast(dict[str, Any], OmegaConf.to_container(cfg.task.corpus, resolve=True))
    settings.pop("batch_size")
    if settings["method"] == "packed":  # the chunk length plays no part in packed windows
        settings.pop("chunk_length")
    return settings


def check_settings(cfg: DictConfig, result: dict[str, Any], run_dir: Path) -> None:
    """A corpus cell's existing result must come from the same settings: different numbers are never mixed."""
    wanted = corpus_settings(cfg)
    if wanted is None:
        return
    found = result.get("task", {}).get("settings")
    if found is not None and "method" not in found:  # written before corpus methods existed: packed
        found = {**found, "method": "packed"}
    if found != wanted:
        changed = sorted(k for k in set(wanted) | set(found or {}) if (found or {}).get(k) != wanted.get(k))
        raise CellError(
            f"{run_dir / store.RESULT} was computed with other corpus settings ({', '.join(changed)}: "
            f"{[(found or {}).get(k) for k in changed]} there, {[wanted.get(k) for k in changed]} now). Give "
            f"these settings their own task name (task.name={cfg.task.name}_...) or recompute with force=true."
        )


def failure_record(cfg: DictConfig, cell: dict[str, Any], error: BaseException, started: float) -> dict[str, Any]:
    """What `failure.json` holds: enough to see why a cell failed without its log."""
    return {
        "schema": store.SCHEMA_VERSION,
        "status": "failed",
        "cell": cell,
        "error": f"{type(error).__name__}: {error}",
        "traceback": traceback.format_exc(),
        "run": run_info(started),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }


def versions() -> dict[str, str]:
    names = ("lm_eval", "transformers", "torch", "datasets", "tokenizers")
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return {**found, "python": platform.python_version()}


def run_info(started: float) -> dict[str, Any]:
    """When and where a cell ran: times, host, SLURM job ids and the submitit log of the job."""
    finished = time.time()
    info = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(finished)),
        "wall_s": round(finished - started, 3),
        "host": socket.gethostname(),
        **{k.lower(): os.environ[k] for k in claims.SLURM_VARS if k in os.environ},
    }
    if "SUBMITIT_EXECUTOR" in os.environ:
        import submitit

        info["submitit_log"] = str(submitit.JobEnvironment().paths.stdout)
    return info


def describe(cell: dict[str, Any]) -> str:
    limit = f", limit {cell['limit']}" if cell["limit"] is not None else ""
    return f"{cell['model']}@{cell['revision']} on {cell['task']} ({cell['shots']}-shot{limit})"


def summary(result: dict[str, Any]) -> str:
    """A few lines for the console: the headline metrics of every task and group in the cell."""
    keys = ("acc", "acc_norm", "loss", "bpb", "n_docs")
    lines = [f"{'task':<28}" + "".join(f"{k:>10}" for k in keys)]
    for name, values in result["metrics"].items():
        cells = "".join(f"{values[k]:>10.4g}" if k in values else f"{'-':>10}" for k in keys)
        lines.append(f"{name:<28}{cells}")
    return "\n".join(lines)
