"""Why a fitted law cannot be trusted as it stands: the checks that make its status "flagged".

No degrees of freedom left, fewer than 8 checkpoints, κ on its bound, R² < 0, an E on a bound or fallen back
to the minimum, an E the checkpoints cannot identify (one N or one D), runs pooled without N and D, more than
10% of bootstrap resamples failed. A flagged law's numbers are shown, never as a good fit.

Its own module: the checks read the point estimate (`loss_to_loss`) and its bootstrap (`bootstrap`) but
change neither; only `groups.fit_checkpoints` runs them.
"""

from __future__ import annotations

import numpy as np

from llm_line.analysis.loss_to_loss import KAPPA_BOUNDS, Checkpoints, LossFit

MIN_CHECKPOINTS = 8  # fewer: flagged, too few to check the shape of a 2-parameter law against its scatter
MAX_FAILED_SHARE = 0.10  # more bootstrap resamples failing than this: flagged


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
