"""Bad input to the lingua tools (issue 18): `llm-line export` and `llm-line prepare-data` refuse with one line
(exit 1, or argparse's exit 2) before writing anything, and a re-run leaves exactly what it was asked for.

Every case goes through `llm_line.cli.main`, what the installed `llm-line` command runs. Checkpoints are tiny
(test_lingua's Llama, dim 64) with lingua's byte tokenizer, so no tokenizer file is needed.
"""

import json
import sys

import pytest
import torch
from test_lingua import llama_args, llama_state, params_json, write_consolidated

from llm_line import cli


@pytest.fixture(autouse=True)
def program_name(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["llm-line"])  # cli.main renames argv[0] to the subcommand


def llm_line(argv, capsys):
    """The exit status and stderr lines of `llm-line ARGV` (argparse's exit included)."""
    try:
        code = cli.main(argv)
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    return code, captured.err.strip().splitlines(), captured.out


def make_run(base, name, steps, model=None, state_args=None, seed=0):
    """A lingua run dir with one consolidated checkpoint per step; `model` overrides params.json's model
    section (the weights follow `state_args`, by default the same settings)."""
    args = llama_args() | (model or {})
    params = params_json(name, args)
    params["data"]["tokenizer"] = {"name": "bytes"}
    gen = torch.Generator().manual_seed(seed)
    run = base / name
    for step in steps:
        write_consolidated(run / "checkpoints" / f"{step:010d}", params, llama_state(state_args or args, gen), step)
    return run


def snapshot(folder):
    """Every file under a folder with its size and modification time (what a refused command must not change)."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


# ---------------------------------------------------------------------------------------------------- export


def test_export_into_another_runs_folder_is_refused_before_writing(tmp_path, capsys):
    out = tmp_path / "out"
    code, _, _ = llm_line(["export", str(make_run(tmp_path, "tiny-a", [100, 200])), str(out)], capsys)
    assert code == 0
    source = json.loads((out / "step100" / "llm_line_source.json").read_text())
    assert source == {
        "run": "tiny-a",
        "dump_dir": "/runs/tiny-a",
        "checkpoint": str((tmp_path / "tiny-a" / "checkpoints" / "0000000100").resolve()),
        "step": 100,
    }
    before = snapshot(out)
    other = make_run(tmp_path, "tiny-b", [100, 300], seed=1)
    for extra in ([], ["--steps", "100"], ["--force"]):
        code, err, _ = llm_line(["export", str(other), str(out), *extra], capsys)
        assert code == 1 and len(err) == 1, err
        assert "holds the export of run 'tiny-a' (/runs/tiny-a)" in err[0] and "(run 'tiny-b' (/runs/tiny-b))" in err[0]
        assert err[0].endswith(f"export to another folder, or remove {out} first")
    assert snapshot(out) == before

    # An export made before step folders recorded their source (and llm_line.json its dump_dir): the step's
    # lingua_params.json still tells the runs apart.
    (out / "llm_line.json").unlink()
    (out / "step100" / "llm_line_source.json").unlink()
    code, err, _ = llm_line(["export", str(other), str(out), "--steps", "100"], capsys)
    assert code == 1 and f"{out / 'step100'} is an export of run 'tiny-a' (/runs/tiny-a)" in err[-1]


def test_export_of_a_step_the_run_does_not_have_lists_its_steps(tmp_path, capsys):
    run, out = make_run(tmp_path, "tiny-a", [100, 200]), tmp_path / "out"
    code, err, _ = llm_line(["export", str(run), str(out), "--steps", "100,999"], capsys)
    assert code == 1 and err[-1].endswith(f"error: {run} has no checkpoint at step 999; its steps: 100, 200")
    code, err, _ = llm_line(["export", str(run), str(out), "--steps", "1e3"], capsys)
    assert code == 2 and err[-1].endswith("argument --steps: '1e3' is not a whole number")
    code, err, _ = llm_line(["export", str(tmp_path / "nope"), str(out)], capsys)
    assert code == 2 and err[-1].endswith(f"argument run_dir: {tmp_path / 'nope'} does not exist")
    assert not out.exists()


@pytest.mark.parametrize(
    "model, message",
    [
        (
            {"dim": 96},
            "{file}: tok_embeddings.weight has shape [537, 64], but {params} (dim=96, n_layers=2, n_heads=4, "
            "n_kv_heads=2) implies [537, 96]: the weights and params.json are of different models",
        ),
        (
            {"n_kv_heads": 4},
            "{file}: layers.0.attention.wk.weight has shape [32, 64], but {params} (dim=64, n_layers=2, "
            "n_heads=4, n_kv_heads=4) implies [64, 64]",
        ),
        ({"n_heads": 3, "n_kv_heads": None}, "{params}: dim=64 is not a multiple of n_heads=3"),
        ({"n_layers": 3}, "{file} lacks 'layers.2.attention.wq.weight': not a whole lingua checkpoint"),
    ],
)
def test_a_checkpoint_that_does_not_fit_its_params_is_one_line(tmp_path, capsys, model, message):
    """params.json says one model, the weights are another: named with both files, and no step is written (the
    good checkpoint of step 100 neither: everything is checked first)."""
    run = make_run(tmp_path, "tiny-a", [100], state_args=llama_args())
    broken = make_run(tmp_path, "tiny-a", [200], model=model, state_args=llama_args())
    folder = broken / "checkpoints" / "0000000200"
    out = tmp_path / "out"
    code, err, _ = llm_line(["export", str(run), str(out)], capsys)
    assert code == 1, err
    expected = message.format(
        params=folder / "consolidated" / "params.json", file=folder / "consolidated" / "consolidated.pth"
    )
    assert len([line for line in err if "error" in line]) == 1, err
    assert err[-1].startswith("llm-line export: error: ") and expected in err[-1], err[-1]
    assert not out.exists()


def test_a_truncated_consolidated_checkpoint_is_one_line(tmp_path, capsys):
    run = make_run(tmp_path, "tiny-a", [100, 200])
    file = run / "checkpoints" / "0000000200" / "consolidated" / "consolidated.pth"
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    out = tmp_path / "out"
    code, err, _ = llm_line(["export", str(run), str(out)], capsys)
    assert code == 1 and len(err) == 1, err
    assert err[0].startswith(f"llm-line export: error: {file} is not a readable torch checkpoint (")
    assert "truncated or corrupt?): copy it again" in err[0]
    assert not out.exists()
