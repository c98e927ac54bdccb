"""The building blocks of every loss-to-loss figure: a grid of panels, each with its points and fitted laws.

`grid(table, x, ys, row=..., col=..., group=..., marker=...)` draws

- **y losses**: each entry of `ys` is a `YSet`: one loss column (coloured by group), or several drawn in one
  panel (colour per y loss, from the fixed palette) with their mean in black, each with its own law;
- **rows and columns**: `row` / `col` facet the rows of the table by the values of one or more columns
  (titles "Llama / gpt2-HF"), or hold the y sets (`"y"`); the x axis is shared, the y axis along a row of
  the same y; with neither, the y sets wrap into up to three columns;
- **groups**: `group` is one or more columns; every combination of their values gets one law per panel and
  one fixed colour (`llm_line.analysis.colours`); a single numeric group column (model size, context length) is
  coloured on a continuous scale with a colour bar instead;
- **laws** (same fit as `llm-line fit`, E per group and loss from the compute-to-loss fit): drawn faint
  behind their points, dotted where extrapolated, a 95% bootstrap band with `n_boot > 0`. A flagged law is
  drawn dashed and its reason is in the legend; a group without a law says why in the legend. Nothing is
  hidden, and no note sits on the panels: the legend stands beside them.

It returns the figure and every `Law` it fitted (panel, fit, the rows it was fitted on), which `figures`
lists in its index and whose E the compute-to-loss figure shows.

The parts live apart: what a panel is made of (`YSet`, `Law`, `unit`, `short`) in
`llm_line.analysis.panel_parts`, one panel drawn in `llm_line.analysis.panel_drawing`, the legend in
`llm_line.analysis.panel_legend`; this module lays the panels out in a grid.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Literal

import pandas as pd

from llm_line.analysis import colours as palette
from llm_line.analysis.column_checks import require_columns
from llm_line.analysis.panel_drawing import Panel, draw_panel, point_range
from llm_line.analysis.panel_legend import Legend
from llm_line.analysis.panel_parts import Law, YSet, unit, ysets

MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h"]
Facet = str | Sequence[str] | None  # column name(s), or "y" for the y sets


def combined(table: pd.DataFrame, columns: Sequence[str]) -> tuple[pd.DataFrame, str | None]:
    """The table with one label column for several group or facet columns ("A / B"), and its name."""
    columns = list(columns)
    if not columns:
        return table, None
    if len(columns) == 1:
        return table, columns[0]
    require_columns(table, columns)
    name = " / ".join(columns)
    parts = [table[c].map(lambda v, c=c: f"(no {c})" if pd.isna(v) else _text(v)) for c in columns]
    label = parts[0].str.cat(parts[1:], sep=" / ")
    return table.assign(**{name: label}), name


def _text(value) -> str:
    """A facet or group value as a title shows it: 3e-4, 2048, Llama."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.2g}"
    return str(value)


def _as_list(value: str | Sequence[str] | None) -> list[str]:
    if value is None or value == "":
        return []
    return [value] if isinstance(value, str) else list(value)


def _limits(values: pd.Series) -> tuple[float, float]:
    values = values.dropna()
    if values.empty:
        return 0.0, 1.0
    lo, hi = float(values.min()), float(values.max())
    pad = 0.05 * (hi - lo) if hi > lo else 0.05 * max(abs(hi), 1.0)
    return lo - pad, hi + pad


def grid(
    table: pd.DataFrame,
    x: str,
    ys: Sequence[YSet | str],
    *,
    row: Facet = None,
    col: Facet = None,
    group: str | Sequence[str] | None = "Pretraining Data",
    marker: str | None = "Architecture",
    continuous: bool | None = None,
    min_groups: int = 1,
    law: dict[str, Any] | None = None,
    title: str | None = None,
    size_col: str = "Size",
    tokens_col: str = "Tokens",
    progress: bool = False,
):
    """The figure and every law fitted in it (see the module docstring); raises KeyError for a missing column.

    `continuous` colours a single numeric group column on a scale (default: when it is numeric);
    `min_groups` drops facet values with fewer groups than that (an intervention needs two to compare).
    """
    import matplotlib.pyplot as plt

    sets = ysets(ys)
    rows_spec, cols_spec = _as_list(row), _as_list(col)
    if len(sets) > 1 and "y" not in rows_spec + cols_spec:
        if rows_spec and not cols_spec:
            cols_spec = ["y"]
        elif cols_spec and not rows_spec:
            rows_spec = ["y"]
        elif rows_spec and cols_spec:
            raise KeyError("several y sets need row or col to be 'y' when both facet by columns")
    require_columns(table, [x], "--x")
    require_columns(table, list(dict.fromkeys(c for s in sets for c in s.columns)), "--y")
    require_columns(table, _as_list(group), "--group")
    require_columns(table, _as_list(marker), "--marker")
    table, group_col = combined(table, _as_list(group))
    table = table[table[x].notna()]
    if continuous is None:
        continuous = (
            len(_as_list(group)) == 1
            and pd.api.types.is_numeric_dtype(table[group_col])
            and not pd.api.types.is_bool_dtype(table[group_col])
        )
    scale = None
    if continuous and group_col:
        scale = palette.Scale.over(str(group_col), pd.to_numeric(table[group_col], errors="coerce"))
        table = table.assign(**{group_col: table[group_col].map(lambda v: v if pd.isna(v) else _text(v))})

    def facets(spec: list[str], option: str) -> list[tuple[str, pd.DataFrame | None, YSet | None]]:
        if not spec:
            return [("", None, None)]
        if spec == ["y"]:
            return [(s.title or (s.columns[0] if not s.together else ""), None, s) for s in sets]
        require_columns(table, spec, option)
        framed, name = combined(table, spec)
        assert name is not None
        out = []
        for value, rows in framed.groupby(framed[name].map(lambda v: "(none)" if pd.isna(v) else _text(v))):
            has_y = rows[[c for s in sets for c in s.columns]].notna().any(axis=1)
            n_groups = rows.loc[has_y, group_col].nunique(dropna=False) if group_col else 1
            if has_y.any() and n_groups >= min_groups:
                out.append((str(value), rows.index, None))
        if not out:
            raise KeyError(f"no value of {' / '.join(spec)} has {min_groups} or more groups with both losses")
        return out  # type: ignore[return-value]

    row_items, col_items = facets(rows_spec, "--row"), facets(cols_spec, "--col")
    panels: list[Panel] = []
    if not rows_spec and not cols_spec:  # wrap the y sets
        ncols = min(len(sets), 3)
        for i, s in enumerate(sets):
            panels.append(Panel(i // ncols, i % ncols, table, s, s.title or (s.columns[0] if len(sets) > 1 else "")))
        nrows = math.ceil(len(sets) / ncols)
    else:
        ncols, nrows = len(col_items), len(row_items)
        for r, (r_title, r_index, r_set) in enumerate(row_items):
            for c, (c_title, c_index, c_set) in enumerate(col_items):
                rows = table
                for index in (r_index, c_index):
                    if index is not None:
                        rows = rows.loc[rows.index.intersection(index)]
                s = r_set or c_set or sets[0]
                panels.append(Panel(r, c, rows, s, " · ".join(t for t in (r_title, c_title) if t)))
    share_y: Literal["row"] | bool = "row" if "y" in rows_spec or len(sets) == 1 else False
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(4.2 * ncols + 1.0, 3.7 * nrows),
        squeeze=False,
        sharex=True,
        sharey=share_y,
        layout="constrained",
    )
    with_y = table[table[[c for s in sets for c in s.columns]].notna().any(axis=1)]
    kinds = sorted(with_y[marker].dropna().astype(str).unique()) if marker else []
    markers = {k: MARKERS[i % len(MARKERS)] for i, k in enumerate(kinds)}
    xlim = _limits(table[x])
    legend = Legend()
    laws: list[Law] = []
    y_ranges: dict[object, list[float]] = defaultdict(list)
    for p in panels:
        ax = axes[p.r, p.c]
        laws += draw_panel(
            ax,
            p,
            x,
            group_col,
            marker,
            markers,
            scale,
            xlim,
            legend,
            {"size_col": size_col, "tokens_col": tokens_col, "n_boot": 0, "progress": progress, **(law or {})},
        )
        ax.set_xlim(xlim)
        y_ranges[p.r if share_y else (p.r, p.c)].extend(point_range(ax))
        if p.r == nrows - 1 or not (rows_spec or cols_spec):
            ax.set_xlabel(unit(x))
        if p.c == 0 or not share_y:
            ax.set_ylabel(p.yset.ylabel)
        if p.r == 0 and cols_spec:
            ax.set_title(col_items[p.c][0], fontweight="bold", fontsize=10)
        elif not (rows_spec or cols_spec) and p.title:
            ax.set_title(p.title, fontweight="bold", fontsize=10)
        if p.c == 0 and rows_spec and row_items[p.r][0]:
            ax.annotate(
                row_items[p.r][0],
                xy=(0, 0.5),
                xycoords="axes fraction",
                xytext=(-52, 0),
                textcoords="offset points",
                rotation=90,
                ha="right",
                va="center",
                fontweight="bold",
                fontsize=10,
            )
    for p in panels:  # y from the points (the laws and y = x extend past them)
        values = y_ranges[p.r if share_y else (p.r, p.c)]
        if values:
            axes[p.r, p.c].set_ylim(_limits(pd.Series(values)))
    for ax in axes.flat[len(panels) :] if not (rows_spec or cols_spec) else []:
        ax.set_visible(False)
    if scale is not None:
        fig.colorbar(scale.mappable(), ax=axes.ravel().tolist(), label=scale.column, shrink=0.8)
    legend.draw(fig, group_col, marker, markers, scale, single_panel=len(panels) == 1)
    if title:
        fig.suptitle(title, fontsize=11, fontweight="bold")
    return fig, laws
