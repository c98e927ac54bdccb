"""The shared-prefix scorer (`model.backend=hf-shared`) gives lm-eval's HFLM numbers on every request shape.

Tiny random models (two layers, the demo tokenizer's 512 tokens) in float32 on CPU; both backends score the
same `Instance`s through lm-eval's `loglikelihood`, so the tokenization is lm-eval's in both.
"""

from __future__ import annotations

import logging
import random

import pytest
import torch
import transformers
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM

from llm_line.evaluation import demo, scorer

WINDOW = 64  # the models' max_length: the long shapes exceed it

WORDS = sorted({w for text in demo.training_texts() for w in text.split()})


@pytest.fixture(scope="module")
def tokenizer():
    return demo._train_tokenizer(demo.training_texts())


CONFIGS = {
    "gpt_neox": lambda v: transformers.GPTNeoXConfig(
        vocab_size=v,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=WINDOW,
        rotary_pct=0.5,
    ),
    "llama": lambda v: transformers.LlamaConfig(
        vocab_size=v,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=WINDOW,
    ),
    "qwen2": lambda v: transformers.Qwen2Config(
        vocab_size=v,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=WINDOW,
    ),
    "gpt2": lambda v: transformers.GPT2Config(vocab_size=v, n_embd=32, n_layer=2, n_head=4, n_positions=WINDOW),
}


def model_pair(arch: str, tokenizer, batch_size: int = 4) -> tuple[HFLM, scorer.SharedPrefixLM]:
    """lm-eval's HFLM and the scorer over one random model (the same weights)."""
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(CONFIGS[arch](len(tokenizer))).eval()
    kwargs = {"tokenizer": tokenizer, "batch_size": batch_size, "device": "cpu", "max_length": WINDOW}
    return HFLM(pretrained=model, **kwargs), scorer.SharedPrefixLM(pretrained=model, **kwargs)


def text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def instances(pairs: list[tuple[str, str]]) -> list[Instance]:
    return [Instance("loglikelihood", {}, pair, idx) for idx, pair in enumerate(pairs)]


def hellaswag(rng: random.Random, docs: int = 6, shots: str = "") -> list[tuple[str, str]]:
    """A context and four multi-token endings per document (endings of different lengths)."""
    return [(shots + text(rng, 12), " " + text(rng, rng.randint(1, 6))) for _ in range(docs) for _ in range(4)]


def winogrande(rng: random.Random, docs: int = 6) -> list[tuple[str, str]]:
    """Two contexts per document that differ in their last words, one shared continuation."""
    out = []
    for _ in range(docs):
        start, rest = text(rng, 8), " " + text(rng, 4)
        out += [(f"{start} {text(rng, rng.randint(1, 2))}", rest) for _ in range(2)]
    return out


def mmlu(rng: random.Random, docs: int = 6, shots: str = "") -> list[tuple[str, str]]:
    """One-token letters after a question (a shared few-shot block when given)."""
    return [(f"{shots}{text(rng, 10)}\nAnswer:", f" {letter}") for _ in range(docs) for letter in "ABCD"]


def fewshot(rng: random.Random, n: int = 5) -> str:
    return "".join(f"{text(rng, 6)}\nAnswer: {text(rng, 1)}\n\n" for _ in range(n))


SHAPES = {
    "hellaswag": lambda rng: hellaswag(rng),
    "hellaswag_5shot": lambda rng: [pair for _ in range(4) for pair in hellaswag(rng, 1, fewshot(rng))],
    "winogrande": winogrande,
    "mmlu": lambda rng: mmlu(rng),
    "mmlu_5shot": lambda rng: mmlu(rng, 6, fewshot(rng)),
    "longer_than_window": lambda rng: hellaswag(rng, 3, text(rng, 80)) + mmlu(rng, 2, text(rng, 90)),
    "empty_context": lambda rng: [("", " " + text(rng, 3)) for _ in range(4)],
    "mixed": lambda rng: hellaswag(rng, 2) + winogrande(rng, 2) + mmlu(rng, 2, fewshot(rng, 2)),
}


def assert_same(reference: list[tuple[float, bool]], scored: list[tuple[float, bool]]) -> None:
    assert len(reference) == len(scored)
    worst = max(abs(a - b) for (a, _), (b, _) in zip(reference, scored, strict=True))
    assert worst <= 1e-4, worst
    assert [g for _, g in reference] == [g for _, g in scored]


@pytest.mark.parametrize("arch", ["gpt_neox", "llama"])
def test_equal_to_hflm_on_every_shape(arch, tokenizer):
    hf, shared = model_pair(arch, tokenizer)
    assert shared.scored_by == "hf-shared"
    for name, make in SHAPES.items():
        requests = instances(make(random.Random(name)))
        assert_same(hf.loglikelihood(requests), shared.loglikelihood(requests))


@pytest.mark.parametrize("arch", ["qwen2", "gpt2"])
def test_equal_to_hflm_on_other_served_architectures(arch, tokenizer):
    hf, shared = model_pair(arch, tokenizer)
    requests = instances(SHAPES["mixed"](random.Random(arch)) + SHAPES["longer_than_window"](random.Random(arch)))
    assert_same(hf.loglikelihood(requests), shared.loglikelihood(requests))


@pytest.mark.parametrize("batch_size", [1, 64])
def test_batch_size_changes_nothing(batch_size, tokenizer):
    """One row per batch (prefixes re-encoded for every row) and everything in one batch: the same numbers."""
    hf, shared = model_pair("gpt_neox", tokenizer, batch_size=batch_size)
    requests = instances(SHAPES["mixed"](random.Random(batch_size)))
    assert_same(hf.loglikelihood(requests), shared.loglikelihood(requests))


def test_shared_prefixes_are_found_generically():
    """Grouping sees only tokens: four endings of one context form one group encoding the context once, and
    documents after a common few-shot block share that block."""
    import numpy as np

    rows = [scorer.Row(np.array([1, 2, 3, 4, 9, e]), 3) for e in range(4)]  # context 1 2 3 4, endings 9 e
    other = [scorer.Row(np.array([7, 7, 8, 8, e]), 3) for e in range(4)]
    groups = scorer.group_rows(rows + other)
    assert sorted((g.prefix, len(g.rows)) for g in groups) == [(3, 4), (3, 4)]
    block = [scorer.Row(np.array([5] * 20 + [d, d + 1, 0]), 22) for d in range(10, 40, 3)]
    assert [(g.prefix, len(g.rows)) for g in scorer.group_rows(block)] == [(20, 10)]


def test_unservable_model_falls_back_to_hflm(tokenizer, caplog):
    """A Mamba model is scored by lm-eval's own path: a log line, and HFLM's numbers exactly."""
    torch.manual_seed(0)
    config = transformers.MambaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, state_size=4)
    model = transformers.AutoModelForCausalLM.from_config(config).eval()
    kwargs = {"tokenizer": tokenizer, "batch_size": 4, "device": "cpu", "max_length": WINDOW}
    with caplog.at_level(logging.WARNING, logger="llm_line.evaluation.scorer"):
        shared = scorer.SharedPrefixLM(pretrained=model, **kwargs)
    assert shared.scored_by == "hf"
    assert "cannot serve architecture 'mamba'" in caplog.text
    requests = instances(SHAPES["mixed"](random.Random(0)))
    assert shared.loglikelihood(requests) == HFLM(pretrained=model, **kwargs).loglikelihood(requests)


def test_demo_cells_score_the_same_and_record_their_backend(cli, tmp_path):
    """`python evaluate.py` on the demo tasks: hf-shared (the default) gives hf's metrics, and each result says
    which backend scored it."""
    import json

    from llm_line.evaluation import store

    metrics = {}
    for backend in ("hf", "hf-shared"):
        cli("task=demo", "shots=2", f"model.backend={backend}", results_dir=tmp_path / backend)
        (path,) = (tmp_path / backend).rglob(store.RESULT)
        result = json.loads(path.read_text())
        assert result["model"]["backend"] == backend
        metrics[backend] = result["metrics"]
    assert metrics["hf"].keys() == metrics["hf-shared"].keys()
    for task, hf in metrics["hf"].items():
        shared = metrics["hf-shared"][task]
        assert hf.keys() == shared.keys()
        for key in ("acc", "acc_norm", "n_docs"):
            assert shared[key] == hf[key], (task, key)
        for key in ("loss", "loss_paper", "bpb", "nll"):
            assert shared[key] == pytest.approx(hf[key], abs=1e-5), (task, key)


def test_batch_size_auto_is_probed_once_per_length_and_model_shape(tokenizer, monkeypatch):
    """Another checkpoint of the same shape reuses the probe (rows that fit do not depend on the weights);
    another length or another shape probes again."""
    probes = []

    def detect(lm, requests, index):
        probes.append(len(requests[index][1]) + len(requests[index][2]) - 1)
        return 3

    monkeypatch.setattr(scorer.compat, "detect_batch_size", detect)
    monkeypatch.setattr(scorer, "_probed", {})
    rng = random.Random(5)
    short, long = instances(hellaswag(rng, docs=2)), instances(hellaswag(rng, docs=2, shots=text(rng, 20)))

    def shared(arch: str, seed: int, **config) -> scorer.SharedPrefixLM:
        torch.manual_seed(seed)  # another checkpoint: other weights
        model = transformers.AutoModelForCausalLM.from_config(CONFIGS[arch](len(tokenizer)), **config).eval()
        return scorer.SharedPrefixLM(pretrained=model, tokenizer=tokenizer, batch_size="auto", device="cpu")

    first, second = shared("gpt_neox", 0), shared("gpt_neox", 1)
    reference = HFLM(pretrained=second.model, tokenizer=tokenizer, batch_size=3, device="cpu")
    first.loglikelihood(short)
    first.loglikelihood(long)
    assert len(probes) == 2 and probes[0] != probes[1]
    got, want = second.loglikelihood(short), reference.loglikelihood(short)  # the kept 3 rows: HFLM's numbers
    assert [g for _, g in got] == [w for _, w in want]
    assert [ll for ll, _ in got] == pytest.approx([ll for ll, _ in want], abs=1e-4)
    second.loglikelihood(long)
    assert len(probes) == 2  # the same shape: both lengths kept
    shared("gpt_neox", 0, torch_dtype=torch.float64).loglikelihood(short)
    shared("llama", 0).loglikelihood(short)
    assert len(probes) == 4  # another dtype, another architecture: probed again
