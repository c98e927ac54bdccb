"""The y-loss a fitted law predicts for a new x-loss (`predict`), with the curve's confidence interval and a
prediction interval for a new checkpoint (curve + residual scatter), both from the fit's bootstrap.

Its own module: it only reads a finished fit (`loss_to_loss.LossFit`, also one loaded back by
`fit_report.load_fits`), never fits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from llm_line.analysis.bootstrap import CI_LEVEL, percentile_interval
from llm_line.analysis.loss_to_loss import LossFit, shifted_power_law


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
            ci = percentile_interval(curves, lo, hi)
            rng = np.random.default_rng(seed)
            resid = np.asarray(fit.residuals) * math.sqrt(fit.n / max(fit.n - 2, 1))
            pi = percentile_interval(curves + rng.choice(resid, len(curves)), lo, hi)
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
