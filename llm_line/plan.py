"""The plan of a sweep: every cell composed and validated, its state, and the jobs that would compute it.

    plan = make_plan(config_loader, config, cells_overrides, cells_per_job=32)

`PlannedCell`s in grid order, each with its composed config, run dir, state and pack (the job it goes into),
and `packs`, the jobs. The sweeper prints it (`hydra.sweeper.dry_run=true`), checks it, and launches its
packs; other tools (a pre-download, a preflight) can reuse `make_plan` with the same inputs.

Fast on purpose (a few ms of CPU per cell, against 78 ms for a full compose): Hydra composes each distinct
combination of config-group choices (`model=pythia task=piqa`) once; each cell's value overrides
(`model.size=1b`) are applied to that shared config with Hydra's own override code, which validates them
exactly as a full compose does (tests check the two agree), read, and undone, so no cell's config is copied
unless something asks for it (`PlannedCell.cfg`). A cell that fails to compose, or whose run dir holds another
cell's result, is an `error` cell: reported, not launched; the other cells run.
"""

from __future__ import annotations

import copy
import functools
import os
import socket
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_loader import ConfigLoader
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, open_dict

from llm_line import claims, compat, fingerprint, manifests, store
from llm_line.config import load_key

# done: valid result; running: a live claim; queued: submitted by an earlier sweep whose job is still queued;
# failed: failed before (launched again); launch: never run or left unfinished; error: cannot be run as given.
STATES = ("done", "running", "queued", "failed", "launch", "error")
LAUNCHED = ("failed", "launch")


@dataclass
class PlannedCell:
    """One cell of the grid as planned, with what launching it needs already resolved."""

    overrides: list[str]
    run_dir: str = ""  # below the sweep dir
    cell: dict[str, Any] | None = None  # identity (llm_line.cell.identity)
    settings: dict[str, Any] | None = None  # what enters its fingerprint (llm_line.fingerprint.settings)
    state: str = "launch"
    detail: str = ""
    pack: int | None = None  # index into Plan.packs
    load_key: tuple | None = None  # cells with equal keys share one model load (llm_line.config.load_key)
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


class CellComposer:
    """Cells' configs from one Hydra compose per distinct combination of config-group choices, plus each
    cell's value overrides applied by Hydra's own code (same validation, same errors as a full compose).

    The configs keep of `hydra` only `hydra.sweep` (dir and run-dir pattern): jobs compose their cells in full.
    """

    def __init__(self, config_loader: ConfigLoader, config: DictConfig) -> None:
        self.config_loader, self.config = config_loader, config
        parser = OverridesParser.create(config_loader=config_loader)
        self.parse = functools.lru_cache(maxsize=None)(parser.parse_override)  # the same text recurs in many cells
        self.is_group = functools.lru_cache(maxsize=None)(functools.partial(compat.is_config_group, config_loader))
        self.bases: dict[tuple[str, ...], DictConfig | Exception] = {}

    def split(self, overrides: Sequence[str]) -> tuple[DictConfig, list[Override]]:
        """The composed config of the cell's config-group choices (shared), and its value overrides."""
        parsed = [self.parse(line) for line in overrides]
        groups = tuple(str(o.input_line) for o in parsed if self.is_group(o.key_or_group))
        if groups not in self.bases:
            try:
                self.bases[groups] = without_hydra_runtime(
                    self.config_loader.load_sweep_config(self.config, list(groups))
                )
            except Exception as e:  # noqa: BLE001  (kept per choice, reported for each of its cells)
                self.bases[groups] = e
        base = self.bases[groups]
        if isinstance(base, Exception):
            raise base
        return base, [o for o in parsed if not self.is_group(o.key_or_group)]

    def compose(self, overrides: Sequence[str]) -> DictConfig:
        """The cell's own config: a copy of its shared base with its value overrides applied."""
        base, values = self.split(overrides)
        cfg = copy.deepcopy(base)
        compat.apply_overrides(values, cfg)
        return cfg

    @contextmanager
    def borrowed(self, overrides: Sequence[str]) -> Iterator[DictConfig]:
        """The cell's config, valid inside the block only: its overrides applied to the shared base, then
        undone. Copying every cell's config was most of a plan's time."""
        base, values = self.split(overrides)
        with compat.overrides_applied(values, base) as cfg:
            yield cfg


def without_hydra_runtime(composed: DictConfig) -> DictConfig:
    """`composed` with `hydra` cut down to `hydra.sweep`: copying the rest for every cell costs most of a plan."""
    with open_dict(composed):
        sweep = composed.hydra.sweep
        composed.hydra = {"sweep": {}}
        composed.hydra.sweep = sweep
    return composed


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
                with composer.borrowed(overrides) as cfg:
                    classify(planned, cfg, sweep_dir, submitted, queue)
                planned.compose = functools.partial(composer.compose, list(overrides))
            except Exception as e:  # noqa: BLE001  (one bad cell never stops the others)
                planned.state, planned.detail = "error", f"{type(e).__name__}: {e}".splitlines()[0]
            cells.append(planned)
    unique = dedupe(cells)
    return Plan(unique, pack(unique, cells_per_job), duplicates=len(cells) - len(unique))


def classify(
    planned: PlannedCell, cfg: DictConfig, sweep_dir: Path, submitted: dict[str, str], queue: set[str] | None
) -> None:
    """Fill in a cell's run dir, identity, settings, load key, hub revisions and state from its config; raises
    for an `error` cell (its run dir holds another cell's result, or its result with other settings). Read-only:
    a corrupt result is left for the job to set aside, so a dry run changes nothing."""
    from llm_line import hub
    from llm_line.cell import identity

    planned.run_dir, planned.cell = str(cfg.hydra.sweep.subdir), identity(cfg)
    planned.settings = fingerprint.settings(cfg)
    planned.load_key, planned.hub_revisions = load_key(cfg.model), hub.hub_revisions([cfg])
    run_dir = sweep_dir / planned.run_dir
    holder = claims.read(run_dir / store.RUNNING)
    if store.finished_result(run_dir, planned.cell, planned.settings, force=cfg.force, repair=False) is not None:
        planned.state = "done"
    elif holder is not None and claims.alive(holder, queue):
        planned.state = "running"
        planned.detail = f"since {holder.get('started', '?')} ({holder.get('slurm_job_id') or holder.get('host')})"
    elif planned.run_dir in submitted:
        planned.state, planned.detail = "queued", f"by {submitted[planned.run_dir]}"
    elif (run_dir / store.FAILURE).exists():
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
        assert other.settings is not None and c.settings is not None
        differ = "; ".join(fingerprint.changes(other.settings, c.settings)) or f"{other.cell} vs {c.cell}"
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
    or running, or (no job recorded yet) their launcher still runs (llm_line/manifests.py)."""
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
