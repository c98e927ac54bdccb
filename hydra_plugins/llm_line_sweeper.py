"""The sweeper: Hydra's basic sweeper, minus the cells that are already done, plus a record of the grid,
and optionally over a union of grids.

(Hydra only instantiates plugins that live in the `hydra_plugins` namespace package, hence this location;
`hydra/sweeper=resume` is registered in `llm_line/config.py` and is the default in `conf/config.yaml`.)

Union of grids: Hydra's basic sweeper takes one cartesian product, the paper's table is several (Pythia over
its sizes, OLMo over its revisions, ...), each crossed with the same tasks:

    hydra:
      sweeper:
        grids:                                   # one grid per model family: key -> sweep string
          - {model: pythia, model.size: "70m,160m"}
          - {model: olmo, model.size: 1B, model.step: "20000,30000"}
        params: {task: "piqa,copa"}              # crossed with every grid

expands to (2 + 2) x 2 = 8 cells. Command-line overrides are crossed with every grid too, and win over a
grid's value for the same key. Without `grids` it sweeps exactly like the basic sweeper. Cells keep the grid
order (models vary slowest), so a local sweep loads each model once; a cell in two grids runs once.

Re-submitting a finished or half-finished grid must not cost queue slots: before the launcher sees a batch
(local or SLURM), every cell's config is composed, its run dir derived, and cells with a valid result are
dropped (`force=true` keeps them). Each job still re-checks before loading anything, so a cell finished by
another job in the meantime is skipped there too.

Every sweep writes a manifest, `<sweep dir>/.llm_line/sweeps/<time>-<pid>.json`, listing its whole grid and
which cells were launched; `python -m llm_line.status` reads it to tell done, failed, running, queued and
missing cells apart.
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from omegaconf import DictConfig, ListConfig

from llm_line import hub, store
from llm_line.cell import finished, identity

log = logging.getLogger(__name__)



class ResumingSweeper(BasicSweeper):
    """BasicSweeper over a union of grids, whose launcher only ever sees the cells that still need computing."""

    def __init__(self, max_batch_size: Optional[int], params: Optional[Dict[str, str]] = None,
                 grids: Optional[List[Dict[str, Any]]] = None, skip_missing: bool = False,
                 prefetch: bool = False) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.grids = [{key: sweep_string(value) for key, value in grid.items()} for grid in (grids or [])]
        self.hub_options = {"skip_missing": skip_missing, "prefetch": prefetch}  # hub (issue 11): llm_line/hub.py

    def split_arguments(self, overrides: List[Override], max_batch_size: Optional[int]) -> List[List[List[str]]]:
        """All cells of every grid crossed with `overrides` (params and command line), in batches."""
        config_loader = self.hydra_context.config_loader if self.hydra_context is not None else None
        jobs = expand(self.grids, overrides, OverridesParser.create(config_loader=config_loader))
        size = len(jobs) if max_batch_size in (None, -1) else max_batch_size
        return [jobs[i:i + size] for i in range(0, len(jobs), size)] or [[]]

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        """Nothing to do: PendingCellsLauncher composes every cell of a batch before launching any, which
        raises the same composition errors; validating first would compose every cell of a large grid twice."""

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.launcher = PendingCellsLauncher(self.launcher, hydra_context, config, self.hub_options)


class PendingCellsLauncher(Launcher):
    """Wraps the configured launcher: drops finished cells, records the grid, launches the rest."""

    def __init__(self, inner: Launcher, hydra_context: HydraContext, config: DictConfig,
                 hub_options: Dict[str, bool]) -> None:
        self.inner = inner
        self.config_loader = hydra_context.config_loader
        self.config = config
        self.hub_options = hub_options

    def setup(self, **kwargs: Any) -> None:  # the inner launcher is already set up
        pass

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        sweep_dir = Path(self.config.hydra.sweep.dir)
        grid, pending, pending_cfgs = [], [], []
        for overrides in job_overrides:
            cfg = self.config_loader.load_sweep_config(self.config, list(overrides))
            subdir = str(cfg.hydra.sweep.subdir)
            done = finished(cfg, sweep_dir / subdir) is not None
            grid.append({"run_dir": subdir, "cell": identity(cfg), "launched": not done})
            if not done:
                pending.append(overrides)
                pending_cfgs.append(cfg)
        # --- hub (issue 11): preflight the revisions of the cells to launch (stops on missing ones unless
        # hydra.sweeper.skip_missing=true), or with hydra.sweeper.prefetch=true only download them. All logic
        # lives in llm_line/hub.py; this call belongs after composing the cells, before the inner launcher.
        keep = hub.before_launch(pending_cfgs, **self.hub_options)
        for i, entry in enumerate([g for g in grid if g["launched"]]):
            entry["launched"] = i in keep
        pending = [pending[i] for i in keep]
        # --- end hub
        write_manifest(sweep_dir, grid, self.config)
        log.info("%d of %d cells already have a result; launching %d", len(grid) - len(pending), len(grid), len(pending))
        if not pending:
            return []
        return self.inner.launch(pending, initial_job_idx)


def sweep_string(value: Any) -> str:
    """A grid value as override text: YAML's null/true/1000 or a list of them become what Hydra parses back."""
    if isinstance(value, (list, tuple, ListConfig)):
        return ",".join(sweep_string(v) for v in value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def expand(grids: List[Dict[str, str]], overrides: List[Override], parser: OverridesParser) -> List[List[str]]:
    """The override lists of every cell: each grid crossed with `overrides`, duplicates dropped."""
    if not grids:
        return BasicSweeper.split_arguments(overrides, None)[0]
    jobs: List[List[str]] = []
    seen = set()
    for grid in grids:
        parsed = parser.parse_overrides([f"{key}={sweep_string(value)}" for key, value in grid.items()])
        for job in BasicSweeper.split_arguments(parsed + list(overrides), None)[0]:
            if tuple(job) not in seen:
                seen.add(tuple(job))
                jobs.append(job)
    return jobs


def write_manifest(sweep_dir: Path, grid: list[dict[str, Any]], config: DictConfig) -> Path:
    """Record a sweep's grid for `status`: every cell, whether it was launched, and who launched it."""
    launcher = config.hydra.launcher
    path = sweep_dir / store.MANIFESTS / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.json"
    store.write_json(path, {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "user": getpass.getuser(),
        "launcher": str(launcher.get("_target_", "")),
        "job_name": launcher.get("name"),
        "cells": grid,
    })
    return path
