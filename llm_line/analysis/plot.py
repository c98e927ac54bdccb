"""Loss-to-loss figures from the command line: panels, grids, groups and laws (`llm_line.analysis.panels` draws them).

    llm-line plot --x "FineWeb-Edu Validation Loss" --y "HellaSwag Loss" "PIQA Loss" \\
        --where Architecture=Llama -o figures/fineweb_edu                # one panel per y (Figure 1)
    llm-line plot --x "C4 Validation Loss" --y "ARC-Easy Loss" "PIQA Loss" "HellaSwag Loss" --together \\
        --where "Pretraining Data=C4" -o figures/c4_tests               # colour per y, their mean in black
    llm-line plot --x "FineWeb-Edu Validation Loss" --y "C4 Validation Loss" --y "ARC-Easy Loss" \\
        --col Architecture,Tokenizer --row y -o figures/data            # grid: y rows x matched columns
    llm-line plot ... --group Optimizer,Scheduler                       # one law per combination
    llm-line plot ... --group Size                                      # numeric: colour bar

x = the x loss, colour = the group (a fixed colour per value: C4 is always the same blue), marker =
`--marker`, each group's fitted law L_y = K (L_x - E_x)^kappa + E_y (same fit as `llm-line fit`) faint
behind its points, a flagged law dashed with its reason in the legend, y = x in light grey. Writes PNG
and PDF.

`residual_figure` draws the intervention view of `llm_line.analysis.intervention`: every group's residuals from a
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
from typing import Any

import matplotlib
import pandas as pd

from llm_line.analysis import colours as palette
from llm_line.analysis import law_options, panels
from llm_line.analysis.column_checks import DataError, law_columns
from llm_line.analysis.fit_report import format_fits
from llm_line.analysis.loss_to_loss import LossFit
from llm_line.analysis.panel_parts import Law, YSet, unit
from llm_line.analysis.progress import command_logging
from llm_line.analysis.table import add_arguments, load_from_args, message, to_stderr
from llm_line.arguments import output_file, positive_int, prog
from llm_line.errors import run_command

__all__ = ["figure", "residual_figure", "save", "unit"]


def figure(
    table: pd.DataFrame,
    x: str,
    ys: Sequence[str],
    group: str | None = "Pretraining Data",
    marker: str | None = "Architecture",
    *,
    law: dict[str, Any] | None = None,
    title: str | None = None,
    size_col: str = "Size",
    tokens_col: str = "Tokens",
    progress: bool = False,
):
    """One panel per y column, one law per group: the figure and its fits ({y: [LossFit per group]})."""
    fig, laws = panels.grid(
        table,
        x,
        list(ys),
        group=group,
        marker=marker,
        law=law,
        title=title,
        size_col=size_col,
        tokens_col=tokens_col,
        progress=progress,
    )
    return fig, {y: [law.fit for law in laws if law.fit.y == y] for y in ys}


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
    colours = palette.colours(o.group for o in results[0].offsets)
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


def save(fig, out: Path, formats: Sequence[str] = ("png", "pdf"), dpi: int = 200) -> list[Path]:
    """The figure in each format (PNG at `dpi`, PDF) next to each other: `out` with each suffix."""
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        suffix = f".{fmt.lstrip('.')}"
        path = out.with_suffix(suffix) if out.suffix in (".png", ".pdf") else out.with_name(out.name + suffix)
        fig.savefig(path, bbox_inches="tight", **({"dpi": dpi} if suffix == ".png" else {}))
        paths.append(path)
    return paths


def add_grid_arguments(parser: argparse.ArgumentParser) -> None:
    """The layout options of a loss-to-loss grid (`plot`; `figures` recipes set the same fields)."""
    parser.add_argument("--x", required=True, help="x-axis loss column")
    parser.add_argument(
        "--y",
        required=True,
        nargs="+",
        action="append",
        help="y-axis loss column(s): one panel each, or with --together one panel per --y (repeatable)",
    )
    parser.add_argument(
        "--together",
        action="store_true",
        help="draw the losses of each --y in one panel, coloured per loss, with their mean in black",
    )
    parser.add_argument("--row", help='rows of the grid: column(s) "A,B" whose values facet the rows, or "y"')
    parser.add_argument("--col", help='columns of the grid: column(s) "A,B" whose values facet, or "y"')
    parser.add_argument(
        "--min-groups",
        type=positive_int,
        default=1,
        metavar="N",
        help="draw only facets with at least N groups (2: where there is something to compare)",
    )
    parser.add_argument(
        "--group", default="Pretraining Data", help='colour and fit groups: column(s) "A,B" ("" = one group)'
    )
    parser.add_argument(
        "--categorical",
        action="store_true",
        help="colour a numeric group per value from the palette instead of on a scale with a colour bar",
    )
    parser.add_argument("--marker", default="Architecture", help='marker column ("" = one marker)')


def columns(text: str | None) -> list[str] | str | None:
    """A comma-separated option as column names ("y" stays "y")."""
    if not text:
        return None
    return [c.strip() for c in text.split(",") if c.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog("llm_line.analysis.plot"),
        description="Plot losses against one x loss: panels per y (or several y per panel with their mean), "
        "grids of rows and columns, one fitted law per group in a fixed colour, and y = x.",
        epilog='example: llm-line plot --data data/results.csv --x "FineWeb-Edu Validation Loss" '
        '--y "HellaSwag Loss" "PIQA Loss" -o figures/fig1',
    )
    add_arguments(parser)
    add_grid_arguments(parser)
    law_options.add_arguments(parser)
    parser.set_defaults(bootstrap=0)
    parser.add_argument("--title", help="figure title")
    parser.add_argument(
        "-o",
        "--out",
        type=output_file(in_folder="loss_to_loss"),
        default=Path("figures/loss_to_loss"),
        help="output path without suffix; .png and .pdf are written (default figures/loss_to_loss; "
        "a folder: loss_to_loss.png/.pdf inside it)",
    )
    parser.epilog = (parser.epilog or "") + "; --bootstrap B > 0 draws a 95%% band"
    args = parser.parse_args(argv)
    command_logging()  # a long bootstrap's estimate and progress reach stderr, on a terminal or not
    matplotlib.use("Agg")  # the command line only writes files
    ys = [YSet(tuple(y)) for y in args.y] if args.together else [YSet((y,)) for group in args.y for y in group]
    try:
        table = load_from_args(args, report=to_stderr)
        losses = [("--x", args.x), *(("--y", y) for s in ys for y in s.columns)]
        table = law_columns(table, losses, to_stderr)
        law_options.require_named_columns(table, args)
        fig, laws = panels.grid(
            table,
            args.x,
            ys,
            row=columns(args.row),
            col=columns(args.col),
            group=columns(args.group),
            marker=args.marker or None,
            continuous=False if args.categorical else None,
            min_groups=args.min_groups,
            law=law_options.from_args(args),
            title=args.title,
            progress=True,
        )
    except (FileNotFoundError, KeyError, DataError) as e:
        parser.error(message(e))
    for (panel, _y), fits in _by_panel(laws).items():
        if panel:
            print(f"[{panel}]")
        print(format_fits(fits))
        print()
    for path in save(fig, args.out):
        print(f"wrote {path}")
    return 0


def _by_panel(laws: Sequence[Law]) -> dict[tuple[str, str], list[LossFit]]:
    out: dict[tuple[str, str], list[LossFit]] = {}
    for law in laws:
        out.setdefault((law.panel, law.fit.y), []).append(law.fit)
    return out


if __name__ == "__main__":
    sys.exit(run_command("python -m llm_line.analysis.plot", main, None))
