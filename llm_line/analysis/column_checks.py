"""What the columns an analysis uses must hold, and the one-line messages when they do not.

The checks a fit needs on its own columns (`loss_values`, `check_convention`) raise `DataError`, one line
naming the column and the row, which the command lines print as their error; `require_columns` names a missing
column with the closest ones; `law_columns` and `infinite_as_missing` report the rows left out (a missing or
infinite value) in one line. Its own module because every step on the rows (reading, `--where`, `--average`,
the fits and figures) raises and reports through these, while none of them needs the others.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

MEASURED = (" Loss", " BPB", " Accuracy")  # column name endings that hold measurements


class DataError(ValueError):
    """The table cannot be analysed as asked; the message names the column and row."""


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


CONVENTION = "Convention"  # paper | corrected: how a loss was computed (collect writes it)


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
