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

This module holds the command and the one pass over the results (the same cell found twice kept once), and
writes the tables; the walk and the skipped files are `llm_line.analysis.result_files`, what one result
becomes `llm_line.analysis.long_table`, the columns of the released layout `llm_line.analysis.wide_table`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from llm_line.analysis.long_table import cell_record, long_table
from llm_line.analysis.result_files import Skipped, failure_reason, find_run_dirs, report_skipped
from llm_line.analysis.wide_table import CONVENTIONS, EXTRA_COLUMNS, META_COLUMNS, wide_table
from llm_line.arguments import output_file, prog
from llm_line.errors import run_command
from llm_line.evaluation import fingerprint, store
from llm_line.files import atomic_file


@dataclass
class Collection:
    long: pd.DataFrame
    wide: pd.DataFrame
    skipped: list[Skipped]
    n_results: int


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
