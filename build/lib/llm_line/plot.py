"""Figure 1 of the paper: one validation loss against task losses, a fitted law per pretraining dataset.

    python -m llm_line.plot --x "FineWeb-Edu Validation Loss" --y "HellaSwag Loss" "PIQA Loss" \\
        --where Architecture=Llama -o figures/fineweb_edu

One panel per y column; x = the x loss, colour = `--group` (pretraining data), marker = `--marker`
(architecture), the fitted law L_y = K (L_x - E_x)^kappa + E_y of each group drawn over its points (same
fit as `python -m llm_line.fit`), and y = x dashed for reference. Writes PNG and PDF.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from llm_line import fit as fitting

MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h"]


def unit(column: str) -> str:
    """The axis label of a column, with its unit."""
    if column.endswith("Loss"):
        return f"{column} (nats per token)"
    if column.endswith("BPB"):
        return f"{column} (bits per byte)"
    return column


def figure(table: pd.DataFrame, x: str, ys: Sequence[str], group: Optional[str] = "Pretraining Data",
           marker: Optional[str] = "Architecture", *, irreducible: str = "compute", n_boot: int = 0,
           seed: int = 0, title: Optional[str] = None, size_col: str = "Size", tokens_col: str = "Tokens"):
    """The figure and the fits drawn in it ({y: [LossFit per group]})."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fitting.require_columns(table, [x, *ys] + [c for c in (group, marker) if c])
    groups = sorted(table[group].dropna().astype(str).unique()) if group else ["all"]
    colours = dict(zip(groups, plt.get_cmap("tab10" if len(groups) <= 10 else "tab20").colors))
    kinds = sorted(table[marker].dropna().astype(str).unique()) if marker else []
    markers = {k: MARKERS[i % len(MARKERS)] for i, k in enumerate(kinds)}

    cols = min(len(ys), 3)
    rows = math.ceil(len(ys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.8 * cols, 4.2 * rows), squeeze=False)
    fits: dict[str, list[fitting.LossFit]] = {}
    for ax, y in zip(axes.flat, ys):
        data = table.dropna(subset=[x, y])
        group_fits = fitting.fit_groups(table, x, y, group, irreducible=irreducible, size_col=size_col,
                                        tokens_col=tokens_col, n_boot=n_boot, seed=seed)
        fits[y] = group_fits
        for name in groups:
            rows_g = data[data[group].astype(str) == name] if group else data
            for kind, rows_k in (rows_g.groupby(rows_g[marker].astype(str)) if marker else [(None, rows_g)]):
                ax.scatter(rows_k[x], rows_k[y], s=22, alpha=0.65, color=colours[name],
                           marker=markers.get(kind, "o"), edgecolors="white", linewidths=0.4, zorder=3)
        if data.empty:
            ax.text(0.5, 0.5, "no checkpoint has both losses", transform=ax.transAxes, ha="center")
        else:
            xlim, ylim = _limits(data[x]), _limits(data[y])
            for f in group_fits:
                if not f.ok:
                    continue
                lo, hi = f.x_range
                colour = colours.get(f.group, "black")
                grid = np.linspace(max(lo - 0.03 * (hi - lo), f.E_x.E), hi + 0.03 * (hi - lo), 200)
                ax.plot(grid, f.curve(grid), color=colour, lw=1.8, zorder=4)
                beyond = np.linspace(grid[-1], max(xlim[1], grid[-1]), 50)  # extrapolation: dotted
                ax.plot(beyond, f.curve(beyond), color=colour, lw=1.2, ls=":", zorder=4)
                if f.boot and f.K_ci:
                    b = np.array(f.boot)
                    grid = np.linspace(grid[0], beyond[-1], 200)
                    curves = np.array([fitting.shifted_power_law(grid, *row) for row in b])
                    band = np.nanpercentile(curves, [2.5, 97.5], axis=0)
                    ax.fill_between(grid, band[0], band[1], color=colours.get(f.group, "black"), alpha=0.15,
                                    lw=0, zorder=2)
            both = (min(xlim[0], ylim[0]), max(xlim[1], ylim[1]))
            ax.plot(both, both, ls="--", color="0.45", lw=1, zorder=1)
            ax.set_xlim(xlim)
            ax.set_ylim(ylim)
        ax.set_xlabel(unit(x))
        ax.set_ylabel(unit(y))
        ax.grid(True, color="0.9", lw=0.6)
        ax.set_axisbelow(True)
        failed = [f"{f.group}: {f.reason}" for f in group_fits if not f.ok]
        if failed:
            ax.text(0.02, 0.98, "not fitted:\n" + "\n".join(failed), transform=ax.transAxes, va="top",
                    fontsize=6.5, color="0.35", wrap=True)
    for ax in list(axes.flat)[len(ys):]:
        ax.set_visible(False)

    # one legend for the whole figure: colours (with each group's law), markers, the lines
    handles = []
    for name in groups:
        laws = [f for fs in fits.values() for f in fs if f.group == name and f.ok]
        label = name
        if len(ys) == 1 and laws:
            f = laws[0]
            label += f"  (K={f.K:.3g}, κ={f.kappa:.3g}, R²={f.r2:.3f})"
        elif not laws:
            label += "  (not fitted)"
        handles.append(Line2D([], [], color=colours[name], marker="o", lw=1.8, ms=6, label=label))
    # one legend beside the panels, in sections: groups (colours), markers, reference line
    header = lambda text: Line2D([], [], lw=0, label=text)  # noqa: E731
    entries = [header(f"{group or 'group'}" + (" (fitted law)" if len(ys) == 1 else "")), *handles]
    if kinds:
        entries += [header(""), header(marker)]
        entries += [Line2D([], [], color="0.3", marker=markers[k], lw=0, ms=6, label=k) for k in kinds]
    entries += [header(""), Line2D([], [], color="0.3", lw=1.8, label="fitted law"),
                Line2D([], [], color="0.3", lw=1.2, ls=":", label="extrapolated"),
                Line2D([], [], color="0.45", ls="--", lw=1, label="y = x")]
    fig.tight_layout(rect=(0, 0, 1, 0.95 if title else 1))
    legend = fig.legend(handles=entries, loc="upper left", bbox_to_anchor=(1.0, 0.98), frameon=False,
                        fontsize=8.5, handlelength=2.2)
    for text, entry in zip(legend.get_texts(), entries):
        if entry.get_linewidth() == 0 and entry.get_marker() in ("None", None, ""):
            text.set_fontweight("bold")
    if title:
        fig.suptitle(title, fontsize=11)
    return fig, fits


def _limits(values: pd.Series) -> tuple[float, float]:
    lo, hi = float(values.min()), float(values.max())
    pad = 0.05 * (hi - lo) if hi > lo else 0.05 * max(abs(hi), 1.0)
    return lo - pad, hi + pad


def save(fig, out: Path) -> list[Path]:
    """PNG (200 dpi) and PDF next to each other: `out` with each suffix."""
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for suffix, extra in ((".png", {"dpi": 200}), (".pdf", {})):
        path = out.with_suffix(suffix) if out.suffix in (".png", ".pdf") else out.with_name(out.name + suffix)
        fig.savefig(path, bbox_inches="tight", **extra)
        paths.append(path)
    return paths


def main(argv: Optional[list[str]] = None) -> int:
    from llm_line.collect import read_table

    parser = argparse.ArgumentParser(
        prog="python -m llm_line.plot",
        description="Plot task (or validation) losses against one validation loss, coloured by pretraining "
        "data, marked by architecture, with each group's fitted loss-to-loss law and y = x.",
        epilog='example: python -m llm_line.plot --data data/results.csv --x "FineWeb-Edu Validation Loss" '
        '--y "HellaSwag Loss" "PIQA Loss" -o figures/fig1',
    )
    parser.add_argument("--data", default="data/results.csv", type=Path, help="wide table (.csv or .parquet)")
    parser.add_argument("--x", required=True, help="x-axis loss column")
    parser.add_argument("--y", required=True, nargs="+", help="y-axis loss column(s): one panel each")
    parser.add_argument("--group", default="Pretraining Data", help='colour and fit groups ("" = one group)')
    parser.add_argument("--marker", default="Architecture", help='marker column ("" = one marker)')
    parser.add_argument("--where", action="append", default=[], metavar="COL=V[,V]",
                        help="keep rows whose COL is one of the values (COL!=V drops them); repeatable")
    parser.add_argument("--irreducible", choices=("compute", "min", "free"), default="compute",
                        help="how E_x, E_y are found (see python -m llm_line.fit --help)")
    parser.add_argument("--band", type=int, default=0, metavar="B",
                        help="draw a 95%% bootstrap band from B resamples (default 0: no band)")
    parser.add_argument("--title", help="figure title")
    parser.add_argument("-o", "--out", type=Path, default=Path("figures/loss_to_loss"),
                        help="output path without suffix; .png and .pdf are written (default figures/loss_to_loss)")
    args = parser.parse_args(argv)
    try:
        table = fitting.select(read_table(args.data), args.where)
        if table.empty:
            parser.error(f"no rows left after --where {' '.join(args.where)}")
        fig, fits = figure(table, args.x, args.y, args.group or None, args.marker or None,
                           irreducible=args.irreducible, n_boot=args.band, title=args.title)
    except (FileNotFoundError, KeyError) as e:
        parser.error(str(e.args[0]) if e.args else str(e))
    for fits_y in fits.values():
        print(fitting.format_fits(fits_y))
        print()
    for path in save(fig, args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
