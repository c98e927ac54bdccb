"""The options of a law fit that the commands `fit`, `plot`, `intervention` and `figures` share: how E is
estimated, the runs the bootstrap resamples, the resamples and the seed; one definition, so the four read
the same flags the same way.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd

from llm_line.analysis.bootstrap import DEFAULT_BOOTSTRAP
from llm_line.analysis.column_checks import require_columns
from llm_line.analysis.groups import read_irreducible
from llm_line.arguments import nonnegative_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """How a law and its intervals are fitted: the options `fit` and `intervention` share."""
    parser.add_argument(
        "--irreducible",
        choices=("compute", "min", "free", "paper"),
        default="compute",
        help="E from the compute-to-loss fit (default, falls back to min loss), the min loss, fitted freely "
        "with K and kappa, or by the paper's own code (figs.py: single-start curve_fit, fallback min loss)",
    )
    parser.add_argument(
        "--irreducible-from",
        type=Path,
        metavar="FILE",
        help="take E from a CSV with columns group, loss, E (values measured elsewhere); overrides --irreducible",
    )
    parser.add_argument(
        "--run-col",
        default="Name",
        help="column naming each checkpoint's training run: the bootstrap resamples runs, then checkpoints "
        'within runs (default Name; "" = checkpoints as independent)',
    )
    parser.add_argument(
        "--bootstrap",
        type=nonnegative_int,
        default=DEFAULT_BOOTSTRAP,
        metavar="B",
        help=f"resamples (default {DEFAULT_BOOTSTRAP}); a long bootstrap is announced with its estimate",
    )
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="bootstrap seed (default 0)")


def require_named_columns(table: pd.DataFrame, args: argparse.Namespace) -> None:
    """A `--run-col`, `--size-col` or `--tokens-col` the user named must be in the table; only the defaults
    (Name, Size, Tokens) may be absent: then the checkpoints count as independent, or E falls back to the
    minimum loss, and the report says so."""
    for option, default in (("run_col", "Name"), ("size_col", "Size"), ("tokens_col", "Tokens")):
        value = getattr(args, option, None)
        if value and value != default:
            require_columns(table, [value], "--" + option.replace("_", "-"))


def from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of `fit_groups` that `add_arguments` sets."""
    given = read_irreducible(args.irreducible_from) if args.irreducible_from else None
    return {
        "irreducible": "given" if given is not None else args.irreducible,
        "given": given,
        "given_source": str(args.irreducible_from),
        "run_col": args.run_col or None,
        "n_boot": args.bootstrap,
        "seed": args.seed,
    }
