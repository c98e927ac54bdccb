"""What a cell is, typed, in one place: its identity and its model-load key.

Three keys decide what happens to a cell, each with one definition used by the cell, the plan, the store
and `status`:

- `CellId`, which cell it is: model name, revision, task, shots, limit and the few-shot seed where one
  matters. Its run dir is a function of exactly these (`CellId.run_dir`), and a result is reused only for
  its own cell (llm_line.evaluation.store.current_result). Result files, sweep manifests and claims hold
  it as a plain record (`CellId.record`, read back with `CellId.of_record`).
- `LoadKey`, which model load it shares: cells with equal keys are packed into one job and evaluated on
  one loaded model (llm_line.sweeps.plan.pack, llm_line.evaluation.harness.load_model).
- its settings fingerprint, what may change its numbers: llm_line.evaluation.fingerprint.settings, a
  nested record stored in every result and compared before a result is reused.

`CellId.of` and `LoadKey.of` read a composed config (a DictConfig) or the plan's resolved view of one
(llm_line.sweeps.compose.Resolved), which reads the same way. Cheap to import: no torch, no Hydra.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, NamedTuple

from llm_line.evaluation.config import DEFAULT_FEWSHOT_SEED, cell_dir


def effective_seed(shots: int, fewshot_seed: int | None, corpus: Any = None) -> int | None:
    """The few-shot seed as far as it matters: None for 0-shot and corpus cells, which draw no examples."""
    if corpus is not None or not shots or fewshot_seed is None:
        return None
    return int(fewshot_seed)


@dataclasses.dataclass(frozen=True)
class CellId:
    """Which cell: what its run dir is made of. Equal ids are the same cell (a repeat in a grid, or the
    cell a stored result belongs to)."""

    model: str
    revision: str
    task: str
    shots: int
    limit: int | None
    fewshot_seed: int | None  # None where no examples are drawn (0-shot, corpus)

    @classmethod
    def of(cls, cfg: Any) -> CellId:
        """The id of the cell a composed config (or the plan's view of one) describes."""
        return cls(
            cfg.model.name,
            cfg.model.revision,
            cfg.task.name,
            cfg.shots,
            cfg.task.limit,
            effective_seed(cfg.shots, cfg.fewshot_seed, cfg.task.corpus),
        )

    @classmethod
    def of_record(
        cls, record: Mapping[str, Any], fewshot_seed: int | None = DEFAULT_FEWSHOT_SEED, corpus: Any = None
    ) -> CellId:
        """The id a stored record holds (a result's, a manifest entry's or a claim's `cell`). Records written
        before `fewshot_seed` joined the id lack it: theirs is derived from the seed they ran with (lm-eval's
        default unless given) and whether they were a corpus cell."""
        shots = record["shots"]
        seed = record["fewshot_seed"] if "fewshot_seed" in record else effective_seed(shots, fewshot_seed, corpus)
        return cls(record["model"], record["revision"], record["task"], shots, record["limit"], seed)

    @classmethod
    def of_result(cls, result: Mapping[str, Any]) -> CellId:
        """The id of the cell a stored result belongs to (older results derive the seed from their config)."""
        config: Mapping[str, Any] = result["config"] if isinstance(result.get("config"), Mapping) else {}
        task: Mapping[str, Any] = config["task"] if isinstance(config.get("task"), Mapping) else {}
        return cls.of_record(result["cell"], config.get("fewshot_seed", DEFAULT_FEWSHOT_SEED), task.get("corpus"))

    def record(self) -> dict[str, Any]:
        """The id as result files, manifests and claims store it."""
        return dataclasses.asdict(self)

    @property
    def run_dir(self) -> str:
        """The run dir (relative to the results root) this cell maps to."""
        return cell_dir(self.model, self.revision, self.task, self.shots, self.limit, self.fewshot_seed)

    def describe(self) -> str:
        """`pythia-160m@step3000 on piqa (5-shot, seed 7, limit 100)`, for log lines and errors."""
        limit = f", limit {self.limit}" if self.limit is not None else ""
        seed = f", seed {self.fewshot_seed}" if self.fewshot_seed not in (None, DEFAULT_FEWSHOT_SEED) else ""
        return f"{self.model}@{self.revision} on {self.task} ({self.shots}-shot{seed}{limit})"


class LoadKey(NamedTuple):
    """What decides which weights a cell loads and how: cells with equal keys share one model load."""

    backend: str
    pretrained: str
    revision: str
    tokenizer: str | None
    dtype: str
    device: str
    batch_size: str  # N, auto or auto:N
    max_batch_size: int
    max_length: int | None
    trust_remote_code: bool
    add_bos_token: bool | None
    parallelize: bool
    max_memory_per_gpu: str | None

    @classmethod
    def of(cls, model: Any) -> LoadKey:
        """The load key of a cell's `model` config (or the plan's view of it)."""
        return cls(*(getattr(model, name) for name in cls._fields))
