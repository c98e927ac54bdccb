"""The private parts of lm-eval, Hydra and OmegaConf that llm-line relies on, each behind one small function.

None of these libraries publishes what is used here; keeping every use in this module means an upgrade that
changes one of them breaks in one place, loudly: tests/test_compat.py pins each behaviour llm-line needs.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import omegaconf.base
import omegaconf.errors
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_loader import ConfigLoader
from hydra.core.override_parser.types import Override, OverrideType
from hydra.core.utils import JobReturn
from omegaconf import Container, DictConfig, OmegaConf, ValueNode

__all__ = [
    "BasicSweeper",
    "ConfigLoaderImpl",
    "apply_overrides",
    "cached_interpolation_parsing",
    "checked_change",
    "detect_batch_size",
    "encode_pair",
    "env_info_kept",
    "hflm_loglikelihood_tokens",
    "job_error",
    "node_signature",
    "references",
    "value_node",
    "values_set",
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
    (`HFLM._loglikelihood_tokens`), which llm_line.evaluation.scorer overrides and falls back to."""
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


# Resolvers that read the config by a key given as text (`${oc.select:model.name}`): what they refer to cannot be
# told from the interpolation.
KEY_READING_RESOLVERS = ("oc.select", "oc.deprecated", "oc.dict.keys", "oc.dict.values")


def references(text: str) -> list[tuple[int, tuple[str, ...]]] | None:
    """The config nodes an interpolation string refers to, each as (leading dots, keys): `${..sizes}` ->
    (2, ("sizes",)), `${model.name}` -> (0, ("model", "name")), resolver arguments included (OmegaConf's
    grammar, the parse trees `omegaconf.base.parse` returns). None where that cannot be told from the text: a
    key that is itself an interpolation (`${.${k}}`), a resolver that reads the config by key
    (KEY_READING_RESOLVERS), text that does not parse."""
    from omegaconf.grammar.gen.OmegaConfGrammarParser import OmegaConfGrammarParser as Grammar

    found: list[tuple[int, tuple[str, ...]]] = []
    try:
        pending = [omegaconf.base.parse(text)]
    except omegaconf.errors.GrammarParseError:  # resolving it raises, where the cell is resolved
        return None
    while pending:
        node = pending.pop()
        if isinstance(node, Grammar.InterpolationResolverContext):
            if node.resolverName().getText() in KEY_READING_RESOLVERS:
                return None
        elif isinstance(node, Grammar.InterpolationNodeContext):
            keys = node.configKey()
            if not keys or any(key.interpolation() is not None for key in keys):
                return None
            after_open = [child.getText() for child in node.getChildren()][1:]
            dots = next(i for i, part in enumerate(after_open) if part != ".")
            found.append((dots, tuple(key.getText() for key in keys)))
            continue
        pending.extend(node.getChildren() if hasattr(node, "getChildren") else [])
    return found


def node_signature(cfg: DictConfig, key: str) -> str:
    """What decides how overrides of `cfg[key]` validate and how its interpolations resolve, as text: the node's
    class and structured type (`_get_node`, `_metadata`) and its raw content, interpolations unresolved. Equal
    signatures from two composed configs: the same override gives the same value or error in both."""
    node = cfg._get_node(key)
    raw = OmegaConf.to_container(node, resolve=False) if isinstance(node, Container) else node._value()  # type: ignore[union-attr]
    kind = f"{type(node).__name__}:{node._metadata.object_type}:{node._metadata.ref_type}:{node._metadata.optional}"  # type: ignore[union-attr]
    return kind + json.dumps(raw, sort_keys=True, default=repr)


def value_node(cfg: DictConfig, key: str) -> ValueNode | None:
    """The value node at `key` (`model.step`), or None where `key` names a container or nothing (OmegaConf's
    `_get_node`, which reads a node without resolving it)."""
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    node = parent._get_node(leaf, validate_access=False) if isinstance(parent, DictConfig) else None
    return node if isinstance(node, ValueNode) else None


NOT_A_VALUE = object()  # what checked_change returns for an override that does more than change a value


def checked_change(override: Override, cfg: DictConfig, node: ValueNode | None) -> Any:
    """The raw value (`_value()`: converted, interpolations unresolved) that a plain change of a value
    (`model.step=3000`) gives its node in `cfg` (`node`: value_node(cfg, its key)), the override applied and
    checked by Hydra's own code exactly as a compose applies it, then undone; raises as the compose would.

    NOT_A_VALUE for an override that adds, deletes or replaces a container, or whose value is a dict, a list or
    an interpolation: only a plain value is set this way (Hydra's update of a value node keeps the node and sets
    its value, checked here: `_get_parent`, `_get_node`), the rest needs a copy of the config."""
    value = override.value()
    if (
        override.type != OverrideType.CHANGE
        or override.package is not None
        or node is None
        or isinstance(value, dict | list)
        or (isinstance(value, str) and "${" in value)
    ):
        return NOT_A_VALUE
    before = node._value()
    try:
        apply_overrides([override], cfg)
        parent = node._get_parent()
        kept = isinstance(parent, DictConfig) and parent._get_node(node._key(), validate_access=False) is node
        return node._value() if kept else NOT_A_VALUE
    finally:
        node._set_value(before)


@contextmanager
def values_set(changes: Sequence[tuple[ValueNode, Any]]) -> Iterator[None]:
    """Value nodes set to raw values (checked_change's) for the block, then restored as they were (an
    interpolation stays an interpolation): a config shared by many cells is read with one cell's values without
    a copy (`_value`, `_set_value`)."""
    before = [(node, node._value()) for node, _ in changes]
    try:
        for node, raw in changes:
            node._set_value(raw)
        yield
    finally:
        for node, raw in reversed(before):
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
