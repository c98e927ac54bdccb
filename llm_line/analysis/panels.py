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
"""

from __future__ import annotations

import math
import textwrap
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from llm_line.analysis import colours as palette
from llm_line.analysis.averages import add_average
from llm_line.analysis.column_checks import require_columns
from llm_line.analysis.groups import fit_groups, group_rows
from llm_line.analysis.loss_to_loss import LossFit, shifted_power_law

MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h"]
LAW_BOX_MAX = 4  # a panel lists its laws' numbers in a corner only up to this many (the index has all)
Facet = str | Sequence[str] | None  # column name(s), or "y" for the y sets


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


@dataclass
class _Panel:
    r: int
    c: int
    rows: pd.DataFrame
    yset: YSet
    title: str  # where it is named in the index


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
    panels: list[_Panel] = []
    if not rows_spec and not cols_spec:  # wrap the y sets
        ncols = min(len(sets), 3)
        for i, s in enumerate(sets):
            panels.append(_Panel(i // ncols, i % ncols, table, s, s.title or (s.columns[0] if len(sets) > 1 else "")))
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
                panels.append(_Panel(r, c, rows, s, " · ".join(t for t in (r_title, c_title) if t)))
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
    legend = _Legend()
    laws: list[Law] = []
    y_ranges: dict[object, list[float]] = defaultdict(list)
    for p in panels:
        ax = axes[p.r, p.c]
        laws += _draw_panel(
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
        y_ranges[p.r if share_y else (p.r, p.c)].extend(_point_range(ax))
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


class _Legend:
    """What the figure's legend names: colours, and every law that is flagged or missing, with its reason."""

    def __init__(self) -> None:
        self.colours: dict[str, tuple] = {}
        self.notes: list[tuple[str, tuple, str]] = []  # (text, colour, linestyle)
        self.has_mean = False
        self.has_flagged = False

    def note(self, law: Law, colour: tuple, name: str, single_panel: bool) -> None:
        f = law.fit
        where = "" if single_panel or not law.panel else f" in {law.panel}"
        if f.status == "flagged":
            self.has_flagged = True
            text = f"{name}: flagged law{where}: {'; '.join(f.warnings)}"
            self.notes.append((text, colour, "--"))
        elif not f.fitted:
            self.notes.append((f"{name}: no law{where}: {f.reason}", colour, "none"))

    def draw(self, fig, group_col, marker, markers, scale, single_panel: bool) -> None:
        from matplotlib.lines import Line2D

        def header(text: str) -> Line2D:
            return Line2D([], [], lw=0, label=text)

        entries: list[Line2D] = []
        if self.colours:
            entries.append(header(group_col or "y loss"))
            entries += [Line2D([], [], color=c, marker="o", lw=1.8, ms=6, label=n) for n, c in self.colours.items()]
        if self.has_mean:
            entries.append(Line2D([], [], color=palette.MEAN, marker="o", lw=1.8, ms=6, label="mean of the y losses"))
        if markers:
            entries += [header(""), header(marker)]
            entries += [Line2D([], [], color="0.3", marker=markers[k], lw=0, ms=6, label=k) for k in markers]
        entries += [header(""), Line2D([], [], color="0.3", lw=1.8, label="fitted law")]
        if self.has_flagged:
            entries.append(Line2D([], [], color="0.3", lw=1.8, ls="--", label="flagged law (reason below)"))
        entries += [
            Line2D([], [], color="0.3", lw=1.2, ls=":", label="extrapolated"),
            Line2D([], [], color="0.75", lw=1, label="y = x"),
        ]
        if self.notes:
            entries.append(header(""))
            entries.append(header("flagged or missing laws"))
            for text, colour, style in self.notes:
                wrapped = textwrap.fill(text, 58, subsequent_indent="   ")
                if style == "none":
                    entries.append(Line2D([], [], color=colour, marker="x", lw=0, ms=6, label=wrapped))
                else:
                    entries.append(Line2D([], [], color=colour, lw=1.8, ls=style, label=wrapped))
        widest = max(len(line) for entry in entries for line in str(entry.get_label()).splitlines())
        fig.set_figwidth(fig.get_figwidth() + 0.6 + 0.062 * widest)  # room for the legend beside the panels
        legend = fig.legend(handles=entries, loc="outside right upper", frameon=False, fontsize=8, handlelength=2.2)
        for text, entry in zip(legend.get_texts(), entries, strict=False):
            if entry.get_linewidth() == 0 and entry.get_marker() in ("None", None, ""):
                text.set_fontweight("bold")


def _draw_panel(ax, p: _Panel, x, group_col, marker, markers, scale, xlim, legend: _Legend, fit_kw) -> list[Law]:
    """Points and laws of one panel; returns its laws."""
    rows = p.rows
    series: list[tuple[str, pd.DataFrame]] = [(y, rows) for y in p.yset.columns if y in rows]
    if p.yset.together and p.yset.mean:
        averaged, name = add_average(rows, f"{p.yset.mean_column}={','.join(p.yset.columns)}")
        series.append((name, averaged))
    drawn_any = False
    laws = []
    for y, data in series:
        is_mean = p.yset.together and y == p.yset.mean_column
        data = data[data[y].notna()]
        if data.empty:
            continue
        drawn_any = True
        groups = group_rows(data, group_col)
        group_colour = _group_colours(groups, group_col, scale)
        for name, g in groups:
            c = palette.MEAN if is_mean else palette.colour(y) if p.yset.together else group_colour[name]
            for kind, k_rows in g.groupby(g[marker].astype(str)) if marker else [(None, g)]:
                ax.scatter(
                    k_rows[x],
                    k_rows[y],
                    s=18,
                    alpha=0.7,
                    color=c,
                    marker=markers.get(kind, "o"),
                    edgecolors="white",
                    linewidths=0.3,
                    zorder=3 + is_mean,
                )
        fits = fit_groups(data, x, y, group_col, **fit_kw)
        by_name = dict(groups)
        for f in fits:
            c = palette.MEAN if is_mean else palette.colour(y) if p.yset.together else group_colour[f.group]
            label = short(y) if p.yset.together else f.group
            if p.yset.together and group_col:
                label += f" · {f.group}"
            if is_mean:
                label = "mean"
            law = Law(p.title, f, by_name.get(f.group, data.iloc[0:0]), label, c)
            laws.append(law)
            legend.has_mean |= is_mean
            legend.note(law, c, label, single_panel=not p.title)
            if f.fitted:
                _draw_law(ax, f, c, xlim, label)
        if p.yset.together and not is_mean:
            legend.colours.setdefault(short(y), palette.colour(y))
        elif not p.yset.together and scale is None:
            for name, _ in groups:
                legend.colours.setdefault(name, group_colour[name])
    if not drawn_any:
        ax.text(0.5, 0.5, "no checkpoint has both losses", transform=ax.transAxes, ha="center", color="0.4")
    ax.axline((xlim[0], xlim[0]), slope=1, color="0.75", lw=1, zorder=0, label="y = x")
    ax.grid(True, color="0.92", lw=0.6)
    ax.set_axisbelow(True)
    shown = [law for law in laws if law.fit.fitted]
    if 0 < len(shown) <= LAW_BOX_MAX:
        _law_box(ax, shown)
    return laws


def _point_range(ax) -> list[float]:
    """The lowest and highest y of the points drawn in a panel."""
    from matplotlib.collections import PathCollection

    offsets = [np.asarray(c.get_offsets(), dtype=float) for c in ax.collections if isinstance(c, PathCollection)]
    ys = [o[:, 1] for o in offsets if o.ndim == 2 and len(o)]
    if not ys:
        return []
    values = np.concatenate(ys)
    values = values[np.isfinite(values)]
    return [float(values.min()), float(values.max())] if len(values) else []


def _group_colours(groups, group_col, scale) -> dict[str, tuple]:
    if scale is None:
        return palette.colours(name for name, _ in groups)
    return {name: scale(_number(name)) for name, _ in groups}


def _number(label: str) -> float:
    """A numeric group's label back as its number (NaN for "(no Size)", which the scale draws grey)."""
    try:
        return float(label)
    except ValueError:
        return math.nan


def _draw_law(ax, f: LossFit, colour, xlim, label: str) -> None:
    """The law faint behind its points (dashed if flagged), dotted beyond its checkpoints, its band if any."""
    assert f.x_range is not None and f.E_x is not None
    lo, hi = f.x_range
    style = "-" if f.ok else "--"
    span = np.linspace(max(lo - 0.03 * (hi - lo), f.E_x.E), hi + 0.03 * (hi - lo), 200)
    ax.plot(span, f.curve(span), color=colour, lw=2.2, ls=style, alpha=0.5, zorder=2, label=f"law {label}")
    beyond = np.linspace(span[-1], max(xlim[1], span[-1]), 50)
    ax.plot(beyond, f.curve(beyond), color=colour, lw=1.4, ls=":", alpha=0.5, zorder=2, label=f"extrapolated {label}")
    if f.boot and f.K_ci:
        b = np.array(f.boot)
        whole = np.linspace(span[0], beyond[-1], 200)
        curves = np.array([shifted_power_law(whole, *sample) for sample in b])
        band = np.nanpercentile(curves, [2.5, 97.5], axis=0)
        ax.fill_between(whole, band[0], band[1], color=colour, alpha=0.12, lw=0, zorder=1)


def law_text(f: LossFit) -> str:
    return f"K={f.K:.3g}  κ={f.kappa:.3g}  R²={f.r2:.3f}"


def _law_box(ax, laws: Sequence[Law]) -> None:
    """Each law's K, κ and R² in the panel's lower right corner, in its colour."""
    for i, law in enumerate(reversed(laws)):
        ax.text(
            0.98,
            0.03 + 0.055 * i,
            f"{law.label}: {law_text(law.fit)}" + ("  (flagged)" if law.fit.status == "flagged" else ""),
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize=6.5,
            color=law.colour,
        )
