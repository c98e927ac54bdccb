"""The loss-to-loss law L_y = K (L_x - E_x)^kappa + E_y of one set of checkpoints, and the fit's result.

`estimate` finds E_x and E_y by the law's mode (`Law`: the compute fit of `irreducible`, the minimum loss,
free, the paper's estimator of `paper_estimator`, or given), then K and κ by bounded least squares
(`fit_law`). It runs once on a group's checkpoints (`Checkpoints`) and again on every bootstrap resample.
`LossFit` holds the result that the bootstrap, the trust checks, prediction, the reports and the figures read.

Its own module: the one fit the others build on (`bootstrap`, `trust`, `groups`, `prediction`, `fit_report`),
without their concerns.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from llm_line.analysis import paper_estimator
from llm_line.analysis.irreducible import Irreducible, fit_irreducible, spread_problem

KAPPA_BOUNDS = (0.01, 20.0)


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
