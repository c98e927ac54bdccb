"""Validation loss on a corpus: the packed loss against a plain reference, bits per byte, edge cases, sources,
the tokenization cache, and the cell end to end (result, resume, settings that must not be mixed)."""

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from llm_line.errors import CellError
from llm_line.evaluation import corpus_scoring, corpus_tokens, corpus_windows, store
from llm_line.evaluation.config import PACKAGE_DIR, CorpusConfig

DEMO_CORPUS = PACKAGE_DIR / "corpora" / "demo.jsonl"


@pytest.fixture(scope="module")
def lm(demo_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(demo_model, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(demo_model)


def demo_texts() -> list[str]:
    """The demo corpus read plainly: one JSON record per non-blank line."""
    return [json.loads(line)["text"] for line in DEMO_CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]


def documents(tokenizer, texts=None, **selection) -> corpus_tokens.Documents:
    return corpus_tokens.tokenize(
        iter(texts if texts is not None else demo_texts()),
        tokenizer,
        selection.get("max_documents"),
        selection.get("max_tokens"),
    )


def reference_loss(model, stream: list[int], context: int) -> tuple[float, int, int]:
    """One forward per window of `context` inputs over the whole model, cross-entropy by hand in float64."""
    nll, count, windows = 0.0, 0, 0
    for start in range(0, len(stream) - 1, context):
        window = stream[start : start + context + 1]
        inputs, targets = torch.tensor(window[:-1])[None], torch.tensor(window[1:])
        with torch.no_grad():
            logprobs = torch.log_softmax(model(input_ids=inputs).logits[0].double(), dim=-1)
        nll -= logprobs[torch.arange(len(targets)), targets].sum().item()
        count, windows = count + len(targets), windows + 1
    return nll / count, count, windows


def plain_stream(tokenizer, texts: list[str], separator: int) -> list[int]:
    """S d1 S d2 ... dn S, written out naively; documents without tokens left out."""
    stream = [separator]
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if ids:
            stream += ids + [separator]
    return stream


# --- the loss --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("context", [48, 256])
def test_packed_loss_equals_a_plain_reference(lm, context):
    model, tokenizer = lm
    texts = demo_texts()
    docs = documents(tokenizer)
    stream = corpus_windows.pack(docs, tokenizer.eos_token_id)
    assert stream.tolist() == plain_stream(tokenizer, texts, tokenizer.eos_token_id)
    out = corpus_scoring.packed_loss(model, stream, context, batch_size=8, device="cpu")
    loss, count, windows = reference_loss(model, stream.tolist(), context)
    assert out["tokens"] == count == len(stream) - 1 == int(docs.lengths.sum()) + docs.count
    assert out["windows"] == windows == math.ceil(count / context)
    assert abs(out["nll"] / out["tokens"] - loss) < 1e-5
    assert 1.0 < loss < 10.0


def test_edge_cases_are_in_the_demo_corpus(lm):
    _, tokenizer = lm
    texts = demo_texts()
    docs = documents(tokenizer)
    lines = DEMO_CORPUS.read_text(encoding="utf-8").splitlines()
    assert any(not line.strip() for line in lines)  # blank lines: not documents
    assert docs.empty == texts.count("") == 1  # an empty document: skipped, counted
    assert docs.count == len(texts) - 1
    assert docs.lengths.max() > 10 * 48 and docs.lengths.min() < 48  # longer than many windows; shorter than one
    assert sum(docs.nbytes) == sum(len(t.encode("utf-8")) for t in texts) > sum(len(t) for t in texts)  # non-ASCII
    offsets = np.concatenate([[0], np.cumsum(docs.lengths)])
    non_empty = [t for t in texts if t]
    for i, text in enumerate(non_empty):  # every document's tokens decode back to its text, non-ASCII included
        assert tokenizer.decode(docs.tokens[offsets[i] : offsets[i + 1]].tolist()) == text


def test_bits_per_byte_is_total_nll_over_ln2_bytes(lm, tmp_path):
    model, tokenizer = lm
    result = run_corpus_cell(lm, tmp_path)
    m = result["metrics"]["val_demo"]
    texts = [t for t in demo_texts() if t]
    assert m["bytes"] == sum(len(t.encode("utf-8")) for t in texts)
    assert m["bpb"] == pytest.approx(m["nll"] / (math.log(2) * m["bytes"]), rel=1e-12)
    assert m["loss"] == pytest.approx(m["nll"] / m["tokens"], rel=1e-12)
    assert m["documents"] == len(texts) and m["empty_documents"] == 1
    reference, _, _ = reference_loss(model, plain_stream(tokenizer, texts, tokenizer.eos_token_id), 256)
    assert abs(m["loss"] - reference) < 1e-5


def test_batch_size_1_and_16_give_the_same_numbers(lm):
    model, tokenizer = lm
    stream = corpus_windows.pack(documents(tokenizer), tokenizer.eos_token_id)
    one = corpus_scoring.packed_loss(model, stream, 64, batch_size=1, device="cpu")
    sixteen = corpus_scoring.packed_loss(model, stream, 64, batch_size=16, device="cpu")
    assert one["tokens"] == sixteen["tokens"] and one["windows"] == sixteen["windows"]
    assert abs(one["nll"] - sixteen["nll"]) / one["tokens"] < 1e-6


def test_loss_chunks_do_not_change_the_loss(lm, monkeypatch):
    model, tokenizer = lm
    stream = corpus_windows.pack(documents(tokenizer), tokenizer.eos_token_id)
    whole = corpus_scoring.packed_loss(model, stream, 128, batch_size=4, device="cpu")
    monkeypatch.setattr(corpus_scoring, "LOGITS_BYTES", 4 * 512 * 7)  # 7 tokens of logits at a time
    chunked = corpus_scoring.packed_loss(model, stream, 128, batch_size=4, device="cpu")
    assert abs(whole["nll"] - chunked["nll"]) / whole["tokens"] < 1e-6


@pytest.mark.parametrize("text", ["ab", "The glozoo is known for pink. Ünïcödé 🦉"])
def test_a_corpus_shorter_than_one_window(lm, text):
    model, tokenizer = lm
    stream = corpus_windows.pack(documents(tokenizer, [text, ""]), tokenizer.eos_token_id)
    out = corpus_scoring.packed_loss(model, stream, 256, batch_size=16, device="cpu")
    loss, count, _ = reference_loss(model, stream.tolist(), 256)
    assert out["windows"] == 1 and out["tokens"] == count == len(tokenizer(text)["input_ids"]) + 1
    assert abs(out["nll"] / count - loss) < 1e-5


def test_a_stream_that_fills_its_windows_exactly(lm):
    model, tokenizer = lm
    stream = corpus_windows.pack(documents(tokenizer), tokenizer.eos_token_id)[: 3 * 32 + 1]
    out = corpus_scoring.packed_loss(model, stream, 32, batch_size=2, device="cpu")
    loss, count, windows = reference_loss(model, stream.tolist(), 32)
    assert out["windows"] == windows == 3 and out["tokens"] == count == 96
    assert abs(out["nll"] / count - loss) < 1e-5


def test_a_model_that_post_processes_its_logits_is_refused(lm, monkeypatch):
    from types import SimpleNamespace

    model, tokenizer = lm
    stream = corpus_windows.pack(documents(tokenizer, ["The glozoo is known for pink."]), tokenizer.eos_token_id)
    corpus_scoring.check_head(model, stream, "cpu")
    forward = model.forward
    monkeypatch.setattr(
        model, "forward", lambda **kw: SimpleNamespace(logits=30 * torch.tanh(forward(**kw).logits / 30))
    )
    with pytest.raises(CellError, match="post-processes logits"):
        corpus_scoring.check_head(model, stream, "cpu")


def test_no_text_at_all_is_an_error(lm):
    with pytest.raises(CellError, match="no text"):
        documents(lm[1], ["", ""])


# --- selection and sources -------------------------------------------------------------------------------------


def test_selection_by_documents_and_tokens(lm):
    tokenizer = lm[1]
    all_docs = documents(tokenizer)
    first = documents(tokenizer, max_documents=10)
    assert first.count == 9 and first.empty == 1  # ten records read, one of them empty
    assert np.array_equal(first.tokens, all_docs.tokens[: first.lengths.sum()])
    budget = int(all_docs.lengths[:5].sum()) - 1  # reached within the fifth document: it is taken whole
    capped = documents(tokenizer, max_tokens=budget)
    assert capped.count == 5 and capped.lengths.sum() == budget + 1


def test_shuffle_is_seeded_and_limit_caps_documents(tmp_path):
    base = CorpusConfig(path=str(DEMO_CORPUS))
    plain = list(corpus_tokens.read_texts(base))
    a = list(corpus_tokens.read_texts(CorpusConfig(path=str(DEMO_CORPUS), shuffle_seed=1)))
    b = list(corpus_tokens.read_texts(CorpusConfig(path=str(DEMO_CORPUS), shuffle_seed=1)))
    c = list(corpus_tokens.read_texts(CorpusConfig(path=str(DEMO_CORPUS), shuffle_seed=2)))
    assert a == b != c and a != plain and sorted(a) == sorted(plain) == sorted(c)
    assert corpus_tokens.selection(CorpusConfig(path="x", max_documents=50), 7)["max_documents"] == 7
    assert corpus_tokens.selection(CorpusConfig(path="x"), 7)["max_documents"] == 7
    assert corpus_tokens.selection(CorpusConfig(path="x", max_documents=5), None)["max_documents"] == 5


def test_local_formats_and_globs_read_the_same_documents(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    import zstandard

    texts = demo_texts()
    raw = DEMO_CORPUS.read_bytes()
    (tmp_path / "a.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(raw))
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(raw))
    pq.write_table(pa.table({"text": texts, "id": list(range(len(texts)))}), tmp_path / "c.parquet")
    for name in ("a.jsonl.zst", "b.jsonl.gz", "c.parquet"):
        assert list(corpus_tokens.read_texts(CorpusConfig(path=str(tmp_path / name)))) == texts, name
    assert list(corpus_tokens.read_texts(CorpusConfig(path=str(tmp_path / "*")))) == texts * 3  # sorted file order


@pytest.mark.parametrize(
    "config, message",
    [
        (CorpusConfig(), "exactly one of task.corpus.path"),
        (CorpusConfig(path="/nonexistent/*.jsonl"), "no corpus file"),
        (CorpusConfig(path=str(DEMO_CORPUS), text_field="content"), "has no field 'content'"),
        (CorpusConfig(dataset="allenai/c4", dataset_config="en"), "could not load dataset allenai/c4"),
    ],
)
def test_bad_sources_say_what_to_do(config, message):
    with pytest.raises(CellError, match=message):
        list(corpus_tokens.read_texts(config))


def test_separator(lm):
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    tokenizer = lm[1]
    assert corpus_windows.resolve_separator("auto", tokenizer) == ("eos", tokenizer.eos_token_id)
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())  # a Llama-style one: BOS before text
    backend.add_special_tokens(["<s>"])
    bos = backend.token_to_id("<s>")
    backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos)])
    llama_like = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="<|endoftext|>")
    assert corpus_windows.resolve_separator("auto", llama_like) == ("bos", bos)
    assert corpus_windows.resolve_separator("eos", llama_like) == ("eos", tokenizer.eos_token_id)
    with pytest.raises(CellError, match="eos, bos or auto"):
        corpus_windows.resolve_separator("newline", tokenizer)
    assert corpus_tokens.tokenizer_fingerprint(llama_like) != corpus_tokens.tokenizer_fingerprint(tokenizer)


# --- the tokenization cache ------------------------------------------------------------------------------------


def test_tokenization_is_cached_per_tokenizer_content(lm, tmp_path, demo_model, cache_dir):
    from transformers import AutoTokenizer

    tokenizer = lm[1]
    config = CorpusConfig(path=str(DEMO_CORPUS))
    docs, info = corpus_tokens.cached_documents(config, None, tokenizer, tmp_path)
    assert not info["hit"] and Path(info["file"]).parent == tmp_path / "corpus"
    assert not list((tmp_path / "corpus").glob(".*.tmp"))  # written atomically
    again, info2 = corpus_tokens.cached_documents(
        config, None, AutoTokenizer.from_pretrained(demo_model / "step100"), tmp_path
    )  # another checkpoint, same tokenizer: read, not tokenized
    assert info2["hit"] and info2["file"] == info["file"]
    assert np.array_equal(docs.tokens, again.tokens) and np.array_equal(docs.nbytes, again.nbytes)
    _, other = corpus_tokens.cached_documents(
        CorpusConfig(path=str(DEMO_CORPUS), max_documents=5), None, tokenizer, tmp_path
    )
    assert not other["hit"] and other["file"] != info["file"]  # another selection, another entry
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(DEMO_CORPUS.read_bytes())
    _, first = corpus_tokens.cached_documents(CorpusConfig(path=str(copy)), None, tokenizer, tmp_path)
    copy.write_text(copy.read_text(encoding="utf-8") + '{"text": "one more"}\n', encoding="utf-8")
    _, changed = corpus_tokens.cached_documents(CorpusConfig(path=str(copy)), None, tokenizer, tmp_path)
    assert not changed["hit"] and changed["file"] != first["file"]  # the file changed: tokenized again


def test_a_broken_cache_file_is_replaced(lm, tmp_path):
    config = CorpusConfig(path=str(DEMO_CORPUS), max_documents=3)
    docs, info = corpus_tokens.cached_documents(config, None, lm[1], tmp_path)
    Path(info["file"]).write_bytes(b"not a numpy file")
    again, info2 = corpus_tokens.cached_documents(config, None, lm[1], tmp_path)
    assert not info2["hit"] and np.array_equal(docs.tokens, again.tokens)


# --- the cell ----------------------------------------------------------------------------------------------------


def run_corpus_cell(lm, tmp_path, **corpus_overrides):
    """A corpus cell in-process, on the demo model and corpus."""
    from hydra import compose, initialize_config_dir

    from llm_line.evaluation.cell import run_cell

    overrides = [f"task.corpus.{k}={v}" for k, v in corpus_overrides.items()]
    with initialize_config_dir(config_dir=str(PACKAGE_DIR.parent / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["task=val_demo", f"results_dir={tmp_path}", *overrides])
    return run_cell(cfg, tmp_path / "run")


def test_corpus_configs_name_the_papers_corpora():
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from test_config import load

    # spelled as the paper's released table spells its columns ("RefineWeb Validation Loss", "Slimpajama ...")
    expected = {
        "val_c4": "C4",
        "val_fineweb_edu": "FineWeb-Edu",
        "val_pile_uc": "The Pile UC",
        "val_refinedweb": "RefineWeb",
        "val_slimpajama": "Slimpajama",
    }
    for task, display in expected.items():
        cfg = load(f"task={task}", "model=pythia")
        c = cfg.task.corpus
        assert cfg.task.display == display and c.dataset and c.streaming and c.max_documents and c.path is None
        assert cfg.hydra.run.dir == f"results/EleutherAI--pythia-160m/main/{task}/0shot"
    assert Path(load("task=val_demo").task.corpus.path) == DEMO_CORPUS
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="max_tokns"):
        load("task=val_c4", "task.corpus.max_tokns=5")


@pytest.mark.slow
def test_evaluate_val_demo_end_to_end_and_resume(cli, tmp_path):
    proc = cli("task=val_demo", results_dir=tmp_path)
    path = tmp_path / "llm-line--demo-tiny" / "main" / "val_demo" / "0shot" / store.RESULT
    result = store.read_result(path)
    assert result["status"] == "ok" and result["n_docs"] == result["metrics"]["val_demo"]["documents"]
    assert result["cell"] == {
        "model": "llm-line/demo-tiny",
        "revision": "main",
        "task": "val_demo",
        "shots": 0,
        "limit": None,
        "fewshot_seed": None,  # a corpus cell draws no few-shot examples
    }
    assert result["task"]["kind"] == "corpus" and result["task"]["display"] == "Demo Corpus"
    m = result["metrics"]["val_demo"]
    for key in (
        "loss",
        "bpb",
        "tokens",
        "bytes",
        "documents",
        "windows",
        "tokens_per_s",
        "context_length",
        "separator",
        "packing",
    ):
        assert key in m, key
    assert m["context_length"] == 256 and m["separator"] == "eos" and m["packing"] == "packed"
    assert result["task"]["settings"]["files"][0][:2] == [DEMO_CORPUS.name, DEMO_CORPUS.stat().st_size]  # by content
    assert result["model"]["batch_size"] == 4 and result["model"]["dtype"] == "float32"
    assert "val_demo" in proc.stderr + proc.stdout
    before = path.read_bytes()

    rerun = cli("task=val_demo", results_dir=tmp_path, block_torch=True)  # skipped before torch is imported
    assert "Skipping" in rerun.stderr + rerun.stdout and path.read_bytes() == before
    assert cli("task=val_demo", "task.corpus.batch_size=16", results_dir=tmp_path, block_torch=True).returncode == 0

    other = cli("task=val_demo", "task.corpus.context_length=64", results_dir=tmp_path, check=False)
    assert other.returncode != 0 and "other settings (corpus.context_length null -> 64)" in other.stderr + other.stdout
    assert path.read_bytes() == before
    swept = cli(
        "-m", "task=val_demo", "task.corpus.context_length=64", results_dir=tmp_path, check=False, block_torch=True
    )  # the sweeper makes the same decision before launching anything
    assert swept.returncode != 0 and "other settings (corpus.context_length null -> 64)" in swept.stderr + swept.stdout
    assert path.read_bytes() == before

    cli("task=val_demo", "task.corpus.context_length=64", "force=true", results_dir=tmp_path)
    forced = store.read_result(path)["metrics"]["val_demo"]
    assert forced["context_length"] == 64 and forced["windows"] > m["windows"] and forced["tokens"] == m["tokens"]
    assert forced["loss"] != m["loss"]


def test_a_corpus_has_no_shots(cli, tmp_path):
    proc = cli("task=val_demo", "shots=5", results_dir=tmp_path, check=False)
    assert proc.returncode != 0 and "has no shots" in proc.stderr + proc.stdout
    assert not list(tmp_path.rglob(store.RESULT))
