"""One panel of a loss-to-loss figure drawn: its points, each group's law faint behind them (dotted where
extrapolated, dashed if flagged, a bootstrap band if any), `y = x`, and its laws' numbers in a corner.

Its own module: what goes into one panel is apart from how the grid lays the panels out, facets the rows and
shares the axes (`llm_line.analysis.panels`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from llm_line.analysis import colours as palette
from llm_line.analysis.averages import add_average
from llm_line.analysis.groups import fit_groups, group_rows
from llm_line.analysis.loss_to_loss import LossFit, shifted_power_law
from llm_line.analysis.panel_legend import Legend
from llm_line.analysis.panel_parts import Law, YSet, short

LAW_BOX_MAX = 4  # a panel lists its laws' numbers in a corner only up to this many (the index has all)


@dataclass
class Panel:
    r: int
    c: int
    rows: pd.DataFrame
    yset: YSet
    title: str  # where it is named in the index


def draw_panel(ax, p: Panel, x, group_col, marker, markers, scale, xlim, legend: Legend, fit_kw) -> list[Law]:
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


def point_range(ax) -> list[float]:
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
