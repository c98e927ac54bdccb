"""Loss-to-loss scaling laws: irreducible losses, shifted power-law fits, bootstrap intervals, prediction.

    python -m llm_line.fit --x "FineWeb-Edu Validation Loss" --y "HellaSwag Loss" --group "Pretraining Data"

For every group (by default: every pretraining dataset) the law

    L_y = K * (L_x - E_x)^kappa + E_y

is fitted by bounded least squares. The irreducible losses E_x, E_y of each (group, loss) come first, as
in the paper, from a compute-to-loss fit

    L(N, D) = E + ((A/N)^(alpha/beta) + B/D)^beta,   0 <= E <= min observed loss

over the group's checkpoints (N = parameters, `Size`; D = training tokens, `Tokens`). When N or D is
unknown, too few checkpoints have them, or the fit does not converge, E falls back to the minimum observed
loss (the original analysis's fallback) and the report says so and why. `--irreducible free` fits E_x and
E_y together with K and kappa instead; `min` uses the fallback for all.

Confidence intervals for K and kappa come from a seeded bootstrap over checkpoints (E_x and E_y held at
their estimates, unless they are free). A group whose law cannot be fitted is reported with its reason
(too few points, no spread, ...); no number is ever a silent NaN. A law that was fitted but cannot be
trusted (no degrees of freedom left, κ on its bound, R² < 0, a free E on its bound) has status "flagged"
and its warnings: its numbers are shown, never as a good fit.

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

from llm_line import cli
from llm_line.table import DataError, add_arguments, check_convention, load_from_args, loss_values, require_columns

CI_LEVEL = 0.95
KAPPA_BOUNDS = (0.01, 20.0)


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


def fit_irreducible(
    loss: ArrayLike,
    N: ArrayLike | None = None,
    D: ArrayLike | None = None,
    *,
    name: str = "loss",
    group: str = "all",
    min_points: int | None = None,
) -> Irreducible:
    """E of one (group, loss) from the compute-to-loss law; falls back to min(loss), saying why.

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

    best, last_error = None, "no start point"
    for e_frac in (0.5, 0.9):
        for beta in (0.3, 1.0):
            reducible = max(float(L.mean()) - e_frac * upper_E, 1e-3)
            start = math.log(reducible ** (1 / beta) / 2)
            for p in (1.0,) if one_size else (0.5, 1.5):
                if one_size:
                    x0 = [e_frac * upper_E, start, start, beta]
                    lb, ub = [0, -50, -50, 0.01], [upper_E, 50, 50, 5]
                else:
                    x0 = [e_frac * upper_E, start, start, p, beta]
                    lb, ub = [0, -50, -50, 0.01, 0.01], [upper_E, 50, 50, 10, 5]
                try:
                    with np.errstate(over="ignore", invalid="ignore"):
                        res = least_squares(residuals, x0, bounds=(lb, ub), method="trf", x_scale="jac", max_nfev=2000)
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
    return Irreducible(name, group, E, method, None, n=len(L), min_loss=lmin, r2=r2, params=params, at_bound=at_bound)


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
                data[key] = Irreducible(**data[key])
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
    with np.errstate(invalid="ignore"):
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
    """Fit L_y = K (L_x - E_x)^kappa + E_y to paired losses; bootstrap CIs for K and kappa.

    Never raises for bad data: a fit that cannot be made comes back with status "failed" and its reason, one
    that cannot be trusted with status "flagged" and its warnings. `progress` shows a bar for the bootstrap
    (on a terminal).
    """
    x_all, y_all = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    both = np.isfinite(x_all) & np.isfinite(y_all)
    xs: np.ndarray = x_all[both]
    ys: np.ndarray = y_all[both]
    n = len(xs)
    result = LossFit(group=group, x=x_name, y=y_name, n=n, status="failed", E_x=E_x, E_y=E_y)
    need = 5 if free else 3
    if n < need:
        result.reason = f"{n} checkpoint(s) with both losses (need ≥ {need})"
        return result
    if len(np.unique(xs)) < 3 or np.ptp(xs) <= 1e-9 * abs(float(np.mean(xs))):
        result.reason = f"no spread in {x_name} ({len(np.unique(xs))} distinct value(s))"
        return result
    if np.ptp(ys) <= 1e-12 * max(abs(float(np.mean(ys))), 1.0):
        result.reason = f"no spread in {y_name}: R² is undefined"
        return result
    if np.sum(xs > E_x.E) < 2:
        result.reason = f"fewer than 2 checkpoints have {x_name} above E_x = {E_x.E:.4g}"
        return result
    fitted = fit_law(xs, ys, E_x.E, E_y.E, free=free)
    if fitted is None:
        result.reason = "least squares did not converge"
        return result
    K, kappa, ex, ey, _ = fitted
    if free:
        E_x = Irreducible(x_name, group, ex, "free", None, n=n, min_loss=float(xs.min()))
        E_y = Irreducible(y_name, group, ey, "free", None, n=n, min_loss=float(ys.min()))
    predicted = shifted_power_law(xs, K, kappa, ex, ey)
    residuals = ys - predicted
    ss_res = float(np.sum(residuals**2))
    ss_tot = float(np.sum((ys - ys.mean()) ** 2))
    result.reason = None
    result.K, result.kappa, result.E_x, result.E_y = K, kappa, E_x, E_y
    result.r2 = 1 - ss_res / ss_tot
    result.rmse = math.sqrt(ss_res / n)
    result.x_range = (float(xs.min()), float(xs.max()))
    result.residuals = [float(r) for r in residuals]
    result.warnings = trust_warnings(result, xs, ys, free)
    result.status = "flagged" if result.warnings else "ok"

    if n_boot > 0:
        rng = np.random.default_rng(seed)
        boot = []
        for _ in tqdm(
            range(n_boot), desc=f"bootstrap {group}", unit="fit", leave=False, disable=None if progress else True
        ):
            idx = rng.integers(0, n, n)
            xb, yb = xs[idx], ys[idx]
            if len(np.unique(xb)) < 3:
                continue
            # with free E, a resample's bounds (its own minima) can be tighter than the estimate
            exb, eyb = (min(ex, float(xb.min())), min(ey, float(yb.min()))) if free else (ex, ey)
            refit = fit_law(xb, yb, exb, eyb, free=free, start=(K, kappa))
            if refit is not None:
                boot.append(refit[:4])
        result.n_boot = len(boot)
        result.boot = [(float(K_b), float(kappa_b), float(ex_b), float(ey_b)) for K_b, kappa_b, ex_b, ey_b in boot]
        if len(boot) >= max(20, n_boot // 2):
            arr = np.array(boot)
            lo, hi = 100 * (1 - CI_LEVEL) / 2, 100 * (1 + CI_LEVEL) / 2
            result.K_ci = _percentile_interval(arr[:, 0], lo, hi)
            result.kappa_ci = _percentile_interval(arr[:, 1], lo, hi)
    return result


def _percentile_interval(values: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    """The (lo, hi) percentiles of `values` (lo, hi in 0..100), as floats."""
    low, high = np.percentile(values, [lo, hi])
    return float(low), float(high)


def trust_warnings(fit: LossFit, x: np.ndarray, y: np.ndarray, free: bool) -> list[str]:
    """Why a fitted law should not be trusted as it stands (empty if nothing is wrong).

    Each E on its upper bound (the minimum observed loss, e.g. the fallback) pins the curve through that
    checkpoint, using it up like a fitted parameter; with no checkpoint left over, the curve goes through
    (nearly) every point by construction and R² ≈ 1, RMSE ≈ 0 say nothing.
    """
    assert fit.E_x is not None and fit.E_y is not None and fit.kappa is not None and fit.r2 is not None
    warnings = []
    pinned = sum(m * (1 - 1e-9) <= e.E for e, m in ((fit.E_x, x.min()), (fit.E_y, y.min())))
    parameters = 4 if free else 2 + pinned
    if fit.n - parameters < 1:
        what = "K, κ, E_x, E_y" if free else "K, κ" + (f" and {pinned} E at the minimum loss" if pinned else "")
        warnings.append(
            f"nothing left to estimate: {fit.n} checkpoints for {what}, so R² and RMSE do not "
            "measure how well the law fits"
        )
    if fit.kappa <= KAPPA_BOUNDS[0] * (1 + 1e-6) or fit.kappa >= KAPPA_BOUNDS[1] * (1 - 1e-6):
        warnings.append(f"κ = {fit.kappa:.4g} sits on its bound {KAPPA_BOUNDS}")
    if fit.r2 < 0:
        warnings.append(f"R² = {fit.r2:.3f} < 0: the law fits worse than a constant")
    if free:
        for label, e, upper in (("E_x", fit.E_x.E, x.min()), ("E_y", fit.E_y.E, y.min())):
            if e <= 1e-4 * upper:  # least squares stops just inside a bound
                warnings.append(f"free {label} sits on its lower bound 0")
            elif e >= upper * (1 - 1e-4):
                warnings.append(f"free {label} sits on its upper bound (the minimum loss {upper:.4g})")
    return warnings


# --------------------------------------------------------------------------------------------------
# Groups of a table
# --------------------------------------------------------------------------------------------------


def irreducible_for(
    table: pd.DataFrame, loss: str, group: str, mode: str, size_col: str, tokens_col: str
) -> Irreducible:
    values = loss_values(table, loss).to_numpy()
    if mode in ("min", "free"):  # free: only the starting point; the fit replaces it
        finite = values[np.isfinite(values)]
        lmin = float(finite.min())
        method = "min observed loss (--irreducible min)" if mode == "min" else "free"
        return Irreducible(loss, group, lmin, method, n=len(finite), min_loss=lmin)
    N = table[size_col].to_numpy(dtype=float) if size_col in table.columns else None
    D = table[tokens_col].to_numpy(dtype=float) if tokens_col in table.columns else None
    return fit_irreducible(values, N, D, name=loss, group=group)


def fit_groups(
    table: pd.DataFrame,
    x: str,
    y: str,
    group: str | None = "Pretraining Data",
    *,
    irreducible: str = "compute",
    size_col: str = "Size",
    tokens_col: str = "Tokens",
    n_boot: int = 1000,
    seed: int = 0,
    progress: bool = False,
) -> list[LossFit]:
    """One loss-to-loss fit per group of `table` (all rows as one group if `group` is None).

    E of each (group, loss) uses every checkpoint of the group with that loss, also those lacking the other.
    Rows without a group value form the group "(no <group>)". Raises DataError for a loss that is not a
    non-negative number and for a group that mixes loss conventions.
    """
    if irreducible not in ("compute", "min", "free"):
        raise ValueError(f"irreducible must be compute, min or free, not {irreducible!r}")
    require_columns(table, [x, y] + ([group] if group else []))
    table = table.assign(**{x: loss_values(table, x), y: loss_values(table, y)})
    fits = []
    for name, rows in group_rows(table, group):
        check_convention(rows, name)
        both = rows[[x, y]].notna().all(axis=1)
        if not both.any():
            fits.append(LossFit(name, x, y, 0, "failed", f"no checkpoint has both {x!r} and {y!r}"))
            continue
        E_x = irreducible_for(rows, x, name, irreducible, size_col, tokens_col)
        E_y = irreducible_for(rows, y, name, irreducible, size_col, tokens_col)
        fits.append(
            fit_loss_to_loss(
                rows[x],
                rows[y],
                E_x,
                E_y,
                group=name,
                x_name=x,
                y_name=y,
                free=irreducible == "free",
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
    header = ["group", "n", "status", "K", "K 95% CI", "κ", "κ 95% CI", "E_x", "E_y", "R²", "RMSE"]
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
                f"{f.E_y.E:.4g}",
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
    boots = {f.n_boot for f in fits if f.fitted and f.boot}
    if boots:
        lines.append(
            f"bootstrap: {', '.join(map(str, sorted(boots)))} resample(s) fitted per group; "
            "CIs are percentile intervals"
            + (" with E_x, E_y held fixed" if not any(f.E_x and f.E_x.method == "free" for f in fits) else "")
        )
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
        }
        for label, e in (("E_x", f.E_x), ("E_y", f.E_y)):
            bound = f"at {e.at_bound} bound" if e and e.at_bound else None
            row[label] = e.E if e else None
            row[f"{label}_method"] = e.method if e else None
            row[f"{label}_note"] = (e.fallback_reason or bound) if e else None
        row["warnings"] = "; ".join(f.warnings) or None
        rows.append(row)
    return pd.DataFrame(rows)


def load_fits(path: Path) -> list[LossFit]:
    """Fits written by `--json`, ready for `predict`."""
    return [LossFit.from_dict(d) for d in json.loads(Path(path).read_text())["fits"]]


def add_law_arguments(parser: argparse.ArgumentParser) -> None:
    """How a law and its intervals are fitted: the options `fit` and `intervention` share."""
    parser.add_argument(
        "--irreducible",
        choices=("compute", "min", "free"),
        default="compute",
        help="E from the compute-to-loss fit (default, falls back to min loss), the min "
        "loss, or fitted freely with K and kappa",
    )
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="B", help="resamples (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")


def main(argv: list[str] | None = None) -> int:
    from llm_line.store import atomic_file, write_json

    parser = argparse.ArgumentParser(
        prog=cli.prog("llm_line.fit"),
        description="Fit the loss-to-loss law L_y = K (L_x - E_x)^kappa + E_y per group of a wide table "
        "(written by llm_line.collect, or the paper's released CSV).",
        epilog='example: python -m llm_line.fit --x "FineWeb-Edu Validation Loss" --y "HellaSwag Loss" '
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
        type=float,
        nargs="+",
        default=[],
        metavar="X",
        help="predict the y-loss of every group at these x-losses",
    )
    parser.add_argument("--json", type=Path, help="also write the fits (with bootstrap samples) here")
    parser.add_argument("--csv", type=Path, help="also write the fitted parameters as a tidy CSV here")
    args = parser.parse_args(argv)

    try:
        table = load_from_args(args, report=lambda text: print(text, file=sys.stderr))
        runs = {
            y: fit_groups(
                table,
                args.x,
                y,
                args.group or None,
                irreducible=args.irreducible,
                size_col=args.size_col,
                tokens_col=args.tokens_col,
                n_boot=args.bootstrap,
                seed=args.seed,
                progress=True,
            )
            for y in args.y
        }
    except (FileNotFoundError, KeyError, DataError) as e:
        parser.error(str(e.args[0]) if e.args else str(e))
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
                "irreducible": args.irreducible,
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
    return 0 if any(f.ok for f in fits) else 1


if __name__ == "__main__":
    sys.exit(main())
