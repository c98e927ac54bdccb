"""The plan of a sweep: every cell composed and validated, its state, and the jobs that would compute it.

    plan = make_plan(config_loader, config, cells_overrides, cells_per_job=32)

`PlannedCell`s in grid order, each with its composed config, run dir, state and pack (the job it goes into),
and `packs`, the jobs. The sweeper prints it (`hydra.sweeper.dry_run=true`), checks it, and launches its
packs; other tools (a pre-download, a preflight) can reuse `make_plan` with the same inputs.

Fast on purpose (0.2-0.3 ms of CPU per cell, against 78 ms for a full compose: 100,000 cells in well under a
minute, docs/benchmarks.md): Hydra composes each distinct combination of config-group choices
(`model=pythia task=piqa`) once; each value override (`model.step=3000`) is checked by Hydra's own override
code, which validates it exactly as a full compose does, and each value the plan reads is resolved once for
all the cells it is the same for (CellComposer; tests check every cell agrees with its full compose). No
cell's config is copied unless something asks for it (`PlannedCell.cfg`). A cell that fails to compose, whose
name cannot make a folder, or whose run dir holds another cell's result, is an `error` cell: reported, not
launched; the other cells run.
"""

from __future__ import annotations

import copy
import functools
import os
import socket
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from hydra.core.config_loader import ConfigLoader
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf, open_dict

from llm_line.evaluation import checks, claims, compat, fingerprint, store
from llm_line.evaluation.config import cell_dir
from llm_line.evaluation.identity import CellId, LoadKey
from llm_line.sweeps import manifests

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


# conf/config.yaml's `hydra.sweep.subdir`: the run dir as `cell_dir` of the cell's identity (tests/test_plan.py
# checks the two agree). A sweep that keeps it gets each run dir from the values the plan reads anyway.
CELL_DIR = "${cell_dir:${model.name},${model.revision},${task.name},${shots},${task.limit},${fewshot_seed}}"


class Resolved(dict):
    """The resolved values of one config node, each resolved on first read and kept (errors too), read as
    `cfg.model.name`, `cfg["model"]["name"]` or `cfg.task.get("corpus")` like the DictConfig it stands for,
    so the code the plan shares with the runner (CellId.of, fingerprint.settings, LoadKey.of,
    hub.hub_revisions) reads it unchanged, and only what that code reads is ever resolved."""

    def __init__(self, read: Callable[[str], Any] | None = None, values: dict[str, Any] | None = None) -> None:
        super().__init__(values or {})
        self._read: Callable[[str], Any] | None = read
        self._failed: dict[str, Exception] = {}

    @classmethod
    def of(cls, value: Any) -> Any:
        """A resolved plain value (OmegaConf.to_container) with its dicts read as attributes too."""
        if isinstance(value, dict):
            return cls(values={k: cls.of(v) for k, v in value.items()})
        return [cls.of(v) for v in value] if isinstance(value, list) else value

    def __missing__(self, key: str) -> Any:
        if self._read is None or key in self._failed:
            raise self._failed.get(key) or KeyError(key)
        try:
            value = self[key] = self._read(key)
        except Exception as e:
            self._failed[key] = e
            raise
        return value

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:  # not in the config (OmegaConf's ConfigKeyError is one)
            return default

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):  # a protocol lookup (copy, pickle), never a config key
            raise AttributeError(key)
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


Unit = tuple[str, ...]  # a top-level value (`shots`,) or a field of a top-level node (`model`, `revision`)


@dataclass
class Base:
    """The composed config of one combination of config-group choices, cut into units (`shots`, `model.name`,
    `model.sizes`, `task.corpus`, ...): for each its signature (compat.node_signature: what decides how it
    validates and resolves) and the units its value reads through interpolations, itself included. A value
    override can change a unit's value only by changing one of those."""

    cfg: DictConfig
    tops: dict[str, str]  # top-level key -> its signature, which decides how overrides below it validate
    reads: dict[Unit, frozenset[Unit]]
    keys: dict[Unit, tuple]  # the unit and the signatures of the units it reads: its key in CellComposer.resolved
    containers: frozenset[str]  # the top-level keys that hold a config node, not a value
    cell_dir: bool  # its hydra.sweep.subdir is CELL_DIR
    nodes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, cfg: DictConfig) -> Base:
        raw = cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=False))
        values: dict[Unit, Any] = {}
        for top, node in raw.items():
            values.update({(top, f): v for f, v in node.items()} if isinstance(node, dict) else {(top,): node})
        direct = {unit: referenced_units(unit, value, raw) for unit, value in values.items()}
        reads = {}
        for unit in values:
            found, pending = {unit}, [unit]
            while pending:
                refs = direct.get(pending.pop(), set())
                if refs is None:  # cannot be told from the text: every value may matter
                    found = set(values)
                    break
                pending.extend(refs - found)
                found |= refs
            reads[unit] = frozenset(found)
        tops = {top: compat.node_signature(cfg, top) for top in raw}
        signatures = {unit: compat.node_signature(cfg if len(unit) == 1 else cfg[unit[0]], unit[-1]) for unit in values}
        for top, node in raw.items():  # a node read whole: what any of its fields reads
            if isinstance(node, dict):
                reads[(top,)] = frozenset().union(*(reads[(top, f)] for f in node))
        # a unit read but not there (a dangling interpolation, an error only where it is read) has no signature
        keys = {unit: (unit, *(signatures.get(u, "") for u in sorted(reads[unit]))) for unit in reads}
        containers = frozenset(top for top, node in raw.items() if isinstance(node, dict))
        return cls(cfg, tops, reads, keys, containers, raw["hydra"]["sweep"].get("subdir") == CELL_DIR)

    def node(self, key: str) -> Any:
        """The value node at `key` (compat.value_node), looked up once."""
        if key not in self.nodes:
            self.nodes[key] = compat.value_node(self.cfg, key)
        return self.nodes[key]


def units_at(path: Sequence[str], raw: dict[str, Any]) -> set[Unit]:
    """The units that hold the node at `path` of the raw config `raw` (a top-level node named whole: all its
    fields)."""
    top = raw.get(path[0])
    if not isinstance(top, dict):
        return {(path[0],)}
    return {(path[0], path[1])} if len(path) > 1 else {(path[0], f) for f in top}


def referenced_units(unit: Unit, value: Any, raw: dict[str, Any], below: tuple[str, ...] = ()) -> set[Unit] | None:
    """The units that the interpolations in `value` (the raw value of `unit`, or the part of it at `below`)
    refer to; None where that cannot be told from the text (compat.references)."""
    if isinstance(value, dict | list):
        found: set[Unit] = set()
        for key, item in value.items() if isinstance(value, dict) else enumerate(value):
            units = referenced_units(unit, item, raw, (*below, str(key)))
            if units is None:
                return None
            found |= units
        return found
    if not isinstance(value, str) or "${" not in value:
        return set()
    refs = compat.references(value)
    if refs is None:
        return None
    container = (*unit, *below)[:-1]  # where the node holding `value` lies: relative keys start there
    found = set()
    for dots, keys in refs:
        up = max(0, dots - 1)
        if up > len(container):
            return None
        found |= units_at((*container[: len(container) - up], *keys) if dots else keys, raw)
    return found


class CellComposer:
    """Each cell's values from one Hydra compose per distinct combination of config-group choices, and each
    value override checked and applied by Hydra's own code (same validation, same errors as a full compose).

    Shared across cells, so that a 100,000-cell grid plans in seconds: a value override (`model.step=3000`) is
    checked once per (signature of the top-level node it changes, override text); a unit's value (Base) is
    resolved once per (signatures of the units it reads, overrides of those units): `model.revision` once per
    step, `model.name` once for every step and task. Resolving sets the checked values in the shared config,
    reads and restores them (compat.values_set). A cell with an override that does more than change a value
    (`+key=`, `~key`, a dict, an interpolation) gets its own copy of the config instead.

    The configs keep of `hydra` only `hydra.sweep` (dir and run-dir pattern): jobs compose their cells in full.
    """

    def __init__(self, config_loader: ConfigLoader, config: DictConfig) -> None:
        self.config_loader, self.config = config_loader, config
        parser = OverridesParser.create(config_loader=config_loader)
        self.parse = functools.lru_cache(maxsize=None)(parser.parse_override)  # the same text recurs in many cells
        self.is_group = functools.lru_cache(maxsize=None)(functools.partial(compat.is_config_group, config_loader))
        self.bases: dict[tuple[str, ...], Base | Exception] = {}
        self.checked: dict[tuple[str, str], Any] = {}  # (signature, override) -> compat.checked_change or error
        self.resolved: dict[tuple, Any] = {}  # (unit, signatures, overrides) -> its value or error

    def split(self, overrides: Sequence[str]) -> tuple[Base, list[Override]]:
        """The composed config of the cell's config-group choices (shared), and its value overrides."""
        parsed = [self.parse(line) for line in overrides]
        groups = tuple(str(o.input_line) for o in parsed if self.is_group(o.key_or_group))
        if groups not in self.bases:
            try:
                composed = self.config_loader.load_sweep_config(self.config, list(groups))
                self.bases[groups] = Base.of(without_hydra_runtime(composed))
            except Exception as e:  # noqa: BLE001  (kept per choice, reported for each of its cells)
                self.bases[groups] = e
        base = self.bases[groups]
        if isinstance(base, Exception):
            raise base
        return base, [o for o in parsed if not self.is_group(o.key_or_group)]

    def compose(self, overrides: Sequence[str]) -> DictConfig:
        """The cell's own config: a copy of its shared base with its value overrides applied."""
        base, values = self.split(overrides)
        cfg = copy.deepcopy(base.cfg)
        compat.apply_overrides(values, cfg)
        return cfg

    def values(self, overrides: Sequence[str]) -> tuple[Resolved, str]:
        """The cell's values as the plan reads them, and its run dir; raises as a full compose would."""
        base, values = self.split(overrides)
        changes = [(o.key_or_group, self.check(base, o), str(o.input_line)) for o in values]
        if all(raw is not compat.NOT_A_VALUE for _, raw, _ in changes):
            units = [(tuple(key.split(".")[:2]), key, raw, line) for key, raw, line in changes]
            cfg = Resolved(functools.partial(self.top, base, units))
        else:
            cfg = Resolved(functools.partial(read, self.compose(overrides), []))
        try:
            if not base.cell_dir or any(key.split(".")[0] == "hydra" for key, _, _ in changes):
                return cfg, str(cfg.hydra.sweep.subdir)
            model, task = cfg.model, cfg.task
            return cfg, cell_dir(model.name, model.revision, task.name, cfg.shots, task.limit, cfg.fewshot_seed)
        except Exception:
            checks.check_names(self.compose(overrides))  # a name that cannot make a folder: one line, as for a run
            raise

    def check(self, base: Base, override: Override) -> Any:
        """compat.checked_change of `override` in `base` (raises its error), kept per (signature of the
        top-level node it changes, override)."""
        top = override.key_or_group.split(".")[0]
        if top not in base.tops:
            return compat.NOT_A_VALUE
        key = (base.tops[top], str(override.input_line))
        if key not in self.checked:
            try:
                self.checked[key] = compat.checked_change(override, base.cfg, base.node(override.key_or_group))
            except Exception as e:  # noqa: BLE001  (its cells are error cells)
                self.checked[key] = e
        found = self.checked[key]
        if isinstance(found, Exception):
            raise found
        return found

    def top(self, base: Base, units: list[tuple[Unit, str, Any, str]], top: str) -> Any:
        """The top-level node `top` of a cell with these checked changes: a value, or a Resolved of its fields
        (shared like a unit's value: a checkpoint's `model` for all its tasks)."""
        if top in base.containers:
            return self.unit(base, units, (top,), lambda: Resolved(lambda f: self.unit(base, units, (top, f))))
        return self.unit(base, units, (top,))

    def unit(
        self, base: Base, units: list[tuple[Unit, str, Any, str]], unit: Unit, make: Callable[[], Any] | None = None
    ) -> Any:
        """A unit's resolved value (or what `make` makes) for a cell with these checked changes, shared by every
        cell with the same signatures and changes of the units it reads."""
        reads = base.reads.get(unit, frozenset())
        applied = [(key, raw, line) for u, key, raw, line in units if u in reads]
        key = (base.keys.get(unit, unit), *(line for _, _, line in applied))
        if key not in self.resolved:
            try:
                changes = [(base.node(k), raw) for k, raw, _ in applied] if make is None else []
                self.resolved[key] = make() if make is not None else read(base.cfg, changes, *unit)
            except Exception as e:  # noqa: BLE001  (raised for each cell that reads it)
                self.resolved[key] = e
        found = self.resolved[key]
        if isinstance(found, Exception):
            raise found
        return found


def read(cfg: DictConfig, changes: list[tuple[Any, Any]], top: str, field: str | None = None) -> Any:
    """`cfg[top]` (or `cfg[top][field]`) resolved with `changes` (compat.values_set) made: a config node as a
    Resolved whose fields are read on demand the same way, a value as it is."""
    with compat.values_set(changes):
        value = cfg[top] if field is None else cfg[top][field]
        if field is None and isinstance(value, DictConfig):
            return Resolved(functools.partial(read, cfg, changes, top))
        return Resolved.of(OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value)


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
