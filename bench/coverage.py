"""Coverage of the bootstrap intervals, measured: how often the 95% interval of κ holds the true κ.

    python bench/coverage.py [--datasets 200] [--bootstrap 300] [--noise 0.01] [--seed 0]

Each data set is drawn from a known law: 4 model sizes x 10 token counts, the x-loss from the compute-to-loss
law L(N, D) = E_x + ((A/N)^(alpha/beta) + B/D)^beta, the y-loss from L_y = K (L_x - E_x)^kappa + E_y at the
true x, both with Gaussian noise. `groups.fit_groups` then estimates E_x and E_y with the compute fit and
bootstraps every step (each checkpoint its own run: the noise is independent). A referee expects a 95%
interval to cover the truth in about 95% of data sets; with 200 data sets, 90-98% is what sampling allows.
Prints the coverage of κ, K, E_x and E_y, the median interval width and the time per data set.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from llm_line.analysis.groups import fit_groups  # noqa: E402

TRUTH = {"K": 1.3, "kappa": 0.8, "E_x": 1.8, "E_y": 1.2}


def dataset(rng: np.random.Generator, noise: float) -> pd.DataFrame:
    """One synthetic group of 40 checkpoints drawn from the true law."""
    N = np.repeat([1e8, 3e8, 1e9, 3e9], 10)
    D = np.tile(np.logspace(9, 11.5, 10), 4)
    reducible = ((1e7 / N) ** (0.35 / 0.3) + 1e8 / D) ** 0.3
    return pd.DataFrame(
        {
            "Name": [f"run{i}" for i in range(len(N))],
            "Size": N,
            "Tokens": D,
            "x": TRUTH["E_x"] + reducible + rng.normal(0, noise, len(N)),
            "y": TRUTH["E_y"] + TRUTH["K"] * reducible ** TRUTH["kappa"] + rng.normal(0, noise, len(N)),
        }
    )


def coverage(datasets: int, n_boot: int, noise: float, seed: int) -> dict[str, float]:
    """Share of data sets whose 95% interval holds the truth, per parameter; plus widths, failures and time."""
    rng = np.random.default_rng(seed)
    hits = {name: 0 for name in TRUTH}
    widths, fitted, failed_share = [], 0, []
    start = time.perf_counter()
    for i in range(datasets):
        (f,) = fit_groups(dataset(rng, noise), "x", "y", None, n_boot=n_boot, seed=seed + i)
        if not f.fitted or f.kappa_ci is None:
            continue
        assert f.E_x is not None and f.E_y is not None and f.K_ci is not None
        fitted += 1
        failed_share.append(f.n_boot_failed / n_boot)
        intervals = {"K": f.K_ci, "kappa": f.kappa_ci, "E_x": f.E_x.ci, "E_y": f.E_y.ci}
        for name, ci in intervals.items():
            hits[name] += bool(ci is not None and ci[0] <= TRUTH[name] <= ci[1])
        widths.append(f.kappa_ci[1] - f.kappa_ci[0])
    seconds = time.perf_counter() - start
    result = {name: hits[name] / max(fitted, 1) for name in TRUTH}
    result.update(
        fitted=fitted,
        kappa_width=float(np.median(widths)) if widths else float("nan"),
        failed=float(np.mean(failed_share)) if failed_share else float("nan"),
        seconds_per_dataset=seconds / datasets,
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=200)
    parser.add_argument("--bootstrap", type=int, default=300)
    parser.add_argument("--noise", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    r = coverage(args.datasets, args.bootstrap, args.noise, args.seed)
    print(
        f"coverage of 95% intervals over {r['fitted']} of {args.datasets} data sets "
        f"({args.bootstrap} resamples, noise {args.noise}): "
        f"kappa {r['kappa']:.1%}, K {r['K']:.1%}, E_x {r['E_x']:.1%}, E_y {r['E_y']:.1%}"
    )
    print(
        f"median kappa interval width {r['kappa_width']:.3g} (true kappa {TRUTH['kappa']}); "
        f"failed resamples {r['failed']:.1%}; {r['seconds_per_dataset']:.2f} s per data set"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
