"""The prefetch: download what a grid's cells need into the caches, on a login node, before jobs run offline.

Apart from `llm_line.evaluation.hub` because it reaches into lm-eval (each task's data is downloaded by building
the task), while the hub module stays a light leaf that the sweeper and the resume check import.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from llm_line.errors import CellError
from llm_line.evaluation import hub

log = logging.getLogger(__name__)

MODEL_FILES = ["*.json", "*.txt", "*.model", "*.tiktoken", "*.py"]  # config, tokenizer, code; weights: loadable_weights


def fetch(cells: Sequence[Any]) -> None:
    """Download what `cells` need into the caches (HF_HOME): models at their revisions, tokenizers and lm-eval
    task datasets, so that compute nodes can run them with HF_HUB_OFFLINE=1.

    Corpus datasets are streamed, a few thousand documents out of repositories of hundreds of gigabytes
    (C4, FineWeb-Edu 100BT): they are checked by the preflight but not downloaded; the log says so.
    """
    from huggingface_hub import snapshot_download

    if hub.offline():
        raise CellError("prefetch downloads from the hub: unset HF_HUB_OFFLINE (run it on the login node)")
    revisions = hub.hub_revisions(cells)
    for check in hub.check_revisions(revisions):
        if check.kind != "model":
            log.warning(
                "Not downloading dataset %s (a streamed corpus): its cells need the hub, or a local copy "
                "of the selection in task.corpus.path",
                check.repo,
            )
            continue
        if check.problem or check.found is None or check.weights is None:
            raise CellError(check.problem or f"cannot prefetch {check.repo}@{check.revision}")
        log.info("Downloading %s@%s (%s)", check.repo, check.found.name, ", ".join(check.weights))
        snapshot_download(check.repo, revision=check.found.name, allow_patterns=MODEL_FILES + check.weights)
    tokenizers = {str(cfg.model.tokenizer) for cfg in cells if cfg.model.tokenizer}
    for tokenizer in sorted(t for t in tokenizers if hub.hub_id(t)):
        snapshot_download(tokenizer, allow_patterns=MODEL_FILES)
    lm_eval_tasks = {(str(cfg.task.name), cfg.task.include_path) for cfg in cells if cfg.task.get("corpus") is None}
    if lm_eval_tasks:
        from llm_line.evaluation import harness  # heavy: lm_eval indexes the tasks and downloads each task's data

        for name, include_path in sorted(lm_eval_tasks, key=str):
            log.info("Downloading the data of task %s", name)
            harness.load_task(name, include_path)
    log.info(
        "Prefetch done: %d model revisions, %d tasks", sum(k == "model" for k, _, _ in revisions), len(lm_eval_tasks)
    )
