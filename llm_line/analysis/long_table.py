"""The long table of `collect`: one row per metric value of every cell, with the cell's identity, settings
fingerprint (llm_line/evaluation/fingerprint.py) and the checkpoint's metadata repeated, so nothing a cell
measured is lost.

Its own module: what one result becomes (`cell_record`) and the long table built from those records, apart
from the walk (`llm_line.analysis.result_files`) and from the wide table's naming of columns
(`llm_line.analysis.wide_table`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from llm_line.evaluation import fingerprint
from llm_line.evaluation.config import step_of
from llm_line.evaluation.identity import CellId

# Long-table columns that describe the checkpoint and the cell (every metric row repeats them).
CELL_FIELDS = [
    "model",
    "revision",
    "step",
    "task",
    "kind",
    "display",
    "shots",
    "fewshot_seed",
    "limit",
    "family",
    "corpus_method",
    "architecture",
    "size",
    "pretraining_data",
    "tokenizer",
    "tokens_per_step",
    "tokens",
    "num_parameters",
    "num_parameters_non_embedding",
    "resolved_commit",
    "dtype",
    "device",
    "finished",
    "fingerprint",
    "path",
]


def cell_record(result: dict[str, Any], path: Path) -> dict[str, Any]:
    """The long table's description of one cell: identity, kind, settings fingerprint, and the checkpoint's
    metadata."""
    cell = CellId.of_result(result).record()
    settings = fingerprint.of_result(result)
    model = result.get("model") or {}
    meta = model.get("meta") or {}
    task = result.get("task") or {}
    step = step_of(cell["revision"])
    tokens_per_step = meta.get("tokens_per_step")
    tokens = meta.get("tokens")  # what the cell's config resolved; older results: from the step
    if tokens is None and step is not None and tokens_per_step:
        tokens = step * tokens_per_step
    kind = task.get("kind", "lm_eval")
    size = meta.get("parameters") or model.get("num_parameters")
    return {
        "model": cell["model"],
        "revision": str(cell["revision"]),
        "step": step,
        "task": cell["task"],
        "kind": kind,
        "display": task.get("display") or cell["task"],
        "shots": int(cell["shots"]),
        "fewshot_seed": cell["fewshot_seed"],  # None for 0-shot and corpus cells (no examples drawn)
        "limit": cell.get("limit"),
        # results from before corpus methods existed were packed
        "corpus_method": (task.get("settings") or {}).get("method", "packed") if kind == "corpus" else None,
        "family": meta.get("family"),
        "architecture": meta.get("architecture"),
        "size": size,
        "pretraining_data": meta.get("pretraining_data"),
        "tokenizer": meta.get("tokenizer"),
        "tokens_per_step": tokens_per_step,
        "tokens": tokens,
        "num_parameters": model.get("num_parameters"),
        "num_parameters_non_embedding": model.get("num_parameters_non_embedding"),
        "resolved_commit": model.get("resolved_commit"),
        "dtype": model.get("dtype"),
        "device": model.get("device"),
        "finished": (result.get("run") or {}).get("finished"),
        "fingerprint": fingerprint.digest(settings),
        "path": str(path),
        "_settings": settings,
        # not long-table columns: what the wide table needs to name the columns
        "_subgroups": [g for g in (task.get("groups") or {}) if g != cell["task"]],
    }


def long_table(cells, rows_cell, rows_subtask, rows_metric, rows_value) -> pd.DataFrame:
    """One row per metric value, the cell's fields repeated (categoricals keep this cheap)."""
    cell_frame = pd.DataFrame([{k: c[k] for k in CELL_FIELDS} for c in cells], columns=CELL_FIELDS)
    for column in (
        "step",
        "shots",
        "fewshot_seed",
        "limit",
        "tokens_per_step",
        "tokens",
        "size",
        "num_parameters",
        "num_parameters_non_embedding",
    ):
        cell_frame[column] = pd.to_numeric(cell_frame[column], errors="coerce").astype("Int64")
    long = cell_frame.take(rows_cell).reset_index(drop=True)
    long.insert(long.columns.get_loc("limit") + 1, "subtask", pd.Categorical(rows_subtask))
    long.insert(long.columns.get_loc("subtask") + 1, "metric", pd.Categorical(rows_metric))
    long.insert(long.columns.get_loc("metric") + 1, "value", pd.Series(rows_value, dtype="float64"))
    return long
