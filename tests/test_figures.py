"""figures: every recipe renders (released table, synthetic ladders), files exist, the index lists every law."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llm_line.analysis import figures, recipes

ROOT = Path(__file__).resolve().parents[1]
RELEASED = ROOT.parent / "shared" / "data" / "llm-line-hf-models.csv"
PNG = b"\x89PNG\r\n\x1a\n"
# per pretraining dataset: (E, scale) of each loss; losses follow one law per dataset, whatever else changes
DATASETS = {"FineWeb-Edu": (1.7, 1.0), "C4": (1.9, 1.2)}
LOSSES = {
    "FineWeb-Edu Validation Loss": (0.0, 1.0, 1.0),
    "C4 Validation Loss": (0.3, 1.1, 0.95),
    "The Pile UC Validation Loss": (0.5, 1.2, 0.9),
    "ARC-Easy Loss": (2.5, 3.0, 0.6),
    "HellaSwag Loss": (0.9, 0.9, 1.1),
}


def ladder(seed=0, steps=4):
    """A sparse from-scratch ladder: (data, architecture, tokenizer) settings x 3 sizes x `steps` checkpoints,
    each pair of settings differing in one thing, plus a context-length and a learning-rate variant of
    FineWeb-Edu / Llama / tiktoken at the middle size."""
    rng = np.random.default_rng(seed)
    rows = []
    base = [("FineWeb-Edu", "Llama", "tiktoken"), ("C4", "Llama", "tiktoken"), ("FineWeb-Edu", "Mamba", "tiktoken")]
    base.append(("FineWeb-Edu", "Llama", "gpt2"))
    settings = [(data, arch, tok, size, 2048, 3e-4) for data, arch, tok in base for size in (5e7, 2e8, 8e8)]
    settings += [
        ("FineWeb-Edu", "Llama", "tiktoken", 2e8, 1024, 3e-4),
        ("FineWeb-Edu", "Llama", "tiktoken", 2e8, 2048, 1e-3),
    ]
    for data, arch, tok, size, ctx, lr in settings:
        E, scale = DATASETS[data]
        shift = 0.05 if tok == "gpt2" else 0.0
        for step in range(1, steps + 1):
            tokens = 4e8 * step * size / 5e7
            reducible = scale * ((1e7 / size) ** (0.35 / 0.3) + 1e8 / tokens) ** 0.3
            row = {
                "Name": f"{data}-{arch}-{tok}-{size:.0e}-{ctx}-{lr}",
                "Architecture": arch,
                "Pretraining Data": data,
                "Tokenizer": tok,
                "Size": size,
                "Tokens": tokens,
                "Steps": step,
                "Context Length": ctx,
                "Optimizer": "AdamW",
                "Scheduler": "cosine",
                "Learning Rate": lr,
                "Weight Decay": 0.1,
                "Hugging Face": False,
                "Overtraining": False,
            }
            for column, (offset, k, kappa) in LOSSES.items():
                row[column] = E + offset + shift + k * reducible**kappa + rng.normal(0, 0.003)
            rows.append(row)
    return pd.DataFrame(rows)


def parse_laws(index_text: str) -> dict[tuple[str, str, str], list[str]]:
    """The index's law rows: (panel, y, group) -> cells."""
    out = {}
    for line in index_text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 11 and cells[0] not in ("panel", "---"):
            out[(cells[0], cells[1], cells[2])] = cells
    return out


def check_index(drawn, index_text, out):
    """Every drawn figure's files exist, and every law it drew is in the index with its numbers."""
    sections = {s.split("\n", 1)[0]: s for s in index_text.split("\n## ")[1:]}
    for d in drawn:
        assert (out / f"{d.name}.png").read_bytes()[:8] == PNG
        assert d.laws
        listed = parse_laws(sections[d.name])
        assert len(listed) == len(d.laws)
        for law in d.laws:
            f = law.fit
            cells = listed[(law.panel or "(one panel)", f.y, f.group)]
            assert cells[3] == str(f.n) and cells[4].startswith(f.status)
            if f.fitted:
                for cell, value in zip(cells[5:10], (f.K, f.kappa, f.E_x.E, f.E_y.E, f.r2), strict=True):
                    assert float(cell) == pytest.approx(value, rel=1e-3)
            else:
                assert f.reason in cells[10]
        if d.irreducibles:
            assert (out / f"{d.name}_E.png").read_bytes()[:8] == PNG
            for e in d.irreducibles:
                assert f"| {e.group} | {e.loss} | {e.E:.4g} | {e.method} |" in sections[d.name]


def test_every_figure_renders_from_a_synthetic_ladder(tmp_path):
    table = ladder()
    drawn, missing = figures.draw(recipes.RECIPES, table, tmp_path, formats=("png",), dpi=30, report=lambda s: None)
    names = {d.name for d in drawn}
    assert {
        "intervention_pretraining_data",
        "intervention_tokenizer",
        "intervention_architecture",
        "overview",
        "model_size",
        "context_length",
        "optimizer",
    } <= names
    assert {n for n in names if n.startswith("train_to_train_test_")} == {
        "train_to_train_test_llama_c4",
        "train_to_train_test_llama_fineweb-edu",
        "train_to_train_test_mamba_fineweb-edu",
    }
    assert missing == []
    text = figures.index(drawn, missing, "llm-line figures (test)")
    check_index(drawn, text, tmp_path)
    by_name = {d.name: d for d in drawn}
    # the model-size figure: one law per size, in each dataset's panel; all on the dataset's line
    size = by_name["model_size"]
    assert {(law.panel, law.fit.group) for law in size.laws} == {
        (d, s) for d in DATASETS for s in ("50000000", "200000000", "800000000")
    }
    assert {law.fit.y for law in size.laws} == {recipes.AVERAGE_TEST}
    # one model size per law: E is not identifiable there (flagged), the law still fits its points
    assert all(law.fit.status == "flagged" and law.fit.r2 > 0.85 for law in size.laws if law.panel == "FineWeb-Edu")
    # C4 has 4 checkpoints per size: E falls back to the minimum loss, the laws are flagged and drawn dashed
    assert {law.drawn for law in size.laws if law.panel == "C4"} == {"dashed"}
    assert size.notes == [
        "Average Test Loss = mean of ARC-Easy Loss, HellaSwag Loss (absent: ARC-Challenge Loss, OpenBookQA Loss, "
        "PIQA Loss, COPA Loss, Winogrande Loss)"
    ]
    # the optimizer figure groups by four columns
    groups = {law.fit.group for law in by_name["optimizer"].laws}
    assert groups == {"AdamW / cosine / 0.0003 / 0.1", "AdamW / cosine / 0.001 / 0.1"}
    # the matched tokenizer figure: two rows of y, one column per (architecture, data)
    tok = by_name["intervention_tokenizer"]
    assert {law.panel for law in tok.laws} == {
        f"{row} · Llama / FineWeb-Edu" for row in ("Train-to-Train", "Train-to-Test")
    }
    assert {law.fit.group for law in tok.laws} == {"gpt2", "tiktoken"}
    # train-to-train/test on FineWeb-Edu: x is its own validation loss, not also a y
    fw = by_name["train_to_train_test_llama_fineweb-edu"]
    assert {law.fit.x for law in fw.laws} == {"FineWeb-Edu Validation Loss"}
    assert {law.fit.y for law in fw.laws} == {
        "C4 Validation Loss",
        "The Pile UC Validation Loss",
        "Mean of Train-to-Train",
        "ARC-Easy Loss",
        "HellaSwag Loss",
        "Mean of Train-to-Test",
    }


def test_figures_whose_rows_are_missing_are_listed_with_what_is_missing(tmp_path):
    table = ladder(steps=4).drop(columns=["Context Length"])
    table = table[table["Learning Rate"] == 3e-4]  # one optimizer setting left
    chosen = [r for r in recipes.RECIPES if r.name in ("context_length", "optimizer", "model_size")]
    drawn, missing = figures.draw(chosen, table, tmp_path, formats=("png",), dpi=30, report=lambda s: None)
    assert [d.name for d in drawn] == ["model_size"]
    why = {m.name: m.why for m in missing}
    assert why["context_length"] == "no column(s) Context Length"
    assert why["optimizer"].startswith("Optimizer / Scheduler / Learning Rate / Weight Decay holds 1 distinct value(s)")
    text = figures.index(drawn, missing, "llm-line figures")
    assert "## Not drawn" in text and "| context_length (Context length) | no column(s) Context Length |" in text


@pytest.mark.slow  # every figure of the released table: ~80 fits and 18 figures, over a minute on 2 cores
def test_released_table_every_figure_or_its_reason(tmp_path):
    if not RELEASED.exists():
        pytest.skip(f"the paper's released table is not at {RELEASED}")
    from llm_line.analysis.table import load

    table = load([RELEASED], report=lambda s: None)
    drawn, missing = figures.draw(recipes.RECIPES, table, tmp_path, formats=("png",), dpi=30, report=lambda s: None)
    assert {d.name for d in drawn} == {
        "intervention_pretraining_data",
        "intervention_tokenizer",
        "intervention_architecture",
        *(f"train_to_train_test_{n}" for n in ("gpt_the-pile", "llama_c4", "llama_fineweb-edu")),
        *(f"train_to_train_test_{n}" for n in ("llama_the-pile-deduped", "mamba_the-pile", "mamba2_the-pile")),
    }
    why = {m.name: m.why for m in missing}
    assert why["train_to_train_test_olmo_dolma"] == "no in-domain validation loss column for the pretraining data Dolma"
    for name in ("overview", "model_size", "context_length", "optimizer"):
        assert why[name].startswith("no checkpoints trained from scratch")
    check_index(drawn, figures.index(drawn, missing, "llm-line figures"), tmp_path)
    by_name = {d.name: d for d in drawn}
    # the matched columns of the paper: Llama / gpt2-HF, GPT / The Pile, The Pile / gpt-neox
    assert {law.panel for law in by_name["intervention_pretraining_data"].laws} == {
        "Train-to-Train · Llama / gpt2-HF",
        "Train-to-Test · Llama / gpt2-HF",
    }
    tokenizer = by_name["intervention_tokenizer"].laws
    assert {law.fit.group for law in tokenizer} == {"gpt-neox", "gpt2-HF"}
    assert {law.drawn for law in tokenizer if law.fit.group == "gpt2-HF"} == {"dashed"}  # 4 checkpoints: flagged
    assert {law.fit.group for law in by_name["intervention_architecture"].laws} == {"GPT", "Mamba", "Mamba2"}


def test_cli_only_one_figure_and_its_index(tmp_path):
    if not RELEASED.exists():
        pytest.skip(f"the paper's released table is not at {RELEASED}")
    out = tmp_path / "figs"
    proc = subprocess.run(
        [sys.executable, "-m", "llm_line.cli", "figures", "--data", str(RELEASED), "-o", str(out)]
        + ["--only", "intervention_tokenizer", "--irreducible", "min", "--dpi", "30"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "index.md",
        "intervention_tokenizer.pdf",
        "intervention_tokenizer.png",
        "intervention_tokenizer_E.pdf",  # E = each group's minimum loss, shown against its checkpoints
        "intervention_tokenizer_E.png",
    ]
    text = (out / "index.md").read_text()
    laws = parse_laws(text)
    assert len(laws) == 4 and {k[2] for k in laws} == {"gpt-neox", "gpt2-HF"}
    # --irreducible min: E is each group's minimum loss, so no compute-to-loss figure
    released = pd.read_csv(RELEASED, header=[0, 1])
    released.columns = [c[0] for c in released.columns]
    neox = released[(released["Architecture"] == "GPT") & (released["Tokenizer"] == "gpt-neox")]
    cells = laws[("Train-to-Train · GPT / The Pile", "C4 Validation Loss", "gpt-neox")]
    assert float(cells[7]) == pytest.approx(neox["FineWeb-Edu Validation Loss"].min(), rel=1e-3)
    assert float(cells[8]) == pytest.approx(neox["C4 Validation Loss"].min(), rel=1e-3)
    bad = subprocess.run(
        [sys.executable, "-m", "llm_line.analysis.figures", "--data", str(RELEASED), "--only", "fig9"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "no figure 'fig9'; the figures are train_to_train_test" in bad.stderr


def test_data_repeated_stacks_the_tables(tmp_path):

    from llm_line.analysis import table

    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    ladder(steps=2).iloc[:5].to_csv(first, index=False)
    ladder(steps=2).iloc[5:12].to_csv(second, index=False)
    import argparse

    parser = argparse.ArgumentParser()
    table.add_arguments(parser)
    assert parser.parse_args([]).data == ["data/results.csv"]
    args = parser.parse_args(["--data", str(first), "--data", str(second)])
    assert args.data == [str(first), str(second)]
    assert len(table.load_from_args(args, report=lambda s: None)) == 12
