"""The compute-to-loss fits behind every E of a figure: each loss against training tokens, per model size.

Every law L_y = K (L_x - E_x)^kappa + E_y rests on two irreducible losses, each from a fit of
L(N, D) = E + ((A/N)^(alpha/beta) + B/D)^beta over the group's checkpoints
(`llm_line.analysis.irreducible.fit_irreducible`).
This figure shows one panel per (group, loss): the checkpoints' loss against D (log axis), coloured by N on a
colour bar, the fitted L(D) of each model size, E as a dashed black line, and the fit's R² in the title.
Where E fell back to the minimum observed loss, the panel says why, and the dashed line is that minimum.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import numpy as np
import pandas as pd

from llm_line.analysis import colours as palette
from llm_line.analysis.irreducible import Irreducible
from llm_line.analysis.panel_parts import Law, short

MAX_CURVES = 6  # model sizes drawn as curves; beyond that, six sizes spread over the range


def irreducibles(laws: Sequence[Law]) -> list[tuple[Irreducible, pd.DataFrame]]:
    """Every distinct E the laws used, with the rows it was estimated from."""
    seen: dict[tuple, tuple[Irreducible, pd.DataFrame]] = {}
    for law in laws:
        for e in (law.fit.E_x, law.fit.E_y):
            if e is None or e.method == "free":
                continue
            seen.setdefault((e.group, e.loss, round(e.E, 12), e.n, len(law.rows)), (e, law.rows))
    return list(seen.values())


def law_curve(e: Irreducible, N: float, D: np.ndarray) -> np.ndarray | None:
    """L(N, D) of a compute fit from its parameters (None where E did not come from one)."""
    p = e.params
    if {"A", "alpha", "B", "beta"} <= p.keys():
        return e.E + ((p["A"] / N) ** (p["alpha"] / p["beta"]) + p["B"] / D) ** p["beta"]
    if {"(A/N)^(alpha/beta)", "B", "beta"} <= p.keys():
        return e.E + (p["(A/N)^(alpha/beta)"] + p["B"] / D) ** p["beta"]
    return None


def describe(e: Irreducible) -> str:
    """A panel's second title line: E, how it was found, R²."""
    text = f"E = {e.E:.3f}, {e.method}"
    if e.r2 is not None:
        text += f", R² = {e.r2:.3f}"
    if e.at_bound:
        text += f", at its {e.at_bound} bound"
    if e.fallback_reason:
        text += f": {e.fallback_reason}"
    return textwrap.fill(text, 48)


def figure(laws: Sequence[Law], *, size_col: str = "Size", tokens_col: str = "Tokens", title: str | None = None):
    """The figure of every E behind `laws` (None if they used none), and those E in panel order."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    items = irreducibles(laws)
    if not items:
        return None, []
    ncols = min(len(items), 4)
    nrows = math.ceil(len(items) / ncols)
    sizes = pd.concat([rows[size_col] for _, rows in items if size_col in rows]) if size_col else pd.Series()
    scale = palette.Scale.over(size_col, pd.to_numeric(sizes, errors="coerce")) if len(sizes) else None
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols + 1, 3.3 * nrows), squeeze=False, layout="constrained")
    for ax, (e, rows) in zip(axes.flat, items, strict=False):
        loss = pd.to_numeric(rows[e.loss], errors="coerce")
        N = pd.to_numeric(rows[size_col], errors="coerce") if size_col in rows else pd.Series(np.nan, rows.index)
        D = pd.to_numeric(rows[tokens_col], errors="coerce") if tokens_col in rows else pd.Series(np.nan, rows.index)
        known = loss.notna() & (D > 0)
        if known.any():
            colour = [scale(n) if scale is not None and np.isfinite(n) else (0.5, 0.5, 0.5) for n in N[known]]
            ax.scatter(D[known], loss[known], c=colour, s=16, edgecolors="white", linewidths=0.3, zorder=3)
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # labelled minor ticks overlap on a short decade
            ax.set_xlabel(f"{tokens_col} D (training tokens)")
            grid = np.geomspace(float(D[known].min()), float(D[known].max()), 100)
            n_values = np.unique(N[known].dropna())
            if len(n_values) > MAX_CURVES:
                n_values = np.quantile(n_values, np.linspace(0, 1, MAX_CURVES))
            for n in n_values:
                curve = law_curve(e, float(n), grid)
                if curve is not None:
                    c = scale(float(n)) if scale is not None else (0.3, 0.3, 0.3)
                    ax.plot(grid, curve, color=c, lw=1.6, alpha=0.7, zorder=2, label=f"L(N={n:.3g}, D)")
        else:  # no D: the losses in order, so E can still be read against them
            ordered = loss.dropna().sort_values().to_numpy()
            ax.scatter(np.arange(len(ordered)), ordered, s=16, color="0.4", zorder=3)
            ax.set_xlabel("checkpoint (sorted by loss; no training tokens)")
        ax.axhline(e.E, color="black", ls="--", lw=1.2, zorder=1, label=f"E = {e.E:.4g}")
        ax.set_ylabel(f"{short(e.loss)} loss")
        ax.set_title(f"{e.group}: {short(e.loss)}\n{describe(e)}", fontsize=7.5)
        ax.grid(True, color="0.92", lw=0.6)
    for ax in axes.flat[len(items) :]:
        ax.set_visible(False)
    if scale is not None:
        fig.colorbar(scale.mappable(), ax=axes.ravel().tolist(), label=f"{size_col} N (parameters)", shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=11, fontweight="bold")
    return fig, [e for e, _ in items]
