"""One cell, end to end: skip it if done, else evaluate it and write its result into its run dir.

This is where a cell runs. The order matters: the resume decision comes first and costs only a JSON read
(no torch, no model); a failing cell writes `failure.json` (with the error) and re-raises, so a sweep
reports it and no half-written result ever exists. The computed metrics are logged before `result.json` is
written, so a disk that fills at that moment loses no number (they also go into the `failure.json`).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import socket
import time
import traceback
from importlib import metadata
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from llm_line.errors import CellError, user_error_line
from llm_line.evaluation import claims, fingerprint, loggers, store
from llm_line.evaluation.checks import check_config, log_to_files
from llm_line.evaluation.identity import CellId  # its config import registers the cell_dir resolver jobs resolve
from llm_line.files import write_json

log = logging.getLogger(__name__)


def finished(cfg: DictConfig, run_dir: Path) -> dict[str, Any] | None:
    """The reusable result of the cell `cfg` in `run_dir`, or None if it must be computed (with force: unless
    the folder holds another cell's result, which is an error). A corrupt result is set aside.

    The runner's side of the one reuse decision (llm_line.evaluation.store.current_result), which the plan, `status`
    and `collect` share.
    """
    return store.finished_result(run_dir, CellId.of(cfg), fingerprint.settings(cfg), force=cfg.force)


def run_cell(cfg: DictConfig, run_dir: Path) -> dict[str, Any] | None:
    """Evaluate the cell `cfg` into `run_dir`, or return its existing result unless `cfg.force`.

    Returns None when another live job or process holds the cell's claim (it computes the cell, not us).
    A forced recompute sets the old result aside once it holds the claim, so a failure is never shadowed
    by the result it was meant to replace.
    """
    cell = CellId.of(cfg)
    done = finished(cfg, run_dir)
    if done is not None:
        log.info("Skipping %s: result exists at %s (force=true recomputes)", cell.describe(), run_dir / store.RESULT)
        return done
    holder = claims.acquire(run_dir, cell.record())
    if holder is not None:
        log.warning(
            "Skipping %s: it is being computed by %s", cell.describe(), claims.describe(holder, run_dir / store.RUNNING)
        )
        return None
    try:
        done = finished(cfg, run_dir)  # finished by another process between the first check and the claim
        if done is not None:
            log.info("Skipping %s: finished meanwhile at %s", cell.describe(), run_dir / store.RESULT)
            return done
        if cfg.force:
            store.set_aside_for_recompute(run_dir)
        store.remove_stale(run_dir)
        log.info("Evaluating %s -> %s", cell.describe(), run_dir)
        started = time.time()
        try:
            result = compute(cfg, cell, started, run_dir)
        except Exception as e:
            unwritten = write_failure(run_dir, failure_record(cfg, cell, e, started))
            if unwritten:
                log.error("%s", unwritten)
            raise
        log.info("%s", summary(result))
        log_to_files(f"Metrics of {cell.describe()}: {json.dumps(result['metrics'], default=str)}")
        try:
            write_json(run_dir / store.RESULT, result)
        except OSError as e:
            raise result_unwritten(cfg, cell, result, started, run_dir, e) from e
    finally:
        claims.release(run_dir)
    log.info("Wrote %s", run_dir / store.RESULT)
    loggers.log_result(cfg.logger, run_dir, result)
    return result


def write_failure(run_dir: Path, record: dict[str, Any]) -> str:
    """Write `failure.json`; return "" or why it could not be written (a full disk): the cell's own error must
    still reach the user, so this never raises an OS error."""
    try:
        write_json(run_dir / store.FAILURE, record)
    except OSError as e:
        return f"{store.FAILURE} could not be written either: {user_error_line(e) or e}"
    return ""


def result_unwritten(
    cfg: DictConfig, cell: CellId, result: dict[str, Any], started: float, run_dir: Path, error: OSError
) -> CellError:
    """The error of a cell computed but whose `result.json` could not be written (a full disk): one line naming
    the file and its disk. Its metrics, already in the log, go into a `failure.json` written apart (smaller, it
    may still fit; if not, the line says so)."""
    message = f"{cell.describe()} was computed but its result was not saved: {user_error_line(error) or error}"
    record = {**failure_record(cfg, cell, CellError(message), started), "metrics": result["metrics"]}
    unwritten = write_failure(run_dir, record)
    where = f"the log only ({unwritten})" if unwritten else f"the log and {run_dir / store.FAILURE}"
    return CellError(f"{message}; its metrics are in {where}")


def compute(cfg: DictConfig, cell: CellId, started: float, run_dir: Path) -> dict[str, Any]:
    """Evaluate the cell (through lm-eval, or the corpus loss for a corpus task) and assemble its result; an
    lm-eval cell also writes its per-document records into `run_dir` (llm_line/evaluation/records.py)."""
    check_config(cfg)  # again here: in a sweep, each cell has its own settings
    loggers.check_wandb(cfg.logger.wandb)
    if cfg.task.corpus is not None:
        return compute_corpus(cfg, cell, started)

    from llm_line.evaluation import harness, metrics, records  # heavy: torch, transformers, lm_eval

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


def compute_corpus(cfg: DictConfig, cell: CellId, started: float) -> dict[str, Any]:
    """The validation loss on a corpus (llm_line/evaluation/corpus.py)."""

    from llm_line.evaluation import corpus  # heavy: torch, transformers

    if cfg.shots:
        raise CellError(f"task {cfg.task.name} is a corpus (validation loss): it has no shots (got shots={cfg.shots})")
    out = corpus.evaluate(cfg.model, cfg.task, cfg.cache_dir)
    settings = fingerprint.settings(cfg)["corpus"]
    task = {"kind": "corpus", "display": cfg.task.display, "settings": settings, **out["details"]}
    return record(cfg, cell, started, {cfg.task.name: out["metrics"]}, out["model"], task)


def record(
    cfg: DictConfig,
    cell: CellId,
    started: float,
    cell_metrics: dict[str, Any],
    model: dict[str, Any],
    task: dict[str, Any],
) -> dict[str, Any]:
    """The result record of a finished cell (the schema of `result.json`)."""
    return {
        "schema": store.SCHEMA_VERSION,
        "status": "ok",
        "cell": cell.record(),
        "metrics": cell_metrics,
        "n_docs": cell_metrics[cfg.task.name]["n_docs"],
        "model": {**model, "meta": OmegaConf.to_container(cfg.model.meta, resolve=True)},
        "task": task,
        "versions": versions(),
        "run": run_info(started),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "fingerprint": fingerprint.record(fingerprint.settings(cfg)),
    }


def failure_record(cfg: DictConfig, cell: CellId, error: BaseException, started: float) -> dict[str, Any]:
    """What `failure.json` holds: enough to see why a cell failed without its log."""
    return {
        "schema": store.SCHEMA_VERSION,
        "status": "failed",
        "cell": cell.record(),
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


def summary(result: dict[str, Any]) -> str:
    """A few lines for the console: the headline metrics of every task and group in the cell."""
    keys = ("acc", "acc_norm", "loss", "bpb", "n_docs")
    lines = [f"{'task':<28}" + "".join(f"{k:>10}" for k in keys)]
    for name, values in result["metrics"].items():
        cells = "".join(f"{values[k]:>10.4g}" if k in values else f"{'-':>10}" for k in keys)
        lines.append(f"{name:<28}{cells}")
    return "\n".join(lines)
