"""The fits written out and read back: an aligned text table with every warning and how each E was found
(`format_fits`), a tidy table for `--csv` (`fits_frame`), and the fits of `--json` loaded again (`load_fits`).

Its own module: how fits are shown and stored, apart from how they are made; `fit`, `plot` and
`intervention` print with it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from llm_line.analysis.loss_to_loss import LossFit


def interval_text(ci: tuple[float, float] | None) -> str:
    """A bootstrap interval as report text, "[lo, hi]" or "[no CI]"."""
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
                interval_text(f.K_ci),
                f"{f.kappa:.4g}",
                interval_text(f.kappa_ci),
                f"{f.E_x.E:.4g}",
                interval_text(f.E_x.ci),
                f"{f.E_y.E:.4g}",
                interval_text(f.E_y.ci),
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
