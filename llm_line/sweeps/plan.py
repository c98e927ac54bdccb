"""The plan of a sweep: every cell composed and validated, its state, and the jobs that would compute it.

    plan = make_plan(config_loader, config, cells_overrides, cells_per_job=32)

`PlannedCell`s in grid order, each with its composed config, run dir, state and pack (the job it goes into),
and `packs`, the jobs. The sweeper prints it (`hydra.sweeper.dry_run=true`), checks it, and launches its
packs; other tools (a pre-download, a preflight) can reuse `make_plan` with the same inputs.

Fast on purpose (0.2-0.3 ms of CPU per cell: 100,000 cells in well under a minute, docs/benchmarks.md): the
cells' values come from llm_line/sweeps/compose.py, which composes only what differs between cells. No
cell's config is copied unless something asks for it (`PlannedCell.cfg`). A cell that fails to compose, whose
name cannot make a folder, or whose run dir holds another cell's result, is an `error` cell: reported, not
launched; the other cells run.
"""

from __future__ import annotations

import functools
import os
import socket
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_loader import ConfigLoader
from omegaconf import DictConfig

from llm_line.evaluation import claims, compat, fingerprint, store
from llm_line.evaluation.identity import CellId, LoadKey
from llm_line.sweeps import manifests
from llm_line.sweeps.compose import CellComposer, Resolved

# done: valid result; running: a live claim; queued: submitted by an earlier sweep whose job is still queued;
# failed: failed before (launched again); launch: never run or left unfinished; error: cannot be run as given.
STATES = ("done", "running", "queued", "failed", "launch", "error")
LAUNCHED = ("failed", "launch")


@dataclass
class PlannedCell:
    """One cell of the grid as planned, with what launching it needs already resolved."""

    overrides: list[str]
    run_dir: str = ""  # below the sweep dir
    cell: CellId | None = None  # which cell (llm_line/evaluation/identity.py)
    settings: dict[str, Any] | None = None  # what enters its fingerprint (llm_line.evaluation.fingerprint.settings)
    state: str = "launch"
    detail: str = ""
    pack: int | None = None  # index into Plan.packs
    load_key: LoadKey | None = None  # cells with equal keys share one model load
    hub_revisions: list[tuple[str, str, str]] = field(default_factory=list)  # what it loads from the hub
    compose: Callable[[], DictConfig] | None = field(default=None, repr=False)  # its own config, on demand
    _cfg: DictConfig | None = field(default=None, repr=False)

    @property
    def cfg(self) -> DictConfig | None:
        """The cell's composed config (`cfg.hydra` holds only `sweep`), composed on first use; None for an
        error cell. Planning itself never needs it: the plan reads each cell's values without a copy."""
        if self._cfg is None and self.compose is not None:
            self._cfg = self.compose()
        return self._cfg


@dataclass
class Plan:
    """A sweep's cells in grid order and the jobs (packs) that compute those to launch."""

    cells: list[PlannedCell]
    packs: list[list[int]] = field(default_factory=list)  # jobs: indices of cells, in grid order
    duplicates: int = 0  # cells of the grid dropped as repeats of an earlier cell (same identity and settings)

    def counts(self) -> Counter:
        return Counter(c.state for c in self.cells)

    def to_launch(self) -> list[PlannedCell]:
        return [c for c in self.cells if c.state in LAUNCHED]

    def repack(self, cells_per_job: int) -> None:
        """Pack again after cells were taken out of the launch (e.g. by the hub preflight)."""
        self.packs = pack(self.cells, cells_per_job)

    def describe(self, cells_per_job: int | None = None, max_array_size: int | None = None) -> str:
        """What a dry run prints: counts, then the jobs, then every cell that is not simply done or launched."""
        counts = self.counts()
        lines = [
            f"{len(self.cells)} cells in the grid: {counts['done']} done, {counts['running']} running and "
            f"{counts['queued']} queued elsewhere, {counts['failed']} failed before, {counts['error']} "
            f"with errors; {len(self.to_launch())} to launch"
            + (f" ({self.duplicates} repeated cells of the grid dropped)" if self.duplicates else "")
        ]
        if self.packs and cells_per_job:
            lines.append(
                f"{len(self.packs)} jobs (one model load each, at most {cells_per_job} cells per job)"
                + (
                    f" in {-(-len(self.packs) // max_array_size)} job arrays of at most {max_array_size}"
                    if max_array_size
                    else ""
                )
            )
        for state in ("error", "running", "queued", "failed"):
            for c in self.cells:
                if c.state == state:
                    lines.append(f"  {state:<8} {c.run_dir or ' '.join(c.overrides)}  {c.detail}")
        return "\n".join(lines)


def make_plan(
    config_loader: ConfigLoader,
    config: DictConfig,
    cells_overrides: Sequence[Sequence[str]],
    cells_per_job: int = 1,
    queue: set[str] | None = None,
) -> Plan:
    """Compose, validate and classify every cell, then pack the cells to launch into jobs.

    `queue`: SLURM's queue (claims.slurm_queue()), to tell live claims and submissions from dead ones.
    """
    sweep_dir = Path(str(config.hydra.sweep.dir))
    submitted = submitted_elsewhere(sweep_dir, queue)
    composer = CellComposer(config_loader, config)
    cells = []
    with compat.cached_interpolation_parsing():
        for overrides in cells_overrides:
            planned = PlannedCell(list(overrides))
            try:
                cfg, planned.run_dir = composer.values(overrides)
                classify(planned, cfg, sweep_dir, submitted, queue)
                planned.compose = functools.partial(composer.compose, planned.overrides)
            except Exception as e:  # noqa: BLE001  (one bad cell never stops the others)
                planned.state, planned.detail = "error", f"{type(e).__name__}: {e}".splitlines()[0]
            cells.append(planned)
    unique = dedupe(cells)
    return Plan(unique, pack(unique, cells_per_job), duplicates=len(cells) - len(unique))


def classify(
    planned: PlannedCell, cfg: Resolved, sweep_dir: Path, submitted: dict[str, str], queue: set[str] | None
) -> None:
    """Fill in a cell's identity, settings, load key, hub revisions and state from its values (its run dir is
    set); raises for an `error` cell (its run dir holds another cell's result, or its result with other
    settings). Read-only: a corrupt result is left for the job to set aside, so a dry run changes nothing."""

    from llm_line.evaluation import hub

    planned.cell, planned.settings = CellId.of(cfg), fingerprint.settings(cfg)
    planned.load_key, planned.hub_revisions = LoadKey.of(cfg.model), hub.hub_revisions([cfg])
    run_dir = sweep_dir / planned.run_dir
    exists = run_dir.is_dir()  # not for most cells of a new grid: then no result, claim or failure to read
    holder = claims.read(run_dir / store.RUNNING) if exists else None
    if exists and store.finished_result(run_dir, planned.cell, planned.settings, cfg.force, repair=False) is not None:
        planned.state = "done"
    elif holder is not None and claims.alive(holder, queue):
        planned.state = "running"
        planned.detail = f"since {holder.get('started', '?')} ({holder.get('slurm_job_id') or holder.get('host')})"
    elif planned.run_dir in submitted:
        planned.state, planned.detail = "queued", f"by {submitted[planned.run_dir]}"
    elif exists and (run_dir / store.FAILURE).exists():
        planned.state = "failed"


def dedupe(cells: list[PlannedCell]) -> list[PlannedCell]:
    """The cells without repeats (same identity and settings: `shots=0,0`, overlapping grids), in grid order.

    Cells that differ but would share one run dir (`model.dtype=float32,bfloat16`: one identity, two
    fingerprints) all become error cells: none is launched, since each would replace the other's result.
    """
    kept: list[PlannedCell] = []
    first: dict[str, PlannedCell] = {}
    for c in cells:
        other = first.get(c.run_dir) if c.state != "error" else None
        if other is None:
            if c.state != "error":
                first[c.run_dir] = c
            kept.append(c)
            continue
        if other.cell == c.cell and other.settings == c.settings:
            continue
        assert other.settings is not None and c.settings is not None and other.cell is not None and c.cell is not None
        differ = (
            "; ".join(fingerprint.changes(other.settings, c.settings)) or f"{other.cell.record()} vs {c.cell.record()}"
        )
        for one, two in ((c, other), (other, c)):
            one.state = "error"
            one.detail = (
                f"shares its run dir {c.run_dir} with the cell {' '.join(two.overrides)} ({differ}): give one "
                "its own name (model.name=... or task.name=...) or results_dir"
            )
        kept.append(c)
    return kept


def pack(cells: list[PlannedCell], cells_per_job: int) -> list[list[int]]:
    """Group the cells to launch by model load, in grid order, into jobs of at most `cells_per_job` cells."""
    packs: list[list[int]] = []
    open_pack: dict[tuple, int] = {}
    for i, c in enumerate(cells):
        c.pack = None
        if c.state not in LAUNCHED or c.load_key is None:
            continue
        key = c.load_key
        j = open_pack.get(key)
        if j is None or len(packs[j]) >= max(1, cells_per_job):
            j = open_pack[key] = len(packs)
            packs.append([])
        packs[j].append(i)
        c.pack = j
    return packs


def submitted_elsewhere(sweep_dir: Path, queue: set[str] | None) -> dict[str, str]:
    """Run dirs that earlier sweeps submitted and whose submission is still alive: their SLURM job is queued
    or running, or (no job recorded yet) their launcher still runs (llm_line/sweeps/manifests.py)."""
    found: dict[str, str] = {}
    for _, manifest in manifests.read_all(sweep_dir):
        if manifest.get("host") == socket.gethostname() and manifest.get("pid") == os.getpid():
            continue  # this very sweep
        launcher = manifests.launcher_alive(manifest)
        for entry in manifest["cells"]:
            if manifests.submission_alive(entry, launcher, queue):
                job = entry.get("job")
                found[entry["run_dir"]] = f"job {job}" if job else f"sweep pid {manifest['pid']}"
    return found
