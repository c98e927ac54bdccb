"""Precision as trained: `model.dtype=auto` is the checkpoint's own dtype on a GPU and float32 on CPU, the
log-softmax is float32 whatever the weights' dtype, and the result records the resolved dtype beside the
requested one, for lm-eval tasks and corpus cells alike."""

import json
import math

import pytest
import torch
from omegaconf import OmegaConf

from llm_line.evaluation import corpus_scoring, harness, store
from llm_line.evaluation.config import PACKAGE_DIR, ModelConfig

DTYPES = ("float16", "bfloat16", "float32")


@pytest.fixture(scope="module")
def checkpoints(demo_model, tmp_path_factory):
    """The demo model saved in float16, bfloat16 and float32, each with its tokenizer: {dtype: folder}."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = tmp_path_factory.mktemp("precisions")
    tokenizer = AutoTokenizer.from_pretrained(demo_model)
    folders = {}
    for dtype in DTYPES:
        folder = root / dtype
        AutoModelForCausalLM.from_pretrained(demo_model, dtype=getattr(torch, dtype)).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        folders[dtype] = folder
    return folders


def edit_config(folder, **fields):
    """Rewrite config.json's dtype keys: `dtype=None` removes one, as older checkpoints lack it."""
    path = folder / "config.json"
    config = json.loads(path.read_text())
    for key, value in fields.items():
        config.pop(key, None) if value is None else config.__setitem__(key, value)
    path.write_text(json.dumps(config))


def test_auto_is_the_checkpoints_dtype_on_a_gpu_and_float32_on_cpu(checkpoints, tmp_path, monkeypatch):
    for dtype, folder in checkpoints.items():
        assert json.loads((folder / "config.json").read_text())["dtype"] == dtype  # transformers 5 writes `dtype`
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
        assert harness.resolve_dtype("auto", "cuda", str(folder), None) == dtype
        assert harness.resolve_dtype("auto", "cuda:1", str(folder), None) == dtype
        assert harness.resolve_dtype("auto", "cpu", str(folder), None) == "float32"
        assert harness.resolve_dtype("bfloat16", "cpu", str(folder), None) == "bfloat16"  # asked for: kept
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)  # a V100: no bfloat16
        assert harness.resolve_dtype("auto", "cuda", str(folder), None) == ("float32" if dtype == "bfloat16" else dtype)

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    old = tmp_path / "old"  # a checkpoint saved before transformers 5: `torch_dtype`
    old.mkdir()
    (old / "config.json").write_text((checkpoints["float16"] / "config.json").read_text())
    edit_config(old, dtype=None, torch_dtype="float16")
    assert harness.resolve_dtype("auto", "cuda", str(old), None) == "float16"
    edit_config(old, torch_dtype=None)  # none named: float32, transformers' own default
    assert harness.resolve_dtype("auto", "cuda", str(old), None) == "float32"
    edit_config(old, torch_dtype="float64")  # not one lm-eval runs in
    assert harness.resolve_dtype("auto", "cuda", str(old), None) == "float32"


def model_config(folder, dtype):
    return OmegaConf.structured(
        ModelConfig(name=folder.name, pretrained=str(folder), revision="main", dtype=dtype, batch_size="4")
    )


def test_the_log_softmax_is_float32_for_half_precision_weights(checkpoints):
    loaded = harness.load_model(model_config(checkpoints["bfloat16"], "bfloat16"))
    assert loaded.lm.model.dtype == torch.bfloat16 and loaded.lm.softmax_dtype == torch.float32
    info = loaded.info()
    assert (info["dtype"], info["dtype_requested"], info["softmax_dtype"]) == ("bfloat16", "bfloat16", "float32")

    model, tokenizer = loaded.lm.model, loaded.lm.tokenizer
    ids = tokenizer("The quick brown fox jumps over the lazy dog. " * 4, return_tensors="pt")["input_ids"]
    base, head = corpus_scoring.split_model(model)
    with torch.inference_mode():
        nll = corpus_scoring.window_nll(base, head, ids[:, :-1], ids[:, 1:]).item()
        logits = model(input_ids=ids[:, :-1]).logits[0]
    targets = ids[0, 1:]
    exact = -logits.double().log_softmax(-1)[torch.arange(len(targets)), targets].sum().item()
    in_bf16 = -logits.log_softmax(-1)[torch.arange(len(targets)), targets].double().sum().item()
    assert abs(nll - exact) < 1e-3 * len(targets)  # the bf16 logits, normalised in float32
    assert abs(in_bf16 - exact) > 10 * abs(nll - exact)  # what a bf16 log-softmax would have lost


def reference_corpus_loss(folder, documents: int) -> float:
    """The packed loss of the demo corpus's first documents (EOS-separated, windows of 256), the checkpoint in
    float32, by hand."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    lines = (PACKAGE_DIR / "corpora" / "demo.jsonl").read_text(encoding="utf-8").splitlines()
    stream = [tokenizer.eos_token_id]
    for text in [json.loads(line)["text"] for line in lines if line.strip()][:documents]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        stream += ids + [tokenizer.eos_token_id] if ids else []
    nll, count = 0.0, 0
    for start in range(0, len(stream) - 1, 256):
        window = torch.tensor(stream[start : start + 257])
        with torch.no_grad():
            logprobs = model(input_ids=window[None, :-1]).logits[0].double().log_softmax(-1)
        nll -= logprobs[torch.arange(len(window) - 1), window[1:]].sum().item()
        count += len(window) - 1
    return nll / count


@pytest.mark.slow
def test_auto_on_cpu_records_float32_for_every_checkpoint_and_task_kind(checkpoints, cli, tmp_path):
    """One local sweep: three checkpoints (float16, bfloat16, float32) x an lm-eval task and a corpus."""
    root = checkpoints["float32"].parent
    cli(
        "-m",
        "model=hf",
        "model.name=" + ",".join(DTYPES),
        f"model.pretrained={root}/${{model.name}}",
        "model.batch_size=4",
        "task=demo_sounds,val_demo",
        "task.limit=8",
        results_dir=tmp_path,
    )
    losses = {}
    for dtype in DTYPES:
        for task in ("demo_sounds", "val_demo"):
            result = store.read_result(tmp_path / dtype / "main" / task / "0shot_limit8" / store.RESULT)
            model = result["model"]
            assert (model["dtype"], model["dtype_requested"], model["softmax_dtype"]) == ("float32", "auto", "float32")
        losses[dtype] = result["metrics"]["val_demo"]["loss"]
    assert losses["bfloat16"] != losses["float32"]  # the same weights, rounded differently when saved
    assert all(math.isclose(losses[d], losses["float32"], rel_tol=0.05) for d in DTYPES)
    # each in float32 exactly: the corpus cell's loss is the hand-computed float32 loss of its checkpoint
    assert abs(losses["float16"] - reference_corpus_loss(checkpoints["float16"], 8)) < 1e-5
