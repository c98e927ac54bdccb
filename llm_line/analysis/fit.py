"""Loss-to-loss scaling laws: irreducible losses, shifted power-law fits, bootstrap intervals, prediction.

    python -m llm_line.analysis.fit --x "FineWeb-Edu Validation Loss" --y "HellaSwag Loss" --group "Pretraining Data"

For every group (by default: every pretraining dataset) the law

    L_y = K * (L_x - E_x)^kappa + E_y

is fitted by bounded least squares. The irreducible losses E_x, E_y of each (group, loss) come first, as
in the paper, from a compute-to-loss fit

    L(N, D) = E + ((A/N)^(alpha/beta) + B/D)^beta,   0 <= E <= min observed loss

over the group's checkpoints (N = parameters, `Size`; D = training tokens, `Tokens`). When N or D is
unknown, too few checkpoints have them, or the fit does not converge, E falls back to the minimum observed
loss (the original analysis's fallback) and the report says so and why. `--irreducible free` fits E_x and
E_y together with K and kappa instead; `min` uses the fallback for all; `paper` the estimator of the paper's
own code (`paper_estimator`); `--irreducible-from FILE` takes E measured elsewhere.

Confidence intervals for E_x, E_y, K and kappa come from a seeded bootstrap that re-estimates E in every
resample by the same method (`batch_fit` fits all resamples at once), then K and kappa. A group of several
training runs (`--run-col`, default `Name`) resamples runs, then checkpoints within each run; resamples whose
fit fails are counted. A group whose law cannot be fitted is reported with its reason (too few points, no
spread, ...); no number is ever a silent NaN. A law that was fitted but cannot be trusted has status
"flagged" and its warnings: no degrees of freedom left, fewer than 8 checkpoints, κ on its bound, R² < 0,
an E on a bound or fallen back to the minimum, an E the checkpoints cannot identify (one N or one D), runs
pooled without N and D, more than 10% of resamples failed. Its numbers are shown, never as a good fit.
Caveats that do not flag (a single run) are `notes`.

`prediction.predict(fit, x)` gives the y-loss the law predicts for a new x-loss, with the curve's confidence
interval and a prediction interval for a new checkpoint (curve + residual scatter).

The pieces live in modules of their own: `irreducible` (E from the compute fit), `loss_to_loss` (the law and
its estimate), `bootstrap` (the intervals), `trust` (the flags), `groups` (one law per group of a table),
`prediction` and `fit_report` (the text table, the CSV and the JSON); the options of a law that `fit`, `plot`,
`intervention` and `figures` share are `law_options`. This module holds the command.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

from llm_line.analysis import law_options
from llm_line.analysis.column_checks import DataError, law_columns
from llm_line.analysis.fit_report import fits_frame, format_fits, interval_text
from llm_line.analysis.groups import fit_groups
from llm_line.analysis.prediction import predict
from llm_line.analysis.progress import command_logging
from llm_line.analysis.table import add_arguments, load_from_args, message, to_stderr
from llm_line.arguments import finite_float, output_file, prog
from llm_line.errors import run_command


def main(argv: list[str] | None = None) -> int:
    from llm_line.files import atomic_file, write_json

    parser = argparse.ArgumentParser(
        prog=prog("llm_line.analysis.fit"),
        description="Fit the loss-to-loss law L_y = K (L_x - E_x)^kappa + E_y per group of a wide table "
        "(written by llm_line.analysis.collect, or the paper's released CSV).",
        epilog='example: python -m llm_line.analysis.fit --x "FineWeb-Edu Validation Loss" --y "HellaSwag Loss" '
        '--group "Pretraining Data" --where Architecture=Llama --predict 3.1',
    )
    add_arguments(parser)
    parser.add_argument("--x", required=True, help='x-axis loss column, e.g. "FineWeb-Edu Validation Loss"')
    parser.add_argument("--y", required=True, nargs="+", help='y-axis loss column(s), e.g. "HellaSwag Loss"')
    parser.add_argument(
        "--group",
        default="Pretraining Data",
        help='column whose values get one fit each (default "Pretraining Data"; "" = one fit)',
    )
    law_options.add_arguments(parser)
    parser.add_argument("--size-col", default="Size", help="model size N column (default Size)")
    parser.add_argument("--tokens-col", default="Tokens", help="training tokens D column (default Tokens)")
    parser.add_argument(
        "--predict",
        type=finite_float,
        nargs="+",
        default=[],
        metavar="X",
        help="predict the y-loss of every group at these x-losses",
    )
    parser.add_argument("--json", type=output_file(), help="also write the fits (with bootstrap samples) here")
    parser.add_argument("--csv", type=output_file(), help="also write the fitted parameters as a tidy CSV here")
    args = parser.parse_args(argv)
    command_logging()  # a long bootstrap's estimate and progress reach stderr, on a terminal or not

    try:
        table = load_from_args(args, report=to_stderr)
        table = law_columns(table, [("--x", args.x), *(("--y", y) for y in args.y)], to_stderr)
        law_options.require_named_columns(table, args)
        options = law_options.from_args(args)
        runs = {
            y: fit_groups(
                table,
                args.x,
                y,
                args.group or None,
                size_col=args.size_col,
                tokens_col=args.tokens_col,
                progress=True,
                **options,
            )
            for y in args.y
        }
    except (FileNotFoundError, KeyError, DataError) as e:
        parser.error(message(e))
    predictions = []
    for y, fits in runs.items():
        print(format_fits(fits))
        for x_new in args.predict:
            for f in fits:
                if not f.fitted:
                    print(f"  predict {f.group} at {x_new}: no fit ({f.reason})")
                    continue
                try:
                    p = predict(f, x_new, seed=args.seed)
                except ValueError as e:
                    print(f"  predict {f.group} at {x_new}: {e}")
                    continue
                predictions.append({"y": y, **asdict(p)})
                print(
                    f"  predict {f.group}: {args.x} = {x_new:.4g} -> {y} = {p.y:.4g}, "
                    f"95% CI {interval_text(p.ci)}, 95% prediction interval {interval_text(p.pi)}"
                    + (f" ({p.note})" if p.note else "")
                )
        print()
    fits = [f for group_fits in runs.values() for f in group_fits]
    if args.json:
        write_json(
            args.json,
            {
                "data": [str(d) for d in args.data],
                "where": args.where,
                "group": args.group,
                "irreducible": options["irreducible"],
                "irreducible_from": str(args.irreducible_from) if args.irreducible_from else None,
                "run_col": args.run_col,
                "bootstrap": args.bootstrap,
                "seed": args.seed,
                "fits": [f.to_dict() for f in fits],
                "predictions": predictions,
            },
        )
        print(f"wrote {args.json}")
    if args.csv:
        with atomic_file(args.csv) as out:
            fits_frame(fits).to_csv(out, index=False)
        print(f"wrote {args.csv}")
    return 0 if any(f.fitted for f in fits) else 1


if __name__ == "__main__":
    sys.exit(run_command("python -m llm_line.analysis.fit", main, None))
