"""What a loss-to-loss panel is made of, named by its callers: `YSet` (the y of one row or column of panels),
`Law` (one law a figure fitted, with its panel and rows), and the labels of columns (`unit`, `short`).

Its own module: `recipes`, `plot`, `figures` and `compute_figure` name these without drawing anything, and
both the grid (`llm_line.analysis.panels`) and the drawing of one panel (`llm_line.analysis.panel_drawing`)
build on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from llm_line.analysis import colours as palette
from llm_line.analysis.loss_to_loss import LossFit


def unit(column: str) -> str:
    """The axis label of a column, with its unit."""
    if column.endswith("Loss"):
        return f"{column} (nats per token)"
    if column.endswith("BPB"):
        return f"{column} (bits per byte)"
    return column


def short(column: str) -> str:
    """A loss column as a legend names it: "C4 Validation Loss" -> "C4"."""
    for suffix in (" Validation Loss", " Validation BPB", " Loss", " BPB"):
        if column.endswith(suffix):
            return column[: -len(suffix)]
    return column


@dataclass(frozen=True)
class YSet:
    """The y of one row (or column) of panels: one loss column, or several drawn together with their mean."""

    columns: tuple[str, ...]
    title: str | None = None  # row or column title, e.g. "Train-to-Test"
    mean: bool = True  # several columns: also their mean, in black, with its own law

    @property
    def together(self) -> bool:
        return len(self.columns) > 1

    @property
    def mean_column(self) -> str:
        return f"Mean of {self.title or ', '.join(map(short, self.columns))}"

    @property
    def ylabel(self) -> str:
        if not self.together:
            return unit(self.columns[0])
        kinds = {"Loss": "loss (nats per token)", "BPB": "bits per byte"}
        return kinds.get(self.columns[0].rsplit(" ", 1)[-1], "value")


@dataclass
class Law:
    """One law a figure fitted: its panel, the y it was drawn for, the fit, and the rows behind it."""

    panel: str  # "row title · column title" ("" for a figure of one panel)
    fit: LossFit
    rows: pd.DataFrame  # the group's rows in the panel (what E was estimated from)
    label: str = ""  # how the panel names it: the group, the y loss, or "mean"
    colour: tuple = palette.MEAN

    @property
    def drawn(self) -> str:
        return {"ok": "solid", "flagged": "dashed"}.get(self.fit.status, "not drawn")


def ysets(ys: Sequence[YSet | str]) -> list[YSet]:
    return [y if isinstance(y, YSet) else YSet((y,)) for y in ys]
