"""Many small least-squares fits at once: the bootstrap's resamples fitted together, in numpy.

Re-estimating E in every bootstrap resample means three nonlinear fits per resample (E_x, E_y, then K and κ),
thousands per group. One `scipy.optimize.least_squares` call costs a few milliseconds of Python overhead per
step, whatever the size of the problem; here one step of a Levenberg-Marquardt iteration is taken for every
resample together, as batched linear algebra on arrays of shape (resamples, checkpoints, parameters).

Resamples of unequal size (two-stage resampling of runs of different lengths) are padded; a weight of 0
marks the padding and the checkpoints a fit does not use.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Model = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # theta (B, p) -> residuals (B, n), J (B, n, p)


def levenberg_marquardt(
    model: Model, theta0: np.ndarray, lower: np.ndarray, upper: np.ndarray, *, steps: int = 3000, rtol: float = 1e-8
) -> tuple[np.ndarray, np.ndarray]:
    """Minimise the sum of squared residuals of every row of `theta0` within its box; (theta, converged).

    Marquardt's scaled damping; a step leaving the box is projected back onto it, so a parameter that runs
    into a bound stays there. A row has converged when a step lowers its cost by less than `rtol` of it, or
    when no step does (damping above 1e10: a minimum, possibly on a bound).
    """
    theta = np.clip(np.array(theta0, dtype=float), lower, upper)
    batch, p = theta.shape
    with np.errstate(all="ignore"):
        r, J = model(theta)
        cost = 0.5 * np.sum(r**2, axis=1)
    damping = np.full(batch, 1e-3)
    done = ~np.isfinite(cost)
    converged = np.zeros(batch, dtype=bool)
    eye = np.eye(p)
    for _ in range(steps):
        active = ~done
        if not active.any():
            break
        with np.errstate(all="ignore"):
            Jt = np.swapaxes(J[active], 1, 2)
            JtJ = Jt @ J[active]
            gradient = (Jt @ r[active][..., None])[..., 0]
            scale = np.diagonal(JtJ, axis1=1, axis2=2)
            scale = scale + 1e-9 * scale.max(axis=1, keepdims=True) + 1e-300
            A = JtJ + damping[active][:, None, None] * eye * scale[:, None, :]
            bad = ~np.isfinite(A).all(axis=(1, 2)) | ~np.isfinite(gradient).all(axis=1)
            A[bad], gradient[bad] = eye, 0.0
            step = -np.linalg.solve(A, gradient[..., None])[..., 0]
            trial = theta.copy()
            trial[active] = np.clip(
                theta[active] + step,
                lower[active] if lower.ndim > 1 else lower,
                upper[active] if upper.ndim > 1 else upper,
            )
            r_new, J_new = model(trial)
            cost_new = 0.5 * np.sum(r_new**2, axis=1)
        better = active & np.isfinite(cost_new) & (cost_new < cost)
        settled = better & (cost - cost_new <= rtol * cost)
        theta[better], r[better], J[better], cost[better] = (
            trial[better],
            r_new[better],
            J_new[better],
            cost_new[better],
        )
        damping = np.where(better, damping / 3, np.where(active, damping * 2, damping))
        stuck = active & (damping > 1e10)
        converged |= settled | (stuck & np.isfinite(cost))
        done |= settled | stuck
    return theta, converged & np.isfinite(theta).all(axis=1)


def compute_law_model(L: np.ndarray, w: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, reduced: bool) -> Model:
    """Weighted residuals and Jacobian of `irreducible.compute_law` for a batch: theta rows (E, a, b, [p,] beta)."""

    def model(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        E, a, b, beta = theta[:, :1], theta[:, 1:2], theta[:, 2:3], theta[:, -1:]
        u = np.exp(a) * np.ones_like(log_d) if reduced else np.exp(a - theta[:, 3:4] * log_n)
        v = np.exp(b - log_d)
        inner = u + v
        power = inner**beta
        slope = beta * power / inner
        columns = [np.ones_like(inner), slope * u, slope * v]
        if not reduced:
            columns.append(-slope * u * log_n)
        columns.append(power * np.log(inner))
        return w * (E + power - L), w[..., None] * np.stack(columns, axis=-1)

    return model


def power_law_model(x: np.ndarray, y: np.ndarray, w: np.ndarray, E_x: np.ndarray, E_y: np.ndarray, g: float) -> Model:
    """Weighted residuals and Jacobian of y = E_y + exp(c) ((x - E_x) / g)^κ for a batch: theta rows (c, κ)."""
    base = np.clip((x - E_x[:, None]) / g, 0, None)
    positive = base > 0
    log_base = np.log(np.where(positive, base, 1.0))

    def model(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c, kappa = theta[:, :1], theta[:, 1:2]
        term = np.where(positive, np.exp(c + kappa * log_base), 0.0)
        J = np.stack([term, term * log_base], axis=-1)
        return w * (E_y[:, None] + term - y), w[..., None] * J

    return model


def padded(indices: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Resample index arrays of unequal length as one (B, n_max) array, and the mask of real entries."""
    width = max(len(i) for i in indices)
    out = np.zeros((len(indices), width), dtype=int)
    mask = np.zeros((len(indices), width), dtype=bool)
    for row, idx in enumerate(indices):
        out[row, : len(idx)] = idx
        mask[row, : len(idx)] = True
    return out, mask
