"""Composing the cells of a sweep fast: each cell's values as the plan reads them, without a full compose.

    composer = CellComposer(config_loader, config)
    values, run_dir = composer.values(["model=pythia", "model.step=3000", "task=piqa"])
    cfg = composer.compose(overrides)   # the cell's own full config, only where something needs it

A full Hydra compose costs 78 ms per cell; a 100,000-cell grid needs far less (docs/benchmarks.md). Hydra
composes each distinct combination of config-group choices (`model=pythia task=piqa`) once; each value
override (`model.step=3000`) is checked by Hydra's own override code, which validates it exactly as a full
compose does; and each value the plan reads is resolved once for all the cells it is the same for
(tests/test_plan.py checks every cell agrees with its full compose). Its own module because this is the one
subtle part of planning: the plan (llm_line/sweeps/plan.py) only classifies and packs what it returns.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from hydra.core.config_loader import ConfigLoader
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf, open_dict

from llm_line.evaluation import checks, compat
from llm_line.evaluation.config import cell_dir

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
