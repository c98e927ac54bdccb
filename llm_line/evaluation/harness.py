"""Running a cell through lm-evaluation-harness: the task index, the model, `simple_evaluate`.

Everything heavy (torch, transformers, lm_eval) is imported here and only here, after the resume check.
What is kept for the life of the process, because it dominates small cells and cannot change: lm-eval's task
index (~15 s to build with lm-eval's own tasks; a cell of local tasks indexes only those, `load_task`), the
loaded model (a local sweep over one model loads it once), lm-eval's record of the environment
(compat.env_info_kept) and the batch size `auto` probed (llm_line/evaluation/scorer.py). bench/sweep.py
--startup measures each per cell (docs/benchmarks.md).

Failures that the user can fix (unknown task, missing revision, hub unreachable, ...) are raised as
`CellError` with a message that says what to do.
"""

from __future__ import annotations

import difflib
import gc
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lm_eval
import torch
import yaml
from lm_eval.api.registry import get_model
from lm_eval.tasks import TaskManager

from llm_line.errors import CellError
from llm_line.evaluation import compat, demo, hub, scorer
from llm_line.evaluation.config import ModelConfig, TaskConfig
from llm_line.evaluation.identity import LoadKey

log = logging.getLogger(__name__)

BUILTIN_TASKS = Path(__file__).parents[1] / "tasks"
# lm-eval's log-softmax over the vocabulary, whatever the weights' dtype: in float16/bfloat16 the log-probabilities
# of long continuations lose digits that loss-to-loss fits need (corpus_scoring.py scores in float32 too)
SOFTMAX_DTYPE = "float32"


@dataclass
class LoadedModel:
    """An lm-eval LM and what was resolved while loading it."""

    key: tuple
    lm: Any
    pretrained: str  # what was actually loaded (a local revision resolves to its subfolder)
    revision: str | None  # the hub branch or tag loaded (a pattern resolved to it); None for a local folder
    commit: str | None  # the hub commit the files came from (pythia issue #205: branches can change)
    device: str
    dtype: str  # resolved: what the weights were loaded in
    dtype_requested: str  # model.dtype as set (auto, or a dtype)

    def info(self) -> dict[str, Any]:
        """What the result records about the loaded model."""
        model = self.lm.model
        return {
            "backend": scorer.backend_name(self.lm),  # hf after hf-shared fell back for this model
            "loaded_from": self.pretrained,
            "resolved_revision": self.revision,
            "resolved_commit": self.commit,
            "device": self.device,
            "dtype": self.dtype,
            "dtype_requested": self.dtype_requested,
            "softmax_dtype": SOFTMAX_DTYPE,
            "batch_size": getattr(self.lm, "batch_size", None),
            "num_parameters": model.num_parameters(),
            "num_parameters_non_embedding": non_embedding_parameters(model),
        }

    def scored_answer(self, context: str, continuation: str) -> tuple[str, int]:
        """(the text lm-eval scored as the continuation, its token count), split exactly as lm-eval splits it.

        lm-eval moves a context's trailing whitespace into the continuation (compat.encode_pair), so the scored
        text is that whitespace plus the continuation. An empty context is scored after lm-eval's prefix token,
        the continuation encoded without special tokens (a tokenizer's own BOS is not scored); if the
        continuation itself starts with that token, lm-eval uses it as the context instead.
        """
        if context:
            trailing = context[len(context.rstrip()) :]
            return trailing + continuation, len(compat.encode_pair(self.lm, context, continuation)[1])
        ids = self.lm.tok_encode(continuation, add_special_tokens=False)
        if ids and ids[0] == self.lm.prefix_token_id:
            return continuation.removeprefix(self.lm.tokenizer.decode(ids[:1])), len(ids) - 1
        return continuation, len(ids)

    def paper_tokens(self, continuation: str) -> int:
        """`len(tokenizer.encode(continuation))`: the answer tokenized alone with the tokenizer's default special
        tokens, as the paper's original code counted it (metrics.loss_paper divides by this minus one)."""
        return len(self.lm.tokenizer.encode(continuation))


def non_embedding_parameters(model: Any) -> int:
    """Parameters outside the token embedding and the output head (Kaplan et al.'s N).

    transformers' `num_parameters(exclude_embeddings=True)` drops only nn.Embedding modules, so an untied
    output head (GPT-NeoX/Pythia's embed_out) would still count: for Pythia-70m that is 26M of 45M.
    """
    embeddings = {id(p): p for p in model.get_input_embeddings().parameters()}
    head = model.get_output_embeddings()
    if head is not None:
        embeddings.update({id(p): p for p in head.parameters()})
    seen = {id(p): p for p in model.parameters()}
    return sum(p.numel() for key, p in seen.items() if key not in embeddings)


_task_managers: dict[tuple[str | None, bool], TaskManager] = {}
_model: LoadedModel | None = None


def task_index(include_path: str | None, *, defaults: bool) -> TaskManager:
    """lm-eval's task index of this project's tasks and the user's folder, with lm-eval's own tasks or without;
    each built once per process."""
    key = (include_path, defaults)
    if key not in _task_managers:
        paths = [str(BUILTIN_TASKS)] + ([str(Path(include_path).expanduser())] if include_path else [])
        _task_managers[key] = TaskManager(include_path=paths, include_defaults=defaults)
    return _task_managers[key]


def load_task(name: str, include_path: str | None) -> tuple[TaskManager, dict[str, Any]]:
    """(the index that loaded it, lm-eval's loaded task or group `name`).

    A task of this project or of the user's folder comes from an index of those folders alone: indexing
    lm-eval's ~14,000 built-in task YAMLs takes ~15 s, more than half of a demo cell on 2 cores. Whatever that
    index does not know or cannot load (a group of lm-eval's tasks, say) comes from the full index, whose
    verdict (and error) counts.
    """
    local = task_index(include_path, defaults=False)
    if name in local.all_tasks:
        try:
            return local, local.load([name])
        except Exception:  # noqa: BLE001  (it may need lm-eval's own tasks: the full index decides below)
            log.debug("task %s did not load without lm-eval's own tasks; indexing them", name, exc_info=True)
    manager = task_index(include_path, defaults=True)
    known = set(manager.all_tasks)
    if name not in known:
        if include_path:
            check_task_yamls(Path(include_path).expanduser())
        close = difflib.get_close_matches(name, sorted(known), n=5)
        raise CellError(
            f"lm-eval does not know the task {name!r}"
            + (f"; did you mean {', '.join(close)}?" if close else ".")
            + " `python -m lm_eval ls tasks` lists them; a task of your own needs task.include_path=DIR."
        )
    try:
        return manager, manager.load([name])
    except Exception as e:  # the task's data: a hub dataset that is unreachable, a broken local file, ...
        raise CellError(
            f"could not load the data of task {name}: {type(e).__name__}: {e}. Hub datasets need the hub "
            "once; afterwards HF_DATASETS_OFFLINE=1 uses the cache."
        ) from e


def load_tasks(task: TaskConfig, shots: int) -> tuple[TaskManager, dict[str, Any]]:
    """Load a task or group by its lm-eval name; fail early on names and shot counts lm-eval would mangle."""
    manager, loaded = load_task(task.name, task.include_path)
    for name, obj in loaded["tasks"].items():
        if shots and obj.get_config("num_fewshot") == 0:
            raise CellError(f"task {name} fixes num_fewshot=0 in its YAML; lm-eval would ignore shots={shots}")
        check_fewshot_pool(name, obj, shots)
    return manager, loaded


def check_fewshot_pool(name: str, task: Any, shots: int) -> None:
    """Refuse more shots than the task has few-shot examples (lm-eval would fail deep in `random.sample`).

    When the few-shot examples come from the evaluated split itself, the document being asked is left out,
    so one fewer is available.
    """
    sampler = getattr(task, "sampler", None)
    if not shots or sampler is None:
        return
    pool = len(sampler.fewshot_docs())
    split = getattr(getattr(task, "fewshot_cfg", None), "split", None)
    available = pool - 1 if split is not None and split == task.get_config("test_split") else pool
    if shots > available:
        where = f"its {split} split" if split else "its few-shot source"
        raise CellError(
            f"task {name} has {available} few-shot examples ({where}), fewer than shots={shots}; "
            f"use shots={max(available, 0)} or less"
        )


class _TaskYamlLoader(yaml.SafeLoader):
    """Reads lm-eval task YAMLs for their syntax only: tags like `!function` are accepted, not run."""


_TaskYamlLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def check_task_yamls(folder: Path) -> None:
    """lm-eval skips a task YAML it cannot parse; name the first broken file and line instead."""
    for path in sorted(folder.rglob("*.yaml")):
        try:
            yaml.load(path.read_text(encoding="utf-8"), Loader=_TaskYamlLoader)
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            line = f":{mark.line + 1}" if mark is not None else ""
            raise CellError(
                f"{path}{line}: not valid YAML ({e.problem or e.context}); lm-eval skipped it, so its "
                "task is unknown. Fix the file."
            ) from e
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise CellError(f"{path}: unreadable task YAML ({e}); lm-eval skipped it. Fix the file.") from e


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str, device: str, pretrained: str, revision: str | None) -> str:
    """auto: on a GPU, the dtype the checkpoint was saved in (its config), so fp16-trained Pythia runs in float16
    and fp32 GPT-J in float32; on CPU float32 (CPU half precision is slow and lossy). A bfloat16 checkpoint on a
    GPU without bfloat16 runs in float32 rather than float16, whose range it may exceed."""
    if dtype != "auto":
        return dtype
    if not device.startswith("cuda"):
        return "float32"
    saved = checkpoint_dtype(pretrained, revision)
    if saved == "bfloat16" and not torch.cuda.is_bf16_supported():
        return "float32"
    return saved


def checkpoint_dtype(pretrained: str, revision: str | None) -> str:
    """The dtype a checkpoint's config.json names (`dtype`, or `torch_dtype` before transformers 5); float32
    where it names none, or one lm-eval cannot load in (`auto`, float64, ...)."""
    from transformers import PretrainedConfig

    try:
        config, _ = PretrainedConfig.get_config_dict(pretrained, revision=revision)
    except Exception as e:  # what the load itself would fail on: let it say so, with its own explanation
        log.debug("no config to read the dtype of %s from: %s", pretrained, e)
        return "float32"
    saved = str(config.get("dtype") or config.get("torch_dtype") or "float32").removeprefix("torch.")
    return saved if saved in ("float16", "bfloat16", "float32") else "float32"


def resolve_batch_size(batch_size: str, device: str) -> int | str:
    """An int, or lm-eval's `auto`. On CPU `auto` becomes 8: lm-eval finds the batch size by provoking
    out-of-memory errors, which on a CPU means the OOM killer rather than a caught CUDA error."""
    if batch_size.isdigit():
        return int(batch_size)
    if batch_size.startswith("auto") and not device.startswith("cuda"):
        log.info("batch_size=%s on %s: using 8 (set model.batch_size to change)", batch_size, device)
        return 8
    return batch_size


def resolve_source(model: ModelConfig) -> tuple[str, str | None]:
    """(what to load, hub branch). A hub revision (or pattern) is checked against the repository's branches;
    a local folder's revision is a subfolder of it (`main`: the folder)."""
    local = Path(model.pretrained).expanduser()
    if model.demo_size:
        demo.ensure(local, model.demo_size)
    repo = hub.hub_id(model.pretrained, model.demo_size)
    if repo is not None:
        return repo, hub.resolve(repo, model.revision).name
    if not local.is_dir():
        raise CellError(f"local model folder {local} does not exist (model.pretrained={model.pretrained})")
    if model.revision == "main":
        if not (local / "config.json").exists():
            steps = sorted((p.name for p in local.iterdir() if (p / "config.json").exists()), key=lambda n: (len(n), n))
            if steps:  # a folder of checkpoints (e.g. a lingua export): it has no `main` of its own
                raise CellError(
                    f"local model {local} is a folder of checkpoints; pick one with model.revision=... or "
                    f"model.step=... (available: {', '.join(steps)})"
                )
            raise CellError(
                f"local model folder {local} holds no config.json, so it is not a saved model; point "
                "model.pretrained at the folder that `save_pretrained` wrote (config.json, weights, "
                "tokenizer)"
            )
        return str(local), None
    if not (local / model.revision).is_dir():
        available = sorted(p.name for p in local.iterdir() if (p / "config.json").exists())
        raise CellError(
            f"revision {model.revision!r} does not exist in local model {local}; "
            f"available: main, {', '.join(available) or '(none)'}"
        )
    return str(local / model.revision), None


def load_model(model: ModelConfig) -> LoadedModel:
    """The lm-eval LM for `model`, reusing the one already loaded when nothing about it changed."""
    global _model
    key = LoadKey.of(model)
    if _model is not None and _model.key == key:
        return _model
    _model = None  # free the previous model before loading the next
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()

    pretrained, revision = resolve_source(model)
    device = resolve_device(model.device)
    dtype = resolve_dtype(model.dtype, device, pretrained, revision)
    args = {
        "pretrained": pretrained,
        "dtype": dtype,
        "softmax_dtype": SOFTMAX_DTYPE,
        "trust_remote_code": model.trust_remote_code,
    }
    if revision:
        args["revision"] = revision
    if model.tokenizer:
        args["tokenizer"] = model.tokenizer
    if model.max_length:
        args["max_length"] = model.max_length
    if model.add_bos_token is not None:
        args["add_bos_token"] = model.add_bos_token
    if model.parallelize:  # lm-eval places the model with device_map="auto" over every visible GPU
        args["parallelize"] = True
        if model.max_memory_per_gpu:
            args["max_memory_per_gpu"] = model.max_memory_per_gpu
    batch_size = resolve_batch_size(model.batch_size, device)
    log.info("Loading %s%s (%s, %s)", pretrained, f"@{revision}" if revision else "", device, dtype)
    try:
        lm = get_model(model.backend).create_from_arg_obj(
            args, {"batch_size": batch_size, "max_batch_size": model.max_batch_size, "device": device}
        )
    except Exception as e:  # translate the hub's and transformers' errors into what to do
        raise CellError(explain_load_error(e, pretrained, revision)) from None
    commit = hub.downloaded_commit(pretrained, revision) if revision else None
    _model = LoadedModel(key, lm, pretrained, revision, commit, device, dtype, model.dtype)
    return _model


def explain_load_error(error: BaseException, pretrained: str, revision: str | None) -> str:
    """One line that says why a model did not load and what to do about it."""
    if revision is None:  # a local folder: the hub is not involved
        return f"failed to load {pretrained}: {type(error).__name__}: {str(error).strip().splitlines()[0][:300]}"
    return hub.explain(error, pretrained, revision)


def evaluate(model_cfg: ModelConfig, task_cfg: TaskConfig, shots: int, fewshot_seed: int) -> dict[str, Any]:
    """Run one cell through `lm_eval.simple_evaluate` in memory; return its raw output and what it loaded."""
    manager, loaded = load_tasks(task_cfg, shots)
    model = load_model(model_cfg)
    roots = [loaded["groups"][task_cfg.name]] if task_cfg.name in loaded["groups"] else list(loaded["tasks"].values())
    with compat.env_info_kept():  # the same for every cell of the process
        results = lm_eval.simple_evaluate(
            model=model.lm,
            tasks=roots,
            num_fewshot=shots,
            limit=task_cfg.limit,
            log_samples=True,
            fewshot_random_seed=fewshot_seed,
            task_manager=manager,
        )
    wrong = {name: n for name, n in results["n-shot"].items() if name in loaded["tasks"] and n != shots}
    if wrong:
        raise CellError(f"lm-eval ran {wrong} shots instead of {shots}")
    return {"results": results, "tasks": loaded["tasks"], "group_map": loaded["group_map"], "model": model}
