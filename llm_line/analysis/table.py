"""The rows an analysis fits: several tables side by side, row selection, averaged losses, data checks.

`fit`, `plot` and `intervention` read their input through `load`, so every analysis sees the same rows:

- several files (the user's collected results beside the paper's released table) stacked, each row tagged
  with the file it came from in a `Source` column;
- `--average "NAME=A Loss,B Loss"`: a new column, the mean of several losses; `--average paper-validation` and
  `--average paper-test` are the two averages of the paper's figures (`AVERAGE_PRESETS`);
- `--where COL=V` / `COL!=V`: numbers compared as numbers, `nan` meaning a missing value; `COL<V`, `COL<=V`,
  `COL>V`, `COL>=V` on numeric columns; `--dropna COL`;
- `--in-domain-below X`: the paper's in-domain cut, each row's own pretraining data's validation loss < X;
- duplicate checkpoints (identical in every measured column) dropped and reported, since a repeated row
  doubles its weight in a fit and narrows its bootstrap intervals.

The checks a fit needs on its own columns (`loss_values`, `check_convention`) raise `DataError`, one line
naming the column and the row, which the command lines print as their error.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from llm_line.arguments import finite_float

RELEASED_CONVENTION = "paper"  # the paper's released table was written by its original code
MEASURED = (" Loss", " BPB", " Accuracy")  # column name endings that hold measurements
COMPARISONS = ("<=", ">=", "!=", "<", ">", "=")  # --where operators, longest first so "<=" is not read as "<"

# The two averages of the paper's figures (brendel-group/llm-line, figures/figs.ipynb): the validation average
# leaves out FineWeb-Edu (the usual x-axis), the test average is the 7 tasks of the notebook (CommonSenseQA,
# Social IQa and MMLU commented out there). Each column is named for what it averages.
AVERAGE_PRESETS = {
    "paper-validation": (
        "Mean Validation Loss (The Pile UC, RefineWeb, Slimpajama, C4)",
        (
            "The Pile UC Validation Loss",
            "RefineWeb Validation Loss",
            "Slimpajama Validation Loss",
            "C4 Validation Loss",
        ),
    ),
    "paper-test": (
        "Mean Task Loss (ARC-C, ARC-E, OpenBookQA, PIQA, COPA, Winogrande, HellaSwag)",
        (
            "ARC-Challenge Loss",
            "ARC-Easy Loss",
            "OpenBookQA Loss",
            "PIQA Loss",
            "COPA Loss",
            "Winogrande Loss",
            "HellaSwag Loss",
        ),
    ),
}
# Pretraining data (lower case) -> the validation loss column of its own data (the released table's names). The
# original code scores The Pile and The Pile Deduped on The Pile UC's validation set.
IN_DOMAIN_COLUMNS = {
    "c4": "C4 Validation Loss",
    "fineweb-edu": "FineWeb-Edu Validation Loss",
    "the pile": "The Pile UC Validation Loss",
    "the pile deduped": "The Pile UC Validation Loss",
    "the pile uc": "The Pile UC Validation Loss",
    "refinedweb": "RefineWeb Validation Loss",
    "slimpajama": "Slimpajama Validation Loss",
}


def in_domain_column(pretraining_data: object) -> str:
    """The validation loss column of a pretraining data set's own data (`<data> Validation Loss` if unlisted)."""
    data = str(pretraining_data).strip()
    return IN_DOMAIN_COLUMNS.get(data.lower(), f"{data} Validation Loss")


CONVENTION = "Convention"  # paper | corrected: how a loss was computed (collect writes it)


class DataError(ValueError):
    """The table cannot be analysed as asked; the message names the column and row."""


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


# What a missing column's message lists: label columns for the options that group, every column for those that
# select rows, numbers for model sizes and token counts, measurements for the rest (--x, --y, --average: losses).
LABEL_OPTIONS = ("--group", "--marker", "--row", "--col", "--run-col")
ANY_OPTIONS = ("--where", "--dropna")
COUNT_OPTIONS = ("--size-col", "--tokens-col")  # model sizes and token counts: numbers, not measurements
SHOWN = 12  # names a message lists before "and N more"
EXAMPLES = 3  # rows a report names
MISSING = "missing (empty or nan)"


def listing(names: Sequence[object], shown: int = SHOWN) -> str:
    """Names as a message lists them: quoted, the first `shown`, then how many more."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(repr(str(n)) for n in names[:shown]) + more


def require_columns(table: pd.DataFrame, columns: Sequence[str], option: str | None = None) -> None:
    """A KeyError for the first of `columns` the table lacks: the option that asked for it, the closest
    names, and the columns it can be (labels for `--group`-like options, measurements for `--x`-like ones)."""
    for column in columns:
        if column in table.columns:
            continue
        names = [str(c) for c in table.columns]
        if option is None or option in ANY_OPTIONS:
            kind, choices = "the columns", names
        elif option in LABEL_OPTIONS:
            kind, choices = f"columns for {option}", [c for c in names if not c.endswith(MEASURED)]
        elif option in COUNT_OPTIONS:
            numeric = [c for c in names if pd.api.types.is_numeric_dtype(table[c]) and not c.endswith(MEASURED)]
            kind, choices = f"numeric columns for {option}", numeric
        else:
            numeric = [c for c in names if pd.api.types.is_numeric_dtype(table[c])]
            kind, choices = f"columns for {option}", [c for c in numeric if c.endswith(MEASURED)] or numeric
        close = difflib.get_close_matches(column, choices, n=3, cutoff=0.5)
        asked = (f"{option}: " if option else "") + f"no column {column!r} in the table"
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        if choices:
            hint += f" {kind[0].upper()}{kind[1:]}" if close else f"; {kind}"
            hint += f": {listing(choices)}"
        raise KeyError(asked + hint)


def _matches(column: pd.Series, value: str) -> pd.Series:
    """Where `column` equals `value`: `nan` (or empty) matches missing values; numbers compare as numbers,
    the rest (text, True/False) as text."""
    if value.lower() in ("nan", ""):
        return column.isna()
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        try:
            return column == float(value)
        except ValueError:
            return pd.Series(False, index=column.index)
    return column.astype(str) == value


def _split_condition(condition: str) -> tuple[str, str, str]:
    """(column, operator, value) of a --where condition: the operator that appears first, longest if tied."""
    found = [(condition.find(op), -len(op), op) for op in COMPARISONS if op in condition]
    if not found:
        raise KeyError(f"--where {condition!r} is not COLUMN=VALUE, COLUMN!=VALUE or COLUMN<VALUE (<, <=, >, >=)")
    position, _, op = min(found)
    return condition[:position].strip(), op, condition[position + len(op) :].strip()


def _compare(column: pd.Series, name: str, op: str, value: str) -> pd.Series:
    """Where the numeric `column` is `op` the number `value`; a missing value never matches."""
    try:
        bound = float(value)
    except ValueError:
        raise KeyError(f"--where {name}{op}{value}: {value!r} is not a number") from None
    numbers = pd.to_numeric(column, errors="coerce")
    if numbers.isna().sum() > column.isna().sum():
        raise KeyError(f"--where {name}{op}{value}: column {name!r} is not numeric")
    return {"<": numbers < bound, "<=": numbers <= bound, ">": numbers > bound, ">=": numbers >= bound}[op]


def _no_such_value(column: pd.Series, name: str, op: str, value: str) -> str:
    """Why a --where value is refused: no row of the table has it (a typo would drop or keep rows silently)."""
    present = sorted(column.dropna().astype(str).unique())
    close = difflib.get_close_matches(value, present, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(map(repr, close))}? Its values: " if close else "; its values: "
    return f"--where {name}{op}{value}: no row has {name} = {value!r}{hint}{listing(present)}"


def select(table: pd.DataFrame, where: Sequence[str] = (), dropna: Sequence[str] = ()) -> pd.DataFrame:
    """Rows matching every `COLUMN=VALUE[,VALUE...]`, none of `COLUMN!=VALUE[,...]` and every numeric
    comparison `COLUMN<VALUE` (<, <=, >, >=), with `dropna` filled."""
    mask = pd.Series(True, index=table.index)
    for condition in where:
        column, op, values = _split_condition(condition)
        require_columns(table, [column], "--where")
        if op in ("<", "<=", ">", ">="):
            mask &= _compare(table[column], column, op, values)
            continue
        hit = pd.Series(False, index=table.index)
        for value in values.split(","):
            matches = _matches(table[column], value.strip())
            if not matches.any() and value.strip().lower() not in ("nan", ""):
                raise KeyError(_no_such_value(table[column], column, op, value.strip()))
            hit |= matches
        mask &= ~hit if op == "!=" else hit
    require_columns(table, list(dropna), "--dropna")
    mask &= table[list(dropna)].notna().all(axis=1)
    return table[mask]


def in_domain(table: pd.DataFrame, below: float, report=print) -> pd.DataFrame:
    """The paper's in-domain cut: rows whose validation loss on their own pretraining data is below `below`.

    The Pile and The Pile Deduped use The Pile UC's validation loss, as the original code does. Rows whose
    pretraining data has no validation column in the table cannot be judged and are dropped, and reported.
    """
    require_columns(table, ["Pretraining Data"], "--in-domain-below")
    keep = pd.Series(False, index=table.index)
    unjudged = []
    for data, rows in table.groupby(table["Pretraining Data"].astype(str), sort=True):
        column = in_domain_column(data)
        if column not in table.columns:
            unjudged.append(f"{data} ({len(rows)} rows, no {column!r})")
            continue
        keep[rows.index] = loss_values(rows, column) < below
    if unjudged:
        report(
            f"--in-domain-below {below:g}: dropped rows whose pretraining data has no validation loss: "
            + "; ".join(unjudged)
        )
    return table[keep]


def parse_average(spec: str) -> tuple[str, list[str]]:
    """(name, columns) of an `--average` spec: `NAME=A,B,...`, just `A,B,...` (named `Mean(A, B)`), or the
    name of a preset (`AVERAGE_PRESETS`: `paper-validation`, `paper-test`)."""
    if spec.strip() in AVERAGE_PRESETS:
        preset_name, preset_columns = AVERAGE_PRESETS[spec.strip()]
        return preset_name, list(preset_columns)
    name, sep, columns_text = spec.partition("=")
    if not sep:
        name, columns_text = "", spec
    columns = [c.strip() for c in columns_text.split(",") if c.strip()]
    if len(columns) < 2:
        raise KeyError(f"--average {spec!r} names {len(columns)} column(s); give two or more, comma-separated")
    return name.strip() or f"Mean({', '.join(columns)})", columns


def add_average(table: pd.DataFrame, spec: str) -> tuple[pd.DataFrame, str]:
    """A column holding the mean of several loss columns (`spec`: see `parse_average`).

    The mean is taken only where every averaged column has a value, so no row is an average of fewer losses.
    A name the table already has is refused: the average would silently replace that column's measurements.
    """
    name, columns = parse_average(spec)
    require_columns(table, columns, "--average")
    if name in table.columns:
        raise KeyError(
            f"--average {spec!r}: the table already has a column {name!r}, which the average would replace; "
            f"give the average another name (--average 'Mean {name}={','.join(columns)}')"
        )
    values = pd.concat([loss_values(table, c) for c in columns], axis=1)
    return table.assign(**{name: values.mean(axis=1, skipna=False)}), name


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


def describe_row(table: pd.DataFrame, index) -> str:
    """How an error names a row: its position and, where the table has them, its name and steps."""
    row = table.loc[index]
    label = f"row {index}"
    for column in ("Name", "Steps", "Source"):
        if column in table.columns and pd.notna(row[column]):
            label += f" ({column} {row[column]})" if column != "Name" else f" ({row[column]})"
    return label


def loss_values(table: pd.DataFrame, column: str) -> pd.Series:
    """The column as non-negative floats (missing = NaN); a text value or a negative loss is a DataError."""
    require_columns(table, [column])
    values = pd.to_numeric(table[column], errors="coerce")
    text = values.isna() & table[column].notna()
    if text.any():
        index = text[text].index[0]
        raise DataError(
            f"column {column!r} holds the text {table.at[index, column]!r} in "
            f"{describe_row(table, index)}: a loss must be a number ({int(text.sum())} such row(s))"
        )
    negative = values < 0
    if negative.any():
        index = negative[negative].index[0]
        raise DataError(
            f"column {column!r} holds the negative loss {values[index]:g} in "
            f"{describe_row(table, index)}: losses are ≥ 0 ({int(negative.sum())} such row(s))"
        )
    return values.astype(float)


ACCURACY = re.compile(r"(?<![a-z])acc", re.IGNORECASE)  # acc, acc_norm, acc_piqa, PIQA Accuracy, Mean Accuracy


def is_accuracy(column: str) -> bool:
    """Whether a column's name says it holds accuracies (which rise as models improve), not losses."""
    return bool(ACCURACY.search(str(column)))


def _accuracy_as_loss(table: pd.DataFrame, option: str, column: str) -> str:
    """The warning for an accuracy column fitted as a loss: why, and the task's loss column where there is one."""
    values = pd.to_numeric(table[column], errors="coerce")
    loss = re.sub(r"(?i)(?<![a-z])acc[a-z_]*", "Loss", str(column))
    fix = f"use its loss column ({loss!r})" if loss in table.columns and loss != column else "use a loss column"
    return (
        f"warning: {option} {column!r} looks like an accuracy, not a loss (its name; values "
        f"{values.min():.3g} to {values.max():.3g}): the law L_y = K (L_x - E_x)^κ + E_y is for losses that fall "
        f"toward an irreducible E as models improve, while an accuracy rises; {fix}"
    )


def _mixed_average(name: str, columns: Sequence[str]) -> str | None:
    """The warning for an `--average` over accuracies, or over accuracies and losses together, or None."""
    accuracies = [c for c in columns if is_accuracy(c)]
    if not accuracies:
        return None
    losses = [c for c in columns if not is_accuracy(c)]
    if losses:
        return (
            f"warning: --average {name!r} averages the accuracy column(s) {listing(accuracies)} with the "
            f"loss(es) {listing(losses)}: an accuracy rises as a loss falls, so their mean measures neither"
        )
    return (
        f"warning: --average {name!r} is a mean of accuracies ({listing(accuracies)}), not a loss: fitted as "
        "one, its law and E mean nothing; average the tasks' loss columns"
    )


def _example(table: pd.DataFrame, index) -> str:
    """A row as a report names it: the model (and step), or its position."""
    row = table.loc[index]
    name = str(row["Name"]) if "Name" in table.columns and pd.notna(row["Name"]) else f"row {index}"
    if "Steps" in table.columns and pd.notna(row["Steps"]):
        name += f" at step {row['Steps']:g}" if isinstance(row["Steps"], float) else f" at step {row['Steps']}"
    return name


def law_columns(table: pd.DataFrame, losses: Sequence[tuple[str, str]], report=print) -> pd.DataFrame:
    """The table with the columns a law is fitted on (`losses`: (option, column) pairs) checked as losses.

    A column missing from the table is a KeyError naming the option; a text or negative value a DataError
    (`loss_values`). A column whose name says accuracy is fitted, with a warning. Infinite values are made
    missing, so every step (the fit, the axes of a plot, the offsets) leaves them out alike, and the rows left
    out (a missing or infinite value) are reported in one line: how many per column, and a few of them.
    """
    for option, column in losses:
        require_columns(table, [column], option)
    notes = []
    left_out = pd.Series(False, index=table.index)
    table = table.copy()
    for column in dict.fromkeys(column for _, column in losses):
        values = loss_values(table, column)
        infinite, missing = np.isinf(values), values.isna()
        notes += [_rows_note(table, column, what, rows) for what, rows in (("inf", infinite), (MISSING, missing))]
        table[column] = values.where(~infinite)
        left_out |= infinite | missing
    for option, column in dict.fromkeys(losses):
        if is_accuracy(column):
            report(_accuracy_as_loss(table, option, column))
    if any(notes):
        report(
            f"warning: {int(left_out.sum())} of {len(table)} rows lack a finite value, left out of each law on "
            f"that column: {'; '.join(filter(None, notes))}"
        )
    return table


def infinite_as_missing(table: pd.DataFrame, report=print) -> pd.DataFrame:
    """The table with every infinite measurement made missing, reported in one line: for `figures`, whose
    recipes each choose their columns (and say in the index what they miss)."""
    measured = [c for c in table.columns if str(c).endswith(MEASURED) and pd.api.types.is_numeric_dtype(table[c])]
    infinite = np.isinf(table[measured])
    if not infinite.any().any():
        return table
    notes = [_rows_note(table, c, "inf", infinite[c]) for c in measured]
    report(
        f"warning: {int(infinite.any(axis=1).sum())} of {len(table)} rows hold an infinite value, left out like "
        f"a missing one: {'; '.join(filter(None, notes))}"
    )
    return table.assign(**{c: table[c].where(~infinite[c]) for c in measured})


def _rows_note(table: pd.DataFrame, column: str, what: str, rows: pd.Series) -> str:
    """How a report names the rows of one column left out: `'y' inf in 5 (m1, m2, m3, ...)`; "" for none."""
    if not rows.any():
        return ""
    names = [_example(table, i) for i in rows[rows].index[:EXAMPLES]]
    more = ", ..." if rows.sum() > EXAMPLES else ""
    return f"{column!r} {what} in {int(rows.sum())} ({', '.join(names)}{more})"


def check_convention(rows: pd.DataFrame, group: str) -> None:
    """Refuse a group whose rows mix loss conventions (`paper` and `corrected`): their losses differ by design.

    Rows without a convention (no column, or empty) are unknown and allowed.
    """
    if CONVENTION not in rows.columns:
        return
    known = sorted(rows[CONVENTION].dropna().astype(str).unique())
    if len(known) > 1:
        raise DataError(
            f"group {group!r} mixes rows of {CONVENTION} {' and '.join(known)}: their losses are "
            f"computed differently; fit them apart (--where {CONVENTION}={known[0]}, or "
            f"--group {CONVENTION})"
        )


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
        mixed = _mixed_average(name, parse_average(spec)[1])
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
