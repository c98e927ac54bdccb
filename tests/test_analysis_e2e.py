"""End to end, offline: sweep the demo model over sizes and checkpoints, collect, fit, plot — as a user would."""

import json
import subprocess
import sys

import pytest
from conftest import ROOT, run_evaluate

from llm_line.analysis.table import read_table

pytestmark = pytest.mark.slow  # sweeps through the CLI: minutes on 2 cores

SWEEP = ["-m", "model=demo", "model.size=tiny,small", "model.revision=step0,step100,step200,step300"]


def analyse(root, tmp_path, x, y):
    """collect -> fit -> plot through the three CLIs; returns the wide table and the fits."""
    data = tmp_path / "data" / "results.csv"
    python = [sys.executable, "-m"]
    proc = subprocess.run(
        [*python, "llm_line.analysis.collect", str(root), "-o", str(data), "--strict"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    fits_json = tmp_path / "fits.json"
    proc = subprocess.run(
        [
            *python,
            "llm_line.analysis.fit",
            "--data",
            str(data),
            "--x",
            x,
            "--y",
            y,
            "--group",
            "Pretraining Data",
            "--bootstrap",
            "100",
            "--predict",
            "1.0",
            "--json",
            str(fits_json),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    figure = tmp_path / "figures" / "demo"
    proc = subprocess.run(
        [*python, "llm_line.analysis.plot", "--data", str(data), "--x", x, "--y", y, "-o", str(figure)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert figure.with_suffix(".png").stat().st_size > 10_000 and figure.with_suffix(".pdf").exists()
    return read_table(data), json.loads(fits_json.read_text())


def test_demo_tasks_sweep_collect_fit_plot(tmp_path, cache_dir):
    root = tmp_path / "results"
    run_evaluate(*SWEEP, "task=demo_sounds,demo_colors", results_dir=root)
    wide, fits = analyse(root, tmp_path, "Demo Sounds Loss", "Demo Colors Loss")
    assert len(wide) == 8 and set(wide["Steps"]) == {0, 100, 200, 300}
    assert set(wide["Tokens"]) == {0, 102400, 204800, 307200}  # step x 1024 tokens per step
    assert wide["Size"].nunique() == 2 and set(wide["Pretraining Data"]) == {"demo"}
    (f,) = fits["fits"]
    assert f["group"] == "demo" and f["n"] == 8
    # 2 sizes x 4 steps of 2 runs: a fitted law, flagged where E rests on too little (its reasons listed)
    assert f["status"] == "ok" or (f["status"] == "flagged" and f["warnings"]), f["reason"]
    assert f["r2"] > 0.9 and f["K_ci"] is not None and f["n_boot"] + f["n_boot_failed"] == 100
    assert f["E_x"]["method"] in ("compute fit L(N, D)", "min observed loss")
    assert f["E_x"]["method"] == "compute fit L(N, D)" or f["E_x"]["fallback_reason"]


def test_demo_task_against_demo_corpus(tmp_path, cache_dir):
    if not (ROOT / "conf" / "task" / "val_demo.yaml").exists():
        pytest.skip("val_demo corpus task not available yet")
    root = tmp_path / "results"
    run_evaluate(*SWEEP, "task=demo,val_demo", results_dir=root)
    data = tmp_path / "probe.csv"
    subprocess.run(
        [sys.executable, "-m", "llm_line.analysis.collect", str(root), "-o", str(data)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    (x,) = [c for c in read_table(data).columns if c.endswith(" Validation Loss")]
    wide, fits = analyse(root, tmp_path, x, "Demo Loss")
    assert len(wide) == 8 and wide[x].notna().all() and f"{x[: -len(' Loss')]} BPB" in wide.columns
    (f,) = fits["fits"]
    # The pipeline runs through: a law is fitted and reported with finite statistics. No R² bound here: the
    # demo corpus is mostly text the demo model never trained on, so as the model memorises its facts the
    # corpus loss first falls, then rises again, and no single shifted power law fits (R² ~0.86).
    assert f["status"] == "ok" or (f["status"] == "flagged" and f["warnings"]), f["reason"]
    assert 0 < f["r2"] <= 1 and f["K"] > 0 and f["kappa"] > 0 and f["n"] == 8
