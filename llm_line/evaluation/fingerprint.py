"""A cell's settings fingerprint: every setting that can change its numbers, and nothing else.

    settings(cfg) -> {"model": {...}, "task": {...}, "corpus": {...} | None}     # what enters
    digest(settings) -> "3f0c9a1e5b7d2c44"                                      # its short hash
    changes(old, new) -> ["model.dtype float32 -> bfloat16", ...]               # what differs

A result is reused only for the cell that made it (its identity, llm_line.evaluation.identity.CellId: the run
dir) *and* the settings that made it (this fingerprint). `result.json` stores both the settings and their hash
(`fingerprint`); a sweep manifest stores them per cell, so `status` compares without composing a config.

The plan decides on *requested* values: `model.dtype=auto`, `model.revision=main` or a branch pattern,
`task.corpus.separator=auto` enter as written. What only the job can know (the commit a branch resolved to,
the dtype `auto` became) is provenance, recorded in the result's `model` section, not part of the fingerprint.
Settings that do not change the numbers stay out: batch sizes, device and device placement (`device`,
`parallelize`, `max_memory_per_gpu`), logging, `display`, `cache_dir`, `force`. docs/configuration.md lists
what enters and why.

Results written before fingerprints existed derive theirs from the full `config` they store; what cannot be
derived from it (the content of the task files and corpus files then) is `UNKNOWN` and not compared.

Cheap to import (no torch, no lm-eval): the resume decision runs before any model is loaded.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
from collections.abc import Mapping
from glob import glob, has_magic
from importlib import metadata
from pathlib import Path
from typing import Any

from llm_line.errors import CellError
from llm_line.evaluation.config import DEFAULT_FEWSHOT_SEED, PACKAGE_DIR, CorpusConfig, ModelConfig
from llm_line.evaluation.identity import effective_seed

VERSION = 1  # bump when what enters the fingerprint changes; results of another version derive theirs again
UNKNOWN = "unknown (result written before fingerprints)"
BUILTIN_TASKS = PACKAGE_DIR / "tasks"  # always on lm-eval's include path (llm_line.evaluation.harness)
# Scoring backends proven to give lm-eval's own numbers share its fingerprint value; the backend used is
# recorded in the result beside it.
BACKEND_FAMILY = {"hf-shared": "hf"}
# Corpus settings that do not change the numbers: the batch size; `path` enters by content (`files`).
CORPUS_LEFT_OUT = ("batch_size", "path")


def settings(cfg: Any, lm_eval: str | None = None) -> dict[str, Any]:
    """The fingerprint's settings of a cell's config (a DictConfig, or the plain `config` of a result);
    `lm_eval`: the lm-eval version it runs with (None: the installed one)."""
    model, task = cfg["model"], cfg["task"]
    corpus = task.get("corpus")
    return {
        "version": VERSION,
        "model": {
            "pretrained": weights(model),
            "revision": str(model["revision"]),
            "tokenizer": model.get("tokenizer"),
            "dtype": model.get("dtype", default("dtype")),
            "max_length": model.get("max_length"),
            "add_bos_token": model.get("add_bos_token"),
            "trust_remote_code": bool(model.get("trust_remote_code", False)),
            "backend": backend_family(model.get("backend", default("backend"))),
        },
        "task": {
            "name": task["name"],
            "shots": int(cfg["shots"]),
            "limit": task.get("limit"),
            "fewshot_seed": effective_seed(cfg["shots"], cfg.get("fewshot_seed", DEFAULT_FEWSHOT_SEED), corpus),
            "files": None if corpus is not None else task_files(task["name"], task.get("include_path")),
            "lm_eval": None if corpus is not None else lm_eval or installed_version("lm-eval"),
        },
        "corpus": None if corpus is None else corpus_settings(corpus, model.get("max_length")),
    }


def of_result(result: Mapping[str, Any]) -> dict[str, Any]:
    """The settings a stored result was computed with: its own fingerprint, or one derived from its `config`.

    Derived: the lm-eval version it ran with is in its `versions`; the task and corpus files it read are
    no longer knowable (UNKNOWN, not compared).
    """
    stored = result.get("fingerprint")
    if isinstance(stored, Mapping) and stored.get("settings", {}).get("version") == VERSION:
        return dict(stored["settings"])
    config = result.get("config")
    if not isinstance(config, Mapping):  # nothing recorded to compare with
        return {"version": VERSION, "model": UNKNOWN, "task": UNKNOWN, "corpus": UNKNOWN}
    derived = settings(config, (result.get("versions") or {}).get("lm_eval", UNKNOWN))
    if derived["task"]["files"] is not None:
        derived["task"]["files"] = UNKNOWN
    if derived["corpus"] is not None and "files" in derived["corpus"]:
        derived["corpus"]["files"] = UNKNOWN
    return derived


def record(settings_: dict[str, Any]) -> dict[str, Any]:
    """What `result.json` and a manifest entry hold: the settings and their hash."""
    return {"hash": digest(settings_), "settings": settings_}


def digest(settings_: Mapping[str, Any]) -> str:
    """A short stable hash of the settings (key order does not matter)."""
    return hashlib.sha256(json.dumps(settings_, sort_keys=True, default=str).encode()).hexdigest()[:16]


def changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Each setting that differs, `key old -> new`; a setting the old result cannot know (UNKNOWN) is skipped."""
    found: list[str] = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        if before in (UNKNOWN, after):
            continue
        if isinstance(before, Mapping) and isinstance(after, Mapping):
            found.extend(f"{key}.{change}" for change in changes(before, after))
        else:
            found.append(f"{key} {_short(before)} -> {_short(after)}")
    return found


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


_MODEL_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ModelConfig)}
_CORPUS_DEFAULTS = {f.name: f.default for f in dataclasses.fields(CorpusConfig)}


def default(key: str) -> Any:
    """A model setting's schema default, for configs stored before the setting existed."""
    return _MODEL_DEFAULTS[key]


def backend_family(backend: str) -> str:
    return BACKEND_FAMILY.get(str(backend), str(backend))


@functools.cache
def installed_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def weights(model: Mapping[str, Any]) -> str:
    """What is loaded, independent of where it lies: a hub id as written; the demo model by its size (built
    on first use, so it may not exist yet); a local folder by the hash of the `config.json` it loads (moving a
    checkpoint folder keeps its results; a different architecture or size shows)."""
    if model.get("demo_size"):
        return f"demo:{model['demo_size']}"
    pretrained = str(model["pretrained"])
    if not os.path.isdir(os.path.expanduser(pretrained)):  # a hub id (os.path: a plan asks for every cell)
        return pretrained
    folder = Path(pretrained).expanduser()
    loaded = folder / str(model["revision"])
    config = (loaded if loaded.is_dir() else folder) / "config.json"
    return f"local:{file_digest(str(config))}" if config.is_file() else f"local:{folder.name}"


def corpus_settings(corpus: Mapping[str, Any], max_length: int | None) -> dict[str, Any]:
    """A corpus cell's settings: its selection and method, the effective context length, the separator, and
    its local files by content (name, size, hash), not by path."""
    values = {name: corpus.get(name, value) for name, value in _CORPUS_DEFAULTS.items()}
    found = {k: v for k, v in values.items() if k not in CORPUS_LEFT_OUT}
    if found["method"] == "packed":  # the chunk length plays no part in packed windows
        found.pop("chunk_length")
    found["context_length"] = values["context_length"] or max_length  # None: the model's own
    if values["path"] is not None:
        found["files"] = [[f.name, f.stat().st_size, file_digest(str(f))] for f in corpus_files(str(values["path"]))]
    return found


def corpus_files(pattern: str) -> list[Path]:
    """The files a corpus `path` names: itself, or the sorted matches of a glob."""
    expanded = os.path.expanduser(pattern)
    files = sorted(Path(p) for p in glob(expanded, recursive=True)) if has_magic(expanded) else [Path(expanded)]
    files = [f for f in files if f.is_file()]
    if not files:
        raise CellError(f"no corpus file at task.corpus.path={pattern}")
    return files


def file_digest(path: str) -> str:
    """sha256 (16 hex digits) of a file's bytes, cached per size and modification time within a process."""
    info = os.stat(path)
    return _file_digest(path, info.st_size, info.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()[:16]


def task_files(name: str, include_path: str | None) -> str | None:
    """A hash of the local files that define task (or group) `name`: every file in the folder of each YAML
    that declares it (its data files, `!function` modules and sibling tasks lie there), and so on for a group's
    member tasks. None for a task no local YAML declares (lm-eval's own: pinned by the lm-eval version).

    Bytes only, no lm-eval TaskManager: cheap enough for every cell of a plan.
    """
    roots = [BUILTIN_TASKS] + ([Path(include_path).expanduser()] if include_path else [])
    declared: dict[str, list[Path]] = {}
    for root in roots:
        for task, yamls in _declarations(str(root)).items():
            declared.setdefault(task, []).extend(yamls)
    folders: set[Path] = set()
    pending, seen = [name], set()
    while pending:
        task = pending.pop()
        if task in seen:
            continue
        seen.add(task)
        for yaml in declared.get(task, []):
            folders.add(yaml.parent)
            pending.extend(_members(yaml))
    if not folders:
        return None
    sha = hashlib.sha256()
    for folder in sorted(folders):
        for file in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
            sha.update(f"{file.name}\0{file_digest(str(file))}\0".encode())
    return sha.hexdigest()[:16]


_DECLARES = re.compile(r"^(?:task|group)\s*:\s*['\"]?([^'\"\s#]+)['\"]?\s*(?:#.*)?$", re.MULTILINE)
_MEMBER = re.compile(r"^\s+-\s+['\"]?([^'\"\s#:]+)['\"]?\s*$", re.MULTILINE)


@functools.lru_cache(maxsize=64)
def _declarations(root: str) -> dict[str, list[Path]]:
    """task or group name -> the YAMLs under `root` that declare it (a top-level `task: x` or `group: x`);
    read once per process (a plan asks for every cell)."""
    found: dict[str, list[Path]] = {}
    for path in sorted(Path(root).rglob("*.yaml")):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for name in _DECLARES.findall(text):
            found.setdefault(name, []).append(path)
    return found


def _members(yaml: Path) -> list[str]:
    """The task names a group YAML lists (`task:` followed by `- name` lines)."""
    text = yaml.read_text(errors="replace")
    block = re.search(r"^task\s*:\s*\n((?:\s+-.*\n?)+)", text, re.MULTILINE)
    return _MEMBER.findall(block.group(1)) if block else []


def check_reusable(result: Mapping[str, Any], wanted: Mapping[str, Any], where: Path) -> None:
    """Raise ChangedSettings unless `result` was computed with the settings `wanted`."""
    changed = changes(of_result(result), wanted)
    if changed:
        raise ChangedSettings(
            f"{where} was computed with other settings ({'; '.join(changed)}): give this variant its own name "
            "(model.name=... or task.name=...) or results_dir, or replace that result with force=true"
        )


class ChangedSettings(CellError):
    """A valid result of this cell in its run dir, computed with other settings: never reused, never replaced
    silently."""
