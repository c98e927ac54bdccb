"""One law per group of a table: the fit of a group's checkpoints with its bootstrap and trust checks.

`fit_groups` splits a table by its group column (`group_rows`, by default every pretraining dataset), turns
each group's rows into `Checkpoints` with their training runs (`group_checkpoints`), takes E from a file
(`read_irreducible`, `--irreducible-from`) or has it estimated, and fits each group (`fit_checkpoints`): the
law (`loss_to_loss`), its bootstrap (`bootstrap`), its flags (`trust`). `fit_loss_to_loss` does the same for
paired losses outside a table.

Its own module: the step from a table (pandas) to the fits, which `fit`, `plot`, `panels` and `intervention`
share.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from llm_line.analysis.bootstrap import bootstrap
from llm_line.analysis.column_checks import DataError, check_convention, loss_values, require_columns
from llm_line.analysis.irreducible import Irreducible
from llm_line.analysis.loss_to_loss import Checkpoints, Law, LossFit, estimate
from llm_line.analysis.trust import trust_warnings

IRREDUCIBLE_MODES = ("compute", "min", "free", "paper", "given")


def fit_checkpoints(
    rows: Checkpoints, law: Law = Law(), *, n_boot: int = 1000, seed: int = 0, progress: bool = False
) -> LossFit:
    """The law of one group with its trust checks and its bootstrap, E re-estimated inside every resample.

    Never raises for bad data: a fit that cannot be made comes back with status "failed" and its reason, one
    that cannot be trusted with status "flagged" and its warnings.
    """
    result = estimate(rows, law)
    if not result.fitted:
        return result
    if not rows.runs:
        rows.runs = [np.arange(len(rows.x))]
    result.runs = len(rows.runs)
    if not rows.run_names:
        result.resampling = "checkpoints, as if independent (no run column)"
    elif len(rows.runs) == 1:
        result.resampling = "checkpoints"
        result.notes.append(
            "one training run: its intervals speak about this run's checkpoints, not about new training runs"
        )
    else:
        result.resampling = f"{len(rows.runs)} runs, then checkpoints within each run"
    if n_boot > 0:
        bootstrap(result, rows, law, n_boot=n_boot, seed=seed, progress=progress)
    result.warnings = trust_warnings(result, rows, law.mode)
    result.status = "flagged" if result.warnings else "ok"
    return result


def fit_loss_to_loss(
    x: ArrayLike,
    y: ArrayLike,
    E_x: Irreducible,
    E_y: Irreducible,
    *,
    group: str = "all",
    x_name: str = "x",
    y_name: str = "y",
    free: bool = False,
    n_boot: int = 1000,
    seed: int = 0,
    progress: bool = False,
) -> LossFit:
    """The law of paired losses with E_x, E_y given (held in every resample), or free (`free`: fitted with K
    and κ, the given values only their start); checkpoints resampled as independent."""
    rows = Checkpoints(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    law = Law("free" if free else "given", group, x_name, y_name, None if free else (E_x, E_y))
    return fit_checkpoints(rows, law, n_boot=n_boot, seed=seed, progress=progress)


def read_irreducible(path: Path) -> dict[tuple[str, str], float]:
    """E values measured elsewhere, from a CSV with columns group, loss, E (`--irreducible-from`)."""
    if not Path(path).is_file():
        raise DataError(f"--irreducible-from {path}: no such file; give a CSV with columns group, loss, E")
    try:
        table = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"--irreducible-from {path}: an empty file; give a CSV with columns group, loss, E") from None
    missing = [c for c in ("group", "loss", "E") if c not in table.columns]
    if missing:
        raise DataError(f"{path}: no column(s) {', '.join(missing)}; an E table has columns group, loss, E")
    values = pd.to_numeric(table["E"], errors="coerce")
    if values.isna().any() or (values < 0).any():
        row = int(table.index[values.isna() | (values < 0)][0])
        raise DataError(f"{path}: row {row + 2} has E = {table['E'][row]!r}; E must be a number ≥ 0")
    keys = list(zip(table["group"].astype(str), table["loss"].astype(str), strict=True))
    if len(set(keys)) < len(keys):
        raise DataError(f"{path}: a (group, loss) pair appears twice")
    return dict(zip(keys, values.astype(float), strict=True))


def _given(
    given: dict[tuple[str, str], float], rows: pd.DataFrame, group: str, losses: Sequence[str], source: str
) -> tuple[Irreducible, Irreducible] | str:
    """The given E of both losses of a group, or why not."""
    out = []
    for loss in losses:
        if (group, loss) not in given:
            return f"no E for group {group!r}, loss {loss!r} in {source}"
        values = rows[loss].to_numpy(dtype=float)
        lmin = float(np.nanmin(values))
        if given[(group, loss)] > lmin:
            return f"the given E of {loss!r} ({given[(group, loss)]:.4g}) exceeds the group's minimum loss {lmin:.4g}"
        out.append(Irreducible(loss, group, given[(group, loss)], f"given ({source})", min_loss=lmin))
    return out[0], out[1]


def group_checkpoints(
    rows: pd.DataFrame, x: str, y: str, size_col: str, tokens_col: str, run_col: str | None
) -> Checkpoints:
    """A group's rows as `Checkpoints`; each value of `run_col` is one run (a row without one is a run alone)."""
    N = rows[size_col].to_numpy(dtype=float) if size_col in rows.columns else None
    D = rows[tokens_col].to_numpy(dtype=float) if tokens_col in rows.columns else None
    if run_col and run_col in rows.columns:
        labels = rows[run_col].astype(str).where(rows[run_col].notna(), [f"(row {i})" for i in range(len(rows))])
        codes, names = pd.factorize(labels, sort=True)
        runs = [np.flatnonzero(codes == i) for i in range(len(names))]
        run_names = [str(n) for n in names]
    else:
        runs, run_names = [np.arange(len(rows))], []
    return Checkpoints(rows[x].to_numpy(dtype=float), rows[y].to_numpy(dtype=float), N, D, runs, run_names)


def fit_groups(
    table: pd.DataFrame,
    x: str,
    y: str,
    group: str | None = "Pretraining Data",
    *,
    irreducible: str = "compute",
    given: dict[tuple[str, str], float] | None = None,
    given_source: str = "--irreducible-from",
    size_col: str = "Size",
    tokens_col: str = "Tokens",
    run_col: str | None = "Name",
    n_boot: int = 1000,
    seed: int = 0,
    progress: bool = False,
) -> list[LossFit]:
    """One loss-to-loss fit per group of `table` (all rows as one group if `group` is None).

    E of each (group, loss) uses every checkpoint of the group with that loss, also those lacking the other
    (`paper`: the rows of the law, as the original code). `given` (E per (group, loss)) replaces the
    estimate. Rows without a group value form the group "(no <group>)". The bootstrap resamples the runs of
    `run_col`, then checkpoints within runs. Raises DataError for a loss that is not a non-negative number
    and for a group that mixes loss conventions.
    """
    if irreducible not in IRREDUCIBLE_MODES:
        raise ValueError(f"irreducible must be one of {', '.join(IRREDUCIBLE_MODES)}, not {irreducible!r}")
    if irreducible == "given" and given is None:
        raise ValueError("irreducible='given' needs the given E values")
    require_columns(table, [x], "--x")
    require_columns(table, [y], "--y")
    require_columns(table, [group] if group else [], "--group")
    table = table.assign(**{x: loss_values(table, x), y: loss_values(table, y)})
    fits = []
    for name, rows in group_rows(table, group):
        check_convention(rows, name)
        both = rows[[x, y]].notna().all(axis=1)
        if not both.any():
            fits.append(LossFit(name, x, y, 0, "failed", f"no checkpoint has both {x!r} and {y!r}"))
            continue
        fixed = _given(given, rows, name, (x, y), given_source) if irreducible == "given" and given else None
        if isinstance(fixed, str):
            fits.append(LossFit(name, x, y, int(both.sum()), "failed", fixed))
            continue
        fits.append(
            fit_checkpoints(
                group_checkpoints(rows, x, y, size_col, tokens_col, run_col),
                Law(irreducible, name, x, y, fixed),
                n_boot=n_boot,
                seed=seed,
                progress=progress,
            )
        )
    return fits


def group_rows(table: pd.DataFrame, group: str | None) -> list[tuple[str, pd.DataFrame]]:
    """(label, rows) per value of `group`, sorted; missing values labelled "(no <group>)"."""
    if not group:
        return [("all", table)]
    labels = table[group].astype(str).where(table[group].notna(), f"(no {group})")
    return [(str(label), rows) for label, rows in table.groupby(labels, sort=True)]
