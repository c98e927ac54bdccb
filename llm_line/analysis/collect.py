"""Collect result files into tables: a long table of every number, and a wide one shaped like the paper's.

    python -m llm_line.analysis.collect results/ -o data/results.csv

walks the results roots for `result.json` (and `failure.json`) files and writes

- `data/results.csv` and `data/results.parquet`: the **wide** table, one row per model checkpoint
  (model x revision) in the layout of the paper's released table (`HellaSwag Accuracy`, `HellaSwag Loss`,
  `HellaSwag BPB`, `C4 Validation Loss`, ..., `Size`, `Tokens`, `Pretraining Data`, `Architecture`,
  `Tokenizer`, `Steps`), plus `Revision`, `Family`, `Parameters`, `Non-embedding Parameters` and
  `Resolved Commit`;
- `data/results_long.parquet` (and `.csv`): the **long** table, one row per (model, revision, task,
  shots, few-shot seed, subtask, metric) with all model metadata and the cell's settings `fingerprint`
  (llm_line/evaluation/fingerprint.py), so nothing a cell measured is lost (mmlu's subjects, acc_norm, stderrs, token
  counts ...). A few-shot column of a non-default seed is named `HellaSwag Accuracy (5-shot, seed 1)`.

The same cell (identity, the few-shot seed included) under two roots is collected once, the later one; the
other is reported as a duplicate, with the settings in which the two differ.

Two conventions (docs/conventions.md) choose which numbers fill the wide table's loss columns, and every row
names its convention in the `Convention` column (the long table keeps every number, both conventions):

- `--convention corrected` (default): "X Loss" is the answer's loss per token it was scored as (`loss`),
  "X Validation Loss" comes from corpus cells of method `packed`;
- `--convention paper`: the released table's conventions, "X Loss" from `loss_paper` and "X Validation Loss"
  from corpus cells of method `chunks` (`+experiment=paper_hf`), so rows line up with the released table.

Corrupt or unreadable result files, folders that cannot be listed and failed cells are skipped and reported
(path and reason) on stderr, never silently; `--strict` then exits 1.
`llm_line.analysis.table.read_table` reads a wide table written here *and* the paper's
released CSV (two header lines, convention `paper`) into the same form, so the analysis runs on either.

Only json parsing per file; the tables are built column-wise at the end, so 10,000 files take seconds.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from llm_line.arguments import output_file, prog
from llm_line.errors import run_command
from llm_line.evaluation import fingerprint, store
from llm_line.evaluation.config import DEFAULT_FEWSHOT_SEED, step_of
from llm_line.evaluation.identity import CellId
from llm_line.files import atomic_file

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


@dataclass
class Skipped:
    """A file that was not collected, and why."""

    path: Path
    kind: str  # failed | corrupt | unreadable | duplicate
    reason: str


@dataclass
class Collection:
    long: pd.DataFrame
    wide: pd.DataFrame
    skipped: list[Skipped]
    n_results: int


def find_run_dirs(roots: Iterable[os.PathLike], skipped: list[Skipped]) -> Iterable[tuple[Path, set[str]]]:
    """Every folder below the roots that holds a result or failure record, with the names it holds.

    A folder that cannot be listed (permissions) is added to `skipped`: it may hold results nobody sees.
    """
    wanted = {store.RESULT, store.FAILURE}

    def unreadable(error: OSError) -> None:
        skipped.append(Skipped(Path(error.filename), "unreadable", f"folder not searched ({error.strerror})"))

    for root in roots:
        root = Path(root).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"results root {root} does not exist or is not a folder")
        for folder, dirs, files in os.walk(root, onerror=unreadable):
            dirs[:] = sorted(d for d in dirs if d != ".hydra")
            found = wanted.intersection(files)
            if found:
                yield Path(folder), found


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


def failure_reason(path: Path) -> str:
    try:
        record = store.read_json(path)
    except store.CorruptResult as e:
        return f"failed; failure record unreadable ({str(e).removeprefix(f'{path}: ')})"
    error = record.get("error") if isinstance(record, dict) else None
    return str(error or "failed (no error recorded)")


def collect(roots: Iterable[os.PathLike], convention: str = "corrected") -> Collection:
    """Read every result below `roots` into the long and wide tables; skipped files are listed, not raised."""
    cells: list[dict[str, Any]] = []
    by_identity: dict[tuple, int] = {}
    skipped: list[Skipped] = []
    rows_cell: list[int] = []
    rows_subtask: list[str] = []
    rows_metric: list[str] = []
    rows_value: list[float] = []
    pending: list[tuple[dict[str, Any], dict[str, Any]]] = []

    for folder, names in find_run_dirs(roots, skipped):
        if store.RESULT not in names:
            skipped.append(Skipped(folder / store.FAILURE, "failed", failure_reason(folder / store.FAILURE)))
            continue
        path = folder / store.RESULT
        try:
            result = store.read_result(path)
            record = cell_record(result, path)
        except store.CorruptResult as e:
            kind = "unreadable" if isinstance(e, store.UnreadableResult) else "corrupt"
            skipped.append(Skipped(path, kind, str(e).removeprefix(f"{path}: ")))
            continue
        identity = tuple(record[k] for k in ("model", "revision", "task", "shots", "fewshot_seed", "limit"))
        if identity in by_identity:  # the same cell under two roots: keep the one that finished last
            other = pending[by_identity[identity]]
            keep_new = str(record["finished"] or "") > str(other[0]["finished"] or "")
            dropped = other[0]["path"] if keep_new else str(path)
            differ = fingerprint.changes(other[0]["_settings"], record["_settings"])
            skipped.append(
                Skipped(
                    Path(dropped),
                    "duplicate",
                    "the same cell also found at "
                    + (str(path) if keep_new else other[0]["path"])
                    + (f", computed with other settings ({'; '.join(differ)})" if differ else "")
                    + "; kept the later one",
                )
            )
            if keep_new:
                pending[by_identity[identity]] = (record, result["metrics"])
            continue
        by_identity[identity] = len(pending)
        pending.append((record, result["metrics"]))

    for index, (record, metrics) in enumerate(pending):
        cells.append(record)
        for subtask, values in metrics.items():
            if not isinstance(values, dict):
                continue
            for metric, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    rows_cell.append(index)
                    rows_subtask.append(subtask)
                    rows_metric.append(metric)
                    rows_value.append(float(value))

    long = long_table(cells, rows_cell, rows_subtask, rows_metric, rows_value)
    return Collection(long=long, wide=wide_table(cells, long, convention), skipped=skipped, n_results=len(cells))


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


def write_tables(collection: Collection, out: Path, long_csv: bool = True) -> list[Path]:
    """Write the wide table to `out` (.csv) and its .parquet twin; the long one to `<stem>_long.*`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    written = []
    wide_csv, wide_parquet = out.with_suffix(".csv"), out.with_suffix(".parquet")
    long_base = out.with_name(out.stem + "_long")
    tables = [
        (wide_csv, collection.wide),
        (wide_parquet, collection.wide),
        (long_base.with_suffix(".parquet"), collection.long),
    ]
    if long_csv:
        tables.append((long_base.with_suffix(".csv"), collection.long))
    for target, table in tables:  # each file is whole or absent, as for results, even with two collects at once
        with atomic_file(target, "wb") as f:
            if target.suffix == ".csv":
                table.to_csv(f, index=False)
            else:
                table.to_parquet(f, index=False)
        written.append(target)
    return written


def report_skipped(skipped: list[Skipped], stream=None) -> None:
    stream = stream or sys.stderr  # looked up per call: whatever stderr is now (redirected, captured)
    for item in skipped:
        print(f"skipped ({item.kind}) {item.path}: {item.reason}", file=stream)
    if skipped:
        counts = {
            kind: sum(s.kind == kind for s in skipped) for kind in ("failed", "corrupt", "unreadable", "duplicate")
        }
        print("skipped " + ", ".join(f"{n} {kind}" for kind, n in counts.items() if n), file=stream)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog("llm_line.analysis.collect"),
        description="Collect result.json files into a wide table (one row per checkpoint, the paper's "
        "layout) and a long table (one row per metric value).",
        epilog="Writes OUT (.csv) and OUT with .parquet, plus <OUT stem>_long.parquet and _long.csv. "
        "Failed, corrupt and unreadable cells (and folders that cannot be listed) are skipped and listed on stderr.",
    )
    parser.add_argument(
        "roots",
        nargs="*",
        default=["results"],
        metavar="RESULTS_ROOT",
        help="folders to search for result.json files (default: results)",
    )
    parser.add_argument(
        "-o",
        "--out",
        default="data/results.csv",
        type=output_file(in_folder="results.csv"),
        help="wide table path (default: data/results.csv; a folder: results.csv inside it)",
    )
    parser.add_argument(
        "--no-long-csv",
        dest="long_csv",
        action="store_false",
        help="write the long table as Parquet only (it can be large)",
    )
    parser.add_argument(
        "--convention",
        choices=list(CONVENTIONS),
        default="corrected",
        help="which numbers fill the wide table's Loss and Validation Loss columns: corrected "
        "(per scored token, packed corpus cells; default) or paper (the released table's: loss_paper, "
        "chunks corpus cells); the long table keeps both. See docs/conventions.md",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 if any file was skipped")
    args = parser.parse_args(argv)
    try:
        collection = collect(args.roots, args.convention)
    except FileNotFoundError as e:
        parser.error(str(e))
    report_skipped(collection.skipped)
    if collection.n_results == 0:
        print(f"error: no valid result.json under {', '.join(map(str, args.roots))}", file=sys.stderr)
        return 1
    written = write_tables(collection, args.out, long_csv=args.long_csv)
    wide = collection.wide
    print(
        f"Collected {collection.n_results} results: {len(wide)} checkpoints x "
        f"{len(wide.columns) - len(META_COLUMNS) - len(EXTRA_COLUMNS)} metric columns, "
        f"{len(collection.long)} metric values; skipped {len(collection.skipped)}"
    )
    for path in written:
        print(f"wrote {path}")
    return 1 if args.strict and collection.skipped else 0


if __name__ == "__main__":
    sys.exit(run_command("python -m llm_line.analysis.collect", main, None))
