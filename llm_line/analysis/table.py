"""The rows an analysis fits: several tables side by side, row selection, averaged losses, data checks.

`fit`, `plot` and `intervention` read their input through `load`, so every analysis sees the same rows:

- several files (the user's collected results beside the paper's released table) stacked, each row tagged
  with the file it came from in a `Source` column;
- `--average "NAME=A Loss,B Loss"`: a new column, the mean of several losses; `--average paper-validation` and
  `--average paper-test` are the two averages of the paper's figures (`llm_line.analysis.averages`);
- `--where COL=V` / `COL!=V`: numbers compared as numbers, `nan` meaning a missing value; `COL<V`, `COL<=V`,
  `COL>V`, `COL>=V` on numeric columns; `--dropna COL`;
- `--in-domain-below X`: the paper's in-domain cut, each row's own pretraining data's validation loss < X
  (`llm_line.analysis.row_selection`);
- duplicate checkpoints (identical in every measured column) dropped and reported, since a repeated row
  doubles its weight in a fit and narrows its bootstrap intervals.

This module reads the tables, drops the duplicates and holds the options every analysis command shares; the
checks a fit needs on its own columns (`loss_values`, `check_convention`) and their `DataError`, one line
naming the column and the row, which the command lines print as their error, are in
`llm_line.analysis.column_checks`.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from llm_line.analysis.averages import add_average, mixed_average, parse_average
from llm_line.analysis.column_checks import EXAMPLES, MEASURED, DataError, describe_row
from llm_line.analysis.row_selection import in_domain, select
from llm_line.arguments import finite_float

RELEASED_CONVENTION = "paper"  # the paper's released table was written by its original code


def read_tables(paths: Sequence[os.PathLike]) -> pd.DataFrame:
    """Every table in `paths` (collected or the released CSV) stacked, with a `Source` column (the path)."""
    frames = [read_one(path).assign(Source=str(path)) for path in paths]
    return pd.concat(frames, ignore_index=True, sort=False)


def read_table(path: os.PathLike) -> pd.DataFrame:
    """A wide table from `collect` (CSV or Parquet) or the paper's released CSV, in one form.

    The released CSV has two header lines: the second names the six boolean `Intervention` columns
    (Size, Context Length, Optimizer, Architecture, Pretraining Data, Tokenizer); they become
    `Intervention: Size` etc. Numeric columns come back as floats in both forms.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist (write it with `python -m llm_line.analysis.collect`)")
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    with path.open(newline="") as f:
        reader = csv.reader(f)
        first, second = next(reader, []), next(reader, [])
    two_headers = len(first) != len(set(first)) and len(second) == len(first) and second[:1] == [""] and any(second)
    if not two_headers:
        return pd.read_csv(path)
    columns = [f"{top}: {sub}" if sub else top for top, sub in zip(first, second, strict=False)]
    table = pd.read_csv(path, header=None, skiprows=2, names=columns)
    table["Convention"] = RELEASED_CONVENTION
    return table


def read_one(path: os.PathLike) -> pd.DataFrame:
    """One table, refused with one line where it cannot be what a user meant: a folder, an empty file, a
    header without rows, or a CSV cut with another separator (`;` or tab) that reads as a single column."""
    if Path(path).is_dir():
        raise DataError(f"{path} is a folder; give the table file (e.g. {Path(path) / 'results.csv'})")
    try:
        table = read_table(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty table (0 bytes); write it with `llm-line collect`") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable CSV table ({str(e).splitlines()[0]})") from None
    except ValueError as e:  # pyarrow's ArrowInvalid: a .parquet file that is not one, or is cut short
        raise DataError(f"{path}: not a readable table ({str(e).splitlines()[0]})") from None
    if len(table.columns) == 1:
        separator = next(
            (name for sep, name in ((";", "semicolons"), ("\t", "tabs")) if sep in str(table.columns[0])), None
        )
        if separator:
            raise DataError(
                f"{path}: its columns are separated by {separator}, not commas; save it as a comma-separated CSV "
                "(e.g. pandas: df.to_csv(path))"
            )
    if table.empty:
        raise DataError(f"{path}: empty table (a header without rows); collect results into it first")
    return table


def drop_duplicates(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The table without repeated checkpoints, and the rows dropped.

    Two rows are one checkpoint when they agree in every measured column (losses, BPB, accuracies) and
    measure something. Of a repeated checkpoint the row with the most filled-in columns is kept (the
    released table's FineWeb-Edu row without `Steps` repeats the step-130000 row, which is kept).
    """
    measured = [c for c in table.columns if str(c).endswith(MEASURED)]
    if not measured:
        return table, table.iloc[0:0]
    has_values = table[measured].notna().any(axis=1)
    filled = table.notna().sum(axis=1)
    order = filled.sort_values(ascending=False, kind="stable").index
    repeated = table.loc[order, measured].duplicated(keep="first") & has_values.loc[order]
    dropped = repeated[repeated].index
    return table.drop(index=dropped), table.loc[sorted(dropped)]


def load(
    paths: Sequence[os.PathLike],
    *,
    where: Sequence[str] = (),
    dropna: Sequence[str] = (),
    average: Sequence[str] = (),
    in_domain_below: float | None = None,
    keep_duplicates: bool = False,
    report=print,
) -> pd.DataFrame:
    """The rows an analysis uses (with the `average` columns built); reports the duplicates it drops."""
    table = read_tables(paths)
    for spec in average:
        table, name = add_average(table, spec)
        mixed = mixed_average(name, parse_average(spec)[1])
        if mixed:
            report(mixed)
    table = select(table, where, dropna)
    if in_domain_below is not None:
        table = in_domain(table, in_domain_below, report)
    if table.empty:
        asked = [f"--where {w}" for w in where] + [f"--dropna {d}" for d in dropna]
        asked += [f"--in-domain-below {in_domain_below:g}"] if in_domain_below is not None else []
        raise KeyError(f"no rows left after {' '.join(asked)}: no row meets all of them")
    if not keep_duplicates:
        table, dropped = drop_duplicates(table)
        if len(dropped):
            report(
                f"dropped {len(dropped)} duplicate row(s) (same values in every measured column as a row "
                f"kept; --keep-duplicates keeps them): "
                + "; ".join(describe_row(dropped, i) for i in dropped.index[:EXAMPLES])
                + ("; ..." if len(dropped) > EXAMPLES else "")
            )
    return table


class _Tables(argparse.Action):
    """`--data A B --data C`: every table named, in order; the default only where --data is not given. A table
    named twice (also as another path to the same file) is refused."""

    def __call__(self, parser, namespace, values, option_string=None):
        given = getattr(namespace, self.dest)
        tables = (given if given is not self.default else []) + list(values or [])
        seen = set()
        for path in tables:
            if Path(path).resolve() in seen:
                raise argparse.ArgumentError(self, f"{path} is named twice; each of its rows would count twice")
            seen.add(Path(path).resolve())
        setattr(namespace, self.dest, tables)


def add_arguments(parser) -> None:
    """The table options every analysis command shares."""
    parser.add_argument(
        "--data",
        nargs="+",
        action=_Tables,
        default=["data/results.csv"],
        help="wide table(s) (.csv or .parquet; collected, or the paper's released CSV); several "
        "(--data A B or --data A --data B) are stacked with a Source column (default data/results.csv)",
    )
    parser.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="COL=V[,V]",
        help="keep rows whose COL is one of the values (COL!=V drops them; V=nan means "
        'missing; numbers compare as numbers; "COL<V", <=, >, >= on numeric columns); repeatable',
    )
    parser.add_argument(
        "--in-domain-below",
        type=finite_float,
        metavar="X",
        help="the paper's in-domain cut: keep rows whose validation loss on their own pretraining data is "
        "below X (The Pile, The Pile Deduped: The Pile UC); the paper's figures use 4 and 4.5",
    )
    parser.add_argument(
        "--dropna", action="append", default=[], metavar="COL", help="drop rows with no value in COL; repeatable"
    )
    parser.add_argument(
        "--average",
        action="append",
        default=[],
        metavar="[NAME=]A,B,...",
        help="add a column NAME holding the mean of the loss columns A, B, ... (default name "
        '"Mean(A, B)"); use it as --x or --y; repeatable. Presets: paper-validation (The Pile UC, RefineWeb, '
        "Slimpajama, C4), paper-test (the paper's 7 tasks)",
    )
    parser.add_argument(
        "--keep-duplicates",
        action="store_true",
        help="keep rows that repeat another row's measurements (dropped and reported by default)",
    )


def to_stderr(text: str) -> None:
    """How the commands report what they leave out or doubt: on stderr, beside (not inside) their results."""
    print(text, file=sys.stderr)


def message(error: Exception) -> str:
    """The one line of an error the commands print: a KeyError's text without the quotes `str` adds."""
    return str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)


def load_from_args(args, report=print) -> pd.DataFrame:
    return load(
        args.data,
        where=args.where,
        dropna=args.dropna,
        average=args.average,
        in_domain_below=args.in_domain_below,
        keep_duplicates=args.keep_duplicates,
        report=report,
    )
