"""The paper's intervention view: how far each group's checkpoints sit from a base group's law.

    python -m llm_line.analysis.intervention --x "FineWeb-Edu Validation Loss" --y "HellaSwag Loss" \\
        --group "Pretraining Data" --base C4 --where Architecture=Llama -o figures/data_intervention

The law L_y = K (L_x - E_x)^kappa + E_y is fitted on the base group's checkpoints only (as `llm_line.analysis.fit`
does). Every group, the base included, is then scored by its residuals y - law(x): their mean (the offset:
> 0 means the group reaches a given x-loss with a higher y-loss than the base) and RMSE, with a bootstrap
interval for the mean that carries both the base law's uncertainty (its bootstrap resamples, E re-estimated
in each) and the group's (its runs, then checkpoints within runs, resampled with a random stream of its own:
independent of the base law's draws, so the base group's own offset interval holds 0 as it should). An
intervention that does not move the line (architecture, in the paper) gives offsets whose interval holds 0;
one that does (pretraining data) gives offsets far from 0.
Checkpoints below the base law's E_x, where the law is undefined, are left out and counted; an offset whose
group reaches outside the x-range the base law was fitted on is marked `extrapolated` (the law is assumed
there, not measured). A flagged base law is used, and its warnings are printed with the offsets.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from llm_line.analysis import law_options
from llm_line.analysis.bootstrap import CI_LEVEL, resample_indices
from llm_line.analysis.column_checks import (
    DataError,
    check_convention,
    law_columns,
    listing,
    loss_values,
    require_columns,
)
from llm_line.analysis.fit_report import interval_text
from llm_line.analysis.groups import fit_groups, group_checkpoints, group_rows
from llm_line.analysis.loss_to_loss import LossFit, shifted_power_law
from llm_line.analysis.progress import command_logging
from llm_line.analysis.table import add_arguments, load_from_args, message, to_stderr
from llm_line.arguments import output_file, prog
from llm_line.errors import run_command


@dataclass
class Offset:
    """One group's residuals from the base law."""

    group: str
    n: int  # checkpoints scored (both losses, x at or above the base law's E_x)
    mean: float | None = None  # mean residual y - law(x)
    ci: tuple[float, float] | None = None  # bootstrap interval of `mean`
    rmse: float | None = None
    below_E_x: int = 0  # checkpoints left out: x below the base law's E_x
    outside: int = 0  # checkpoints scored outside the base law's fitted x-range
    extrapolated: bool = False  # some of the group's x-range lies outside the base law's: the law is extrapolated


@dataclass
class Intervention:
    """The base group's law and every group's offset from it; `residuals` holds x and residual per group."""

    column: str
    base: LossFit
    offsets: list[Offset]
    residuals: dict[str, pd.DataFrame]

    def frame(self) -> pd.DataFrame:
        """The offsets as a tidy table (one row per group)."""
        base_E_x, base_E_y = self.base.E_x, self.base.E_y
        assert base_E_x is not None and base_E_y is not None  # the base law was fitted (see `offsets`)
        return pd.DataFrame(
            [
                {
                    "column": self.column,
                    "base": self.base.group,
                    "x": self.base.x,
                    "y": self.base.y,
                    "group": o.group,
                    "n": o.n,
                    "mean_residual": o.mean,
                    "ci_lo": o.ci[0] if o.ci else None,
                    "ci_hi": o.ci[1] if o.ci else None,
                    "rmse": o.rmse,
                    "below_E_x": o.below_E_x,
                    "outside_base_range": o.outside,
                    "extrapolated": o.extrapolated,
                    "base_K": self.base.K,
                    "base_kappa": self.base.kappa,
                    "base_E_x": base_E_x.E,
                    "base_E_y": base_E_y.E,
                    "base_r2": self.base.r2,
                    "base_status": self.base.status,
                    "base_warnings": "; ".join(self.base.warnings) or None,
                }
                for o in self.offsets
            ]
        )


def offsets(
    table: pd.DataFrame,
    x: str,
    y: str,
    column: str,
    base: str,
    *,
    irreducible: str = "compute",
    given: dict[tuple[str, str], float] | None = None,
    given_source: str = "--irreducible-from",
    run_col: str | None = "Name",
    n_boot: int = 1000,
    seed: int = 0,
    progress: bool = False,
) -> Intervention:
    """Fit the law on the rows whose `column` is `base`; score every group of `column` against it.

    `given` E values are looked up under the base group's name."""
    require_columns(table, [x], "--x")
    require_columns(table, [y], "--y")
    require_columns(table, [column], "--group")
    check_convention(table, f"all rows of this intervention on {column!r}")
    table = table.assign(**{x: loss_values(table, x), y: loss_values(table, y)})
    groups = dict(group_rows(table, column))
    if base not in groups:
        raise KeyError(f"--base: no rows with {column} = {base!r}; the groups are {listing(list(groups))}")
    base_rows = groups[base].assign(**{column: base})  # E values given per group are looked up under `base`
    (law,) = fit_groups(
        base_rows,
        x,
        y,
        column,
        irreducible=irreducible,
        given=given,
        given_source=given_source,
        run_col=run_col,
        n_boot=n_boot,
        seed=seed,
        progress=progress,
    )
    if not law.fitted:
        raise DataError(f"the base group {base!r} has no law to compare against: {law.reason}")
    assert law.E_x is not None and law.x_range is not None
    boot = np.array(law.boot) if law.boot else np.empty((0, 4))
    result = Intervention(column, law, [], {})
    for index, (name, rows) in enumerate(groups.items()):
        rows = rows[np.isfinite(rows[x].to_numpy(float)) & np.isfinite(rows[y].to_numpy(float))]
        xs, ys = rows[x].to_numpy(float), rows[y].to_numpy(float)
        above = xs >= law.E_x.E
        rows, xs, ys = rows[above], xs[above], ys[above]
        residual = ys - law.curve(xs)
        result.residuals[name] = pd.DataFrame({x: xs, "residual": residual})
        outside = int(np.sum((xs < law.x_range[0]) | (xs > law.x_range[1])))
        offset = Offset(name, len(xs), below_E_x=int((~above).sum()), outside=outside, extrapolated=outside > 0)
        if len(xs):
            offset.mean = float(residual.mean())
            offset.rmse = float(math.sqrt(np.mean(residual**2)))
        if len(xs) >= 2 and len(boot) >= 20:
            # a stream of its own per group: drawing the base group's checkpoints with the base law's own
            # seed would repeat the draws its bootstrap laws were fitted on, and its offset would never hold 0
            rng = np.random.default_rng([seed, 1 + index])
            runs = group_checkpoints(rows, x, y, "", "", run_col).runs
            means = []
            for K, kappa, E_x, E_y in tqdm(
                boot, desc=f"offset {name}", leave=False, disable=None if progress else True
            ):
                idx = resample_indices(runs, rng)
                means.append(np.mean(ys[idx] - shifted_power_law(xs[idx], K, kappa, E_x, E_y)))
            lo, hi = 100 * (1 - CI_LEVEL) / 2, 100 * (1 + CI_LEVEL) / 2
            ci_lo, ci_hi = np.nanpercentile(means, [lo, hi])
            offset.ci = (float(ci_lo), float(ci_hi))
        result.offsets.append(offset)
    return result


def format_intervention(result: Intervention) -> str:
    """The base law, then one aligned line per group: n, mean residual with its interval, RMSE."""
    law = result.base
    assert law.E_x is not None and law.E_y is not None
    lines = [
        f"{law.y}  vs  {law.x}: residuals from the law of {result.column} = {law.group!r} "
        f"(K={law.K:.4g}, κ={law.kappa:.4g}, E_x={law.E_x.E:.4g}, E_y={law.E_y.E:.4g}, R²={law.r2:.4f}, "
        f"n={law.n}, {law.status})"
    ]
    lines += [f"  base law flagged: {w}" for w in law.warnings]
    frame = pd.DataFrame(
        [
            {
                result.column: o.group + (" (base)" if o.group == law.group else ""),
                "n": o.n,
                "mean residual": "" if o.mean is None else f"{o.mean:+.4f}",
                f"{CI_LEVEL:.0%} CI": interval_text(o.ci) if o.n else "",
                "RMSE": "" if o.rmse is None else f"{o.rmse:.4f}",
                "left out (x < E_x)": o.below_E_x or "",
                "extrapolated": f"{o.outside} outside the base range" if o.extrapolated else "",
            }
            for o in result.offsets
        ]
    )
    lines.append(frame.to_string(index=False))
    lines.append(
        "mean residual > 0: the group reaches a given x-loss with a higher y-loss than the base; its "
        "interval carries the base law's bootstrap (E re-estimated in each resample) and the group's runs and "
        "checkpoints resampled; extrapolated: checkpoints outside the x-range the base law was fitted on"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    import matplotlib

    from llm_line.analysis import plot
    from llm_line.files import atomic_file

    parser = argparse.ArgumentParser(
        prog=prog("llm_line.analysis.intervention"),
        description="Fit the loss-to-loss law on a base group, then report every group's offset from it "
        "(mean residual with a bootstrap interval, RMSE) and draw residual panels.",
        epilog='example: python -m llm_line.analysis.intervention --x "FineWeb-Edu Validation Loss" '
        '--y "HellaSwag Loss" --group Architecture --base GPT --where "Pretraining Data=The Pile"',
    )
    add_arguments(parser)
    parser.add_argument("--x", required=True, help="x-axis loss column")
    parser.add_argument("--y", required=True, nargs="+", help="y-axis loss column(s): one panel each")
    parser.add_argument("--group", required=True, help="the intervention: the column whose values are compared")
    parser.add_argument("--base", required=True, help="the value of --group whose law the others are scored on")
    law_options.add_arguments(parser)
    parser.add_argument("--csv", type=output_file(), help="also write the offsets as a tidy CSV here")
    parser.add_argument(
        "-o",
        "--out",
        type=output_file(in_folder="intervention"),
        help="write the residual panels here (.png and .pdf; a folder: intervention.png/.pdf inside it)",
    )
    args = parser.parse_args(argv)
    command_logging()  # a long bootstrap's estimate and progress reach stderr, on a terminal or not
    try:
        table = load_from_args(args, report=to_stderr)
        table = law_columns(table, [("--x", args.x), *(("--y", y) for y in args.y)], to_stderr)
        law_options.require_named_columns(table, args)
        results = [
            offsets(
                table,
                args.x,
                y,
                args.group,
                args.base,
                progress=True,
                **law_options.from_args(args),
            )
            for y in args.y
        ]
    except (FileNotFoundError, KeyError, DataError) as e:
        parser.error(message(e))
    for result in results:
        print(format_intervention(result))
        print()
    if args.csv:
        with atomic_file(args.csv) as out:
            pd.concat([r.frame() for r in results], ignore_index=True).to_csv(out, index=False)
        print(f"wrote {args.csv}")
    if args.out:
        matplotlib.use("Agg")  # the command line only writes files
        for path in plot.save(plot.residual_figure(results), args.out):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_command("python -m llm_line.analysis.intervention", main, None))
