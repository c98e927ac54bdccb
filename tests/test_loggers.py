"""Loggers: metrics.csv beside every result; W&B runs (a stand-in wandb module records the calls)."""

import csv
import sys
import types
from types import SimpleNamespace

import pytest

from llm_line.errors import CellError
from llm_line.evaluation import loggers

RESULT = {
    "cell": {"model": "m", "revision": "step100", "task": "mmlu", "shots": 5, "limit": None},
    "metrics": {"mmlu": {"acc": 0.25, "loss": 1.5, "n_docs": 40}, "mmlu_stem": {"acc": 0.5, "n_docs": 10}},
    "config": {"model": {"name": "m"}},
}


def test_csv_holds_every_metric_with_the_cell_identity(tmp_path):
    loggers.log_result(None, tmp_path, RESULT)
    rows = list(csv.DictReader((tmp_path / loggers.METRICS_CSV).open()))
    assert [(r["task_or_group"], r["metric"], float(r["value"])) for r in rows] == [
        ("mmlu", "acc", 0.25),
        ("mmlu", "loss", 1.5),
        ("mmlu", "n_docs", 40.0),
        ("mmlu_stem", "acc", 0.5),
        ("mmlu_stem", "n_docs", 10.0),
    ]
    assert {(r["model"], r["revision"], r["shots"]) for r in rows} == {("m", "step100", "5")}


class FakeRun:
    def __init__(self, calls, fail):
        self.calls, self.fail = calls, fail

    def log(self, values):
        if self.fail:
            raise ConnectionError("api.wandb.ai unreachable")
        self.calls.append(("log", values))

    def finish(self):
        self.calls.append(("finish",))


@pytest.fixture
def fake_wandb(monkeypatch):
    calls = []
    module = types.ModuleType("wandb")
    module.fail = False
    module.init = lambda **kwargs: calls.append(("init", kwargs)) or FakeRun(calls, module.fail)
    monkeypatch.setitem(sys.modules, "wandb", module)
    return module, calls


SETTINGS = SimpleNamespace(wandb=SimpleNamespace(project="p", entity=None, mode="offline", tags=["paper"]))


def test_wandb_gets_one_run_per_cell_with_its_metrics(tmp_path, fake_wandb):
    _, calls = fake_wandb
    loggers.log_result(SETTINGS, tmp_path, RESULT)
    (_, init), (_, logged), finish = calls
    assert init["project"] == "p" and init["group"] == "m" and init["config"] == RESULT["config"]
    assert init["mode"] == "offline" and init["tags"] == ["paper"]
    assert logged == {
        "mmlu/acc": 0.25,
        "mmlu/loss": 1.5,
        "mmlu/n_docs": 40,
        "mmlu_stem/acc": 0.5,
        "mmlu_stem/n_docs": 10,
    }
    assert finish == ("finish",)
    assert (tmp_path / loggers.METRICS_CSV).exists()


def test_a_failing_dashboard_never_fails_the_cell(tmp_path, fake_wandb, caplog):
    module, calls = fake_wandb
    module.fail = True
    loggers.log_result(SETTINGS, tmp_path, RESULT)  # no exception
    assert calls[-1] == ("finish",) and "W&B logging" in caplog.text
    assert (tmp_path / loggers.METRICS_CSV).exists()


def test_wandb_asked_for_but_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(CellError, match="pip install wandb"):
        loggers.check_wandb(SETTINGS.wandb)
    loggers.check_wandb(None)  # not asked for: nothing to check
