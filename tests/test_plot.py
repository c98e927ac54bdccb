"""Plot: the Figure-1 style figure renders (PNG and PDF), with fits, units, legends, and survives failed fits."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llm_line import plot

ROOT = Path(__file__).resolve().parents[1]
RELEASED = ROOT.parent / "shared" / "data" / "llm-line-hf-models.csv"
PNG = b"\x89PNG\r\n\x1a\n"


def three_groups(points=100, seed=0):
    """3 pretraining datasets x 100 checkpoints of two architectures, each group on its own law."""
    rng = np.random.default_rng(seed)
    frames = []
    for group, K, kappa, E_x, E_y in (
        ("C4", 1.1, 0.9, 1.9, 1.5),
        ("FineWeb-Edu", 0.9, 1.2, 1.7, 1.3),
        ("The Pile", 1.3, 0.8, 2.0, 1.8),
    ):
        N, D = 10 ** rng.uniform(7.5, 9.5, points), 10 ** rng.uniform(9, 11.5, points)
        reducible = ((1e7 / N) ** (0.35 / 0.3) + 1e8 / D) ** 0.3
        frames.append(
            pd.DataFrame(
                {
                    "Size": N,
                    "Tokens": D,
                    "Pretraining Data": group,
                    "Architecture": np.where(np.arange(points) % 2, "Llama", "Mamba"),
                    "C4 Validation Loss": E_x + reducible + rng.normal(0, 0.01, points),
                    "HellaSwag Loss": E_y + K * reducible**kappa + rng.normal(0, 0.01, points),
                    "PIQA Loss": E_y + 0.5 + K * reducible**kappa + rng.normal(0, 0.01, points),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_figure_has_points_fits_reference_and_legend(tmp_path):
    table = three_groups()
    fig, fits = plot.figure(table, "C4 Validation Loss", ["HellaSwag Loss", "PIQA Loss"])
    assert set(fits) == {"HellaSwag Loss", "PIQA Loss"} and all(f.ok and f.r2 > 0.95 for f in fits["PIQA Loss"])
    ax = fig.axes[0]
    assert ax.get_xlabel() == "C4 Validation Loss (nats per token)"
    assert ax.get_ylabel() == "HellaSwag Loss (nats per token)"
    assert sum(len(c.get_offsets()) for c in ax.collections) == 300  # every checkpoint drawn
    styles = [line.get_linestyle() for line in ax.lines]
    assert styles.count("-") == 3 and styles.count(":") == 3 and styles.count("--") == 1  # fits, extrapolation, y=x
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"Pretraining Data", "C4", "FineWeb-Edu", "The Pile", "Architecture", "Llama", "Mamba", "y = x"} <= set(
        legend
    )
    paths = plot.save(fig, tmp_path / "fig")
    assert [p.name for p in paths] == ["fig.png", "fig.pdf"]
    assert paths[0].read_bytes()[:8] == PNG and paths[1].read_bytes()[:5] == b"%PDF-"


def test_units_of_axis_labels():
    assert plot.unit("C4 Validation BPB") == "C4 Validation BPB (bits per byte)"
    assert plot.unit("HellaSwag Accuracy") == "HellaSwag Accuracy"


def test_a_group_that_cannot_be_fitted_is_drawn_and_named(tmp_path):
    table = three_groups(points=20)
    table = pd.concat(
        [
            table,
            pd.DataFrame(
                {
                    "Pretraining Data": ["Dolma"] * 2,
                    "Architecture": ["OLMo"] * 2,
                    "C4 Validation Loss": [3.0, 3.1],
                    "HellaSwag Loss": [2.5, 2.6],
                }
            ),
        ]
    )
    fig, fits = plot.figure(table, "C4 Validation Loss", ["HellaSwag Loss"])
    dolma = [f for f in fits["HellaSwag Loss"] if f.group == "Dolma"][0]
    assert not dolma.ok
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any("Dolma: 2 checkpoint(s) with both losses" in t for t in texts)
    plot.save(fig, tmp_path / "fig")


def test_cli_on_the_paper_table(tmp_path):
    if not RELEASED.exists():
        pytest.skip(f"the paper's released table is not at {RELEASED}")
    out = tmp_path / "figures" / "llamas"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "llm_line.plot",
            "--data",
            str(RELEASED),
            "--x",
            "FineWeb-Edu Validation Loss",
            "--y",
            "HellaSwag Loss",
            "--where",
            "Architecture=Llama",
            "--band",
            "50",
            "-o",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.with_suffix(".png").read_bytes()[:8] == PNG and out.with_suffix(".pdf").stat().st_size > 10_000
    assert "C4" in proc.stdout and "FineWeb-Edu" in proc.stdout and "The Pile Deduped" in proc.stdout
    help_text = subprocess.run(
        [sys.executable, "-m", "llm_line.plot", "--help"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    assert "--x" in help_text and "png" in help_text.lower()


def test_library_never_switches_the_backend(monkeypatch):
    """A notebook keeps its backend: figure() and residual_figure() must not call matplotlib.use."""
    import matplotlib

    def refuse(*args, **kwargs):
        raise AssertionError("library code called matplotlib.use")

    monkeypatch.setattr(matplotlib, "use", refuse)
    plot.figure(three_groups(points=20), "C4 Validation Loss", ["HellaSwag Loss"])


def test_laws_are_faint_behind_the_points_and_every_panel_names_each_law():
    table = three_groups(points=40)
    fig, fits = plot.figure(table, "C4 Validation Loss", ["HellaSwag Loss", "PIQA Loss"])
    for ax, y in zip(fig.axes[:2], ["HellaSwag Loss", "PIQA Loss"], strict=False):
        points = min(c.get_zorder() for c in ax.collections if len(c.get_offsets()))
        laws = [line for line in ax.lines if line.get_linestyle() in ("-", ":")]
        assert len(laws) == 6 and all(line.get_zorder() < points and line.get_alpha() < 1 for line in laws)
        texts = [t.get_text() for t in ax.texts]
        for f in fits[y]:
            assert f"{f.group}: K={f.K:.3g}  κ={f.kappa:.3g}  R²={f.r2:.3f}" in texts


def test_a_flagged_law_is_named_not_drawn():
    table = three_groups(points=30)
    few = pd.DataFrame(
        {
            "Pretraining Data": "Dolma",
            "Architecture": "OLMo",
            "C4 Validation Loss": [3.0, 3.1, 3.3],
            "HellaSwag Loss": [2.5, 2.6, 2.65],
        }
    )
    fig, fits = plot.figure(pd.concat([table, few], ignore_index=True), "C4 Validation Loss", ["HellaSwag Loss"])
    dolma = [f for f in fits["HellaSwag Loss"] if f.group == "Dolma"][0]
    assert dolma.status == "flagged"
    ax = fig.axes[0]
    assert sum(line.get_linestyle() == "-" for line in ax.lines) == 3  # the three good laws only
    assert any("Dolma (flagged): nothing left to estimate" in t.get_text() for t in ax.texts)
    assert "Dolma  (not drawn)" in [t.get_text() for t in fig.legends[0].get_texts()]
