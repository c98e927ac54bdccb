"""A Hydra sweeper for a union of grids: Hydra's basic sweeper takes one cartesian product, the paper's table is
several (Pythia over its sizes, OLMo over its revisions, ...), each crossed with the same tasks.

    hydra:
      sweeper:
        grids:                                   # one grid per model family: key -> sweep string
          - {model: pythia, model.size: "70m,160m"}
          - {model: olmo, model.size: 1B, model.step: "20000,30000"}
        params: {task: "piqa,copa"}              # crossed with every grid

expands to (2 + 2) x 2 = 8 jobs, launched by whatever `hydra/launcher` is configured. Command-line overrides
are crossed with every grid too, and win over a grid's value for the same key. Without `grids` it behaves
exactly like the basic sweeper. Jobs keep the grid order (models vary slowest), so a local sweep loads each
model once; a job that appears in two grids runs once. Select it with `hydra/sweeper=grids` (the experiments in
conf/experiment/ do). It lives in the `hydra_plugins` namespace package because Hydra only instantiates
sweepers from there.
"""

# No `from __future__ import annotations` here: Hydra's plugin scan executes this module outside sys.modules,
# where dataclasses cannot resolve string annotations.
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import ListConfig


@dataclass
class GridsSweeperConf:
    """Hydra's basic sweeper settings, plus `grids`."""

    _target_: str = "hydra_plugins.llm_line_sweeper.grids_sweeper.GridsSweeper"
    max_batch_size: Optional[int] = None
    params: Optional[Dict[str, str]] = None  # crossed with every grid, as in the basic sweeper
    grids: List[Dict[str, Any]] = field(default_factory=list)  # each grid: key -> sweep string, value or list


ConfigStore.instance().store(group="hydra/sweeper", name="grids", node=GridsSweeperConf, provider="llm_line")


class GridsSweeper(BasicSweeper):
    def __init__(self, max_batch_size: Optional[int], params: Optional[Dict[str, str]] = None,
                 grids: Optional[List[Dict[str, Any]]] = None) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.grids = [{key: sweep_string(value) for key, value in grid.items()} for grid in (grids or [])]

    def split_arguments(self, overrides: List[Override], max_batch_size: Optional[int]) -> List[List[List[str]]]:
        """All jobs of every grid crossed with `overrides` (params and command line), in batches."""
        config_loader = self.hydra_context.config_loader if self.hydra_context is not None else None
        jobs = expand(self.grids, overrides, OverridesParser.create(config_loader=config_loader))
        size = len(jobs) if max_batch_size in (None, -1) else max_batch_size
        return [jobs[i:i + size] for i in range(0, len(jobs), size)] or [[]]


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
    """The override lists of every job: each grid crossed with `overrides`, duplicates dropped."""
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
