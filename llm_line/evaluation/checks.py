"""Checks on what the user asked for, run before anything is computed, and how a user-fixable error reaches them.

A mistake the user can fix (a negative shot count, a results folder they cannot write, a task that does
not exist) must cost one line on the console that says what is wrong and how to fix it, and a non-zero exit,
not a traceback through Hydra, OmegaConf and lm-eval. The traceback still goes where someone debugging looks:
the cell's `failure.json`, the job's log file, and the console when `HYDRA_FULL_ERROR=1` is set.

Cheap to import (no torch): Hydra runs `InputChecks` before it creates any folder.
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from llm_line.errors import CellError, user_error_line

log = logging.getLogger(__name__)


class UserError(CompactHydraException):
    """A CellError on its way to the console: Hydra prints its message alone and exits 1 (with
    HYDRA_FULL_ERROR=1 it prints the whole chain, the original traceback included)."""


# Whole-number options and their least value: 0 or less would silently mean "none" or crash deep in lm-eval.
# (key, least, what it counts); None is allowed where the config allows it (the model's own, no limit).
AT_LEAST = [
    ("model.max_batch_size", 1, "rows per forward pass"),
    ("model.max_length", 1, "tokens of context"),
    ("model.step", 0, "the training step"),
    ("task.corpus.max_documents", 1, "documents"),
    ("task.corpus.max_tokens", 1, "tokens"),
    ("task.corpus.shuffle_buffer", 1, "documents in the shuffle buffer"),
    ("task.corpus.chunk_length", 1, "tokens per chunk"),
    ("task.corpus.context_length", 1, "tokens per window"),
    ("task.corpus.batch_size", 1, "windows per forward pass"),
]


def check_ranges(cfg: DictConfig) -> None:
    """Every whole-number option of AT_LEAST, and `model.batch_size` (a number or lm-eval's auto / auto:N)."""
    for key, least, what in AT_LEAST:
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and value < least:
            raise CellError(f"{key}={value}: must be at least {least} ({what}); use {key}={least} or more")
    batch = str(cfg.model.batch_size)
    times = batch.removeprefix("auto:") if batch.startswith("auto:") else batch
    if batch != "auto" and not (times.isdigit() and int(times) >= 1):
        raise CellError(
            f"model.batch_size={batch}: use a whole number of rows of at least 1, auto (the largest that fits), "
            "or auto:N (re-detect N times)"
        )


def check_conflicts(cfg: DictConfig) -> None:
    """Settings of which one would silently override the other."""
    if cfg.model.get("step") is not None and not OmegaConf.is_interpolation(cfg.model, "revision"):
        raise CellError(
            f"model.step={cfg.model.step} and model.revision={cfg.model.revision} both name the checkpoint; "
            "set only one (model.step turns into the revision through model.revision_format)"
        )


def check_names(cfg: DictConfig) -> None:
    """The names that become the run dir's folders (llm_line.evaluation.config.cell_dir) must make a folder."""
    for key in ("model.name", "model.revision", "task.name"):
        value = OmegaConf.select(cfg, key)
        if str(value).strip() in ("", ".", ".."):
            raise CellError(f"{key}={value!r} cannot name a results folder; use a name with a letter or digit")


def check_config(cfg: DictConfig) -> None:
    """Refuse settings that would run something other than what was asked, before anything runs."""
    check_names(cfg)
    check_ranges(cfg)
    check_conflicts(cfg)
    if cfg.shots < 0:
        raise CellError(f"shots={cfg.shots}: the number of few-shot examples cannot be negative; use shots=0 or more")
    if cfg.task.limit is not None and cfg.task.limit <= 0:
        raise CellError(
            f"task.limit={cfg.task.limit}: evaluates no documents; use a positive number of documents, "
            "or task.limit=null for all"
        )
    if cfg.task.include_path is not None and not Path(cfg.task.include_path).expanduser().is_dir():
        raise CellError(
            f"task.include_path={cfg.task.include_path} is not a folder; point it at the folder of your task YAMLs"
        )


def check_results_dir(results_dir: str) -> None:
    """The results root must be a folder this user can write in (or one that can be created)."""
    path = Path(results_dir).expanduser().absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        what = "is a file" if existing == path else f"cannot be created: {existing} is a file"
        raise CellError(f"results_dir={results_dir} {what}; set results_dir to a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == path else f" (its nearest existing folder {existing})"
        raise CellError(
            f"results_dir={results_dir}{where} is not writable by this user; set results_dir to a "
            "folder you can write in, or fix its permissions"
        )


class InputChecks(Callback):
    """Hydra callback (conf/config.yaml): check the results root and a single run's settings before Hydra
    creates the run dir, so a bad input leaves no folder behind. Each cell of a sweep is checked again
    where it runs (llm_line.evaluation.cell.compute), since a sweep varies the settings per cell.

    Hydra turns a callback's exceptions into warnings, so a failed check exits here (SystemExit, one line):
    nothing has started yet that could be lost.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        exit_unless(check_results_dir, config.results_dir)
        exit_unless(check_config, config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        exit_unless(check_results_dir, config.results_dir)


def exit_unless(check: Callable[[Any], None], value: Any) -> None:
    try:
        check(value)
    except CellError as e:
        raise SystemExit(f"error: {e}") from None


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn a user-fixable error (`llm_line.errors.user_error_line`: a CellError, a full disk, an unwritable
    path, ...) into a UserError (one line on the console), its traceback written to the log file.

    In a sweep the line is also logged as it happens, since the launcher reports only the first failure.
    """
    try:
        yield
    except Exception as e:
        line = user_error_line(e)
        if line is None:
            raise
        log_traceback(e)
        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            log.error("%s", line)
        raise UserError(f"error: {line}") from e


def log_traceback(error: BaseException) -> None:
    """Write the traceback of `error` to the log files only (the console gets the one line)."""
    log_to_files(str(error), logging.ERROR, "".join(traceback.format_exception(error)).rstrip())


def log_to_files(message: str, level: int = logging.INFO, exc_text: str | None = None) -> None:
    """Write `message` (and a traceback's text) to the log files only: what is too long for the console."""
    record = log.makeRecord(log.name, level, __file__, 0, "%s", (message,), None)
    record.exc_text = exc_text
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
