"""The cell's numbers: lm-eval's own accuracy, and the correct answer's loss checked by hand."""

import json
import math
import subprocess
import sys

import pytest
import torch
from conftest import ROOT
from omegaconf import OmegaConf
from transformers import AutoModelForCausalLM, AutoTokenizer

from llm_line.evaluation import harness, metrics
from llm_line.evaluation.config import ModelConfig, TaskConfig

SHOTS = 2
REVISION = "step100"  # part-trained: accuracies strictly between chance and 1


@pytest.fixture(scope="module")
def run(demo_model):
    model = OmegaConf.merge(
        OmegaConf.structured(ModelConfig),
        {
            "name": "demo",
            "pretrained": str(demo_model),
            "revision": REVISION,
            "dtype": "float32",
            "device": "cpu",
            "batch_size": "8",
        },
    )
    task = OmegaConf.merge(OmegaConf.structured(TaskConfig), {"name": "demo"})
    out = harness.evaluate(model, task, SHOTS, fewshot_seed=1234)
    out["metrics"] = metrics.cell_metrics(out["results"], out["tasks"], out["group_map"], out["model"])
    return out


@pytest.mark.slow
def test_accuracy_equals_lm_eval_cli(run, demo_model, tmp_path):
    """An independent `lm_eval` CLI run of the same model and task gives the same acc and acc_norm."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "lm_eval",
            "--model",
            "hf",
            "--model_args",
            f"pretrained={demo_model / REVISION},dtype=float32",
            "--tasks",
            "demo",
            "--include_path",
            str(ROOT / "llm_line" / "tasks"),
            "--num_fewshot",
            str(SHOTS),
            "--device",
            "cpu",
            "--batch_size",
            "8",
            "--output_path",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    (path,) = tmp_path.rglob("results_*.json")
    cli = json.loads(path.read_text())["results"]
    for name in ("demo", "demo_sounds", "demo_colors"):
        for metric in ("acc", "acc_norm", "acc_stderr"):
            assert run["metrics"][name][metric] == pytest.approx(cli[name][f"{metric},none"], abs=1e-12)
    assert 0.25 < run["metrics"]["demo"]["acc"] < 1.0


def test_gold_index_reproduces_lm_eval_accuracy(run):
    """Our gold choice is lm-eval's: argmax of its log-likelihoods hits it exactly as often as `acc` says."""
    for name, task in run["tasks"].items():
        samples = run["results"]["samples"][name]
        hits = [
            max(range(len(s["filtered_resps"])), key=lambda i: s["filtered_resps"][i][0])
            == metrics.gold_index(task, s["doc"])
            for s in samples
        ]
        assert sum(hits) / len(hits) == pytest.approx(run["metrics"][name]["acc"])


def test_answer_loss_matches_a_forward_pass_by_hand(run, demo_model):
    """Loss of the correct answer = summed -log p(answer tokens | context) from the model's own logits."""
    task = run["tasks"]["demo_sounds"]
    sample = run["results"]["samples"]["demo_sounds"][0]
    gold = metrics.gold_index(task, sample["doc"])
    context, answer = sample["arguments"][gold][:2]
    tok = AutoTokenizer.from_pretrained(demo_model / REVISION)
    model = AutoModelForCausalLM.from_pretrained(demo_model / REVISION, dtype=torch.float32).eval()
    ctx_ids = tok(context)["input_ids"]
    ids = tok(context + answer)["input_ids"]
    n_answer = len(ids) - len(ctx_ids)
    with torch.no_grad():
        logprobs = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), dim=-1)
    nll = -sum(logprobs[i - 1, ids[i]].item() for i in range(len(ids) - n_answer, len(ids)))
    n_bytes = len(answer.encode("utf-8"))

    (mine,) = metrics.answer_losses(task, [sample], run["model"])
    assert answer.startswith(" ") and n_bytes == len(answer)
    assert mine.tokens == n_answer and mine.bytes == n_bytes
    assert mine.nll == pytest.approx(nll, rel=1e-4)
    bpb = nll / (math.log(2) * n_bytes)
    assert mine.nll / (math.log(2) * mine.bytes) == pytest.approx(bpb, rel=1e-4)


def test_group_losses_are_sample_weighted_means_of_their_tasks(run):
    m = run["metrics"]
    n_s, n_c = m["demo_sounds"]["n_docs"], m["demo_colors"]["n_docs"]
    assert m["demo"]["n_docs"] == n_s + n_c == 64
    for key in ("loss", "bpb", "nll"):
        expected = (m["demo_sounds"][key] * n_s + m["demo_colors"][key] * n_c) / (n_s + n_c)
        assert m["demo"][key] == pytest.approx(expected, rel=1e-12)
    assert m["demo"]["bpb"] == pytest.approx(m["demo"]["nll_per_byte"] / math.log(2))


def test_summarize_by_hand():
    losses = [
        metrics.AnswerLoss(nll=2.0, tokens=2, bytes=4, paper_tokens=2),
        metrics.AnswerLoss(nll=3.0, tokens=1, bytes=3, paper_tokens=1),
    ]
    s = metrics.summarize(losses)
    assert s["loss"] == pytest.approx((1.0 + 3.0) / 2)
    assert s["nll"] == pytest.approx(2.5)
    assert s["nll_per_byte"] == pytest.approx((0.5 + 1.0) / 2)
    assert s["bpb"] == pytest.approx((0.5 + 1.0) / 2 / math.log(2))
    assert s["loss_stderr"] == pytest.approx(math.sqrt(2.0) / math.sqrt(2))  # std(1, 3, ddof=1) / sqrt(2)


def test_non_embedding_parameters_exclude_the_untied_output_head(run):
    model = run["model"].lm.model
    vocab, hidden = model.get_input_embeddings().weight.shape
    assert not model.config.tie_word_embeddings
    assert harness.non_embedding_parameters(model) == model.num_parameters() - 2 * vocab * hidden
    assert run["model"].info()["num_parameters_non_embedding"] == model.num_parameters() - 2 * vocab * hidden
