"""Figure 1 of the paper: one validation loss against task losses, a fitted law per pretraining dataset.

    python -m llm_line.plot --x "FineWeb-Edu Validation Loss" --y "HellaSwag Loss" "PIQA Loss" \\
        --where Architecture=Llama -o figures/fineweb_edu

One panel per y column; x = the x loss, colour = `--group` (pretraining data), marker = `--marker`
(architecture), the fitted law L_y = K (L_x - E_x)^kappa + E_y of each group drawn faint behind its points
(same fit as `python -m llm_line.fit`), each group's K, kappa and R² in the panel, and y = x dashed for
reference. A flagged law (see `fit`) is not drawn; the panel names it with its warning. Writes PNG and PDF.

`residual_figure` draws the intervention view of `llm_line.intervention`: every group's residuals from a
base group's law.

Library functions never choose a matplotlib backend (a notebook keeps its own); the command line, which
only writes files, uses Agg.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import matplotlib
import numpy as np
import pandas as pd

from llm_line import cli
from llm_line import fit as fitting
from llm_line.table import DataError, add_arguments, load_from_args

MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h"]


def unit(column: str) -> str:
    """The axis label of a column, with its unit."""
    if column.endswith("Loss"):
        return f"{column} (nats per token)"
    if column.endswith("BPB"):
        return f"{column} (bits per byte)"
    return column


def figure(
    table: pd.DataFrame,
    x: str,
    ys: Sequence[str],
    group: str | None = "Pretraining Data",
    marker: str | None = "Architecture",
    *,
    irreducible: str = "compute",
    n_boot: int = 0,
    seed: int = 0,
    title: str | None = None,
    size_col: str = "Size",
    tokens_col: str = "Tokens",
    progress: bool = False,
):
    """The figure and the fits drawn in it ({y: [LossFit per group]})."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fitting.require_columns(table, [x, *ys] + [c for c in (group, marker) if c])
    labelled = dict(fitting.group_rows(table, group))
    groups = list(labelled)
    colours = group_colours(groups)
    kinds = sorted(table[marker].dropna().astype(str).unique()) if marker else []
    markers = {k: MARKERS[i % len(MARKERS)] for i, k in enumerate(kinds)}

    cols = min(len(ys), 3)
    rows = math.ceil(len(ys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.8 * cols, 4.2 * rows), squeeze=False)
    fits: dict[str, list[fitting.LossFit]] = {}
    for ax, y in zip(axes.flat, ys, strict=False):
        group_fits = fitting.fit_groups(
            table,
            x,
            y,
            group,
            irreducible=irreducible,
            size_col=size_col,
            tokens_col=tokens_col,
            n_boot=n_boot,
            seed=seed,
            progress=progress,
        )
        fits[y] = group_fits
        data = table.dropna(subset=[x, y])
        for name, rows in labelled.items():
            rows_g = rows.dropna(subset=[x, y])
            for kind, rows_k in rows_g.groupby(rows_g[marker].astype(str)) if marker else [(None, rows_g)]:
                ax.scatter(
                    rows_k[x],
                    rows_k[y],
                    s=22,
                    alpha=0.65,
                    color=colours[name],
                    marker=markers.get(kind, "o"),
                    edgecolors="white",
                    linewidths=0.4,
                    zorder=3,
                )
        if data.empty:
            ax.text(0.5, 0.5, "no checkpoint has both losses", transform=ax.transAxes, ha="center")
        else:
            xlim, ylim = _limits(data[x]), _limits(data[y])
            for f in group_fits:
                if not f.ok:
                    continue
                assert f.x_range is not None and f.E_x is not None
                lo, hi = f.x_range
                colour = colours.get(f.group, "black")
                grid = np.linspace(max(lo - 0.03 * (hi - lo), f.E_x.E), hi + 0.03 * (hi - lo), 200)
                ax.plot(grid, f.curve(grid), color=colour, lw=2.2, alpha=0.45, zorder=2)  # faint, behind
                beyond = np.linspace(grid[-1], max(xlim[1], grid[-1]), 50)  # extrapolation: dotted
                ax.plot(beyond, f.curve(beyond), color=colour, lw=1.4, ls=":", alpha=0.45, zorder=2)
                if f.boot and f.K_ci:
                    b = np.array(f.boot)
                    grid = np.linspace(grid[0], beyond[-1], 200)
                    curves = np.array([fitting.shifted_power_law(grid, *row) for row in b])
                    band = np.nanpercentile(curves, [2.5, 97.5], axis=0)
                    ax.fill_between(
                        grid, band[0], band[1], color=colours.get(f.group, "black"), alpha=0.12, lw=0, zorder=1
                    )
            both = (min(xlim[0], ylim[0]), max(xlim[1], ylim[1]))
            ax.plot(both, both, ls="--", color="0.45", lw=1, zorder=1)
            ax.set_xlim(xlim)
            ax.set_ylim(ylim)
        ax.set_xlabel(unit(x))
        ax.set_ylabel(unit(y))
        ax.grid(True, color="0.9", lw=0.6)
        ax.set_axisbelow(True)
        failed = [f"{f.group}: {f.reason}" for f in group_fits if not f.fitted]
        failed += [f"{f.group} (flagged): {'; '.join(f.warnings)}" for f in group_fits if f.status == "flagged"]
        if failed:
            ax.text(
                0.02,
                0.98,
                "not drawn:\n" + "\n".join(failed),
                transform=ax.transAxes,
                va="top",
                fontsize=6.5,
                color="0.35",
                wrap=True,
            )
        law_box(ax, group_fits, colours)
    for ax in list(axes.flat)[len(ys) :]:
        ax.set_visible(False)

    # the groups (each panel names its laws), "(not drawn)" where no panel has a good law
    handles = []
    for name in groups:
        label = name if any(f.ok for fs in fits.values() for f in fs if f.group == name) else f"{name}  (not drawn)"
        handles.append(Line2D([], [], color=colours[name], marker="o", lw=1.8, ms=6, label=label))
    # one legend beside the panels, in sections: groups (colours), markers, reference line
    header = lambda text: Line2D([], [], lw=0, label=text)  # noqa: E731
    entries = [header(group or "group"), *handles]
    if kinds:
        entries += [header(""), header(marker)]
        entries += [Line2D([], [], color="0.3", marker=markers[k], lw=0, ms=6, label=k) for k in kinds]
    entries += [
        header(""),
        Line2D([], [], color="0.3", lw=1.8, label="fitted law"),
        Line2D([], [], color="0.3", lw=1.2, ls=":", label="extrapolated"),
        Line2D([], [], color="0.45", ls="--", lw=1, label="y = x"),
    ]
    fig.tight_layout(rect=(0, 0, 1, 0.95 if title else 1))
    legend = fig.legend(
        handles=entries, loc="upper left", bbox_to_anchor=(1.0, 0.98), frameon=False, fontsize=8.5, handlelength=2.2
    )
    for text, entry in zip(legend.get_texts(), entries, strict=False):
        if entry.get_linewidth() == 0 and entry.get_marker() in ("None", None, ""):
            text.set_fontweight("bold")
    if title:
        fig.suptitle(title, fontsize=11)
    return fig, fits


def residual_figure(results: Sequence, title: str | None = None):
    """The intervention view: one panel per `Intervention` (one y each), residuals from the base law against x.

    Every group's checkpoints in its colour, its mean residual as a faint line with its interval as a band,
    zero (the base law) dashed; the legend gives each group's offset.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    cols = min(len(results), 3)
    rows = math.ceil(len(results) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.8 * cols, 3.6 * rows), squeeze=False)
    colours = group_colours([o.group for o in results[0].offsets])
    for ax, result in zip(axes.flat, results, strict=False):
        law = result.base
        for o in result.offsets:
            colour = colours.get(o.group, "black")
            points = result.residuals[o.group]
            ax.scatter(
                points[law.x],
                points["residual"],
                s=20,
                alpha=0.7,
                color=colour,
                edgecolors="white",
                linewidths=0.4,
                zorder=3,
            )
            if o.mean is not None and len(points):
                span = (points[law.x].min(), points[law.x].max())
                ax.plot(span, (o.mean, o.mean), color=colour, lw=2, alpha=0.5, zorder=2)
                if o.ci:
                    ax.fill_between(span, *o.ci, color=colour, alpha=0.12, lw=0, zorder=1)
        ax.axhline(0, ls="--", color="0.45", lw=1, zorder=1)
        ax.set_xlabel(unit(law.x))
        ax.set_ylabel(f"{law.y} − law of {law.group}")
        ax.set_title(
            f"{result.column}: base {law.group} (K={law.K:.3g}, κ={law.kappa:.3g}, R²={law.r2:.3f})", fontsize=8.5
        )
        ax.grid(True, color="0.9", lw=0.6)
        ax.set_axisbelow(True)
    for ax in list(axes.flat)[len(results) :]:
        ax.set_visible(False)
    offsets = results[0].offsets
    handles = [
        Line2D(
            [],
            [],
            color=colours[o.group],
            marker="o",
            lw=2,
            ms=6,
            label=o.group
            + (
                ""
                if o.mean is None
                else f"  ({o.mean:+.3f}" + (f", CI {o.ci[0]:+.3f}…{o.ci[1]:+.3f})" if o.ci else ")")
            ),
        )
        for o in offsets
    ]
    handles.append(Line2D([], [], color="0.45", ls="--", lw=1, label="base law"))
    fig.tight_layout(rect=(0, 0, 1, 0.95 if title else 1))
    fig.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.0, 0.98),
        frameon=False,
        fontsize=8.5,
        title=f"{results[0].column} (mean residual" + (", first panel)" if len(results) > 1 else ")"),
    )
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def group_colours(groups: Sequence[str]) -> dict[str, tuple]:
    """One colour per group, in the order given (tab10, or tab20 beyond ten groups)."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    cmap = plt.get_cmap("tab10" if len(groups) <= 10 else "tab20")
    assert isinstance(cmap, ListedColormap)  # tab10 and tab20 are lists of colours
    colours = cast("Sequence[tuple]", cmap.colors)  # a tuple of RGB tuples; the stubs say any ArrayLike
    return dict(zip(groups, colours, strict=False))


def law_box(ax, fits: Sequence[fitting.LossFit], colours: dict[str, tuple]) -> None:
    """Each drawn group's K, κ and R² in the panel's lower right corner, in the group's colour."""
    drawn = [f for f in fits if f.ok]
    for i, f in enumerate(reversed(drawn)):
        ax.text(
            0.98,
            0.03 + 0.055 * i,
            f"{f.group}: K={f.K:.3g}  κ={f.kappa:.3g}  R²={f.r2:.3f}",
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize=7,
            color=colours.get(f.group, "black"),
        )


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=cli.prog("llm_line.plot"),
        description="Plot task (or validation) losses against one validation loss, coloured by pretraining "
        "data, marked by architecture, with each group's fitted loss-to-loss law and y = x.",
        epilog='example: python -m llm_line.plot --data data/results.csv --x "FineWeb-Edu Validation Loss" '
        '--y "HellaSwag Loss" "PIQA Loss" -o figures/fig1',
    )
    add_arguments(parser)
    parser.add_argument("--x", required=True, help="x-axis loss column")
    parser.add_argument("--y", required=True, nargs="+", help="y-axis loss column(s): one panel each")
    parser.add_argument("--group", default="Pretraining Data", help='colour and fit groups ("" = one group)')
    parser.add_argument("--marker", default="Architecture", help='marker column ("" = one marker)')
    parser.add_argument(
        "--irreducible",
        choices=("compute", "min", "free"),
        default="compute",
        help="how E_x, E_y are found (see python -m llm_line.fit --help)",
    )
    parser.add_argument(
        "--band",
        type=int,
        default=0,
        metavar="B",
        help="draw a 95%% bootstrap band from B resamples (default 0: no band)",
    )
    parser.add_argument("--title", help="figure title")
    parser.add_argument(
        "-o",
        "--out",
        type=Path,
        default=Path("figures/loss_to_loss"),
        help="output path without suffix; .png and .pdf are written (default figures/loss_to_loss)",
    )
    args = parser.parse_args(argv)
    matplotlib.use("Agg")  # the command line only writes files
    try:
        table = load_from_args(args, report=lambda text: print(text, file=sys.stderr))
        fig, fits = figure(
            table,
            args.x,
            args.y,
            args.group or None,
            args.marker or None,
            irreducible=args.irreducible,
            n_boot=args.band,
            title=args.title,
            progress=True,
        )
    except (FileNotFoundError, KeyError, DataError) as e:
        parser.error(str(e.args[0]) if e.args else str(e))
    for fits_y in fits.values():
        print(fitting.format_fits(fits_y))
        print()
    for path in save(fig, args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
