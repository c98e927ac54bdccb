"""Which rows an analysis keeps: `--where`, `--dropna` and the paper's in-domain cut `--in-domain-below`.

- `--where COL=V` / `COL!=V`: numbers compared as numbers, `nan` meaning a missing value; `COL<V`, `COL<=V`,
  `COL>V`, `COL>=V` on numeric columns; `--dropna COL`;
- `--in-domain-below X`: the paper's in-domain cut, each row's own pretraining data's validation loss < X.

Its own module: the parsing of a condition and its messages (a value no row has, a column that is not numeric)
are one concern, apart from reading the tables and from the columns built on them.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import pandas as pd

from llm_line.analysis.column_checks import listing, loss_values, require_columns

COMPARISONS = ("<=", ">=", "!=", "<", ">", "=")  # --where operators, longest first so "<=" is not read as "<"

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
