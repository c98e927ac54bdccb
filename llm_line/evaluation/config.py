"""The schema of a cell: structured configs registered in Hydra's ConfigStore.

Every YAML under `conf/model/` and `conf/task/` extends one of these dataclasses (`defaults: [base_model]`),
so a misspelled key (`model.revison=x`) is an error rather than a silently ignored setting, and
`python evaluate.py --cfg job` shows every value a cell runs with.

This module must stay cheap to import: `evaluate.py` imports it before deciding whether a cell is already
done, and that decision must not pay for torch or transformers.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

DEFAULT_FEWSHOT_SEED = 1234  # lm-eval's default few-shot seed: run dirs name only other seeds


@dataclass
class ModelMeta:
    """What the analysis needs to know about a model; None where unknown."""

    family: str | None = None  # e.g. pythia, the name of a line of checkpoints
    architecture: str | None = None  # e.g. GPT-NeoX, Llama, Mamba
    parameters: int | None = None  # None: taken from the loaded model and recorded in the result
    pretraining_data: str | None = None  # e.g. The Pile, C4, FineWeb-Edu
    tokenizer: str | None = None  # tokenizer family, e.g. gpt-neox, gpt2
    tokens_per_step: int | None = None  # tokens seen = step x tokens_per_step
    final_step: int | None = None  # the training step of the `main` revision, where public
    # Training tokens seen at this revision: step (from model.revision, e.g. step3000, step-003000-6BT,
    # step20000-tokens84B; `main` = final_step) x tokens_per_step. None where either is unknown; families with
    # only a final checkpoint set it directly.
    tokens: int | None = "${tokens_at:${..revision},${.tokens_per_step},${.final_step}}"  # type: ignore[assignment]


@dataclass
class ModelConfig:
    """One model at one revision, and how lm-eval's HF backend loads it."""

    name: str = MISSING  # identity in results: the hub id, or a stable name for a local model
    pretrained: str = "${.name}"  # what is loaded: a hub id or a local folder
    path: str | None = None  # a local folder of checkpoints (lingua exports); such families load from it
    # A training step: the family's `revision_format` turns it into the revision (pythia: step=3000 ->
    # step3000), so `model.step=range(1000,144000,1000)` sweeps checkpoints. None: `revision` as given.
    step: int | None = None
    # Hub branch/tag/commit, or a pattern with `*` that must match exactly one branch (llm_line/evaluation/hub.py
    # resolves it against the repository's branch list when the cell runs); for a local folder, a subfolder (main = the
    # folder). Set it directly, or via `step`.
    revision: str = "${step_revision:${.revision_format},${.step}}"
    # How a step is named among the family's revisions: a Python format string with {step}, where `*` stands
    # for a part that cannot be computed (OLMo-1B-hf: step{step}-tokens*B); None: no step revisions.
    revision_format: str | None = "step{step}"
    size: str | None = None  # for families with several sizes (pythia: 70m ... 12b)
    sizes: dict[str, Any] = field(default_factory=dict)  # per-size metadata of a family, read with ${size_meta:...}
    demo_size: str | None = None  # set: `pretrained` is the offline demo model, built on first use
    tokenizer: str | None = None  # tokenizer override (hub id or folder); None: the model's own
    dtype: str = "auto"  # auto: the checkpoint's own dtype (its config) on GPU, float32 on CPU; or a dtype
    device: str = "auto"  # auto: cuda if available, else cpu
    batch_size: str = "auto"  # an integer, or lm-eval's auto / auto:N
    max_batch_size: int = 64  # upper bound when batch_size is auto
    max_length: int | None = None  # context length; None: the model's own
    trust_remote_code: bool = False
    # lm-eval model backend. hf-shared (llm_line/evaluation/scorer.py): lm-eval's HF model with multiple-choice scoring
    # that encodes a shared context once, equal to hf's numbers; models it cannot serve fall back to hf's path.
    backend: str = "hf-shared"
    add_bos_token: bool | None = None  # prepend BOS to every context (lm-eval's add_bos_token); None: its default
    parallelize: bool = False  # split the model over all visible GPUs (lm-eval's parallelize: device_map=auto)
    max_memory_per_gpu: str | None = None  # with parallelize, e.g. 70GiB; None: accelerate decides
    meta: ModelMeta = field(default_factory=ModelMeta)


@dataclass
class CorpusConfig:
    """A validation corpus: where its documents come from, which of them, and how they are packed.

    Source: a local `path` (.jsonl, .jsonl.gz, .jsonl.zst, .parquet, or a glob of them; files in sorted
    order) or a Hugging Face `dataset`. Selection is deterministic: the documents in source order (or shuffled
    with `shuffle_seed`), the first `max_documents` of them, stopping once `max_tokens` tokens are reached
    (whole documents). `max_documents` selects the same text for every tokenizer, so bits per byte stay
    comparable across model families; `max_tokens` depends on the tokenizer.
    """

    path: str | None = None  # local file or glob; exclusive with `dataset`
    dataset: str | None = None  # Hugging Face dataset id, e.g. allenai/c4
    dataset_config: str | None = None  # its configuration (`name` in load_dataset), e.g. en
    dataset_revision: str | None = None  # a branch, tag or commit of the dataset repo
    data_files: str | None = None  # a file pattern within the dataset repo, e.g. val.jsonl.zst
    split: str = "validation"
    streaming: bool = True  # stream the hub dataset instead of downloading all of it
    text_field: str = "text"
    max_documents: int | None = None  # the first N documents (after shuffling); None: all
    max_tokens: int | None = None  # stop after the document that reaches N tokens; None: no limit
    shuffle_seed: int | None = None  # None: source order; local files: exact shuffle; streaming: buffered
    shuffle_buffer: int = 10000  # buffer of a streaming shuffle
    # packed: documents packed into full windows, every token scored once (llm_line/evaluation/corpus.py). chunks: the
    # paper's original protocol, each document truncated to the model's length and cut into independent chunks
    # of `chunk_length` tokens (docs/conventions.md); its numbers line up with the released table.
    method: str = "packed"
    chunk_length: int = 50  # tokens per chunk of the chunks method (the original: 50; 16 for SlimPajama)
    context_length: int | None = None  # tokens per window; None: the model's own (model.max_length if set)
    separator: str = "auto"  # token around every document: eos, bos, or auto (bos if the tokenizer adds one)
    batch_size: int = 8  # windows per forward pass; does not change the numbers


@dataclass
class TaskConfig:
    """One lm-eval task or group by its lm-eval name; or, with `corpus` set, a validation-loss cell."""

    name: str = MISSING  # lm-eval task or group name, e.g. hellaswag, mmlu; a corpus cell's own name
    display: str = "${.name}"  # the name in the paper's tables, e.g. HellaSwag, C4
    include_path: str | None = None  # extra folder of lm-eval task YAMLs (llm_line/tasks is always included)
    limit: int | None = None  # evaluate only the first N documents (for debugging; kept apart in results)
    corpus: CorpusConfig | None = None  # set: the loss on this corpus (llm_line/evaluation/corpus.py), not lm-eval


@dataclass
class WandbConfig:
    """A Weights & Biases run per cell (llm_line/evaluation/loggers.py); needs `pip install wandb`."""

    project: str = "llm-line"
    entity: str | None = None  # a W&B team or user; None: the logged-in user's default
    mode: str = "online"  # online, offline (compute nodes without internet; `wandb sync` later) or disabled
    tags: list[str] = field(default_factory=list)


@dataclass
class LoggerConfig:
    """Where a finished cell's metrics go besides result.json: metrics.csv always, W&B when set (`logger=wandb`)."""

    wandb: WandbConfig | None = None


@dataclass
class Config:
    """One cell: a model at a revision, a task, a few-shot setting."""

    model: ModelConfig = MISSING
    task: TaskConfig = MISSING
    shots: int = 0
    # the seed lm-eval draws few-shot examples with; another value is another cell (its own run dir)
    fewshot_seed: int = DEFAULT_FEWSHOT_SEED
    results_dir: str = "results"  # every cell's run dir lives below this (`~` is expanded)
    cache_dir: str = "${oc.env:LLM_LINE_CACHE,'~/.cache/llm_line'}"  # demo model and other local builds
    force: bool = False  # recompute a cell even if it has a valid result
    logger: LoggerConfig = field(default_factory=LoggerConfig)  # the `logger` group: csv (default) or wandb


@dataclass
class ResumingSweeperConf:
    """`hydra/sweeper=resume` (the default): Hydra's basic sweeper minus finished cells, over `grids` if given."""

    _target_: str = "hydra_plugins.llm_line_sweeper.ResumingSweeper"
    max_batch_size: int | None = None
    params: dict[str, str] | None = None
    grids: list[dict[str, Any]] | None = None  # a union of grids, each crossed with `params`
    # SLURM (and other submitit launchers): pending cells sharing a model load go into one job of at most
    # this many cells, loading the model once; 1 = one cell per job. Local sweeps run in one process anyway.
    cells_per_job: int = 32
    dry_run: bool = False  # print the plan (done, running, queued, failed, to launch, jobs, arrays) and exit
    wait: bool = True  # false: return once every job array is submitted, printing their ids and `status`
    skip_missing: bool = False  # hub preflight: launch the cells whose revisions exist, leave out the missing
    prefetch: bool = False  # download every model/revision/dataset of the grid into the cache; launch nothing


MAX_COMPONENT = 255  # bytes in one path component on common filesystems
_HASHED = re.compile(r"_h[0-9a-f]{8}$")  # how a component that sanitising changed ends


def _path_part(value: object) -> str:
    """A path component for `value`, injective: hub ids keep their readable form (`org/name` -> `org--name`);
    where sanitising loses information (`foo--bar` vs `foo/bar`, `模型` vs `名字`) or the component would exceed
    the filesystem's limit, a short hash of the original is appended (`__h1a2b3c4d`)."""
    original = str(value).strip()
    text = re.sub(r"[^A-Za-z0-9._=+,@-]", "_", original.replace("/", "--"))
    if text in ("", ".", ".."):
        raise ValueError(f"cannot build a results path from {value!r}")
    # `*` (a revision pattern, step20000-tokens*B) -> `_` keeps its folder: no hub branch holds a literal `_`
    # there, and a collision would still be caught (a result's identity is checked, and so are a plan's run dirs)
    lossless = text.replace("--", "/") == original.replace("*", "_") and not _HASHED.search(text)
    if lossless and len(text) <= MAX_COMPONENT:
        return text
    tag = hashlib.sha256(original.encode()).hexdigest()[:8]
    return f"{text[: MAX_COMPONENT - 10]}_h{tag}"


def cell_dir(
    model: str, revision: str, task: str, shots: int, limit: int | None = None, fewshot_seed: int | None = None
) -> str:
    """The run dir of a cell relative to the results root: a pure function of the cell's identity.

    `<model>/<revision>/<task>/<shots>shot`, so a re-run, a sweep and `collect` all find the same folder.
    A debugging run with `task.limit` lands in its own folder and never passes for the full result; so does a
    few-shot cell with a seed other than lm-eval's default (`2shot_seed999`; 0-shot cells draw no examples).
    """
    leaf = f"{int(shots)}shot"
    if int(shots) > 0 and fewshot_seed is not None and int(fewshot_seed) != DEFAULT_FEWSHOT_SEED:
        leaf += f"_seed{int(fewshot_seed)}"
    if limit is not None:
        leaf += f"_limit{int(limit)}"
    return "/".join([_path_part(model), _path_part(revision), _path_part(task), leaf])


def expand_user(path: str) -> str:
    """`${expand_user:...}`: `~` in a path expanded as everywhere else (checks, status, collect)."""
    return os.path.expanduser(str(path))


PACKAGE_DIR = Path(__file__).resolve().parents[1]  # llm_line/, where tasks/ and corpora/ live


_STEP_IN_REVISION = re.compile(r"(?:^|[^a-z])step-?0*(\d+)", re.IGNORECASE)


def step_revision(revision_format: str | None, step: int | None) -> str:
    """The revision (or revision pattern) that holds training step `step` in a family named by `revision_format`.

    A pattern (`step20000-tokens*B`, `step-001000-*BT`) stays one in the cell's identity, so where a result
    lives never depends on the hub; the branch it matched is recorded in the result. No step: `main`.
    """
    if step is None:
        return "main"
    if revision_format is None:
        raise ValueError("this model family publishes no step revisions; set model.revision instead of model.step")
    return revision_format.format(step=int(step))


def step_of(revision: Any) -> int | None:
    """The training step a revision name holds, for every family's naming: `step3000` (Pythia),
    `step20000-tokens84B` (OLMo), `step-001000-2BT` (HuggingFaceFW ablations) -> 3000, 20000, 1000.
    None for any other revision (`main`, a commit hash): its step is not in its name."""
    match = _STEP_IN_REVISION.search(str(revision))
    return int(match.group(1)) if match else None


def tokens_at(revision: str, tokens_per_step: int | None, final_step: int | None) -> int | None:
    """Training tokens seen at `revision` (step x tokens per step); None where that is unknown."""
    if tokens_per_step is None:
        return None
    step = step_of(revision)
    if step is not None:
        return step * int(tokens_per_step)
    if str(revision) == "main" and final_step is not None:
        return int(final_step) * int(tokens_per_step)
    return None


def size_meta(table: Any, size: str | None, key: str) -> Any:
    """`table[size][key]` of a family's `sizes` table, or None for a size or key it does not list."""
    entry = table.get(str(size)) if table is not None and size is not None else None
    return None if entry is None else entry.get(key)


EXPORT_META = "llm_line.json"  # written by `python -m llm_line.lingua.export` at the root of an export folder


def export_meta(path: str | None, key: str) -> Any:
    """A field of the metadata an export wrote (`<path>/llm_line.json`); None if it is not there.

    `name` falls back to the folder's name, so a model without that file still has an identity.
    """
    if path is None:
        return None
    folder = Path(str(path)).expanduser()
    try:
        meta = json.loads((folder / EXPORT_META).read_text())
    except (OSError, ValueError):
        meta = {}
    if key == "name" and not meta.get("name"):
        return folder.name
    return meta.get(key)


def package_dir() -> str:
    """`${package_dir:}`: this package's folder, where shipped data (the demo corpus) lives."""
    return str(PACKAGE_DIR)


def register() -> None:
    """Register the schema and the resolvers; safe to call more than once."""
    resolvers: dict[str, Callable[..., Any]] = {
        "cell_dir": cell_dir,
        "expand_user": expand_user,
        "step_revision": step_revision,
        "tokens_at": tokens_at,
        "size_meta": size_meta,
        "export_meta": export_meta,
        "package_dir": package_dir,
    }
    for name, function in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    cs.store(group="model", name="base_model", node=ModelConfig)
    cs.store(group="task", name="base_task", node=TaskConfig)
    cs.store(group="logger", name="base_logger", node=LoggerConfig)
    cs.store(group="hydra/sweeper", name="resume", node=ResumingSweeperConf, provider="llm_line")


register()
