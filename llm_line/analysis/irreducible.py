"""The irreducible loss E of one loss in one group, from a compute-to-loss fit over the group's checkpoints:

    L(N, D) = E + ((A/N)^(alpha/beta) + B/D)^beta,   0 <= E <= min observed loss

(N = parameters, `Size`; D = training tokens, `Tokens`). When N or D is unknown, too few checkpoints have them,
or the fit does not converge, E falls back to the minimum observed loss (the original analysis's fallback) and
says why; `spread_problem` says where the checkpoints cannot tell E apart from the rest of the law.

Its own module because E comes before the loss-to-loss law (`loss_to_loss`) and is fitted again in every
bootstrap resample (`bootstrap`, warm-started from the point estimate by `warm_start`); the compute-figure
draws these fits too (`compute_figure`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import least_squares


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
    warm = warm_start(start, one_size, log_n0, log_d0, upper_E)
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


def warm_start(
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
