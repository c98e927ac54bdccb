"""The model zoo: every family composes with typed metadata, steps map to each family's revision names,
tokens seen are derived, the paper's sweep expands to its table, and step sweeps run for real."""

import csv
import fnmatch
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

import hydra_plugins.llm_line_sweeper as sweeper
from llm_line.evaluation.config import step_revision, tokens_at

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml") if p.stem != "hf")
PAPER_CSV = ROOT.parent / "shared" / "data" / "llm-line-hf-models.csv"


def load(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


def resolved_model(*overrides):
    return OmegaConf.to_container(load(*overrides).model, resolve=True)


@pytest.fixture
def lingua_export(tmp_path):
    """An export folder as llm_line/lingua/export.py leaves it (metadata only; nothing is loaded here)."""
    (tmp_path / "step1000").mkdir()
    (tmp_path / "llm_line.json").write_text(
        json.dumps(
            {
                "name": "llama-d512-l8-fineweb_edu-llama3",
                "family": "lingua-llama",
                "architecture": "Llama",
                "parameters": 156_000_000,
                "pretraining_data": "FineWeb-Edu",
                "tokenizer": "llama3",
                "tokens_per_step": 524288,
            }
        )
    )
    return tmp_path


def sizes_of(model):
    table = OmegaConf.to_container(load(f"model={model}").model.sizes)
    return list(table) or [None]


@pytest.mark.parametrize("model", MODELS)
def test_every_model_config_composes_with_typed_metadata(model, lingua_export):
    extra = [f"model.path={lingua_export}"] if model == "lingua" else []
    for size in sizes_of(model):
        m = resolved_model(f"model={model}", *extra, *([f"model.size={size}"] if size else []))
        assert isinstance(m["name"], str) and m["name"] and isinstance(m["pretrained"], str), model
        assert m["revision"] == "main" and m["step"] is None
        meta = m["meta"]
        for key in ("family", "architecture", "pretraining_data", "tokenizer"):
            assert isinstance(meta[key], str) and meta[key], (model, size, key)
        if model != "demo":  # the demo model's count is taken from the model when it loads
            assert isinstance(meta["parameters"], int) and meta["parameters"] > 1_000_000, (model, size)
        for key in ("tokens_per_step", "final_step", "tokens"):
            assert meta[key] is None or (isinstance(meta[key], int) and meta[key] > 0), (model, size, key)
        assert isinstance(m["parallelize"], bool) and (m["dtype"] == "auto" or model == "demo")  # bf16 on GPU


def test_cfg_job_prints_a_family_offline():
    proc = subprocess.run(
        [
            sys.executable,
            "evaluate.py",
            "model=olmo",
            "model.size=1B",
            "model.step=452000",
            "--cfg",
            "job",
            "--resolve",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    cfg = OmegaConf.create(proc.stdout)
    assert cfg.model.name == "allenai/OLMo-1B" and cfg.model.pretrained == "allenai/OLMo-1B-hf"
    assert cfg.model.revision == "step452000-tokens*B"  # matched against the hub's branches when the cell runs
    assert cfg.model.meta.tokens == 452000 * 4194304


@pytest.mark.parametrize(
    "overrides, revision, tokens",
    [
        (["model=pythia", "model.step=3000"], "step3000", 3000 * 2097152),
        (["model=pythia", "model.revision=step512"], "step512", 512 * 2097152),  # a revision given directly
        (["model=pythia"], "main", 143000 * 2097152),
        (["model=pythia_deduped", "model.size=12b", "model.step=0"], "step0", 0),
        (["model=olmo", "model.step=20000"], "step20000-tokens*B", 20000 * 4194304),
        (["model=olmo", "model.step=700000"], "step700000-tokens*B", 700000 * 4194304),
        (["model=olmo", "model.size=7B"], "main", None),
        (["model=fw_ablation_c4", "model.step=1000"], "step-001000-*BT", 1000 * 2097152),
        (["model=fw_ablation_the_pile", "model.step=46000"], "step-046000-*BT", 46000 * 2097152),
        (["model=gpt_neox_20b"], "main", 150000 * 3149824),
        (["model=mamba2", "model.size=2.7b"], "main", 300_000_000_000),
    ],
)
def test_steps_give_the_family_revision_and_tokens_seen(overrides, revision, tokens):
    m = resolved_model(*overrides)
    assert m["revision"] == revision and m["meta"]["tokens"] == tokens
    assert load(*overrides).hydra.run.dir.split("/")[2] == revision.replace("*", "_")  # the results path


@pytest.mark.parametrize("overrides", [["model=gpt_neo"], ["model=olmo", "model.size=7B"]])
def test_families_without_step_revisions_say_so(overrides):
    with pytest.raises(Exception, match="publishes no step revisions"):
        resolved_model(*overrides, "model.step=1000")


def test_resolvers_directly():
    assert step_revision("step-{step:06d}-*BT", 70000) == "step-070000-*BT"
    assert step_revision("step{step}", None) == "main"
    assert tokens_at("step-070000-147BT", 2097152, None) == 70000 * 2097152
    assert tokens_at("main", 2097152, None) is None and tokens_at("step5", None, 10) is None


@pytest.mark.slow
@pytest.mark.skipif(not PAPER_CSV.exists(), reason="the paper's table lives in ../shared")
def test_metadata_agrees_with_the_papers_table():
    """Tokens seen (and revision names, for the ablations) reproduce the released table's figures."""
    rows = list(csv.reader(PAPER_CSV.open()))
    header, checked = rows[0], 0
    configs = {
        "EleutherAI/pythia-": "pythia",
        "EleutherAI/gpt-neo-": "gpt_neo",
        "EleutherAI/gpt-j-6b": "gpt_j",
        "EleutherAI/gpt-neox-20b": "gpt_neox_20b",
        "state-spaces/mamba-": "mamba",
        "state-spaces/mamba2-": "mamba2",
        "HuggingFaceFW/ablation-model-c4": "fw_ablation_c4",
        "HuggingFaceFW/ablation-model-fineweb-edu": "fw_ablation_fineweb_edu",
        "HuggingFaceFW/ablation-model-the-pile": "fw_ablation_the_pile",
    }
    for values in rows[2:]:
        row = dict(zip(header, values, strict=False))
        prefix = next((p for p in configs if row["Name"].startswith(p)), None)
        if prefix is None or not row["Tokens"]:
            continue
        overrides = [f"model={configs[prefix]}"]
        if prefix.endswith("-"):
            overrides.append(f"model.size={row['Name'][len(prefix) :]}")
        if row["Steps"]:
            overrides.append(f"model.step={int(float(row['Steps']))}")
        m = resolved_model(*overrides)
        assert m["name"] == row["Name"]
        paper_tokens = int(row["Tokens"])
        if row["Steps"]:  # the ablation branch names carry the table's token count in billions
            branch = f"step-{int(float(row['Steps'])):06d}-{paper_tokens // 10**9}BT"
            assert fnmatch.fnmatchcase(branch, m["revision"]), (row["Name"], m["revision"])
        if m["meta"]["tokens"] is not None:
            # the table gives whole billions for the ablations
            assert abs(m["meta"]["tokens"] - paper_tokens) <= max(0.005 * paper_tokens, 0.5e9), row["Name"]
            checked += 1
        assert row["Pretraining Data"].lower() in m["meta"]["pretraining_data"].lower(), row["Name"]
    assert checked >= 60


def expand(experiment, *cli):
    cfg = load(f"+experiment={experiment}", *cli)
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    parser = OverridesParser.create()
    overrides = parser.parse_overrides([f"{k}={v}" for k, v in params.items()] + list(cli))
    return sweeper.expand(OmegaConf.to_container(cfg.hydra.sweeper.grids), overrides, parser)


@pytest.mark.slow
def test_paper_hf_expands_to_the_papers_hugging_face_table():
    jobs = expand("paper_hf")
    checkpoints = {tuple(o for o in job if not o.startswith("task=")) for job in jobs}
    tasks = {o for job in jobs for o in job if o.startswith("task=")}
    assert len(tasks) == 15 and {"task=mmlu", "task=val_c4_paper", "task=val_slimpajama_paper"} <= tasks
    assert len(checkpoints) == 99 and len(jobs) == 99 * 15
    assert jobs[0][:2] == ["model=pythia", "model.size=70m"]  # models vary slowest: each is loaded once
    families = {job[0] for job in jobs}
    assert families == {
        f"model={m}"
        for m in (
            "pythia",
            "gpt_neo",
            "gpt_j",
            "gpt_neox_20b",
            "mamba",
            "mamba2",
            "olmo",
            "fw_ablation_c4",
            "fw_ablation_fineweb_edu",
            "fw_ablation_the_pile",
        )
    }
    available = {p.stem for p in (CONF / "task").glob("*.yaml")}
    names = set()
    for checkpoint in sorted(checkpoints):  # every checkpoint composes into a distinct cell
        m = resolved_model(*checkpoint, "task=piqa")
        names.add((m["name"], m["revision"]))
    assert len(names) == 99
    assert ("HuggingFaceFW/ablation-model-the-pile", "step-080000-*BT") in names
    assert ("allenai/OLMo-1B", "step700000-tokens*B") in names and ("allenai/OLMo-7B", "main") in names
    assert {"piqa", "mmlu", "winogrande"} <= available


def test_pythia_checkpoints_sweeps_all_154_revisions_of_one_size():
    jobs = expand("pythia_checkpoints", "model.size=1b")
    steps = [o for job in jobs for o in job if o.startswith("model.step=")]
    assert len(set(steps)) == 154 and len(jobs) == 154 * 10
    assert all("model.size=1b" in job for job in jobs)
    assert steps[0] == "model.step=0" and steps[-1] == "model.step=143000"


@pytest.mark.slow
def test_step_range_sweep_runs(cli, tmp_path):
    """`model.step=range(...)` sweeps real cells: the demo model's revisions step100 .. step300."""
    cli("-m", "model=demo", "model.step=range(100,400,100)", "task=demo_colors", "task.limit=3", results_dir=tmp_path)
    for step in (100, 200, 300):
        result = json.loads(
            (
                tmp_path / "llm-line--demo-tiny" / f"step{step}" / "demo_colors" / "0shot_limit3" / "result.json"
            ).read_text()
        )
        assert result["model"]["meta"]["tokens"] == step * 1024
        assert result["model"]["loaded_from"].endswith(f"step{step}")


@pytest.mark.slow
def test_grids_sweeper_runs_a_union_of_grids(cli, tmp_path):
    (tmp_path / "conf" / "experiment").mkdir(parents=True)
    (tmp_path / "conf" / "experiment" / "two_grids.yaml").write_text(
        "# @package _global_\n"
        "hydra:\n  sweeper:\n    grids:\n"
        "      - {model.step: '100,200'}\n"
        "      - {model.revision: main, task.limit: 2}\n"
        "    params:\n      task: demo_colors\n"
        "task:\n  limit: 3\n"
    )
    proc = cli(
        "-m",
        f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
        "+experiment=two_grids",
        results_dir=tmp_path / "results",
    )
    done = sorted(str(p.parent.relative_to(tmp_path / "results")) for p in (tmp_path / "results").rglob("result.json"))
    assert done == [
        "llm-line--demo-tiny/main/demo_colors/0shot_limit2",
        "llm-line--demo-tiny/step100/demo_colors/0shot_limit3",
        "llm-line--demo-tiny/step200/demo_colors/0shot_limit3",
    ], proc.stdout


def test_large_model_settings_reach_lm_eval(monkeypatch, demo_model):

    from llm_line.evaluation import harness

    seen = {}

    class FakeLM:
        @classmethod
        def create_from_arg_obj(cls, args, extra):
            seen.update(args, **extra)
            return cls()

    monkeypatch.setattr(harness, "get_model", lambda backend: FakeLM)
    monkeypatch.setattr(harness, "_model", None)
    cfg = load("model=gpt_neox_20b", f"model.pretrained={demo_model}", "model.max_memory_per_gpu=70GiB").model
    harness.load_model(cfg)
    assert seen["parallelize"] is True and seen["max_memory_per_gpu"] == "70GiB"
    assert "add_bos_token" not in seen
    cfg = load("model=lingua", f"model.path={demo_model}", "model.add_bos_token=true").model
    harness.load_model(cfg)
    assert seen["add_bos_token"] is True


def test_slurm_4gpu_profile_extends_the_slurm_profile():
    profile = OmegaConf.load(CONF / "hydra" / "launcher" / "slurm_4gpu.yaml")
    assert list(profile.defaults) == ["slurm"] and profile.gpus_per_node == 4 and profile.tasks_per_node == 1
    if not (CONF / "hydra" / "launcher" / "slurm.yaml").exists():
        pytest.skip("conf/hydra/launcher/slurm.yaml (the SLURM launcher profile) is not in this tree")
    cfg = load("model=gpt_neox_20b", "hydra/launcher=slurm_4gpu")
    assert cfg.hydra.launcher.gpus_per_node == 4
