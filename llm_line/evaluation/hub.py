"""The Hugging Face hub: which branch a revision is, whether it exists, and a grid's preflight.

Branch names of some families cannot be computed (OLMo-1B-hf names `step20000-tokens83B` where the original
repository says `84B`), so a revision may be a pattern with `*` (`step20000-tokens*B`) that is matched
against the repository's real branches. One listing per repository serves a whole sweep: kept in the process
and on disk (`<cache>/hub_refs/`, trusted for REFS_LIFETIME_S online, at any age offline).
A model revision must also hold weights transformers can load (`loadable_weights`): its files are listed
once per revision, and the prefetch downloads exactly those weights (safetensors where present, else `.bin`).

With HF_HUB_OFFLINE=1 nothing is asked of the hub: the disk listing, else the branches the hub cache has
downloaded (`<HF_HOME>/hub/models--org--name/refs/`), say what exists; what neither knows is reported as
unverified rather than missing.

Light on purpose (no torch, no lm_eval at import): the sweeper and the resume check import it. The download
itself is `llm_line.sweeps.prefetch`, which reaches into lm-eval for task data; this module stays a leaf.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_line.errors import CellError
from llm_line.evaluation.config import step_of
from llm_line.files import write_json

log = logging.getLogger(__name__)

REFS_LIFETIME_S = 600  # a sweep's jobs starting within this time reuse the sweeper's listing
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_refs: dict[tuple[str, str], dict[str, str]] = {}  # (kind, repo) -> {branch or tag: commit}, this process


def offline() -> bool:
    """HF_HUB_OFFLINE, as huggingface_hub read it (once, when it was imported)."""
    from huggingface_hub import constants

    return constants.is_offline_mode()


def hub_id(pretrained: str, demo_size: str | None = None) -> str | None:
    """`pretrained` if it names a hub repository, None for a local folder (or the demo model)."""
    if demo_size or pretrained.startswith(("/", "./", "../", "~")) or Path(pretrained).expanduser().is_dir():
        return None
    return pretrained


def refs_file(repo: str, kind: str) -> Path:
    cache = Path(os.environ.get("LLM_LINE_CACHE", "~/.cache/llm_line")).expanduser()
    return cache / "hub_refs" / f"{kind}s--{repo.replace('/', '--')}.json"


def list_refs(repo: str, kind: str = "model") -> dict[str, str] | None:
    """Branch and tag names of `repo` -> their commits; None offline when nothing about `repo` is cached."""
    key = (kind, repo)
    if key in _refs:
        return _refs[key]
    path = refs_file(repo, kind)
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        saved = None
    if saved is not None and (offline() or time.time() - saved["listed"] < REFS_LIFETIME_S):
        _refs[key] = saved["refs"]
        return _refs[key]
    if offline():
        return _cached_branches(repo, kind)
    from huggingface_hub import HfApi

    try:
        listing = HfApi().list_repo_refs(repo, repo_type=kind)  # HF_ENDPOINT as configured now
    except Exception as e:
        raise CellError(explain(e, repo, None, kind)) from None
    refs = {ref.name: ref.target_commit for ref in [*listing.branches, *listing.tags]}
    write_json(path, {"repo": repo, "kind": kind, "listed": time.time(), "refs": refs})
    _refs[key] = refs
    return refs


def _cached_branches(repo: str, kind: str) -> dict[str, str] | None:
    """The revisions the hub cache has downloaded of `repo` (what an offline node can load), or None."""
    from huggingface_hub import constants

    folder = Path(constants.HF_HUB_CACHE) / f"{kind}s--{repo.replace('/', '--')}" / "refs"
    if not folder.is_dir():
        return None
    return {str(p.relative_to(folder)): p.read_text().strip() for p in folder.rglob("*") if p.is_file()}


def downloaded_commit(repo: str, revision: str, kind: str = "model") -> str | None:
    """The commit the hub cache holds for `revision` of `repo`: what a load from the hub just used."""
    if _COMMIT.match(revision):
        return revision
    return (_cached_branches(repo, kind) or {}).get(revision)


@dataclass(frozen=True)
class Resolved:
    """A revision as found in the repository: its branch (or tag) name and commit; commit None if unverified."""

    name: str
    commit: str | None


def resolve(repo: str, revision: str, kind: str = "model") -> Resolved:
    """The one branch or tag of `repo` that `revision` (a name, or a pattern with `*`) names.

    A commit hash is taken as is. Offline with nothing cached, a plain name is returned unverified (the loader
    then finds it in the hub cache or says it is missing) and a pattern is an error.
    """
    if _COMMIT.match(revision):
        return Resolved(revision, revision)
    refs = list_refs(repo, kind)
    pattern = "*" in revision or "?" in revision
    if refs is None:
        if pattern:
            raise CellError(
                f"cannot resolve revision {revision!r} of {repo} offline (HF_HUB_OFFLINE is set): its branch list "
                "is not cached. Download the grid once where the hub is reachable "
                "(`python evaluate.py -m ... hydra.sweeper.prefetch=true`)."
            )
        return Resolved(revision, None)
    matches = (
        sorted(name for name in refs if fnmatch.fnmatchcase(name, revision))
        if pattern
        else [revision]
        if revision in refs
        else []
    )
    if len(matches) == 1:
        return Resolved(matches[0], refs[matches[0]])
    if matches:
        raise CellError(
            f"revision {revision!r} matches {len(matches)} branches of {repo} ({', '.join(matches[:5])}); "
            "set model.revision to one of them"
        )
    where = "in the hub cache (HF_HUB_OFFLINE is set)" if offline() else "on the hub"
    near = nearest(refs, revision)
    raise CellError(
        f"revision {revision!r} of {repo} does not exist {where}; "
        + (f"nearest: {', '.join(near)}" if near else f"it has: {', '.join(sorted(refs)[:8]) or 'no branches'}")
    )


def nearest(refs: Iterable[str], revision: str, n: int = 2) -> list[str]:
    """The existing step branches closest to the step in `revision`: up to n below and n above it."""
    step = step_of(revision)
    steps = sorted((s, name) for name in refs if (s := step_of(name)) is not None)
    if step is None:
        return [name for _, name in steps[:n]] + [name for _, name in steps[-n:]] if steps else []
    below = [name for s, name in steps if s < step][-n:]
    above = [name for s, name in steps if s > step][:n]
    return below + above


def explain(error: BaseException, repo: str, revision: str | None, kind: str = "model") -> str:
    """One line that says why `repo` could not be reached or read, and what to do about it."""
    from huggingface_hub import errors as hub

    chain: list[BaseException] = []
    e: BaseException | None = error
    while e is not None and len(chain) < 10:
        chain.append(e)
        e = e.__cause__ or e.__context__
    kinds = tuple(type(x) for x in chain)
    text = " | ".join(f"{type(x).__name__}: {x}" for x in chain)
    status = next(
        (
            getattr(getattr(x, "response", None), "status_code", None)
            for x in chain
            if getattr(x, "response", None) is not None
        ),
        None,
    )
    where = repo + (f" at revision {revision!r}" if revision else "")
    detail = f"{type(chain[-1]).__name__}: {str(chain[-1]).strip().splitlines()[0][:160]}" if chain else ""
    if any(issubclass(k, hub.GatedRepoError) for k in kinds) or status == 403:
        return (
            f"{kind} {repo} is gated: accept its terms on its hub page, then log in with `hf auth login` "
            f"(or set HF_TOKEN) ({detail})"
        )
    if any(issubclass(k, hub.RevisionNotFoundError) for k in kinds) or "valid git identifier" in text:
        return (
            f'revision {revision!r} does not exist for {repo}. List its branches with `python -c "from '
            f"huggingface_hub import list_repo_refs; print(list_repo_refs('{repo}'))\"` and set model.revision"
        )
    if (
        any(issubclass(k, hub.RepositoryNotFoundError) for k in kinds)
        or status == 401
        or "not a valid model identifier" in text
    ):
        return (
            f"{kind} {repo!r} is neither a local folder nor a {kind} on the Hugging Face hub, or it is private: "
            f"check its name, or log in with `hf auth login` if you have access ({detail})"
        )
    if offline() or any(issubclass(k, (hub.LocalEntryNotFoundError, hub.OfflineModeIsEnabled)) for k in kinds):
        return (
            f"cannot load {where}: the Hugging Face hub is disabled (HF_HUB_OFFLINE is set) and it is not in "
            "the local cache. Download it once where the hub is reachable, into the same HF_HOME (`hf download "
            "REPO --revision REV`, or a whole grid with hydra.sweeper.prefetch=true); the offline demo needs "
            "no hub: `python evaluate.py`"
        )
    if any(issubclass(k, (ConnectionError, TimeoutError, OSError)) for k in kinds) or "connect" in text.lower():
        from huggingface_hub import constants

        return (
            f"cannot load {where}: the Hugging Face hub at {constants.ENDPOINT} is unreachable. Check the "
            "network or HF_ENDPOINT; on nodes without internet, download on the login node first and run with "
            f"HF_HUB_OFFLINE=1 ({detail})"
        )
    return f"failed to load {where}: {detail}"


@dataclass
class Check:
    """The preflight of one (repository, revision) of a grid."""

    repo: str
    revision: str
    kind: str = "model"
    found: Resolved | None = None
    problem: str | None = None  # why it cannot run (missing, no weights, gated, ...); None: found or unverified
    weights: list[str] | None = None  # a model's weight files at the revision; None where not listed (offline)

    @property
    def verified(self) -> bool:
        return self.found is not None and self.found.commit is not None


def hub_revisions(cells: Iterable[Any]) -> list[tuple[str, str, str]]:
    """The distinct (kind, repository, revision) a grid's cells load from the hub, in grid order."""
    seen: dict[tuple[str, str, str], None] = {}
    for cfg in cells:
        repo = hub_id(str(cfg.model.pretrained), cfg.model.demo_size)
        if repo is not None:
            seen[("model", repo, str(cfg.model.revision))] = None
        corpus = cfg.task.get("corpus")
        if corpus is not None and corpus.dataset:
            seen[("dataset", str(corpus.dataset), str(corpus.dataset_revision or "main"))] = None
    return list(seen)


def preflight(cells: Iterable[Any]) -> list[Check]:
    """Check every distinct hub (repository, revision) of `cells` with one ref listing per repository."""
    return check_revisions(hub_revisions(cells))


def check_revisions(revisions: Iterable[tuple[str, str, str]]) -> list[Check]:
    """Check each (kind, repository, revision); a repository's branches are listed once (list_refs caches)."""
    checks = []
    for kind, repo, revision in revisions:
        check = Check(repo, revision, kind)
        try:
            check.found = resolve(repo, revision, kind)
            if kind == "model":
                check.weights = weights_at(repo, check.found)
        except CellError as e:
            check.problem = str(e)
        checks.append(check)
    return checks


def weights_at(repo: str, found: Resolved) -> list[str] | None:
    """The weight files a load of `repo` at `found` reads, from one listing of the revision's files (online) or
    the hub cache's snapshot of it (offline); None offline when no snapshot is cached. No loadable weights: a
    CellError (pythia issues #107, #141: branches without their weights)."""
    if offline():
        snapshot = _cached_snapshot(repo, found.commit)
        if snapshot is None:
            return None
        files = [str(p.relative_to(snapshot)) for p in snapshot.rglob("*") if p.is_file()]
        where = "in the hub cache (HF_HUB_OFFLINE is set; download it with hydra.sweeper.prefetch=true)"
    else:
        files = list_files(repo, found.commit or found.name)
        where = "on the hub"
    chosen = loadable_weights(files)
    if chosen is None:
        shown = ", ".join(sorted(files)[:8]) + (", ..." if len(files) > 8 else "") if files else "no files"
        raise CellError(
            f"{repo}@{found.name} has no loadable weights {where} (model.safetensors, pytorch_model.bin, or "
            f"either sharded with its .index.json); it has: {shown}. Pick another revision"
        )
    return chosen


_files: dict[tuple[str, str], list[str]] = {}  # (repo, revision) -> its files, this process


def list_files(repo: str, revision: str) -> list[str]:
    """Every file of `repo` at `revision`: one hub call per revision (a commit, where known, so it cannot move)."""
    key = (repo, revision)
    if key not in _files:
        from huggingface_hub import HfApi

        try:
            _files[key] = HfApi().list_repo_files(repo, revision=revision)
        except Exception as e:
            raise CellError(explain(e, repo, revision)) from None
    return _files[key]


def _cached_snapshot(repo: str, commit: str | None) -> Path | None:
    """The hub cache's folder of `repo` at `commit`, if it holds one."""
    from huggingface_hub import constants

    if commit is None:
        return None
    folder = Path(constants.HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}" / "snapshots" / commit
    return folder if folder.is_dir() else None


_SHARD = re.compile(r"^(?P<stem>.+)-(?P<i>\d+)-of-(?P<n>\d+)\.(?P<ext>safetensors|bin)$")


def loadable_weights(files: Iterable[str]) -> list[str] | None:
    """The files transformers loads weights from, safetensors preferred: `model.safetensors`, or its index and
    every shard `model-0000i-of-0000n.safetensors`; else the same for `pytorch_model*.bin`. None if neither is
    whole (a shard missing counts as no weights)."""
    names = set(files)
    for single, index in (
        ("model.safetensors", "model.safetensors.index.json"),
        ("pytorch_model.bin", "pytorch_model.bin.index.json"),
    ):
        if single in names:
            return [single]
        if index in names:
            stem, ext = single.rsplit(".", 1)
            shards = [m for name in sorted(names) if (m := _SHARD.match(name)) and (m["stem"], m["ext"]) == (stem, ext)]
            counts = {int(m["n"]) for m in shards}
            if len(counts) == 1 and {int(m["i"]) for m in shards} == set(range(1, counts.pop() + 1)):
                return [index] + [m.string for m in shards]
    return None


def report(checks: Sequence[Check]) -> str:
    """What the preflight found, for the log: missing ones with their nearest, what could not be verified."""
    missing = [c for c in checks if c.problem]
    unverified = [c for c in checks if not c.problem and not c.verified]
    lines = [f"hub preflight: {len(checks)} repository revisions, {len(missing)} missing, {len(unverified)} unverified"]
    lines += [f"  missing: {c.problem}" for c in missing]
    if unverified:
        lines.append(
            "  not verified (HF_HUB_OFFLINE is set and the branch list is not cached): "
            + ", ".join(f"{c.repo}@{c.revision}" for c in unverified)
        )
    return "\n".join(lines)


def missing_cells(cells_revisions: Sequence[Sequence[tuple[str, str, str]]]) -> dict[int, str]:
    """The sweeper's preflight: which cells load a hub revision that does not exist, by index, with the reason.

    `cells_revisions`: each cell's `hub_revisions` (kind, repository, revision). Every distinct one is checked
    with one branch listing per repository. Logs what was checked, what is missing (with the nearest existing
    revisions) and what could not be verified offline."""
    distinct = list(dict.fromkeys(key for keys in cells_revisions for key in keys))
    checks = check_revisions(distinct)
    if checks:
        doubtful = any(c.problem or not c.verified for c in checks)
        log.log(logging.WARNING if doubtful else logging.INFO, report(checks))
    problems = {(c.kind, c.repo, c.revision): c.problem for c in checks if c.problem}
    missing = {}
    for i, keys in enumerate(cells_revisions):
        reasons = [problems[key] for key in keys if key in problems]
        if reasons:
            missing[i] = str(reasons[0])
    return missing
