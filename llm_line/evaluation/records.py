"""Per-document scores of an lm-eval cell, kept beside `result.json` as `documents.parquet`.

`result.json` holds averages; re-deriving another metric (a different loss convention, a subset of documents,
a bootstrap) would otherwise mean scoring the checkpoint again on a GPU. The records keep what lm-eval scored
for every document of every multiple-choice (or loglikelihood) task, one row per document:

| column | type | what |
| --- | --- | --- |
| task | string | the leaf task |
| doc_id | int64 | lm-eval's document index |
| gold | int32 | the correct choice (metrics.gold_index) |
| loglikelihood | list<float64> | per choice, lm-eval's loglikelihood of the continuation |
| is_greedy | list<bool> | per choice, whether it is the greedy continuation |
| tokens | list<int32> | per choice, the continuation's tokens as lm-eval scored it in context |
| bytes | list<int32> | per choice, UTF-8 bytes of the scored text (a context's trailing space included) |
| paper_tokens | list<int32> | per choice, tokens of the answer encoded alone (the paper convention) |
| chars | list<int32> | per choice, characters of the choice text (lm-eval's acc_norm divisor) |

`recompute` turns a records file back into each task's loss, loss_paper, bpb (with stderr), nll, acc and
acc_norm, equal to the task's metrics in `result.json` (tests/test_records.py). The file is written atomically
(llm_line/evaluation/store.py) before `result.json`, so a result's records are whole. Size: see docs/benchmarks.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from llm_line.evaluation import metrics
from llm_line.files import atomic_file

RECORDS = "documents.parquet"

SCHEMA = pa.schema(
    [
        ("task", pa.string()),
        ("doc_id", pa.int64()),
        ("gold", pa.int32()),
        ("loglikelihood", pa.list_(pa.float64())),
        ("is_greedy", pa.list_(pa.bool_())),
        ("tokens", pa.list_(pa.int32())),
        ("bytes", pa.list_(pa.int32())),
        ("paper_tokens", pa.list_(pa.int32())),
        ("chars", pa.list_(pa.int32())),
    ]
)


def document_rows(
    name: str, task: Any, samples: Iterable[dict], tokenization: metrics.Tokenization
) -> list[dict[str, Any]]:
    """One record per document lm-eval scored for `task` (none for generative tasks)."""
    if task.OUTPUT_TYPE not in ("multiple_choice", "loglikelihood"):
        return []
    rows = []
    for sample in samples:
        arguments = [argument[:2] for argument in sample["arguments"]]
        scored = [tokenization.scored_answer(context, continuation) for context, continuation in arguments]
        choices = task.doc_to_choice(sample["doc"]) if task.OUTPUT_TYPE == "multiple_choice" else None
        rows.append(
            {
                "task": name,
                "doc_id": int(sample["doc_id"]),
                "gold": metrics.gold_index(task, sample["doc"]),
                "loglikelihood": [float(resp[0]) for resp in sample["filtered_resps"]],
                "is_greedy": [bool(resp[1]) for resp in sample["filtered_resps"]],
                "tokens": [tokens for _, tokens in scored],
                "bytes": [len(text.encode("utf-8")) for text, _ in scored],
                "paper_tokens": [tokenization.paper_tokens(continuation) for _, continuation in arguments],
                "chars": [len(choice) for choice in choices] if choices else [len(c) for _, c in arguments],
            }
        )
    return rows


def write(path: Path, results: dict[str, Any], tasks: dict[str, Any], tokenization: metrics.Tokenization) -> None:
    """Write the records of every leaf task of an lm-eval run to `path`, atomically."""
    rows = [
        row
        for name, task in tasks.items()
        for row in document_rows(name, task, results["samples"].get(name, []), tokenization)
    ]
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    with atomic_file(path, "wb") as f:
        pq.write_table(table, f, compression="zstd")


def recompute(path: Path) -> dict[str, dict[str, float]]:
    """Each task's answer-loss metrics (metrics.summarize), acc, acc_norm and n_docs from a records file."""
    table = pq.read_table(path).to_pylist()
    out = {}
    for name in dict.fromkeys(row["task"] for row in table):
        rows = [row for row in table if row["task"] == name]
        losses = [
            metrics.AnswerLoss(
                nll=-row["loglikelihood"][row["gold"]],
                tokens=row["tokens"][row["gold"]],
                bytes=row["bytes"][row["gold"]],
                paper_tokens=row["paper_tokens"][row["gold"]],
            )
            for row in rows
        ]
        acc = [float(np.argmax(row["loglikelihood"]) == row["gold"]) for row in rows]
        acc_norm = [
            float(np.argmax(np.array(row["loglikelihood"]) / np.array(row["chars"], dtype=float)) == row["gold"])
            for row in rows
        ]
        out[name] = {
            **metrics.summarize(losses),
            "acc": float(np.mean(acc)),
            "acc_norm": float(np.mean(acc_norm)),
            "n_docs": len(rows),
        }
    return out
