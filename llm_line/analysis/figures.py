"""`llm-line figures`: every figure of the paper that the given rows support, and an index of their laws.

    llm-line figures --data ../shared/data/llm-line-hf-models.csv --data data/results.csv -o figures/
    llm-line figures --data data/results.csv -o figures/ --only model_size

Each figure is a recipe in `llm_line.analysis.recipes`; this module selects its rows, draws it with
`llm_line.analysis.panels.grid`, draws the compute-to-loss fits behind its E (`llm_line.analysis.compute_figure`), and
writes `DIR/<name>.png|pdf`, `DIR/<name>_E.png|pdf` and `DIR/index.md`: every figure with each law drawn (panel,
y, group, n, status, K, κ, E_x, E_y, R², why it is flagged or missing) and every E with how it was found;
then every figure the rows do not support, with what is missing. Nothing is dropped silently.

The options of `fit` pass through: `--irreducible`, `--bootstrap` (default 0 here: laws without bands),
`--seed`, and the row options of every analysis (`--where`, `--average`, ...).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd

from llm_line.analysis import compute_figure, law_options, panels
from llm_line.analysis.averages import add_average
from llm_line.analysis.column_checks import DataError, infinite_as_missing
from llm_line.analysis.irreducible import Irreducible
from llm_line.analysis.panel_parts import Law
from llm_line.analysis.plot import save
from llm_line.analysis.progress import command_logging
from llm_line.analysis.recipes import AVERAGES, IN_DOMAIN, RECIPES, Recipe
from llm_line.analysis.row_selection import in_domain_column
from llm_line.analysis.table import add_arguments, load_from_args, message, to_stderr
from llm_line.arguments import output_folder, positive_int, prog
from llm_line.errors import run_command
from llm_line.files import atomic_file


@dataclass
class Drawn:
    """One figure written: its recipe, name, laws and the E behind them."""

    recipe: Recipe
    name: str
    laws: list[Law]
    irreducibles: list[Irreducible] = field(default_factory=list)
    rows: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class Missing:
    """A figure the rows do not support, and why."""

    name: str
    title: str
    why: str


def _truthy(column: pd.Series) -> pd.Series:
    return column.astype(str).str.strip().str.lower().isin(("true", "1", "1.0", "yes"))


def in_domain(table: pd.DataFrame) -> pd.Series:
    """Each row's in-domain validation loss column (NaN where its pretraining data has none)."""
    if "Pretraining Data" not in table:
        return pd.Series(None, index=table.index, dtype=object)
    columns = table["Pretraining Data"].map(in_domain_column)
    return columns.where(columns.isin(table.columns))


def rows_for(recipe: Recipe, table: pd.DataFrame) -> tuple[pd.DataFrame, list[str]] | str:
    """The rows a recipe draws and notes on how (averages over fewer losses), or what is missing (one line)."""
    if "Overtraining" in table:
        table = table[~_truthy(table["Overtraining"])]
    if recipe.from_scratch and "Hugging Face" in table:
        table = table[~_truthy(table["Hugging Face"])]
        if table.empty:
            return (
                "no checkpoints trained from scratch (every row has Hugging Face = True); "
                "a lingua ladder collected with llm-line collect has them"
            )
    notes = []
    for name, columns in AVERAGES.items():
        if any(name in y.columns for y in recipe.ys) and name not in table:
            present = [c for c in columns if c in table and table[c].notna().any()]
            if len(present) < 2:
                return f"{name} needs two or more of {', '.join(columns)} (the table has {len(present)})"
            table, _ = add_average(table, f"{name}={','.join(present)}")
            absent = [c for c in columns if c not in present]
            notes.append(
                f"{name} = mean of {', '.join(present)}" + (f" (absent: {', '.join(absent)})" if absent else "")
            )
    facets = [c for spec in (recipe.row, recipe.col) for c in ((spec,) if isinstance(spec, str) else spec or ())]
    needed = [c for c in (*recipe.group, *recipe.per, *facets, *recipe.varies) if c != "y"]
    if recipe.x != IN_DOMAIN:
        needed.append(recipe.x)
    absent = [c for c in dict.fromkeys(needed) if c not in table]
    if absent:
        return f"no column(s) {', '.join(absent)}"
    if recipe.varies:
        combos = table[list(recipe.varies)].dropna(how="all").drop_duplicates()
        if len(combos) < 2:
            what = " / ".join(recipe.varies)
            return (
                f"{what} holds {len(combos)} distinct value(s) in {len(table)} row(s); the figure compares two or more"
            )
    if recipe.x_below is not None:
        column = in_domain(table)
        values = pd.Series(
            [table.at[i, c] if isinstance(c, str) and c in table else None for i, c in column.items()],
            index=table.index,
            dtype=float,
        )
        table = table[values.isna() | (values < recipe.x_below)]
    ys = [y for s in recipe.ys for y in s.columns if y in table]
    if not ys:
        return f"no column of {', '.join(y for s in recipe.ys for y in s.columns)}"
    if table[ys].notna().any(axis=1).sum() == 0:
        return f"no row has any of {', '.join(ys)}"
    return table, notes


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def figures_of(recipe: Recipe, table: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame | str, str, list[str]]]:
    """(name, title, rows or what is missing, x, notes) of each figure a recipe makes (several with `per`)."""
    selected = rows_for(recipe, table)
    if isinstance(selected, str):
        return [(recipe.name, recipe.title, selected, recipe.x, [])]
    rows, notes = selected
    parts = [((), rows)] if not recipe.per else list(rows.groupby(list(recipe.per), dropna=False))
    out: list[tuple[str, str, pd.DataFrame | str, str, list[str]]] = []
    for values, part in parts:
        values = values if isinstance(values, tuple) else (values,)
        label = " / ".join(str(v) for v in values)
        name = recipe.name + "".join(f"_{_slug(str(v))}" for v in values)
        title = f"{recipe.title}: {label}" if label else recipe.title
        x = recipe.x
        if x == IN_DOMAIN:
            columns = in_domain(part).dropna().unique()
            if len(columns) != 1 or columns[0] not in part:
                data = ", ".join(map(str, part.get("Pretraining Data", pd.Series()).dropna().unique()))
                out.append((name, title, f"no in-domain validation loss column for the pretraining data {data}", x, []))
                continue
            x = str(columns[0])
        out.append((name, title, part, x, notes))
    return out


def draw(
    recipes: Sequence[Recipe],
    table: pd.DataFrame,
    out: Path,
    *,
    law: dict[str, Any] | None = None,
    formats: Sequence[str] = ("png", "pdf"),
    dpi: int = 200,
    report=print,
) -> tuple[list[Drawn], list[Missing]]:
    """Draw every figure of `recipes` the table supports into `out`; the drawn figures and the missing ones."""
    import matplotlib.pyplot as plt

    drawn: list[Drawn] = []
    missing: list[Missing] = []
    for recipe in recipes:
        for name, title, rows, x, notes in figures_of(recipe, table):
            if isinstance(rows, str):
                missing.append(Missing(name, title, rows))
                report(f"{name}: not drawn: {rows}")
                continue
            ys = [replace(s, columns=tuple(c for c in s.columns if c in rows and c != x)) for s in recipe.ys]
            ys = [s for s in ys if s.columns]
            marker = recipe.marker if recipe.marker in rows else None
            try:
                fig, laws = panels.grid(
                    rows,
                    x,
                    ys,
                    row=recipe.row,
                    col=recipe.col,
                    group=list(recipe.group) or None,
                    marker=marker,
                    min_groups=recipe.min_groups,
                    law=law,
                    title=title,
                )
            except (KeyError, DataError) as e:
                why = str(e.args[0]) if e.args else str(e)
                missing.append(Missing(name, title, why))
                report(f"{name}: not drawn: {why}")
                continue
            save(fig, out / name, formats, dpi)
            item = Drawn(recipe, name, laws, rows=len(rows), notes=notes)
            e_fig, item.irreducibles = compute_figure.figure(laws, title=f"{title}: the fits behind E")
            if e_fig is not None:
                save(e_fig, out / f"{name}_E", formats, dpi)
            plt.close("all")
            drawn.append(item)
            report(f"{name}: {len(laws)} law(s) -> {out / name}.png")
    return drawn, missing


def _num(value: float | None, digits: str = ".4g") -> str:
    return "" if value is None else format(value, digits)


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")


def law_rows(laws: Sequence[Law]) -> list[str]:
    """The index's table of laws, one Markdown row each."""
    lines = ["| panel | y | group | n | status | K | κ | E_x | E_y | R² | note |", "|" + " --- |" * 11]
    for law in laws:
        f = law.fit
        note = f.reason or "; ".join(f.warnings)
        cells = [
            law.panel or "(one panel)",
            f.y,
            f.group,
            str(f.n),
            f"{f.status} ({law.drawn})",
            _num(f.K),
            _num(f.kappa),
            _num(f.E_x.E if f.E_x else None),
            _num(f.E_y.E if f.E_y else None),
            _num(f.r2),
            note,
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return lines


def irreducible_rows(items: Sequence[Irreducible]) -> list[str]:
    lines = ["| group | loss | E | method | R² | n | note |", "|" + " --- |" * 7]
    for e in items:
        note = e.fallback_reason or (f"at its {e.at_bound} bound" if e.at_bound else "")
        cells = [e.group, e.loss, _num(e.E), e.method, _num(e.r2), str(e.n), note]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return lines


def index(drawn: Sequence[Drawn], missing: Sequence[Missing], command: str) -> str:
    """DIR/index.md: every figure with its laws and E, then the figures not drawn and why."""
    lines = ["# Figures", "", f"Made by `{command}`.", ""]
    lines += ["| figure | laws | what it shows |", "| --- | --- | --- |"]
    lines += [f"| [{d.name}](#{d.name}) | {len(d.laws)} | {_cell(d.recipe.tells)} |" for d in drawn]
    lines += [f"| {m.name} | not drawn | {_cell(m.why)} |" for m in missing]
    for d in drawn:
        lines += ["", f'<a id="{d.name}"></a>', f"## {d.name}", "", d.recipe.tells, ""]
        lines += [f"![{d.name}]({d.name}.png)", "", f"Files: `{d.name}.*`; {d.rows} rows.", ""]
        lines += [f"- {note}" for note in d.notes] + ([""] if d.notes else [])
        lines += ["Laws L_y = K (L_x − E_x)^κ + E_y (status: drawn solid, dashed if flagged):", ""]
        lines += law_rows(d.laws)
        if d.irreducibles:
            lines += ["", f"The compute-to-loss fits behind E: `{d.name}_E.png`", ""]
            lines += [f"![{d.name}_E]({d.name}_E.png)", ""]
            lines += irreducible_rows(d.irreducibles)
    if missing:
        lines += ["", "## Not drawn", "", "| figure | what is missing |", "| --- | --- |"]
        lines += [f"| {m.name} ({_cell(m.title)}) | {_cell(m.why)} |" for m in missing]
    return "\n".join(lines) + "\n"


def select_recipes(only: Sequence[str]) -> list[Recipe]:
    """The recipes `--only` names (all without it); an unknown name is a KeyError listing the names."""
    if not only:
        return list(RECIPES)
    names = {r.name: r for r in RECIPES}
    unknown = [n for n in only if n not in names]
    if unknown:
        raise KeyError(f"no figure {', '.join(map(repr, unknown))}; the figures are {', '.join(names)}")
    return [names[n] for n in only]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog("llm_line.analysis.figures"),
        description="Draw every figure of the paper the rows support into DIR, with DIR/index.md listing each "
        "figure, its laws (K, kappa, E, R², status) and the figures whose rows are missing.",
        epilog="example: llm-line figures --data ../shared/data/llm-line-hf-models.csv --data "
        f"data/results.csv -o figures/   (figures: {', '.join(r.name for r in RECIPES)})",
    )
    add_arguments(parser)
    law_options.add_arguments(parser)
    parser.set_defaults(bootstrap=0)
    parser.add_argument(
        "-o", "--out", type=output_folder, default=Path("figures"), help="output folder (default figures/)"
    )
    parser.add_argument(
        "--format",
        action="append",
        choices=("png", "pdf", "svg"),
        help="file format(s) to write; repeatable (default png and pdf)",
    )
    parser.add_argument("--dpi", type=positive_int, default=200, help="resolution of PNG files (default 200)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="draw this figure only; repeatable")
    args = parser.parse_args(argv)
    command_logging()  # a long bootstrap's estimate and progress reach stderr, on a terminal or not
    matplotlib.use("Agg")  # the command line only writes files
    try:
        recipes = select_recipes(args.only)
        table = infinite_as_missing(load_from_args(args, report=to_stderr), to_stderr)
        law_options.require_named_columns(table, args)
    except (FileNotFoundError, KeyError, DataError) as e:
        parser.error(message(e))
    drawn, missing = draw(
        recipes,
        table,
        args.out,
        law=law_options.from_args(args),
        formats=args.format or ("png", "pdf"),
        dpi=args.dpi,
    )
    command = " ".join(["llm-line figures", *(argv if argv is not None else sys.argv[1:])])
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_file(args.out / "index.md") as handle:
        handle.write(index(drawn, missing, command))
    print(f"wrote {args.out / 'index.md'}: {len(drawn)} figure(s), {len(missing)} not drawn")
    return 0 if drawn else 1


if __name__ == "__main__":
    sys.exit(run_command("python -m llm_line.analysis.figures", main, None))
