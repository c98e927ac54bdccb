"""The estimator of the paper's own code (github brendel-group/llm-line, `figures/figs.py`), for its numbers.

`fit --irreducible paper` uses it so that a user gets the paper's K and κ on the paper's rows. What it does,
read from `fit_loss_to_loss_power_law` there (this is a re-statement, not a copy):

1. E_x: one `scipy.optimize.curve_fit` of L(N, D) = E + ((A/N)^(α/β) + B/D)^β to the x-losses, unscaled
   parameters (E, A, B, α, β), start (0.1, 1, 1, 1, 1), bounds E in [0, min x], the rest unbounded; if
   curve_fit raises (no convergence, or NaN/inf in N or D), E_x = min x.
2. E_y: the same on the y-losses, start (0, 1, 1, 1, 1), E in [0, min y]; fallback min y.
3. K, κ: one curve_fit of K · max(L_x − E_x, 1e-10)^κ + E_y, start (0.8, 1), K unbounded, κ ≥ 0,
   maxfev 10000; no law where it raises.

Both E come from the rows of the law itself (the original passes the same x, y, N, D to all three fits). No
grid of starts, no rescaling: the point is to reproduce those numbers, bad conditioning included.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import curve_fit

METHOD = "paper's compute fit (figs.py curve_fit)"
FALLBACK = "min observed loss (paper's fallback)"


def _compute_curve(ND: np.ndarray, E: float, A: float, B: float, alpha: float, beta: float) -> np.ndarray:
    N, D = ND
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return E + ((A / N) ** (alpha / beta) + B / D) ** beta


def _law(x: np.ndarray, K: float, kappa: float, E_x: float = 0.0, E_y: float = 0.0) -> np.ndarray:
    return K * np.maximum(x - E_x, 1e-10) ** kappa + E_y


def irreducible(loss: np.ndarray, N: np.ndarray, D: np.ndarray, start_E: float) -> tuple[float, str | None]:
    """(E, None) from the original's single-start compute fit, or (min loss, why) where curve_fit raises."""
    upper = float(np.min(loss))
    try:
        popt, _ = curve_fit(
            _compute_curve,
            np.vstack([N, D]),
            loss,
            p0=(start_E, 1, 1, 1, 1),
            bounds=([0, -np.inf, -np.inf, -np.inf, -np.inf], [upper, np.inf, np.inf, np.inf, np.inf]),
        )
    except (RuntimeError, ValueError, TypeError) as e:  # TypeError: fewer points than parameters
        return upper, f"the paper's curve_fit raised: {str(e).splitlines()[0]}"
    return float(popt[0]), None


def law(x: np.ndarray, y: np.ndarray, E_x: float, E_y: float) -> tuple[float, float] | None:
    """(K, κ) from the original's curve_fit of the law with E_x, E_y fixed, or None where it raises."""
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            popt, _ = curve_fit(
                lambda v, K, kappa: _law(v, K, kappa, E_x, E_y),
                x,
                y,
                p0=(0.8, 1),
                bounds=([-np.inf, 0], [np.inf, np.inf]),
                maxfev=10000,
            )
    except (RuntimeError, ValueError, TypeError):
        return None
    K, kappa = float(popt[0]), float(popt[1])
    return (K, kappa) if np.isfinite(K) and np.isfinite(kappa) else None
