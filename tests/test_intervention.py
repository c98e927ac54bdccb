"""Intervention view: offsets from a base group's law with bootstrap intervals, residual panels, the CLI."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection

from llm_line import cli
from llm_line.analysis import intervention, plot
from llm_line.analysis.column_checks import DataError

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def architectures(seed=0, points=30):
    """One law; "Mamba" on the same law, "Other data" 0.1 nats higher, each with noise 0.005."""
    rng = np.random.default_rng(seed)
    frames = []
    for name, shift, lo in (("Llama", 0.0, 2.6), ("Mamba", 0.0, 2.7), ("Other data", 0.1, 2.1)):
        x = np.linspace(lo, 4.0, points)
        frames.append(
            pd.DataFrame(
                {
                    "Architecture": name,
                    "Val Loss": x,
                    "Other Val Loss": x + 0.2,
                    "Task Loss": 1.2 * (x - 2.0) ** 0.9 + 1.5 + shift + rng.normal(0, 0.005, points),
                    "Task2 Loss": 0.8 * (x - 2.0) ** 1.1 + 1.0 + shift,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_offsets_hold_zero_for_the_same_law_and_find_a_shift():
    result = intervention.offsets(
        architectures(), "Val Loss", "Task Loss", "Architecture", "Llama", irreducible="min", n_boot=200, seed=1
    )
    by = {o.group: o for o in result.offsets}
    assert result.base.group == "Llama" and result.base.ok and result.base.n == 30
    assert by["Llama"].mean == pytest.approx(0, abs=0.002) and by["Llama"].rmse == pytest.approx(0.005, rel=0.3)
    assert by["Mamba"].ci[0] < 0 < by["Mamba"].ci[1] and abs(by["Mamba"].mean) < 0.005
    # the base law's E_x is its minimum loss 2.6: "Other data" checkpoints below it are left out
    assert by["Other data"].below_E_x == 8 and by["Other data"].n == 22
    assert by["Other data"].mean == pytest.approx(0.1, abs=0.01) and by["Other data"].ci[0] > 0.08
    frame = result.frame()
    assert frame["group"].tolist() == ["Llama", "Mamba", "Other data"] and frame["base_K"].nunique() == 1
    report = intervention.format_intervention(result)
    assert "Llama (base)" in report and "+0.1" in report


def test_the_base_must_exist_and_have_a_trusted_law():
    table = architectures()
    with pytest.raises(KeyError, match="no rows with Architecture = 'GPT'; the groups are 'Llama', 'Mamba'"):
        intervention.offsets(table, "Val Loss", "Task Loss", "Architecture", "GPT", n_boot=0)
    too_few = table.groupby("Architecture").head(2)
    with pytest.raises(DataError, match="the base group 'Llama' has no law to compare against: 2 checkpoint"):
        intervention.offsets(too_few, "Val Loss", "Task Loss", "Architecture", "Llama", irreducible="min", n_boot=0)
    few = table.groupby("Architecture").head(3)  # a flagged base law is used, its warnings shown with it
    flagged = intervention.offsets(few, "Val Loss", "Task Loss", "Architecture", "Llama", irreducible="min", n_boot=0)
    assert flagged.base.status == "flagged" and flagged.frame()["base_status"].eq("flagged").all()
    assert "  base law flagged: nothing left to estimate" in intervention.format_intervention(flagged)
    mixed = table.assign(Convention=np.where(table["Architecture"] == "Llama", "paper", "corrected"))
    with pytest.raises(DataError, match="mixes rows of Convention corrected and paper"):
        intervention.offsets(mixed, "Val Loss", "Task Loss", "Architecture", "Llama", n_boot=0)


def test_residual_figure_draws_every_group_and_the_zero_line():
    result = intervention.offsets(
        architectures(points=15), "Val Loss", "Task Loss", "Architecture", "Llama", irreducible="min", n_boot=50
    )
    fig = plot.residual_figure([result])
    ax = fig.axes[0]
    points = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert [len(c.get_offsets()) for c in points] == [15, 15, 11]  # 4 "Other data" points lie below E_x
    assert ax.get_ylabel() == "Task Loss − law of Llama"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[0].startswith("Llama  (") and legend[-1] == "base law"


def test_cli_averages_losses_writes_table_csv_and_figure(tmp_path):
    data = tmp_path / "table.csv"
    architectures().to_csv(data, index=False)
    out, tidy = tmp_path / "figures" / "arch", tmp_path / "offsets.csv"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "llm_line.analysis.intervention",
            "--data",
            str(data),
            "--average",
            "Validation=Val Loss,Other Val Loss",
            "--average",
            "Test=Task Loss,Task2 Loss",
            "--x",
            "Validation",
            "--y",
            "Test",
            "Task Loss",
            "--group",
            "Architecture",
            "--base",
            "Llama",
            "--irreducible",
            "min",
            "--bootstrap",
            "50",
            "--csv",
            str(tidy),
            "-o",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Test  vs  Validation: residuals from the law of Architecture = 'Llama'" in proc.stdout
    offsets = pd.read_csv(tidy)
    assert offsets["y"].tolist() == ["Test"] * 3 + ["Task Loss"] * 3
    other = offsets[(offsets["group"] == "Other data") & (offsets["y"] == "Test")].iloc[0]
    assert other["mean_residual"] == pytest.approx(0.1, abs=0.01) and other["ci_lo"] > 0.05
    assert out.with_suffix(".png").read_bytes()[:8] == PNG and out.with_suffix(".pdf").exists()


def test_the_readme_commands_run_on_the_released_table(tmp_path, monkeypatch, capsys):
    """The three analysis commands a researcher pastes from the README: laws, figure, intervention table."""
    import shlex

    released = ROOT.parent / "shared" / "data" / "llm-line-hf-models.csv"
    if not released.exists():
        pytest.skip(f"the paper's released table is not at {released}")
    readme = (ROOT / "README.md").read_text()
    commands = [
        line
        for line in readme.splitlines()
        if line.startswith(("llm-line fit ", "llm-line plot ", "llm-line intervention "))
    ]
    assert len(commands) == 3
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["llm-line"])
    for command in commands:
        argv = shlex.split(command.replace("$D", str(released)))[1:]  # through the llm-line command's dispatch
        fast = ["--bootstrap", "100"] if argv[0] != "plot" else []
        assert cli.main(argv + fast) == 0
    out = capsys.readouterr().out
    laws = pd.read_csv(tmp_path / "laws.csv")
    assert laws["group"].tolist() == ["C4", "FineWeb-Edu", "The Pile Deduped"]
    assert (laws["status"] == "flagged").all() and laws["warnings"].str.contains("E_x not identifiable").all()
    assert laws["n"].tolist() == [24, 17, 17] and laws["kappa"].round(2).tolist() == [0.99, 1.25, 1.0]
    assert (tmp_path / "figures" / "llamas.png").read_bytes()[:8] == PNG
    offsets = pd.read_csv(tmp_path / "architecture.csv").set_index("group")
    assert offsets.loc["Mamba", "mean_residual"] == pytest.approx(0.0088, abs=0.0005)
    assert offsets.loc["Mamba", "ci_lo"] < 0 < offsets.loc["Mamba", "ci_hi"]
    assert offsets.loc["GPT", "ci_lo"] < 0 < offsets.loc["GPT", "ci_hi"] and (offsets["base_status"] == "ok").all()
    assert (tmp_path / "figures" / "architecture.pdf").exists() and "GPT (base)" in out


def test_the_base_groups_own_offset_interval_holds_zero_over_seeds_and_extrapolation_is_marked():
    """Independent resamples per group: the base's offset from its own law is 0 within its interval (it used to
    exclude 0 for every seed, its resamples repeating the base law's bootstrap draws)."""
    table = architectures()
    held = 0
    for seed in range(10):
        result = intervention.offsets(
            table, "Val Loss", "Task Loss", "Architecture", "Llama", irreducible="min", n_boot=100, seed=seed
        )
        base = result.offsets[0]
        held += base.ci[0] < 0 < base.ci[1]
    assert held >= 9
    by = {o.group: o for o in result.offsets}
    assert not by["Llama"].extrapolated and not by["Mamba"].extrapolated  # 2.7..4.0 lies inside 2.6..4.0
    other = intervention.offsets(
        table.assign(**{"Val Loss": table["Val Loss"] + np.where(table["Architecture"] == "Other data", 0.6, 0.0)}),
        "Val Loss",
        "Task Loss",
        "Architecture",
        "Llama",
        irreducible="min",
        n_boot=0,
    ).offsets[2]
    assert other.extrapolated and other.outside == 10  # x above 4.0, beyond the base law's range
