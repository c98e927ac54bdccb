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

`predict(fit, x)` gives the y-loss the law predicts for a new x-loss, with the curve's confidence interval
and a prediction interval for a new checkpoint (curve + residual scatter).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.optimize import least_squares
from tqdm.auto import tqdm

from llm_line.analysis import batch_fit, paper_estimator
from llm_line.analysis.progress import batches, command_logging
from llm_line.analysis.table import (
    DataError,
    add_arguments,
    check_convention,
    law_columns,
    load_from_args,
    loss_values,
    message,
    require_columns,
    to_stderr,
)
from llm_line.arguments import finite_float, nonnegative_int, output_file, prog
from llm_line.errors import run_command

CI_LEVEL = 0.95
KAPPA_BOUNDS = (0.01, 20.0)
IRREDUCIBLE_MODES = ("compute", "min", "free", "paper", "given")
MIN_CHECKPOINTS = 8  # fewer: flagged, too few to check the shape of a 2-parameter law against its scatter
MAX_FAILED_SHARE = 0.10  # more bootstrap resamples failing than this: flagged
DEFAULT_BOOTSTRAP = 1000
# The bootstrap runs in batches of resamples, so its memory stays bounded whatever --bootstrap asks: BATCH at
# once where they are fitted together (a bootstrap of up to BATCH resamples is one batch, so its numbers do not
# depend on the batching), LOOP_BATCH between two looks at the clock where they are fitted one by one. A longer
# one starts with FIRST_BATCH resamples, timed for the estimate of how long the whole will take.
BATCH = 10_000
LOOP_BATCH = 50
FIRST_BATCH = 500


# --------------------------------------------------------------------------------------------------
# Irreducible loss from a compute-to-loss fit
# --------------------------------------------------------------------------------------------------


@dataclass
class Irreducible:
    """The irreducible loss E of one loss in one group, and how it was obtained."""

    loss: str
    group: str
    E: float
    method: str  # compute fit L(N, D) | compute fit L(D) (one model size) | min observed loss | free | given
    fallback_reason: str | None = None  # why the compute fit was not used, where it was not
    n: int = 0  # checkpoints the estimate used
    min_loss: float | None = None
    r2: float | None = None  # of the compute fit
    params: dict[str, float] = field(default_factory=dict)  # A, alpha, B, beta of the compute fit
    at_bound: str | None = None  # "upper (min observed loss)" or "lower (0)" when E sits on a bound
    unidentified: str | None = None  # why the data cannot tell E apart from the rest of the law, where they cannot
    ci: tuple[float, float] | None = None  # bootstrap interval, E re-estimated in every resample

    def describe(self) -> str:
        text = f"{self.E:.4f} ({self.method}"
        if self.r2 is not None:
            text += f", R²={self.r2:.3f}"
        if self.at_bound:
            text += f", at {self.at_bound} bound"
        if self.fallback_reason:
            text += f"; fallback because {self.fallback_reason}"
        return text + ")"


def compute_law(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, reduced: bool) -> np.ndarray:
    """L(N, D) in the fit's parameterisation (see `fit_irreducible`)."""
    if reduced:  # one model size: (A/N)^(alpha/beta) is one constant, exp(a)
        E, a, b, beta = theta
        inner = np.exp(a) + np.exp(b - log_d)
    else:
        E, a, b, p, beta = theta
        inner = np.exp(a - p * log_n) + np.exp(b - log_d)
    return E + inner**beta


def compute_law_jacobian(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, reduced: bool) -> np.ndarray:
    """d L(N, D) / d theta, columns in the order of `compute_law`'s theta: analytic, so a fit costs one
    evaluation per step instead of one per parameter."""
    if reduced:
        _, a, b, beta = theta
        u = np.full_like(log_d, math.exp(a))
    else:
        _, a, b, p, beta = theta
        u = np.exp(a - p * log_n)
    v = np.exp(b - log_d)
    inner = u + v
    slope = beta * inner ** (beta - 1)
    columns = [np.ones_like(inner), slope * u, slope * v]
    if not reduced:
        columns.append(-slope * u * log_n)
    columns.append(inner**beta * np.log(inner))
    return np.column_stack(columns)


def fit_irreducible(
    loss: ArrayLike,
    N: ArrayLike | None = None,
    D: ArrayLike | None = None,
    *,
    name: str = "loss",
    group: str = "all",
    min_points: int | None = None,
    start: Irreducible | None = None,
) -> Irreducible:
    """E of one (group, loss) from the compute-to-loss law; falls back to min(loss), saying why.

    `start`, an earlier compute fit of the same loss (the point estimate, inside a bootstrap resample), replaces
    the grid of start points by that one fit's parameters: one local fit instead of eight.

    The fit runs in a well-conditioned form: with n = N / geomean(N), d = D / geomean(D),

        L = E + (exp(a - p log n) + exp(b - log d))^beta,   p = alpha / beta,

    so every parameter is O(1) (A = N0 exp(a / p), B = D0 exp(b)). With a single model size the N term is one
    constant (alpha is not identifiable) and the law reduces to E + (exp(a) + exp(b - log d))^beta.
    """
    L = np.asarray(loss, dtype=float)
    finite = np.isfinite(L)
    L_all = L[finite]
    if len(L_all) == 0:
        raise ValueError(f"no finite values of {name!r} in group {group!r}")
    lmin = float(L_all.min())

    def fallback(reason: str) -> Irreducible:
        return Irreducible(name, group, lmin, "min observed loss", reason, n=len(L_all), min_loss=lmin)

    if N is None or D is None:
        return fallback("model size N or training tokens D is not in the table")
    N = np.asarray(N, dtype=float)
    D = np.asarray(D, dtype=float)
    known = finite & np.isfinite(N) & np.isfinite(D) & (N > 0) & (D > 0)
    L, N, D = L[known], N[known], D[known]
    one_size = len(np.unique(N)) == 1
    unidentified = spread_problem(np.asarray(N), np.asarray(D))
    n_params = 4 if one_size else 5
    need = min_points or n_params + 2
    if len(L) < need:
        return fallback(f"N and D are known and > 0 for {len(L)} of {len(L_all)} checkpoints (need ≥ {need})")
    if len(np.unique(D)) == 1 and one_size:
        return fallback("N and D do not vary across the checkpoints")
    if lmin <= 0:
        return fallback("the minimum loss is not positive")
    log_n0, log_d0 = np.log(N).mean(), np.log(D).mean()
    log_n, log_d = np.log(N) - log_n0, np.log(D) - log_d0
    upper_E = lmin  # over every checkpoint of the group, also those without N or D

    def residuals(theta):
        return compute_law(theta, log_n, log_d, one_size) - L

    def jacobian(theta):
        return compute_law_jacobian(theta, log_n, log_d, one_size)

    if one_size:
        lb, ub = [0, -50, -50, 0.01], [upper_E, 50, 50, 5]
    else:
        lb, ub = [0, -50, -50, 0.01, 0.01], [upper_E, 50, 50, 10, 5]
    warm = _warm_start(start, one_size, log_n0, log_d0, upper_E)
    best, last_error = None, "no start point"
    for x0, options in _start_points(warm, float(L.mean()), upper_E, one_size):
        if best is not None and warm is not None:
            break  # the warm start converged: no grid needed
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                res = least_squares(
                    residuals, np.clip(x0, lb, ub), jac=jacobian, bounds=(lb, ub), method="trf", **options
                )
        except (ValueError, FloatingPointError) as e:
            last_error = str(e)
            continue
        if res.success and np.isfinite(res.cost) and (best is None or res.cost < best.cost):
            best = res
        last_error = res.message
    if best is None:
        return fallback(f"the compute-to-loss fit did not converge ({last_error})")
    theta = best.x
    ss_res = float(np.sum(best.fun**2))
    ss_tot = float(np.sum((L - L.mean()) ** 2))
    r2 = 1 - ss_res / ss_tot if ss_tot > 0 else None
    if r2 is None or not np.isfinite(r2) or r2 < 0:
        return fallback(f"the compute-to-loss fit explains none of the variance (R²={r2})")
    E = float(theta[0])
    if one_size:
        _, a, b, beta = theta
        params = {"beta": float(beta), "B": float(math.exp(b + log_d0)), "(A/N)^(alpha/beta)": float(math.exp(a))}
    else:
        _, a, b, p, beta = theta
        params = {
            "A": float(math.exp(a / p + log_n0)),
            "alpha": float(p * beta),
            "B": float(math.exp(b + log_d0)),
            "beta": float(beta),
        }
    at_bound = None
    if upper_E * (1 - 1e-6) <= E:
        at_bound = "upper (min observed loss)"
    elif 1e-6 * upper_E >= E:
        at_bound = "lower (0)"
    method = "compute fit L(D) (one model size)" if one_size else "compute fit L(N, D)"
    return Irreducible(
        name,
        group,
        E,
        method,
        None,
        n=len(L),
        min_loss=lmin,
        r2=r2,
        params=params,
        at_bound=at_bound,
        unidentified=unidentified,
    )


def spread_problem(N: np.ndarray, D: np.ndarray) -> str | None:
    """Why E cannot be told apart from the rest of L(N, D) on these checkpoints, or None.

    E is the loss as N and D both grow without bound. Where every checkpoint has one model size, the size term
    (A/N)^(alpha/beta) is one constant c and only E + c^beta is pinned down by the data; E alone rests on the
    curvature of the token term. The same holds, with the roles swapped, where every checkpoint saw one token
    count (Pythia: 3e11 tokens for all but one model).
    """
    sizes, tokens = len(np.unique(N)), len(np.unique(D))
    if sizes == 0:
        return None
    if sizes == 1:
        return f"every checkpoint has one model size N = {N[0]:.3g}, so E is not separated from the size term"
    if tokens == 1:
        return f"every checkpoint saw one token count D = {D[0]:.3g}, so E is not separated from the data term"
    most = max(np.unique(D, return_counts=True)[1].max(), np.unique(N, return_counts=True)[1].max())
    if len(N) - most < 2:
        return (
            f"all but {len(N) - most} of {len(N)} checkpoints share one N or one D, so E is not separated from "
            "the size or data term"
        )
    return None


_COLD: dict[str, Any] = {"x_scale": "jac", "max_nfev": 2000}
# From a warm start, unit scaling keeps the fit from wandering along directions the data do not pin down (a size
# term 1e-11 of the token term), where Jacobian scaling takes huge steps; few evaluations, since it starts close.
_WARM: dict[str, Any] = {"x_scale": 1.0, "max_nfev": 100}


def _start_points(
    warm: list[float] | None, mean_loss: float, upper_E: float, one_size: bool
) -> list[tuple[list[float], dict[str, Any]]]:
    """Where the compute fit starts: the warm start first, if any, then (only where it fails) the cold grid.

    A resample whose optimum lies far from the point estimate's (E running to 0 along a flat valley) is found by
    the grid, not counted as a failure."""
    return ([(warm, _WARM)] if warm else []) + [(x0, _COLD) for x0 in _compute_starts(mean_loss, upper_E, one_size)]


def _compute_starts(mean_loss: float, upper_E: float, one_size: bool) -> list[list[float]]:
    """The grid of start points of a fresh compute fit: E at half and 90% of its bound, two beta, two alpha/beta."""
    starts = []
    for e_frac in (0.5, 0.9):
        for beta in (0.3, 1.0):
            reducible = max(mean_loss - e_frac * upper_E, 1e-3)
            term = math.log(reducible ** (1 / beta) / 2)
            for p in (1.0,) if one_size else (0.5, 1.5):
                head = [e_frac * upper_E, term, term]
                starts.append(head + ([beta] if one_size else [p, beta]))
    return starts


def _warm_start(
    start: Irreducible | None, one_size: bool, log_n0: float, log_d0: float, upper_E: float
) -> list[float] | None:
    """The parameters of an earlier compute fit in this fit's centred form, or None where they do not carry over."""
    if start is None or not start.method.startswith("compute fit"):
        return None
    if start.method.endswith("(one model size)") != one_size:
        return None
    params, E = start.params, min(start.E, upper_E)
    if one_size:
        return [E, math.log(params["(A/N)^(alpha/beta)"]), math.log(params["B"]) - log_d0, params["beta"]]
    p = params["alpha"] / params["beta"]
    return [E, p * (math.log(params["A"]) - log_n0), math.log(params["B"]) - log_d0, p, params["beta"]]


# --------------------------------------------------------------------------------------------------
# Loss-to-loss law
# --------------------------------------------------------------------------------------------------


@dataclass
class LossFit:
    """L_y = K (L_x - E_x)^kappa + E_y for one group.

    `status` is "ok", "flagged" (fitted, but see `warnings`: not to be trusted as it stands) or "failed"
    (no law; `reason` says why).
    """

    group: str
    x: str
    y: str
    n: int
    status: str  # ok | flagged | failed
    reason: str | None = None
    K: float | None = None
    kappa: float | None = None
    E_x: Irreducible | None = None
    E_y: Irreducible | None = None
    r2: float | None = None
    rmse: float | None = None
    K_ci: tuple[float, float] | None = None
    kappa_ci: tuple[float, float] | None = None
    n_boot: int = 0  # bootstrap resamples that were fitted
    n_boot_failed: int = 0  # resamples whose law or E could not be fitted (counted, not hidden)
    runs: int = 0  # training runs in the group (`--run-col`), the bootstrap's first resampling stage
    resampling: str | None = None  # what a bootstrap resample draws
    notes: list[str] = field(default_factory=list)  # caveats that do not flag the law
    x_range: tuple[float, float] | None = None
    boot: list[tuple[float, float, float, float]] | None = None  # (K, kappa, E_x, E_y) per resample
    residuals: list[float] | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def fitted(self) -> bool:
        """A law was fitted (it may still be flagged)."""
        return self.status != "failed"

    def curve(self, x: Any) -> np.ndarray:
        """The fitted law at x-losses `x` (NaN below E_x, where it is undefined)."""
        if not self.fitted:
            raise ValueError(f"no fit for group {self.group!r}: {self.reason}")
        assert self.K is not None and self.kappa is not None and self.E_x is not None and self.E_y is not None
        return shifted_power_law(np.asarray(x, dtype=float), self.K, self.kappa, self.E_x.E, self.E_y.E)

    def to_dict(self, samples: bool = True) -> dict[str, Any]:
        out = asdict(self)
        if not samples:
            out.pop("boot")
            out.pop("residuals")
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LossFit:
        data = dict(data)
        for key in ("E_x", "E_y"):
            if data.get(key) is not None:
                e = dict(data[key])
                e["ci"] = tuple(e["ci"]) if e.get("ci") is not None else None
                data[key] = Irreducible(**e)
        for key in ("K_ci", "kappa_ci", "x_range"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        if data.get("boot") is not None:
            data["boot"] = [tuple(b) for b in data["boot"]]
        return cls(**data)


def shifted_power_law(
    x: np.ndarray,
    K: float | np.ndarray,
    kappa: float | np.ndarray,
    E_x: float | np.ndarray,
    E_y: float | np.ndarray,
) -> np.ndarray:
    """K (x - E_x)^kappa + E_y (NaN where x < E_x); the parameters may be arrays that broadcast with x."""
    base = np.asarray(x, dtype=float) - E_x
    with np.errstate(invalid="ignore", over="ignore"):  # inf beyond float range: `predict` says so
        return np.where(base >= 0, K * np.power(np.clip(base, 0, None), kappa) + E_y, np.nan)


def fit_law(
    x: np.ndarray,
    y: np.ndarray,
    E_x: float,
    E_y: float,
    *,
    free: bool = False,
    start: tuple[float, float] | None = None,
) -> tuple[float, float, float, float, float] | None:
    """One bounded least-squares fit of the law; returns (K, kappa, E_x, E_y, cost) or None.

    Parameterised as y = E_y + exp(c) * r^kappa with r = (x - E_x) / g, g the geometric mean of x - E_x at
    the starting E_x; then K = exp(c) / g^kappa. Scaling by g decorrelates K and kappa, which are otherwise
    nearly collinear when x - E_x is far from 1.
    """
    base0 = x - E_x
    positive = base0 > 0
    if positive.sum() < 2:
        return None
    g = float(np.exp(np.log(base0[positive]).mean()))
    if start is None:  # linear fit in log-log space where both sides are above their E
        ok = positive & (y - E_y > 0)
        if ok.sum() >= 2 and np.ptp(np.log(base0[ok])) > 0:
            kappa0, c0 = np.polyfit(np.log(base0[ok] / g), np.log(y[ok] - E_y), 1)
        else:
            kappa0, c0 = 1.0, math.log(max(float(np.mean(y - E_y)), 1e-6))
    else:
        K0, kappa0 = start
        c0 = math.log(K0) + kappa0 * math.log(g)
    kappa0 = float(np.clip(kappa0, 0.02, 19))
    c0 = float(np.clip(c0, -49, 49))
    if free:
        x_upper, y_upper = float(x.min()), float(y.min())
        x0 = [c0, kappa0, min(E_x, x_upper * 0.999), min(E_y, y_upper * 0.999)]
        lb, ub = [-50, KAPPA_BOUNDS[0], 0.0, 0.0], [50, KAPPA_BOUNDS[1], x_upper, y_upper]
    else:
        x0, lb, ub = [c0, kappa0], [-50, KAPPA_BOUNDS[0]], [50, KAPPA_BOUNDS[1]]

    def residuals(theta):
        c, kappa = theta[0], theta[1]
        ex, ey = (theta[2], theta[3]) if free else (E_x, E_y)
        r = np.clip((x - ex) / g, 0, None)
        return ey + np.exp(c) * np.power(r, kappa) - y

    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            res = least_squares(residuals, x0, bounds=(lb, ub), method="trf", x_scale="jac", max_nfev=2000)
    except ValueError:
        return None
    if not res.success or not np.all(np.isfinite(res.x)) or not np.isfinite(res.cost):
        return None
    c, kappa = float(res.x[0]), float(res.x[1])
    ex, ey = (float(res.x[2]), float(res.x[3])) if free else (E_x, E_y)
    K = math.exp(c - kappa * math.log(g))
    if not math.isfinite(K):
        return None
    return K, kappa, ex, ey, float(res.cost)


@dataclass
class Checkpoints:
    """One group's checkpoints as arrays (NaN = missing), and which of them belong to one training run.

    The runs are the bootstrap's resampling unit: checkpoints along one run's trajectory are not independent
    draws, so a resample draws runs, then checkpoints within each drawn run.
    """

    x: np.ndarray
    y: np.ndarray
    N: np.ndarray | None = None
    D: np.ndarray | None = None
    runs: list[np.ndarray] = field(default_factory=list)  # row positions of each run
    run_names: list[str] = field(default_factory=list)

    def take(self, idx: np.ndarray) -> Checkpoints:
        """The checkpoints at positions `idx` (repeats allowed), without run structure."""
        return Checkpoints(
            self.x[idx],
            self.y[idx],
            None if self.N is None else self.N[idx],
            None if self.D is None else self.D[idx],
        )


def resample_indices(runs: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """One two-stage bootstrap draw: runs with replacement, then each drawn run's checkpoints with replacement.

    With one run this is the ordinary bootstrap over its checkpoints.
    """
    if len(runs) == 1:
        (members,) = runs
        return members[rng.integers(0, len(members), len(members))]
    drawn = rng.integers(0, len(runs), len(runs))
    return np.concatenate([runs[i][rng.integers(0, len(runs[i]), len(runs[i]))] for i in drawn])


def _irreducible(
    values: np.ndarray,
    rows: Checkpoints,
    mode: str,
    name: str,
    group: str,
    *,
    fixed: Irreducible | None,
    start: Irreducible | None,
    paper_start: float,
) -> Irreducible:
    """E of one loss of one group's checkpoints by `mode`; `start`: the point estimate, inside a resample."""
    if fixed is not None:
        return fixed
    finite = values[np.isfinite(values)]
    lmin = float(finite.min())
    if mode == "min":
        return Irreducible(name, group, lmin, "min observed loss (--irreducible min)", n=len(finite), min_loss=lmin)
    if mode == "free":  # only the starting point; the fit replaces it
        return Irreducible(name, group, min(start.E, lmin) if start else lmin, "free", n=len(finite), min_loss=lmin)
    if start is not None and start.fallback_reason:  # the point estimate fell back: so does every resample
        return Irreducible(name, group, lmin, start.method, start.fallback_reason, n=len(finite), min_loss=lmin)
    if mode == "compute":
        return fit_irreducible(values, rows.N, rows.D, name=name, group=group, start=start)
    N, D = rows.N, rows.D
    if N is None or D is None or not (np.all(np.isfinite(N)) and np.all(np.isfinite(D))):
        missing = "N or D is missing for some checkpoints (the paper's curve_fit rejects NaN)"
        return Irreducible(name, group, lmin, paper_estimator.FALLBACK, missing, n=len(finite), min_loss=lmin)
    E, reason = paper_estimator.irreducible(values, N, D, paper_start)
    if reason:
        return Irreducible(name, group, E, paper_estimator.FALLBACK, reason, n=len(values), min_loss=lmin)
    bound = "lower (0)" if 1e-6 * lmin >= E else "upper (min observed loss)" if lmin * (1 - 1e-6) <= E else None
    return Irreducible(
        name,
        group,
        E,
        paper_estimator.METHOD,
        n=len(values),
        min_loss=lmin,
        at_bound=bound,
        unidentified=spread_problem(N, D),
    )


@dataclass(frozen=True)
class Law:
    """What a group's fit is asked for: how E is found (`mode`; `fixed` E for "given"), and the names it reports."""

    mode: str = "compute"
    group: str = "all"
    x_name: str = "x"
    y_name: str = "y"
    fixed: tuple[Irreducible, Irreducible] | None = None


def estimate(rows: Checkpoints, law: Law = Law(), start: LossFit | None = None) -> LossFit:
    """E_x, E_y by `law.mode`, then K and κ, on one set of checkpoints (the group's, or one bootstrap resample).

    `start` is the point estimate when this is a resample: its fits warm-start every step, and the
    goodness-of-fit statistics and trust checks, which only the point estimate reports, are skipped.
    """
    mode, group, x_name, y_name, fixed = law.mode, law.group, law.x_name, law.y_name, law.fixed
    both = np.isfinite(rows.x) & np.isfinite(rows.y)
    if mode == "paper":  # the original fits both E on the rows of the law
        rows = rows.take(np.flatnonzero(both))
        both = np.ones(len(rows.x), dtype=bool)
    xs, ys = rows.x[both], rows.y[both]
    n = len(xs)
    result = LossFit(group=group, x=x_name, y=y_name, n=n, status="failed")
    need = 5 if mode == "free" else 3
    if n < need:
        result.reason = f"{n} checkpoint(s) with both losses (need ≥ {need})"
        return result
    if len(np.unique(xs)) < 3 or np.ptp(xs) <= 1e-9 * abs(float(np.mean(xs))):
        result.reason = f"no spread in {x_name} ({len(np.unique(xs))} distinct value(s))"
        return result
    if np.ptp(ys) <= 1e-12 * max(abs(float(np.mean(ys))), 1.0):
        result.reason = f"no spread in {y_name}: R² is undefined"
        return result
    E_x, E_y = (
        _irreducible(
            values,
            rows,
            mode,
            name,
            group,
            fixed=fixed[i] if fixed else None,
            start=(start.E_x, start.E_y)[i] if start else None,
            paper_start=paper_start,
        )
        for i, (values, name, paper_start) in enumerate(((rows.x, x_name, 0.1), (rows.y, y_name, 0.0)))
    )
    result.E_x, result.E_y = E_x, E_y
    if np.sum(xs > E_x.E) < 2:
        result.reason = f"fewer than 2 checkpoints have {x_name} above E_x = {E_x.E:.4g}"
        return result
    if mode == "paper":
        paper_law = paper_estimator.law(xs, ys, E_x.E, E_y.E)
        if paper_law is None:
            result.reason = "the paper's curve_fit of the law raised"
            return result
        (K, kappa), ex, ey = paper_law, E_x.E, E_y.E
    else:
        warm = (start.K, start.kappa) if start and start.K and start.kappa else None
        fitted = fit_law(xs, ys, E_x.E, E_y.E, free=mode == "free", start=warm)
        if fitted is None:
            result.reason = "least squares did not converge"
            return result
        K, kappa, ex, ey, _ = fitted
    if mode == "free":
        result.E_x = Irreducible(x_name, group, ex, "free", None, n=n, min_loss=float(xs.min()))
        result.E_y = Irreducible(y_name, group, ey, "free", None, n=n, min_loss=float(ys.min()))
    result.K, result.kappa, result.status = K, kappa, "ok"
    if start is not None:
        return result
    residuals = ys - shifted_power_law(xs, K, kappa, ex, ey)
    ss_res = float(np.sum(residuals**2))
    result.r2 = 1 - ss_res / float(np.sum((ys - ys.mean()) ** 2))
    result.rmse = math.sqrt(ss_res / n)
    result.x_range = (float(xs.min()), float(xs.max()))
    result.residuals = [float(r) for r in residuals]
    return result


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


def bootstrap(point: LossFit, rows: Checkpoints, law: Law, *, n_boot: int, seed: int, progress: bool = False) -> None:
    """Percentile intervals for K, κ, E_x and E_y from `n_boot` resamples, each refitted from scratch.

    Every resample re-estimates E_x and E_y by the same method as the point estimate (warm-started from it),
    then K and κ. A resample fails when its law cannot be fitted or its E changes method (a compute fit that
    does not converge): failures are counted in `n_boot_failed`, never silently dropped. The compute fit, the
    minimum and given E are fitted for a batch of resamples at once (`batch_fit`); free E and the paper's
    estimator (whose point is its own scipy call) one resample at a time. A bootstrap that will take long is
    announced with its estimate, and its progress logged (`llm_line.analysis.progress`).
    """
    rng = np.random.default_rng(seed)
    assert point.E_x is not None and point.E_y is not None
    batched = law.mode in ("compute", "min", "given")
    sizes = batches(
        n_boot,
        BATCH if batched else LOOP_BATCH,
        f"bootstrap {point.group}",
        unit="resamples",
        first=FIRST_BATCH if n_boot > BATCH else None,
        hint=f"a smaller --bootstrap is faster (the default, {DEFAULT_BOOTSTRAP}, gives 95% intervals)",
    )
    bar = {"desc": f"bootstrap {point.group}", "unit": "batch", "leave": False, "disable": None if progress else True}
    boot: list[tuple[float, float, float, float]] = []
    failed = 0
    for size in tqdm(sizes, **bar):
        draws = [resample_indices(rows.runs, rng) for _ in range(size)]  # the one stream, whatever the batches
        if batched:
            samples, ok = _batched_resamples(point, rows, draws)
            boot += [tuple(float(v) for v in row) for row in samples[ok]]  # type: ignore[misc]
            failed += int((~ok).sum())
            continue
        for idx in draws:
            b = estimate(rows.take(idx), law, start=point)
            if not b.fitted or b.E_x is None or b.E_y is None or b.E_x.method != point.E_x.method:
                failed += 1
                continue
            assert b.K is not None and b.kappa is not None
            boot.append((float(b.K), float(b.kappa), float(b.E_x.E), float(b.E_y.E)))
    point.n_boot, point.n_boot_failed, point.boot = len(boot), failed, boot
    if len(boot) >= max(20, n_boot // 2):
        arr = np.array(boot)
        lo, hi = 100 * (1 - CI_LEVEL) / 2, 100 * (1 + CI_LEVEL) / 2
        point.K_ci = _percentile_interval(arr[:, 0], lo, hi)
        point.kappa_ci = _percentile_interval(arr[:, 1], lo, hi)
        point.E_x.ci = _percentile_interval(arr[:, 2], lo, hi)
        point.E_y.ci = _percentile_interval(arr[:, 3], lo, hi)


def _batched_resamples(point: LossFit, rows: Checkpoints, draws: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(K, κ, E_x, E_y) of every resample as a (B, 4) array, and which resamples were fitted."""
    assert point.E_x is not None and point.E_y is not None and point.K is not None and point.kappa is not None
    idx, real = batch_fit.padded(draws)
    X, Y = np.where(real, rows.x[idx], np.nan), np.where(real, rows.y[idx], np.nan)
    stages = [(X, rows.x, point.E_x), (Y, rows.y, point.E_y)]
    (E_x, ok_x), (E_y, ok_y) = (_batched_irreducible(V, values, rows, idx, e) for V, values, e in stages)
    both = np.isfinite(X) & np.isfinite(Y)
    ok = ok_x & ok_y & (both.sum(axis=1) >= 3) & (np.sum(both & (E_x[:, None] < X), axis=1) >= 2)
    ok &= _distinct(np.where(both, X, np.nan)) >= 3
    xs = rows.x[np.isfinite(rows.x) & np.isfinite(rows.y)]
    gap = xs - point.E_x.E
    g = float(np.exp(np.log(gap[gap > 0]).mean()))
    start = np.tile([math.log(point.K) + point.kappa * math.log(g), point.kappa], (len(draws), 1))
    E_x, E_y = np.where(ok, E_x, 0.0), np.where(ok, E_y, 0.0)
    model = batch_fit.power_law_model(np.nan_to_num(X), np.nan_to_num(Y), both.astype(float), E_x, E_y, g)
    lower, upper = np.array([-50.0, KAPPA_BOUNDS[0]]), np.array([50.0, KAPPA_BOUNDS[1]])
    theta, converged = batch_fit.levenberg_marquardt(model, start, lower, upper)
    c, kappa = theta[:, 0], theta[:, 1]
    K = np.exp(c - kappa * math.log(g))
    ok &= converged & np.isfinite(K)
    return np.column_stack([K, kappa, E_x, E_y]), ok


def _distinct(values: np.ndarray) -> np.ndarray:
    """The number of distinct finite values in each row."""
    ordered = np.sort(values, axis=1)  # NaN sorts last
    steps = np.diff(ordered, axis=1) > 0
    return np.isfinite(ordered[:, :1]).sum(axis=1) + steps.sum(axis=1)


def _batched_irreducible(
    V: np.ndarray, values: np.ndarray, rows: Checkpoints, idx: np.ndarray, point: Irreducible
) -> tuple[np.ndarray, np.ndarray]:
    """E of one loss in every resample (values `V`, NaN = missing or padding), by the point estimate's method."""
    finite = np.isfinite(V)
    lowest = np.where(finite, V, np.inf).min(axis=1)
    ok = np.isfinite(lowest)
    if point.method.startswith("given"):
        return np.full(len(V), point.E), ok
    if not point.method.startswith("compute fit"):  # min observed loss, by choice or as the point's fallback
        return np.where(ok, lowest, 0.0), ok
    assert rows.N is not None and rows.D is not None
    known_rows = np.isfinite(values) & np.isfinite(rows.N) & np.isfinite(rows.D) & (rows.N > 0) & (rows.D > 0)
    log_n0, log_d0 = np.log(rows.N[known_rows]).mean(), np.log(rows.D[known_rows]).mean()
    one_size = point.method.endswith("(one model size)")
    known = finite & known_rows[idx]
    upper_E = np.where(ok, lowest, 1.0)
    warm = _warm_start(point, one_size, log_n0, log_d0, math.inf)
    assert warm is not None
    start = np.tile(warm, (len(V), 1))
    start[:, 0] = np.minimum(start[:, 0], upper_E)
    lower = np.tile([0.0, -50, -50] + ([0.01] if one_size else [0.01, 0.01]), (len(V), 1))
    upper = np.tile([0.0, 50, 50] + ([5.0] if one_size else [10.0, 5.0]), (len(V), 1))
    upper[:, 0] = upper_E
    with np.errstate(divide="ignore", invalid="ignore"):
        log_n = np.where(known, np.log(rows.N[idx]) - log_n0, 0.0)
        log_d = np.where(known, np.log(rows.D[idx]) - log_d0, 0.0)
    model = batch_fit.compute_law_model(np.where(known, V, 0.0), known.astype(float), log_n, log_d, one_size)
    theta, converged = batch_fit.levenberg_marquardt(model, start, lower, upper)
    need = 6 if one_size else 7
    return theta[:, 0], ok & converged & (known.sum(axis=1) >= need)


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


def _percentile_interval(values: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    """The (lo, hi) percentiles of `values` (lo, hi in 0..100), as floats."""
    low, high = np.percentile(values, [lo, hi])
    return float(low), float(high)


def trust_warnings(fit: LossFit, rows: Checkpoints, mode: str) -> list[str]:
    """Why a fitted law should not be trusted as it stands (empty if nothing is wrong).

    Each E on its upper bound (the minimum observed loss, e.g. the fallback) pins the curve through that
    checkpoint, using it up like a fitted parameter; with no checkpoint left over, the curve goes through
    (nearly) every point by construction and R² ≈ 1, RMSE ≈ 0 say nothing. An E that is estimated (compute or
    paper fit) is flagged on a bound, where it fell back, and where the checkpoints cannot identify it.
    """
    assert fit.E_x is not None and fit.E_y is not None and fit.kappa is not None and fit.r2 is not None
    both = np.isfinite(rows.x) & np.isfinite(rows.y)
    x, y = rows.x[both], rows.y[both]
    free = mode == "free"
    warnings = []
    pinned = sum(m * (1 - 1e-9) <= e.E for e, m in ((fit.E_x, x.min()), (fit.E_y, y.min())))
    parameters = 4 if free else 2 + pinned
    if fit.n - parameters < 1:
        what = "K, κ, E_x, E_y" if free else "K, κ" + (f" and {pinned} E at the minimum loss" if pinned else "")
        warnings.append(
            f"nothing left to estimate: {fit.n} checkpoints for {what}, so R² and RMSE do not "
            "measure how well the law fits"
        )
    elif fit.n < MIN_CHECKPOINTS:
        warnings.append(f"only {fit.n} checkpoints (< {MIN_CHECKPOINTS}): too few to check the law's shape")
    if fit.kappa <= KAPPA_BOUNDS[0] * (1 + 1e-6) or fit.kappa >= KAPPA_BOUNDS[1] * (1 - 1e-6):
        warnings.append(f"κ = {fit.kappa:.4g} sits on its bound {KAPPA_BOUNDS}")
    if fit.r2 < 0:
        warnings.append(f"R² = {fit.r2:.3f} < 0: the law fits worse than a constant")
    if free:
        for label, value, upper in (("E_x", fit.E_x.E, x.min()), ("E_y", fit.E_y.E, y.min())):
            if value <= 1e-4 * upper:  # least squares stops just inside a bound
                warnings.append(f"free {label} sits on its lower bound 0")
            elif value >= upper * (1 - 1e-4):
                warnings.append(f"free {label} sits on its upper bound (the minimum loss {upper:.4g})")
    if mode in ("compute", "paper"):
        for label, e in (("E_x", fit.E_x), ("E_y", fit.E_y)):
            if e.fallback_reason:
                warnings.append(f"{label} fell back to the minimum loss: {e.fallback_reason}")
            elif e.at_bound:
                warnings.append(f"{label} = {e.E:.4g} sits on its {e.at_bound} bound")
            if e.unidentified and not e.fallback_reason:
                warnings.append(f"{label} not identifiable: {e.unidentified}")
    no_compute = rows.N is None or rows.D is None or not np.any(np.isfinite(rows.N) & np.isfinite(rows.D))
    if len(rows.runs) > 1 and no_compute and mode != "given":
        names = ", ".join(rows.run_names[:4]) + (", ..." if len(rows.run_names) > 4 else "")
        warnings.append(
            f"the group pools {len(rows.runs)} runs ({names}) without model size N and tokens D: one E for "
            "checkpoints of different models"
        )
    attempted = fit.n_boot + fit.n_boot_failed
    if attempted and fit.n_boot_failed > MAX_FAILED_SHARE * attempted:
        warnings.append(
            f"{fit.n_boot_failed} of {attempted} bootstrap resamples failed (> {MAX_FAILED_SHARE:.0%}): the "
            "intervals rest on the resamples that could be fitted"
        )
    return warnings


# --------------------------------------------------------------------------------------------------
# Groups of a table
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Prediction
# --------------------------------------------------------------------------------------------------


@dataclass
class Prediction:
    group: str
    x: float
    y: float
    ci: tuple[float, float] | None  # of the fitted curve at x (bootstrap)
    pi: tuple[float, float] | None  # for a new checkpoint at x: curve + residual scatter
    extrapolated: bool  # x outside the range the law was fitted on
    note: str | None = None


def predict(fit: LossFit, x_new: float, *, level: float = CI_LEVEL, seed: int = 0) -> Prediction:
    """The y-loss the group's law predicts at x-loss `x_new`, with intervals from the bootstrap."""
    if not fit.fitted:
        raise ValueError(f"group {fit.group!r} has no fit to predict from: {fit.reason}")
    assert fit.E_x is not None
    x_new = float(x_new)
    if x_new < fit.E_x.E:
        raise ValueError(
            f"{fit.x} = {x_new:.4g} is below the group's irreducible loss E_x = {fit.E_x.E:.4g}: "
            "the law is undefined there"
        )
    y = float(fit.curve(x_new))
    if not math.isfinite(y):
        assert fit.x_range is not None
        raise ValueError(
            f"the law gives no finite y-loss at {fit.x} = {x_new:.4g} (it overflows); predict within or near the "
            f"fitted range [{fit.x_range[0]:.4g}, {fit.x_range[1]:.4g}]"
        )
    lo, hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    ci: tuple[float, float] | None = None
    pi: tuple[float, float] | None = None
    note = None
    if fit.boot:
        b = np.array(fit.boot)
        curves = shifted_power_law(np.full(len(b), x_new), b[:, 0], b[:, 1], b[:, 2], b[:, 3])
        curves = curves[np.isfinite(curves)]
        if len(curves) >= 20:
            ci = _percentile_interval(curves, lo, hi)
            rng = np.random.default_rng(seed)
            resid = np.asarray(fit.residuals) * math.sqrt(fit.n / max(fit.n - 2, 1))
            pi = _percentile_interval(curves + rng.choice(resid, len(curves)), lo, hi)
    if ci is None:
        note = "no interval: the fit has no bootstrap (run it with n_boot > 0)"
    if fit.warnings:
        note = ((note + "; ") if note else "") + "flagged law: " + "; ".join(fit.warnings)
    assert fit.x_range is not None
    lo_x, hi_x = fit.x_range
    extrapolated = not (lo_x <= x_new <= hi_x)
    if extrapolated:
        note = ((note + "; ") if note else "") + f"extrapolated beyond the fitted range [{lo_x:.4g}, {hi_x:.4g}]"
    return Prediction(fit.group, x_new, y, ci, pi, extrapolated, note)


# --------------------------------------------------------------------------------------------------
# Report and CLI
# --------------------------------------------------------------------------------------------------


def _ci(ci: tuple[float, float] | None) -> str:
    return f"[{ci[0]:.4g}, {ci[1]:.4g}]" if ci else "[no CI]"


def format_fits(fits: Sequence[LossFit]) -> str:
    """An aligned table of fits (columns separated by " | "), then every warning and how each E was found."""
    if not fits:
        return "no groups"
    header = ["group", "n", "status", "K", "K 95% CI", "κ", "κ 95% CI", "E_x", "E_x 95% CI", "E_y", "E_y 95% CI"]
    header += ["R²", "RMSE"]
    cells = []
    for f in fits:
        row = [f.group, str(f.n), f.status]
        if f.fitted:
            assert f.E_x is not None and f.E_y is not None
            row += [
                f"{f.K:.4g}",
                _ci(f.K_ci),
                f"{f.kappa:.4g}",
                _ci(f.kappa_ci),
                f"{f.E_x.E:.4g}",
                _ci(f.E_x.ci),
                f"{f.E_y.E:.4g}",
                _ci(f.E_y.ci),
                f"{f.r2:.4f}",
                f"{f.rmse:.3g}",
            ]
        else:
            row.append(f"not fitted: {f.reason}")
        cells.append(row)
    fitted_rows = [row for row in cells if len(row) == len(header)]
    widths = [max([len(h)] + [len(row[i]) for row in (cells if i < 3 else fitted_rows)]) for i, h in enumerate(header)]

    def line(values: Sequence[str]) -> str:
        """Text left-aligned, numbers right-aligned; a failed fit's reason runs on after its status."""
        return " | ".join(
            v.ljust(w) if i < 3 or len(values) < len(header) else v.rjust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=False))
        ).rstrip()

    lines = [
        f"{fits[0].y}  vs  {fits[0].x}:  L_y = K (L_x - E_x)^κ + E_y",
        line(header),
        "-+-".join("-" * w for w in widths),
    ]
    lines += [line(row) for row in cells]
    flagged = [f"  {f.group}: {w}" for f in fits for w in f.warnings]
    if flagged:
        lines += ["warnings (flagged laws are not to be trusted as they stand):"] + flagged
    notes = [
        f"  {f.group}: {label} = {e.describe()}"
        for f in fits
        for label, e in (("E_x", f.E_x), ("E_y", f.E_y))
        if e is not None
    ]
    if notes:
        lines += ["irreducible losses:"] + notes
    notes = [f"  {f.group}: {note}" for f in fits for note in f.notes]
    if notes:
        lines += ["notes:"] + notes
    boots = [f for f in fits if f.fitted and (f.n_boot or f.n_boot_failed)]
    if boots:
        lines.append("bootstrap (95% percentile intervals; E_x, E_y re-estimated in every resample):")
        lines += [
            f"  {f.group}: {f.n_boot} of {f.n_boot + f.n_boot_failed} resamples fitted ({f.n_boot_failed} failed); "
            f"each resample draws {f.resampling}"
            for f in boots
        ]
    return "\n".join(lines)


def fits_frame(fits: Sequence[LossFit]) -> pd.DataFrame:
    """The fits as a tidy table, one row per (group, x, y): parameters, intervals, E methods, warnings."""
    rows = []
    for f in fits:
        K_ci, kappa_ci = f.K_ci or (None, None), f.kappa_ci or (None, None)
        row = {
            "group": f.group,
            "x": f.x,
            "y": f.y,
            "n": f.n,
            "status": f.status,
            "reason": f.reason,
            "K": f.K,
            "K_lo": K_ci[0],
            "K_hi": K_ci[1],
            "kappa": f.kappa,
            "kappa_lo": kappa_ci[0],
            "kappa_hi": kappa_ci[1],
            "r2": f.r2,
            "rmse": f.rmse,
            "n_boot": f.n_boot,
            "n_boot_failed": f.n_boot_failed,
            "runs": f.runs,
            "resampling": f.resampling,
        }
        for label, e in (("E_x", f.E_x), ("E_y", f.E_y)):
            bound = f"at {e.at_bound} bound" if e and e.at_bound else None
            row[label] = e.E if e else None
            row[f"{label}_lo"], row[f"{label}_hi"] = e.ci if e and e.ci else (None, None)
            row[f"{label}_method"] = e.method if e else None
            row[f"{label}_note"] = (e.fallback_reason or bound) if e else None
        row["warnings"] = "; ".join(f.warnings) or None
        row["notes"] = "; ".join(f.notes) or None
        rows.append(row)
    return pd.DataFrame(rows)


def load_fits(path: Path) -> list[LossFit]:
    """Fits written by `--json`, ready for `predict`."""
    return [LossFit.from_dict(d) for d in json.loads(Path(path).read_text())["fits"]]


def add_law_arguments(parser: argparse.ArgumentParser) -> None:
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


def law_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of `fit_groups` that `add_law_arguments` sets."""
    given = read_irreducible(args.irreducible_from) if args.irreducible_from else None
    return {
        "irreducible": "given" if given is not None else args.irreducible,
        "given": given,
        "given_source": str(args.irreducible_from),
        "run_col": args.run_col or None,
        "n_boot": args.bootstrap,
        "seed": args.seed,
    }


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
    add_law_arguments(parser)
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
        require_named_columns(table, args)
        options = law_options(args)
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
                    f"  predict {f.group}: {args.x} = {x_new:.4g} -> {y} = {p.y:.4g}, 95% CI {_ci(p.ci)}, "
                    f"95% prediction interval {_ci(p.pi)}" + (f" ({p.note})" if p.note else "")
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
