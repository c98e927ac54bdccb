"""The sweeper: Hydra's basic sweeper over a union of grids, which plans before it launches.

(Hydra only instantiates plugins that live in the `hydra_plugins` namespace package, hence this location;
`hydra/sweeper=resume` is registered in `llm_line/evaluation/config.py` and is the default in `conf/config.yaml`.)

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

Before the launcher sees anything, the sweep is planned (llm_line/sweeps/plan.py): every cell composed and
validated, then classified as done, running (a live claim), queued (by an earlier sweep whose jobs are still
in SLURM's queue or whose launcher still runs), failed before, to launch, or in error (it cannot compose, or
its run dir holds another cell's result). Only cells to launch are launched; error cells are reported and
make the sweep exit non-zero at the end, after the others ran. `force=true` launches every cell.
`hydra.sweeper.dry_run=true` prints the plan and exits, changing nothing on disk (a corrupt result is set
aside by the job that recomputes it, not by the plan). Cells repeated in the grid (`shots=0,0`, overlapping
grids: same identity and settings) run once; cells that differ but would share a run dir are error cells.
With a launcher that takes packs (SLURM, hydra_plugins/llm_line_launcher.py), cells sharing a model load go
into jobs of `cells_per_job` cells;
`hydra.sweeper.wait=false` returns once the job arrays are submitted.

Every sweep with at least one cell writes a manifest, `<sweep dir>/.llm_line/sweeps/<time>-<pid>.json`,
listing its whole grid, the state and settings fingerprint (llm_line/evaluation/fingerprint.py) of each cell at planning
time and the SLURM job of each launched cell (array job ids in `arrays`), the jobs recorded as soon as each
array is submitted; `python -m llm_line.sweeps.status` reads every manifest to tell done, failed, running, queued and
missing cells apart, and the next plan reads them to launch nothing that is still queued.
"""

from __future__ import annotations

import functools
import getpass
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import OverrideParseException
from omegaconf import DictConfig, ListConfig, OmegaConf

from hydra_plugins.llm_line_launcher import max_array_size
from llm_line.errors import CellError
from llm_line.evaluation import claims, fingerprint, hub
from llm_line.evaluation.checks import one_line_errors
from llm_line.evaluation.compat import BasicSweeper, job_error
from llm_line.files import write_json
from llm_line.sweeps import manifests
from llm_line.sweeps.plan import LAUNCHED, Plan, make_plan
from llm_line.sweeps.prefetch import fetch

log = logging.getLogger(__name__)


class ResumingSweeper(BasicSweeper):
    """BasicSweeper over a union of grids that plans, checks and launches only the cells still to compute."""

    def __init__(
        self,
        max_batch_size: int | None,
        params: dict[str, str] | None = None,
        grids: list[dict[str, Any]] | None = None,
        cells_per_job: int = 32,
        dry_run: bool = False,
        wait: bool = True,
        skip_missing: bool = False,
        prefetch: bool = False,
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.grids = [{key: sweep_string(value) for key, value in grid.items()} for grid in (grids or [])]
        self.cells_per_job, self.dry_run, self.wait = cells_per_job, dry_run, wait
        self.skip_missing, self.prefetch = skip_missing, prefetch

    def cell_overrides(self, arguments: list[str]) -> list[list[str]]:
        """The override list of every cell of the sweep (every grid crossed with `params` and the command
        line), in grid order."""
        assert self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        try:
            overrides = parser.parse_overrides(self._parse_config() + list(arguments))
            return expand(self.grids, overrides, parser)
        except (OverrideParseException, ValueError) as e:  # a malformed sweep value, e.g. range(0,4,0)
            raise CellError(
                f"cannot expand the sweep: {str(e).strip().splitlines()[-1]}; fix the sweep values (e.g. "
                "shots=0,5 or 'shots=range(0,10,5)', whose step cannot be 0)"
            ) from e

    def sweep(self, arguments: list[str]) -> Any:
        with one_line_errors():
            return self._sweep(arguments)

    def _sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        if self.cells_per_job < 1:
            raise CellError(
                f"hydra.sweeper.cells_per_job={self.cells_per_job}: a job runs at least one cell; use 1 or more"
            )
        sweep_dir = Path(self.config.hydra.sweep.dir)
        packing = hasattr(self.launcher, "launch_packs")
        started = time.perf_counter()
        cells_per_job = self.cells_per_job if packing else 1
        plan = make_plan(
            self.hydra_context.config_loader,
            self.config,
            self.cell_overrides(arguments),
            cells_per_job,
            claims.slurm_queue() if packing else None,
        )
        self.check(plan, cells_per_job)
        counts = plan.counts()
        log.info(
            "%d of %d cells already have a result; launching %d (planned in %.1f s)",
            counts["done"],
            len(plan.cells),
            len(plan.to_launch()),
            time.perf_counter() - started,
        )
        log.info("%s", plan.describe(self.cells_per_job if packing else None, max_array_size() if packing else None))
        if self.dry_run:  # changes nothing on disk
            return []
        if not plan.cells:
            log.warning("This sweep has no cells (an empty range or list?): nothing launched, no manifest written")
            return []
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        if self.prefetch:
            fetch([c.cfg for c in plan.to_launch()])
            log.info(
                "Prefetched what the %d cells to launch need; launching nothing (prefetch=true)", len(plan.to_launch())
            )
            return []
        manifest = write_manifest(sweep_dir, plan, self.config)
        returns: list[JobReturn] = []
        if plan.packs and packing:
            packs = [[plan.cells[i].overrides for i in p] for p in plan.packs]
            returns, ids = self.launcher.launch_packs(  # type: ignore[attr-defined]
                packs, 0, wait=self.wait, on_submitted=functools.partial(record_jobs, manifest, plan)
            )
            if not self.wait:
                arrays = sorted({i.split("_")[0] for i in ids})
                log.info(
                    "Submitted %d jobs in job arrays %s; follow them with: python -m llm_line.sweeps.status %s",
                    len(ids),
                    " ".join(arrays),
                    sweep_dir,
                )
        elif plan.packs:
            pending = [c.overrides for c in plan.to_launch()]
            size = len(pending) if self.max_batch_size in (None, -1) else self.max_batch_size
            for i in range(0, len(pending), size):
                returns.extend(self.launcher.launch(pending[i : i + size], initial_job_idx=i))
        self.raise_failures(plan, returns)
        return [returns]

    def check(self, plan: Plan, cells_per_job: int) -> None:
        """The one place for checks after the plan and before anything is submitted; raise to stop the sweep.

        The hub preflight (llm_line/evaluation/hub.py): every distinct (repository, revision) of the cells to launch is
        looked up with one branch listing per repository and one file listing per model revision (its weights).
        Missing ones (or ones without loadable weights) stop the sweep (a dry run only reports them), unless
        `skip_missing`: then their cells become error cells and the rest is launched.
        """
        launch = plan.to_launch()
        missing = hub.missing_cells([c.hub_revisions for c in launch])
        if missing and not (self.skip_missing or self.dry_run):
            raise CellError(
                f"{len(missing)} cells of this grid ask for hub revisions that do not exist or hold no loadable "
                "weights (listed above); fix the grid, or launch the rest with hydra.sweeper.skip_missing=true"
            )
        for i, reason in missing.items():
            launch[i].state, launch[i].detail = "error", reason
        if missing:
            plan.repack(cells_per_job)

    def raise_failures(self, plan: Plan, returns: Sequence[JobReturn]) -> None:
        """After every job ended: report error cells and failed jobs, then raise the first failure."""
        errors: list[BaseException] = [  # cannot be run as given: the user's to fix, so one line, no traceback
            CellError(f"{' '.join(c.overrides)}: {c.detail}") for c in plan.cells if c.state == "error"
        ]
        for ret in returns:
            if ret.status == JobStatus.FAILED:
                errors.append(job_error(ret))
        if errors:
            log.error(
                "%d cells or jobs failed:\n  %s",
                len(errors),
                "\n  ".join(str(e).splitlines()[0] if str(e) else type(e).__name__ for e in errors),
            )
            raise errors[0]


def sweep_string(value: Any) -> str:
    """A grid value as override text: YAML's null/true/1000 or a list of them become what Hydra parses back."""
    if isinstance(value, (list, tuple, ListConfig)):
        return ",".join(sweep_string(v) for v in value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def expand(grids: list[dict[str, str]], overrides: list[Override], parser: OverridesParser) -> list[list[str]]:
    """The override lists of every cell: each grid crossed with `overrides`, duplicates dropped."""
    if not grids:
        return BasicSweeper.split_arguments(overrides, None)[0]
    jobs: list[list[str]] = []
    seen = set()
    for grid in grids:
        parsed = parser.parse_overrides([f"{key}={sweep_string(value)}" for key, value in grid.items()])
        for job in BasicSweeper.split_arguments(parsed + list(overrides), None)[0]:
            if tuple(job) not in seen:
                seen.add(tuple(job))
                jobs.append(job)
    return jobs


def write_manifest(sweep_dir: Path, plan: Plan, config: DictConfig) -> Path:
    """Record a sweep's grid for `status`: every cell, its state when planned, and who launched it."""
    launcher = config.hydra.launcher
    path = sweep_dir / manifests.MANIFESTS / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.json"
    write_json(
        path,
        {
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "created_s": time.time(),
            "argv": sys.argv,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "pid_started": claims.process_started(os.getpid()),
            "user": getpass.getuser(),
            "launcher": str(launcher.get("_target_", "")),
            "job_name": launcher.get("name"),
            "arrays": [],
            "cells": [
                {
                    "run_dir": c.run_dir,
                    "cell": c.cell.record() if c.cell is not None else None,
                    "fingerprint": fingerprint.record(c.settings) if c.settings is not None else None,
                    "state": c.state,
                    "launched": c.state in LAUNCHED,
                }
                for c in plan.cells
                if c.state != "error"
            ],
            "errors": [{"overrides": c.overrides, "error": c.detail} for c in plan.cells if c.state == "error"],
        },
    )
    return path


def record_jobs(path: Path, plan: Plan, job_ids: list[str]) -> None:
    """Add the SLURM job (`<array job>_<task>`) of every launched cell and the array job ids to a manifest:
    called after each job array is submitted (`job_ids`: every job so far, one per pack), written atomically."""
    manifest = json.loads(path.read_text())
    jobs = {c.run_dir: job_ids[c.pack] for c in plan.cells if c.pack is not None and c.pack < len(job_ids)}
    now = time.time()
    for entry in manifest["cells"]:
        if entry["run_dir"] in jobs and "job" not in entry:
            entry["job"], entry["submitted"] = jobs[entry["run_dir"]], now
    manifest["arrays"] = sorted({i.split("_")[0] for i in job_ids})
    write_json(path, manifest)
