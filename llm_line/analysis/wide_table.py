"""The wide table of `collect`: one row per checkpoint (model x revision), named and ordered like the paper's
released table, its loss columns filled in one of two conventions (docs/conventions.md).

It holds the naming conventions of the columns: `column_name` (`HellaSwag Loss`, `C4 Validation Loss`,
`MMLU_stem Loss`, `HellaSwag Accuracy (5-shot, seed 1)`), `metric_order` (the released table's order) and the
checkpoint's metadata columns. Its own module: the layout of the released table is one concern, apart from
reading the results (`llm_line.analysis.result_files`) and the long table they come from
(`llm_line.analysis.long_table`).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any

import pandas as pd

from llm_line.evaluation.config import DEFAULT_FEWSHOT_SEED

# The released table's metric names: lm_eval tasks give `{display} Accuracy|Loss|BPB`, corpus cells give
# `{display} Validation Loss|BPB`; these are the metric keys of a result file they come from.
CORPUS_METRICS = {"loss": "Validation Loss", "bpb": "Validation BPB"}


@dataclass(frozen=True)
class Convention:
    """Which numbers fill the wide table's columns."""

    task_metrics: dict[str, str]  # metric key of an lm-eval cell -> its column (`HellaSwag <column>`)
    corpus_method: str  # corpus cells of this method fill `<Corpus> Validation Loss/BPB`


CONVENTIONS = {
    "corrected": Convention({"acc": "Accuracy", "loss": "Loss", "bpb": "BPB"}, "packed"),
    "paper": Convention({"acc": "Accuracy", "loss_paper": "Loss", "bpb": "BPB"}, "chunks"),
}

# Column order of the released table (the ones a collected table can fill), then ours.
META_COLUMNS = ["Name", "Architecture", "Size", "Pretraining Data", "Steps", "Tokenizer", "Tokens"]
EXTRA_COLUMNS = ["Convention", "Revision", "Family", "Parameters", "Non-embedding Parameters", "Resolved Commit"]
PAPER_CORPORA = ["C4", "The Pile UC", "RefineWeb", "Slimpajama", "FineWeb-Edu"]
PAPER_TASKS = [
    "ARC-Challenge",
    "ARC-Easy",
    "HellaSwag",
    "MMLU",
    "Winogrande",
    "PIQA",
    "Social IQa",
    "CommonSenseQA",
    "COPA",
    "OpenBookQA",
]


def column_name(record: dict[str, Any], subtask: str, metric: str, convention: str) -> str | None:
    """The wide-table column of one metric value, or None if the released layout (in this convention) has no
    place for it."""
    display, task = record["display"], record["task"]
    wanted = CONVENTIONS[convention]
    task_metrics = wanted.task_metrics
    if record["kind"] == "corpus":
        in_layout = subtask == task and metric in CORPUS_METRICS and record["corpus_method"] == wanted.corpus_method
        name = f"{display} {CORPUS_METRICS[metric]}" if in_layout else None
    elif metric not in task_metrics:
        name = None
    elif subtask == task:
        name = f"{display} {task_metrics[metric]}"
    elif subtask in record["_subgroups"]:  # mmlu_stem -> MMLU_stem Loss, as in the released table
        suffix = subtask[len(task) + 1 :] if subtask.startswith(task + "_") else subtask
        name = f"{display}_{suffix} {task_metrics[metric]}"
    else:
        name = None  # leaf subtasks (mmlu's 57 subjects) stay in the long table
    if name is not None and record["shots"] != 0:
        seed = record["fewshot_seed"]
        name += (
            f" ({record['shots']}-shot" + (f", seed {seed}" if seed not in (None, DEFAULT_FEWSHOT_SEED) else "") + ")"
        )
    return name


def wide_table(cells: list[dict[str, Any]], long: pd.DataFrame, convention: str = "corrected") -> pd.DataFrame:
    """One row per checkpoint (model, revision), named and ordered like the paper's released table, its loss
    columns in `convention` (corrected or paper)."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {', '.join(CONVENTIONS)}, not {convention!r}")
    if long.empty:
        return pd.DataFrame(columns=META_COLUMNS + EXTRA_COLUMNS)
    keep = [c for c in cells if c["limit"] is None]  # debugging runs (task.limit) stay in the long table
    other = [c for c in keep if c["kind"] == "corpus" and c["corpus_method"] != CONVENTIONS[convention].corpus_method]
    if other:
        print(
            f"note: {len(other)} corpus cells of method {other[0]['corpus_method']} are not {convention}-convention "
            f"validation losses; they are in the long table only (e.g. {other[0]['path']})",
            file=sys.stderr,
        )
    by_path = {c["path"]: c for c in keep}
    # name every (cell, subtask, metric) combination once, then join names onto the long rows
    combos = long[["path", "subtask", "metric"]].drop_duplicates()
    combos = combos[combos["path"].isin(by_path)]
    combos["column"] = [
        column_name(by_path[p], str(s), str(m), convention) for p, s, m in combos.itertuples(index=False)
    ]
    named = long.merge(combos.dropna(subset=["column"]), on=["path", "subtask", "metric"])
    named = named[["model", "revision", "column", "value", "path"]]
    clashes = named.duplicated(["model", "revision", "column"], keep="first")
    if clashes.any():
        for row in named[clashes].itertuples(index=False):
            print(
                f"warning: {row.model}@{row.revision}: column {row.column!r} also comes from {row.path}; "
                "kept the first (two tasks with one display name?)",
                file=sys.stderr,
            )
        named = named[~clashes]
    values = named.pivot(index=["model", "revision"], columns="column", values="value")

    meta = checkpoint_meta(keep).set_index(["model", "revision"])
    wide = meta.join(values, how="left").reset_index()
    wide = wide.rename(columns={"model": "Name", "revision": "Revision"})
    wide["Convention"] = convention
    metric_columns = sorted(values.columns, key=metric_order)
    return wide[META_COLUMNS + metric_columns + EXTRA_COLUMNS].reset_index(drop=True)


def checkpoint_meta(cells: list[dict[str, Any]]) -> pd.DataFrame:
    """The metadata columns of each checkpoint; cells of one checkpoint that disagree are reported."""
    fields = {
        "architecture": "Architecture",
        "size": "Size",
        "pretraining_data": "Pretraining Data",
        "step": "Steps",
        "tokenizer": "Tokenizer",
        "tokens": "Tokens",
        "family": "Family",
        "num_parameters": "Parameters",
        "num_parameters_non_embedding": "Non-embedding Parameters",
        "resolved_commit": "Resolved Commit",
    }
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for record in cells:
        key = (record["model"], record["revision"])
        row = rows.setdefault(key, {"model": key[0], "revision": key[1]})
        for field, column in fields.items():
            value = record[field]
            if value is None:
                continue
            if row.get(column) is None:
                row[column] = value
            elif row[column] != value:
                print(
                    f"warning: {key[0]}@{key[1]}: {column} is {row[column]!r} in one cell but {value!r} in "
                    f"{record['path']}; kept the first",
                    file=sys.stderr,
                )
    frame = pd.DataFrame(list(rows.values()), columns=["model", "revision", *fields.values()])
    for column in ("Size", "Steps", "Tokens", "Parameters", "Non-embedding Parameters"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame.sort_values(["model", "Steps", "revision"], na_position="last")


def metric_order(column: str) -> tuple:
    """Validation losses first, then tasks, each in the released table's order, then anything else."""
    match = re.match(r"^(.*?)(?: \((\d+)-shot(?:, seed \d+)?\))?$", column)
    assert match is not None  # the pattern matches any one-line name
    base, shots = match.groups()
    shots = int(shots or 0)
    for suffix_rank, suffix in enumerate(["Validation Loss", "Validation BPB"]):
        if base.endswith(" " + suffix):
            name = base[: -len(suffix) - 1]
            rank = PAPER_CORPORA.index(name) if name in PAPER_CORPORA else len(PAPER_CORPORA)
            return (0, shots, rank, name, suffix_rank)
    for suffix_rank, suffix in enumerate(["Accuracy", "Loss", "BPB"]):
        if base.endswith(" " + suffix):
            name = base[: -len(suffix) - 1]
            if "_" in name and name.split("_")[0] in PAPER_TASKS:  # MMLU_stem Loss after every task
                return (2, shots, PAPER_TASKS.index(name.split("_")[0]), name, suffix_rank)
            rank = PAPER_TASKS.index(name) if name in PAPER_TASKS else len(PAPER_TASKS)
            return (1, shots, rank, name, suffix_rank)
    return (3, shots, 0, base, 0)
