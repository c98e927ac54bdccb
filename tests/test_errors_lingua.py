"""Bad input to the lingua tools (issue 18): `llm-line export` and `llm-line prepare-data` refuse with one line
(exit 1, or argparse's exit 2) before writing anything, and a re-run leaves exactly what it was asked for.

Every case goes through `llm_line.cli.main`, what the installed `llm-line` command runs. Checkpoints are tiny
(test_lingua's Llama, dim 64) with lingua's byte tokenizer, so no tokenizer file is needed.
"""

import gzip
import json
import sys

import pytest
import torch
from conftest import run_main
from test_lingua import (
    llama_args,
    llama_state,
    mamba_args,
    mamba_state,
    params_json,
    write_consolidated,
    write_distributed,
)

from llm_line import cli


@pytest.fixture(autouse=True)
def program_name(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["llm-line"])  # cli.main renames argv[0] to the subcommand


def llm_line(argv, capsys):
    """The exit status and stderr lines of `llm-line ARGV` (argparse's exit included)."""
    code, out, err = run_main(cli.main, argv, capsys)
    return code, err.strip().splitlines(), out


ARCHS = {"llama": (llama_args, llama_state), "mamba": (mamba_args, mamba_state)}


def make_run(base, name, steps, model=None, state_args=None, seed=0, arch="llama", write=write_consolidated):
    """A lingua run dir with one checkpoint per step (consolidated unless `write` says otherwise); `model`
    overrides params.json's model section (the weights follow `state_args`, by default the same settings)."""
    default_args, make_state = ARCHS[arch]
    args = default_args() | (model or {})
    params = params_json(name, args)
    params["data"]["tokenizer"] = {"name": "bytes"}
    gen = torch.Generator().manual_seed(seed)
    run = base / name
    for step in steps:
        write(run / "checkpoints" / f"{step:010d}", params, make_state(state_args or args, gen), step)
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
    "arch, model, message",
    [
        (
            "llama",
            {"dim": 96},
            "{file}: tok_embeddings.weight has shape [537, 64], but {params} (dim=96, n_layers=2, n_heads=4, "
            "n_kv_heads=2) implies [537, 96]: the weights and params.json are of different models",
        ),
        (
            "llama",
            {"n_kv_heads": 4},
            "{file}: layers.0.attention.wk.weight has shape [32, 64], but {params} (dim=64, n_layers=2, "
            "n_heads=4, n_kv_heads=4) implies [64, 64]",
        ),
        ("llama", {"n_heads": 3, "n_kv_heads": None}, "{params}: dim=64 is not a multiple of n_heads=3"),
        ("llama", {"n_layers": 3}, "{file} lacks 'layers.2.attention.wq.weight': not a whole lingua checkpoint"),
        (
            "mamba",
            {"state_dim": 32},
            "{file}: layers.0.ssm.in_proj.weight has shape [292, 64], but {params} (dim=64, n_layers=2, n_heads=4, "
            "state_dim=32) implies [324, 64]",
        ),
    ],
)
def test_a_checkpoint_that_does_not_fit_its_params_is_one_line(tmp_path, capsys, arch, model, message):
    """params.json says one model, the weights are another: named with both files, and no step is written (the
    good checkpoint of step 100 neither: everything is checked first)."""
    run = make_run(tmp_path, "tiny-a", [100], arch=arch)
    broken = make_run(tmp_path, "tiny-a", [200], model=model, state_args=ARCHS[arch][0](), arch=arch)
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


def test_a_truncated_distributed_shard_is_one_line(tmp_path, capsys):
    run = make_run(tmp_path, "tiny-a", [200], write=write_distributed)
    folder = run / "checkpoints" / "0000000200"
    (shard,) = folder.glob("*.distcp")
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    code, err, _ = llm_line(["export", str(run), str(tmp_path / "out")], capsys)
    assert code == 1 and err[-1] == (
        f"llm-line export: error: {folder}: its torch.distributed checkpoint cannot be read (PytorchStreamReader "
        "failed reading zip archive: failed finding central directory; a .distcp shard truncated, corrupt or "
        "missing?): copy the checkpoint folder again"
    )
    assert not (folder / "consolidated" / "consolidated.pth").exists() and not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------- prepare-data


def c4_files(folder, *counts, field="text"):
    """C4-named .json.gz files of `counts` documents each (`doc F-I`)."""
    folder.mkdir(exist_ok=True)
    for f, count in enumerate(counts):
        with gzip.open(folder / f"c4-train.{f:05d}-of-01024.json.gz", "wt") as out:
            out.writelines(json.dumps({field: f"doc {f}-{i}", "url": "x"}) + "\n" for i in range(count))
    return folder


def prepare(raw, data, *options):
    return ["prepare-data", "c4", str(data), "--source-dir", str(raw), *options]


def test_prepare_data_rerun_with_fewer_chunks_leaves_exactly_those(tmp_path, capsys):
    raw, data = c4_files(tmp_path / "raw", 60), tmp_path / "data"
    assert llm_line(prepare(raw, data, "--chunks", "8", "--val-docs", "4"), capsys)[0] == 0
    code, _, out = llm_line(prepare(raw, data, "--chunks", "4", "--val-docs", "4"), capsys)
    assert code == 0
    assert out.splitlines()[0] == (
        "removed 4 chunk(s) of an earlier run with more --chunks: "
        "c4.chunk.04.jsonl, c4.chunk.05.jsonl, c4.chunk.06.jsonl, c4.chunk.07.jsonl"
    )
    chunks = sorted((data / "c4").glob("*.chunk.*.jsonl"))  # the glob lingua's data loader uses
    assert [p.name for p in chunks] == [f"c4.chunk.0{i}.jsonl" for i in range(4)]
    texts = [json.loads(line)["text"] for p in chunks for line in p.read_text().splitlines()]
    assert sorted(texts) == sorted(f"doc 0-{i}" for i in range(4, 60))  # each document once

    (data / "c4" / "other.chunk.00.jsonl").write_text('{"text": "x"}\n')  # another prefix: lingua reads it too
    before = snapshot(data)
    code, err, _ = llm_line(prepare(raw, data, "--chunks", "4"), capsys)
    assert code == 1 and err[-1] == (
        f"llm-line prepare-data: error: {data / 'c4'} holds other.chunk.00.jsonl, which lingua's *.chunk.*.jsonl "
        f"glob would read as part of c4; move it out of {data / 'c4'}"
    )
    assert snapshot(data) == before


@pytest.mark.parametrize(
    "counts, options, message",
    [
        ((0,), [], "the 1 file(s) in {raw} hold no documents; nothing to write"),
        (
            (20, 10),
            ["--val-docs", "30"],
            "--val-docs 30 takes all 30 documents of the 2 file(s) in {raw}, leaving "
            "none to train on; use --val-docs below 30",
        ),
        ((10,), ["--val-docs", "8", "--chunks", "8"], "the 2 training documents leave 6 of 8 chunks empty"),
    ],
)
def test_prepare_data_with_too_few_documents_writes_nothing(tmp_path, capsys, counts, options, message):
    raw, data = c4_files(tmp_path / "raw", *counts), tmp_path / "data"
    code, err, _ = llm_line(prepare(raw, data, *options), capsys)
    assert code == 1 and len(err) == 1 and message.format(raw=raw) in err[0], err
    assert not [p for p in data.rglob("*") if p.is_file()]


def test_prepare_data_without_the_text_field_points_at_text_field(tmp_path, capsys):
    raw, data = c4_files(tmp_path / "raw", 12, field="content"), tmp_path / "data"
    code, err, _ = llm_line(prepare(raw, data, "--val-docs", "2"), capsys)
    file = raw / "c4-train.00000-of-01024.json.gz"
    assert code == 1 and err == [
        f"llm-line prepare-data: error: {file}:1 has no field 'text' (['content', 'url']); set --text-field"
    ]
    code, _, out = llm_line(prepare(raw, data, "--val-docs", "2", "--chunks", "2", "--text-field", "content"), capsys)
    assert code == 0 and out.startswith(f"12 documents from 1 files -> {data / 'c4'}")
    lines = [json.loads(line) for p in sorted((data / "c4").glob("*.jsonl")) for line in p.read_text().splitlines()]
    assert sorted(d["text"] for d in lines) == sorted(f"doc 0-{i}" for i in range(12))  # written as lingua's text


# ----------------------------------------------------------------------------------------------- make_configs


def test_make_configs_out_must_be_a_writable_folder(tmp_path, capsys):
    from llm_line.lingua import make_configs

    file = tmp_path / "configs"
    file.write_text("")
    with pytest.raises(SystemExit) as exit_:
        make_configs.main(["--out", str(file)])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(f"argument --out: {file} is a file, not a folder")
    make_configs.main(["--out", str(tmp_path / "new")])
    assert capsys.readouterr().out == f"wrote 51 configs and launch.sh to {tmp_path / 'new'}\n"
    assert not [p for p in (tmp_path / "new").iterdir() if p.name.startswith(".")]  # no temporary file left
