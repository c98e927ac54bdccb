"""Plot: the Figure-1 style figure renders (PNG and PDF), with fits, units, legends, and survives failed fits."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llm_line.analysis import plot

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


def lines(ax, prefix):
    return [line for line in ax.lines if line.get_label().startswith(prefix)]


def legend_texts(fig):
    return [t.get_text() for t in fig.legends[0].get_texts()]


def test_figure_has_points_fits_reference_and_legend(tmp_path):
    table = three_groups()
    fig, fits = plot.figure(table, "C4 Validation Loss", ["HellaSwag Loss", "PIQA Loss"])
    assert set(fits) == {"HellaSwag Loss", "PIQA Loss"} and all(f.ok and f.r2 > 0.95 for f in fits["PIQA Loss"])
    ax = fig.axes[0]
    assert ax.get_xlabel() == "C4 Validation Loss (nats per token)"
    assert ax.get_ylabel() == "HellaSwag Loss (nats per token)"
    assert sum(len(c.get_offsets()) for c in ax.collections) == 300  # every checkpoint drawn
    assert [line.get_linestyle() for line in lines(ax, "law ")] == ["-"] * 3
    assert [line.get_linestyle() for line in lines(ax, "extrapolated ")] == [":"] * 3
    assert len(lines(ax, "y = x")) == 1
    legend = legend_texts(fig)
    assert {"Pretraining Data", "C4", "FineWeb-Edu", "The Pile", "Architecture", "Llama", "Mamba", "y = x"} <= set(
        legend
    )
    paths = plot.save(fig, tmp_path / "fig")
    assert [p.name for p in paths] == ["fig.png", "fig.pdf"]
    assert paths[0].read_bytes()[:8] == PNG and paths[1].read_bytes()[:5] == b"%PDF-"


def test_units_of_axis_labels():
    assert plot.unit("C4 Validation BPB") == "C4 Validation BPB (bits per byte)"
    assert plot.unit("HellaSwag Accuracy") == "HellaSwag Accuracy"


def test_a_group_that_cannot_be_fitted_is_drawn_and_named_in_the_legend(tmp_path):
    table = three_groups(points=20)
    dolma = pd.DataFrame(
        {
            "Pretraining Data": ["Dolma"] * 2,
            "Architecture": ["OLMo"] * 2,
            "C4 Validation Loss": [3.0, 3.1],
            "HellaSwag Loss": [2.5, 2.6],
        }
    )
    fig, fits = plot.figure(pd.concat([table, dolma]), "C4 Validation Loss", ["HellaSwag Loss"])
    assert not [f for f in fits["HellaSwag Loss"] if f.group == "Dolma"][0].fitted
    assert sum(len(c.get_offsets()) for c in fig.axes[0].collections) == 62  # its points are drawn
    assert "Dolma: no law: 2 checkpoint(s) with both losses (need ≥ 3)" in legend_texts(fig)
    assert not [t for t in fig.axes[0].texts if "Dolma" in t.get_text()]  # no note on the panel
    plot.save(fig, tmp_path / "fig")


def test_cli_on_the_paper_table(tmp_path):
    if not RELEASED.exists():
        pytest.skip(f"the paper's released table is not at {RELEASED}")
    out = tmp_path / "figures" / "llamas"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "llm_line.analysis.plot",
            "--data",
            str(RELEASED),
            "--x",
            "FineWeb-Edu Validation Loss",
            "--y",
            "HellaSwag Loss",
            "--where",
            "Architecture=Llama",
            "--bootstrap",
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
        [sys.executable, "-m", "llm_line.analysis.plot", "--help"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    assert "--x" in help_text and "png" in help_text.lower() and "--together" in help_text


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
        laws = lines(ax, "law ") + lines(ax, "extrapolated ")
        assert len(laws) == 6 and all(line.get_zorder() < points and line.get_alpha() < 1 for line in laws)
        texts = [t.get_text() for t in ax.texts]
        for f in fits[y]:
            assert f"{f.group}: K={f.K:.3g}  κ={f.kappa:.3g}  R²={f.r2:.3f}" in texts


def test_a_flagged_law_is_drawn_dashed_with_its_reason_in_the_legend():
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
    styles = {line.get_label(): line.get_linestyle() for line in lines(ax, "law ")}
    assert styles == {"law C4": "-", "law FineWeb-Edu": "-", "law The Pile": "-", "law Dolma": "--"}
    dashed = [line for line in lines(ax, "law Dolma")][0]
    assert np.allclose(dashed.get_ydata()[0], dolma.curve(dashed.get_xdata()[0]))  # the law, where it is
    legend = " ".join(legend_texts(fig))
    assert "Dolma: flagged law: nothing left to estimate" in legend and "flagged law (reason below)" in legend


def one_dataset(points=60, seed=1):
    """One pretraining dataset, three validation and two test losses on their own laws of C4's loss."""
    rng = np.random.default_rng(seed)
    reducible = np.linspace(0.2, 2.0, points)
    table = pd.DataFrame(
        {
            "Pretraining Data": "C4",
            "Architecture": "Llama",
            "C4 Validation Loss": 1.8 + reducible + rng.normal(0, 0.005, points),
        }
    )
    for i, y in enumerate(["The Pile UC Validation Loss", "RefineWeb Validation Loss", "ARC-Easy Loss", "PIQA Loss"]):
        table[y] = 1.2 + 0.3 * i + (0.8 + 0.2 * i) * reducible ** (0.9 + 0.1 * i) + rng.normal(0, 0.005, points)
    return table


def test_several_y_in_one_panel_coloured_per_y_with_their_mean_in_black():

    from llm_line.analysis import colours, panel_parts, panels

    table = one_dataset()
    ys = [
        panel_parts.YSet(("The Pile UC Validation Loss", "RefineWeb Validation Loss"), "Train-to-Train"),
        panel_parts.YSet(("ARC-Easy Loss", "PIQA Loss"), "Train-to-Test"),
    ]
    fig, laws = panels.grid(table, "C4 Validation Loss", ys, col="y", group=None)
    left, right = fig.axes[0], fig.axes[1]
    assert (left.get_title(), right.get_title()) == ("Train-to-Train", "Train-to-Test")
    assert left.get_ylabel() == "loss (nats per token)"
    assert {law.fit.y for law in laws} == {
        "The Pile UC Validation Loss",
        "RefineWeb Validation Loss",
        "Mean of Train-to-Train",
        "ARC-Easy Loss",
        "PIQA Loss",
        "Mean of Train-to-Test",
    }
    # no N and D in this table: E falls back to the minimum loss, so every law is drawn, flagged
    assert all(law.fit.status == "flagged" for law in laws)
    pile = [c for c in left.collections if np.allclose(c.get_facecolor()[0][:3], colours.colour("The Pile"))][0]
    assert np.allclose(pile.get_offsets()[:, 1], table["The Pile UC Validation Loss"])
    black = [c for c in right.collections if np.allclose(c.get_facecolor()[0][:3], (0, 0, 0))][0]
    assert np.allclose(black.get_offsets()[:, 1], (table["ARC-Easy Loss"] + table["PIQA Loss"]) / 2)
    mean_law = [law for law in laws if law.fit.y == "Mean of Train-to-Test"][0]
    assert mean_law.label == "mean" and mean_law.colour == (0, 0, 0)
    assert {"The Pile UC", "RefineWeb", "ARC-Easy", "PIQA", "mean of the y losses"} <= set(legend_texts(fig))


def test_a_grid_of_y_rows_and_matched_columns_shares_its_axes():

    from llm_line.analysis import panel_parts, panels

    table = three_groups(points=30)
    table["Tokenizer"] = np.where(table["Pretraining Data"] == "The Pile", "gpt-neox", "gpt2-HF")
    fig, laws = panels.grid(
        table,
        "C4 Validation Loss",
        [panel_parts.YSet(("HellaSwag Loss",), "Train-to-Test"), panel_parts.YSet(("PIQA Loss",), "PIQA")],
        row="y",
        col=["Architecture", "Tokenizer"],
        min_groups=2,
        marker=None,
    )
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    # Llama and Mamba each hold C4 and FineWeb-Edu on gpt2-HF; gpt-neox holds only The Pile: dropped
    assert [ax.get_title() for ax in axes[:2]] == ["Llama / gpt2-HF", "Mamba / gpt2-HF"]
    assert len(axes) == 4 and axes[0].get_shared_x_axes().joined(axes[0], axes[3])
    assert axes[0].get_shared_y_axes().joined(axes[0], axes[1])
    assert not axes[0].get_shared_y_axes().joined(axes[0], axes[2])
    row_titles = [t.get_text() for t in axes[0].texts + axes[2].texts if t.get_rotation() == 90]
    assert row_titles == ["Train-to-Test", "PIQA"]
    assert {law.panel for law in laws} == {
        "Train-to-Test · Llama / gpt2-HF",
        "Train-to-Test · Mamba / gpt2-HF",
        "PIQA · Llama / gpt2-HF",
        "PIQA · Mamba / gpt2-HF",
    }
    assert {law.fit.group for law in laws} == {"C4", "FineWeb-Edu"} and len(laws) == 8
    llama = [law for law in laws if law.panel == "PIQA · Llama / gpt2-HF" and law.fit.group == "C4"][0]
    assert set(llama.rows["Architecture"]) == {"Llama"} and len(llama.rows) == 15


def test_groups_over_several_columns_get_one_law_each():

    from llm_line.analysis import panels

    table = three_groups(points=30)
    fig, laws = panels.grid(table, "C4 Validation Loss", ["HellaSwag Loss"], group=["Pretraining Data", "Architecture"])
    assert sorted(law.fit.group for law in laws) == [
        f"{d} / {a}" for d in ("C4", "FineWeb-Edu", "The Pile") for a in ("Llama", "Mamba")
    ]
    assert all(law.fit.n == 15 for law in laws)
    assert "Pretraining Data / Architecture" in legend_texts(fig)


def test_a_numeric_group_is_coloured_on_a_scale_with_a_colour_bar():

    from llm_line.analysis import colours, panels

    table = three_groups(points=30)
    table["Size"] = np.repeat([1e8, 4e8, 1.6e9], 30)  # one size per law
    fig, laws = panels.grid(table, "C4 Validation Loss", ["HellaSwag Loss"], group="Size")
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1 and bars[0].get_ylabel() == "Size"
    scale = colours.Scale.over("Size", table["Size"])
    assert type(scale.norm).__name__ == "LogNorm"  # over a factor of 16: log
    for law in laws:
        # one size per group: E cannot be told from the law, flagged as not identifiable but drawn
        assert law.colour == scale(float(law.fit.group)) and law.fit.status == "flagged"
    assert {law.fit.group for law in laws} == {"100000000", "400000000", "1600000000"}
    assert "Size" not in legend_texts(fig)  # the colour bar names the sizes, not the legend


def test_a_value_has_one_colour_in_every_figure():

    from llm_line.analysis import colours

    assert colours.colour("C4") == colours.colour("C4 Validation Loss") == colours.colour("c4")
    assert colours.colour("The Pile") == colours.colour("The Pile UC Validation Loss")
    first = colours.colours(["C4", "The Pile"])
    second = colours.colours(["FineWeb-Edu", "C4", "Dolma", "The Pile"])
    assert first["C4"] == second["C4"] and first["The Pile"] == second["The Pile"]
    unknown = colours.colours(["my corpus", "another corpus", "C4"])
    assert unknown["my corpus"] == colours.colours(["my corpus"])["my corpus"] or len(set(unknown.values())) == 3
    assert len(set(colours.colours([f"corpus {i}" for i in range(12)]).values())) == 12  # collisions resolved
    assert colours.Scale.over("Size", [1e8, 1e9])(float("nan")) == colours.MISSING  # no size: grey


def test_cli_grid_on_the_paper_table(tmp_path):
    if not RELEASED.exists():
        pytest.skip(f"the paper's released table is not at {RELEASED}")
    out = tmp_path / "tokenizer"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "llm_line.analysis.plot",
            "--data",
            str(RELEASED),
            "--x",
            "FineWeb-Edu Validation Loss",
            "--y",
            "C4 Validation Loss",
            "--y",
            "ARC-Easy Loss",
            "--row",
            "y",
            "--col",
            "Architecture,Pretraining Data",
            "--group",
            "Tokenizer",
            "--min-groups",
            "2",
            "-o",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    # only GPT on The Pile was trained with two tokenizers
    assert "[C4 Validation Loss · GPT / The Pile]" in proc.stdout and "[ARC-Easy Loss · GPT / The Pile]" in proc.stdout
    assert "gpt-neox" in proc.stdout and "gpt2-HF" in proc.stdout and "Llama" not in proc.stdout
    assert out.with_suffix(".png").read_bytes()[:8] == PNG
