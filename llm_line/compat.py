"""The private parts of lm-eval, Hydra and OmegaConf that llm-line relies on, each behind one small function.

None of these libraries publishes what is used here; keeping every use in this module means an upgrade that
changes one of them breaks in one place, loudly: tests/test_compat.py pins each behaviour llm-line needs.
"""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import omegaconf.base
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_loader import ConfigLoader
from hydra.core.override_parser.types import Override, OverrideType
from hydra.core.utils import JobReturn
from omegaconf import DictConfig, OmegaConf, ValueNode

__all__ = [
    "BasicSweeper",
    "ConfigLoaderImpl",
    "apply_overrides",
    "cached_interpolation_parsing",
    "detect_batch_size",
    "encode_pair",
    "env_info_kept",
    "hflm_loglikelihood_tokens",
    "job_error",
    "overrides_applied",
]
# BasicSweeper: Hydra's own sweeper (hydra._internal), which llm-line's sweeper extends: Hydra has no public
# base class for a sweeper that expands override grids the way the basic sweeper does.


def encode_pair(lm: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """The token ids lm-eval's HF model scores for a (context, continuation) request (`HFLM._encode_pair`):
    a context's trailing whitespace moves into the continuation, which is encoded in context."""
    return lm._encode_pair(context, continuation)


_env_info: dict[str, dict[str, Any]] = {}  # what lm-eval's add_env_info added, per working directory


@contextmanager
def env_info_kept() -> Iterator[None]:
    """lm-eval's `simple_evaluate` records the machine and packages in every result (`add_env_info`, imported
    into lm_eval.evaluator): torch's collect_env, which runs pip, conda, lscpu and nvidia-smi in subprocesses,
    0.24-0.43 s a cell on 2 cores (bench/sweep.py --startup). Packages and devices do not change while a
    process runs; what does depend on the call (its upper_git_hash: the git commit above the working
    directory) is the key. So while the block runs it is computed once per working directory and copied."""
    import lm_eval.evaluator

    original = lm_eval.evaluator.add_env_info

    def kept(storage: dict[str, Any]) -> None:
        cwd = os.getcwd()
        if cwd not in _env_info:
            added: dict[str, Any] = {}
            original(added)
            _env_info[cwd] = added
        storage.update(copy.deepcopy(_env_info[cwd]))

    lm_eval.evaluator.add_env_info = kept
    try:
        yield
    finally:
        lm_eval.evaluator.add_env_info = original


def hflm_loglikelihood_tokens(
    lm: Any, requests: list, disable_tqdm: bool = False, override_bs: int | None = None
) -> list[tuple[float, bool]]:
    """lm-eval's own HF scoring of tokenized (request, context ids, continuation ids) triples
    (`HFLM._loglikelihood_tokens`), which llm_line.scorer overrides and falls back to."""
    from lm_eval.models.huggingface import HFLM

    return HFLM._loglikelihood_tokens(lm, requests, disable_tqdm=disable_tqdm, override_bs=override_bs)


def detect_batch_size(lm: Any, requests: list, index: int) -> int:
    """The largest batch of rows as long as `requests[index]` that fits in memory, found as lm-eval's
    `batch_size=auto` finds it (`HFLM._detect_batch_size`: halving from max_batch_size on out-of-memory)."""
    return int(lm._detect_batch_size(requests, index))


def apply_overrides(overrides: Sequence[Override], cfg: DictConfig) -> None:
    """Apply parsed value overrides to a composed config exactly as Hydra's compose does: the same
    validation, the same errors (`ConfigLoaderImpl._apply_overrides_to_config`)."""
    ConfigLoaderImpl._apply_overrides_to_config(list(overrides), cfg)


def is_config_group(config_loader: ConfigLoader, name: str) -> bool:
    """Whether an override's key names a config group (`model`) rather than a value (`model.size`): the
    config loader's repository knows (`ConfigLoaderImpl.repository`)."""
    return bool(config_loader.repository.group_exists(name))  # type: ignore[attr-defined]


@contextmanager
def cached_interpolation_parsing() -> Iterator[None]:
    """OmegaConf parses an interpolation string on every access (`omegaconf.base.parse`); a plan resolves the
    same few strings for thousands of cells, so their parse trees (which resolution only reads) are cached
    while the block runs."""
    original = omegaconf.base.parse
    omegaconf.base.parse = functools.lru_cache(maxsize=4096)(original)
    try:
        yield
    finally:
        omegaconf.base.parse = original


@contextmanager
def overrides_applied(overrides: Sequence[Override], cfg: DictConfig) -> Iterator[DictConfig]:
    """`cfg` with value overrides applied in place for the block, then every changed value restored as it was
    (an interpolation stays an interpolation): a config shared by many cells is read without a copy per cell.

    Only plain changes of existing values are undone this way (OmegaConf's `_get_node`, `_value`,
    `_set_value`: Hydra's update keeps the node and sets its value); an override that adds, deletes or
    replaces a container gets a copy of `cfg` instead.
    """
    nodes = []
    for override in overrides:
        parent_key, _, leaf = override.key_or_group.rpartition(".")
        parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
        node = parent._get_node(leaf, validate_access=False) if isinstance(parent, DictConfig) else None
        if override.type != OverrideType.CHANGE or not isinstance(node, ValueNode):
            copied = copy.deepcopy(cfg)
            apply_overrides(overrides, copied)
            yield copied
            return
        nodes.append((node, node._value()))
    try:
        apply_overrides(overrides, cfg)
        yield cfg
    finally:
        for node, raw in reversed(nodes):
            node._set_value(raw)


def job_error(ret: JobReturn) -> BaseException:
    """The exception a failed Hydra job ended with (`JobReturn._return_value`; the public `return_value`
    re-raises it instead of returning it)."""
    return ret._return_value


def failed_job(error: BaseException, overrides: Sequence[str] | None = None) -> JobReturn:
    """A JobReturn for a job that failed with `error`, as Hydra's launchers build them."""
    from hydra.core.utils import JobStatus

    return JobReturn(
        overrides=list(overrides) if overrides is not None else None, status=JobStatus.FAILED, _return_value=error
    )
