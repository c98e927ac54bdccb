"""Bootstrap intervals for K, κ, E_x and E_y, with E re-estimated in every resample by the point's method.

A group of several training runs resamples runs, then checkpoints within each run (`resample_indices`);
resamples whose fit fails are counted. The compute fit, the minimum and given E are fitted for a batch of
resamples at once (`batch_fit`); free E and the paper's estimator one resample at a time (`loss_to_loss`).

Its own module: the resampling and its batched fits are one concern, apart from the point estimate
(`loss_to_loss`) and its checks (`trust`); `intervention` draws its resamples the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from tqdm.auto import tqdm

from llm_line.analysis import batch_fit
from llm_line.analysis.irreducible import Irreducible, warm_start
from llm_line.analysis.loss_to_loss import KAPPA_BOUNDS, Checkpoints, Law, LossFit, estimate
from llm_line.analysis.progress import batches

CI_LEVEL = 0.95
DEFAULT_BOOTSTRAP = 1000
# The bootstrap runs in batches of resamples, so its memory stays bounded whatever --bootstrap asks: BATCH at
# once where they are fitted together (a bootstrap of up to BATCH resamples is one batch, so its numbers do not
# depend on the batching), LOOP_BATCH between two looks at the clock where they are fitted one by one. A longer
# one starts with FIRST_BATCH resamples, timed for the estimate of how long the whole will take.
BATCH = 10_000
LOOP_BATCH = 50
FIRST_BATCH = 500


def resample_indices(runs: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """One two-stage bootstrap draw: runs with replacement, then each drawn run's checkpoints with replacement.

    With one run this is the ordinary bootstrap over its checkpoints.
    """
    if len(runs) == 1:
        (members,) = runs
        return members[rng.integers(0, len(members), len(members))]
    drawn = rng.integers(0, len(runs), len(runs))
    return np.concatenate([runs[i][rng.integers(0, len(runs[i]), len(runs[i]))] for i in drawn])


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
        point.K_ci = percentile_interval(arr[:, 0], lo, hi)
        point.kappa_ci = percentile_interval(arr[:, 1], lo, hi)
        point.E_x.ci = percentile_interval(arr[:, 2], lo, hi)
        point.E_y.ci = percentile_interval(arr[:, 3], lo, hi)


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
    warm = warm_start(point, one_size, log_n0, log_d0, math.inf)
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


def percentile_interval(values: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    """The (lo, hi) percentiles of `values` (lo, hi in 0..100), as floats."""
    low, high = np.percentile(values, [lo, hi])
    return float(low), float(high)
