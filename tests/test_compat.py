"""The private library behaviours llm-line relies on (llm_line/evaluation/compat.py): an upgrade that changes one fails
here."""

import pytest
from conftest import ROOT
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobStatus
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from llm_line.evaluation import compat


def test_encode_pair_moves_a_contexts_trailing_space_into_the_continuation(demo_model):
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=str(demo_model), device="cpu", batch_size=1)
    context, continuation = compat.encode_pair(lm, "The sky is ", "blue")
    assert context == lm.tok_encode("The sky is") and continuation == lm.tok_encode(" blue")
    assert compat.encode_pair(lm, "The sky is", " blue") == (context, continuation)


def test_apply_overrides_validates_like_a_compose():
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config")
    parser = OverridesParser.create()
    compat.apply_overrides(parser.parse_overrides(["model.size=small", "shots=2"]), cfg)
    assert cfg.model.size == "small" and cfg.shots == 2
    with pytest.raises(ConfigCompositionException, match="revison"):
        compat.apply_overrides(parser.parse_overrides(["model.revison=x"]), cfg)


def test_cached_interpolation_parsing_resolves_the_same_and_restores_the_parser():
    import omegaconf.base

    original = omegaconf.base.parse
    cfg = OmegaConf.create({"a": 2, "b": "${a}", "c": "x${b}"})
    with compat.cached_interpolation_parsing():
        assert omegaconf.base.parse is not original
        assert (cfg.b, cfg.c, cfg.c) == (2, "x2", "x2")
    assert omegaconf.base.parse is original


def test_a_failed_job_keeps_its_error():
    error = RuntimeError("boom")
    ret = compat.failed_job(error, ["task=piqa"])
    assert ret.status == JobStatus.FAILED and compat.job_error(ret) is error and ret.overrides == ["task=piqa"]
    with pytest.raises(RuntimeError, match="boom"):
        ret.return_value  # noqa: B018  (the public accessor re-raises: why job_error exists)


def test_is_config_group_tells_groups_from_values():
    from hydra.core.global_hydra import GlobalHydra

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        assert compat.is_config_group(loader, "model") and compat.is_config_group(loader, "hydra/launcher")
        assert not compat.is_config_group(loader, "model.size") and not compat.is_config_group(loader, "shots")


def test_checked_changes_are_set_in_place_and_undone_interpolations_included():
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["model=pythia"])
    before = OmegaConf.to_yaml(cfg)
    parser = OverridesParser.create()
    changes = parser.parse_overrides(["model.size=410m", "model.revision=step7", "shots=5"])
    nodes = [compat.value_node(cfg, o.key_or_group) for o in changes]
    checked = [(node, compat.checked_change(o, cfg, node)) for o, node in zip(changes, nodes, strict=True)]
    assert [raw for _, raw in checked] == ["410m", "step7", 5] and OmegaConf.to_yaml(cfg) == before
    with compat.values_set(checked):
        assert (cfg.model.size, cfg.model.revision, cfg.shots) == ("410m", "step7", 5)
    assert OmegaConf.to_yaml(cfg) == before  # `revision` is its interpolation again
    with pytest.raises(ConfigCompositionException, match="shots=many"):
        compat.checked_change(parser.parse_override("shots=many"), cfg, compat.value_node(cfg, "shots"))
    assert OmegaConf.to_yaml(cfg) == before  # a failing override leaves nothing behind
    for line in ("+model.extra=1", "~model.tokenizer", "model.sizes={}", "model.name=${task.name}", "model.revison=x"):
        override = parser.parse_override(line)
        node = compat.value_node(cfg, override.key_or_group)
        assert compat.checked_change(override, cfg, node) is compat.NOT_A_VALUE  # never in place
    assert OmegaConf.to_yaml(cfg) == before


def test_references_of_an_interpolation_are_read_from_omegaconfs_grammar():
    assert compat.references("${size_meta:${..sizes},${..size},parameters}") == [(2, ("size",)), (2, ("sizes",))]
    assert compat.references("org/${model.name}-${[task].limit}") == [(0, ("task", "limit")), (0, ("model", "name"))]
    assert compat.references("no interpolation, \\${escaped}") == []
    for unknown in ("${.${key}}", "${oc.select:model.name,x}", "${unclosed"):
        assert compat.references(unknown) is None


def test_env_info_is_computed_once_per_working_directory_and_restored(monkeypatch, tmp_path):
    import inspect

    import lm_eval.evaluator

    assert "add_env_info(results)" in inspect.getsource(lm_eval.evaluator.simple_evaluate)  # looked up there
    calls = []

    def fake(storage):
        calls.append(1)
        storage.update({"pretty_env_info": "machine", "upper_git_hash": str(len(calls))})

    monkeypatch.setattr(lm_eval.evaluator, "add_env_info", fake)
    monkeypatch.setattr(compat, "_env_info", {})
    with compat.env_info_kept():
        first, second = {}, {}
        lm_eval.evaluator.add_env_info(first)
        lm_eval.evaluator.add_env_info(second)
        assert first == second == {"pretty_env_info": "machine", "upper_git_hash": "1"} and len(calls) == 1
        monkeypatch.chdir(tmp_path)  # the upper git hash depends on the working directory
        third = {}
        lm_eval.evaluator.add_env_info(third)
        assert third["upper_git_hash"] == "2"
    assert lm_eval.evaluator.add_env_info is fake
