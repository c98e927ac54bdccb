"""The Hydra configs: every option composes, typos are errors, run dirs are the cell's identity."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from llm_line.evaluation.config import cell_dir

CONF = Path(__file__).resolve().parents[1] / "conf"
# hf needs model.name and lingua model.path; tests/test_zoo.py composes every family with what it needs.
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml") if p.stem not in ("hf", "lingua"))
TASKS = sorted(p.stem for p in (CONF / "task").glob("*.yaml"))
PAPER_TASKS = [
    "piqa",
    "social_iqa",
    "commonsense_qa",
    "copa",
    "hellaswag",
    "arc_easy",
    "arc_challenge",
    "openbookqa",
    "mmlu",
    "winogrande",
]


def load(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


@pytest.mark.parametrize("model", MODELS)
def test_every_model_composes_with_typed_metadata(model):
    cfg = load(f"model={model}")
    assert isinstance(cfg.model.name, str) and cfg.model.name
    assert isinstance(cfg.model.pretrained, str) and cfg.model.pretrained
    meta = cfg.model.meta
    for key in ("family", "architecture", "pretraining_data", "tokenizer"):
        assert isinstance(meta[key], str) and meta[key], (model, key)
    assert meta.tokens_per_step is None or isinstance(meta.tokens_per_step, int)


def test_any_hub_model_by_name():
    cfg = load("model=hf", "model.name=EleutherAI/gpt-neo-125m")
    assert cfg.model.pretrained == "EleutherAI/gpt-neo-125m"
    assert cfg.hydra.run.dir == "results/EleutherAI--gpt-neo-125m/main/demo/0shot"


def test_paper_tasks_are_all_there_by_their_lm_eval_names():
    for task in PAPER_TASKS:
        assert load(f"task={task}").task.name == task


def test_pythia_size_and_revision_from_the_command_line():
    cfg = load("model=pythia", "model.size=410m", "model.revision=step3000", "task=commonsense_qa", "shots=5")
    assert cfg.model.name == "EleutherAI/pythia-410m"
    assert cfg.model.pretrained == "EleutherAI/pythia-410m"
    assert cfg.model.revision == "step3000"
    assert cfg.hydra.run.dir == "results/EleutherAI--pythia-410m/step3000/commonsense_qa/5shot"
    assert cfg.hydra.sweep.subdir == "EleutherAI--pythia-410m/step3000/commonsense_qa/5shot"


def test_misspelled_key_is_an_error_not_a_silent_default():
    with pytest.raises(ConfigCompositionException, match="revison"):
        load("model.revison=step1")


def test_unknown_option_lists_the_choices():
    with pytest.raises(Exception, match="pythia"):
        load("model=pythai")


def test_shots_must_be_an_integer():
    with pytest.raises(ConfigCompositionException):
        load("shots=five")


def test_cell_dir_is_a_pure_function_of_identity():
    assert cell_dir("EleutherAI/pythia-70m", "step1000", "mmlu", 5) == "EleutherAI--pythia-70m/step1000/mmlu/5shot"
    assert cell_dir("m", "main", "t", 0, 10) == "m/main/t/0shot_limit10"
    assert cell_dir("a b/c", "x", "t", 0) == "a_b--c_h539138d5/x/t/0shot"  # lossy: a hash of the original
    with pytest.raises(ValueError):
        cell_dir("..", "main", "t", 0)


def test_demo_model_lives_in_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_LINE_CACHE", str(tmp_path))
    cfg = load()
    assert OmegaConf.to_container(cfg.model, resolve=True)["pretrained"] == f"{tmp_path}/demo/tiny"
    assert cfg.model.demo_size == "tiny"


def test_auto_batch_size_is_only_probed_on_gpus():
    from llm_line.evaluation.harness import resolve_batch_size

    assert resolve_batch_size("16", "cpu") == 16
    assert resolve_batch_size("auto", "cpu") == 8
    assert resolve_batch_size("auto:4", "cuda") == "auto:4"
