"""`--average`: a column holding the mean of several losses, and the two averages of the paper's figures.

`--average "NAME=A Loss,B Loss"` adds a new column, the mean of several losses; `--average paper-validation`
and `--average paper-test` are the two averages of the paper's figures (`AVERAGE_PRESETS`). Its own module:
the presets, the spec's syntax and the warning for an average of accuracies belong together, and `figures`
and `panels` build averages without the rest of the table's options.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from llm_line.analysis.column_checks import is_accuracy, listing, loss_values, require_columns

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


def mixed_average(name: str, columns: Sequence[str]) -> str | None:
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
