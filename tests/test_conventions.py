"""The paper's conventions beside the corrected ones: `loss_paper` and the chunks method checked against
independent re-implementations of the original code's formulas, and the numbers of what lm-eval actually
scored when a context ends in a space or is empty (issue 12 item 10)."""

import json
import math

import pytest
import torch
from omegaconf import OmegaConf
from tokenizers.processors import TemplateProcessing
from transformers import AutoModelForCausalLM, AutoTokenizer

from llm_line.evaluation import corpus, harness, metrics
from llm_line.evaluation.config import PACKAGE_DIR, ModelConfig, TaskConfig

DEMO_CORPUS = PACKAGE_DIR / "corpora" / "demo.jsonl"
# Multi-token, non-ASCII answers beside one-token ones (the demo tokenizer is byte-level BPE over 512 tokens).
DOCS = [
    {"question": "Which bird runs?", "choices": ["ñandú", "moo", "café au lait"], "label": 0},
    {"question": "Where is Kyoto?", "choices": ["日本", "a", "Ünïcödé 🦉"], "label": 0},
    {"question": "What does the zon say?", "choices": ["neigh", "baa", "oink"], "label": 0},
    {"question": "Pick the owl.", "choices": ["a", "Ünïcödé 🦉", "b"], "label": 1},
    {"question": "Pick the drink.", "choices": ["a", "b", "café au lait"], "label": 2},
    {"question": "Pick a.", "choices": ["a", "b", "c"], "label": 0},
]
# How each task builds the context: lm-eval's usual "...Answer:" + " choice"; a context that ends in a space
# (lm-eval moves the space into the scored continuation); an empty context (scored after the prefix token).
TASKS = {
    "conv_plain": {"doc_to_text": "Question: {{question}}\nAnswer:"},
    "conv_space": {"doc_to_text": "Question: {{question}}\nAnswer: ", "target_delimiter": ""},
    "conv_empty": {"doc_to_text": "", "target_delimiter": ""},
}


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("conv_tasks")
    (folder / "docs.jsonl").write_text(
        "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in DOCS), encoding="utf-8"
    )
    for name, spec in TASKS.items():
        config = {
            "task": name,
            "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"validation": str(folder / "docs.jsonl")}},
            "output_type": "multiple_choice",
            "validation_split": "validation",
            "doc_to_choice": "{{choices}}",
            "doc_to_target": "{{label}}",
            "metric_list": [{"metric": "acc"}],
            **spec,
        }
        (folder / f"{name}.yaml").write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    (folder / "conv.yaml").write_text(json.dumps({"group": "conv", "task": list(TASKS)}))
    return folder


@pytest.fixture(scope="module")
def bos_tokenizer(demo_model, tmp_path_factory):
    """The demo tokenizer made to put a BOS before every text, as Llama-style tokenizers do."""
    tokenizer = AutoTokenizer.from_pretrained(demo_model)
    bos = tokenizer.bos_token
    tokenizer._tokenizer.post_processor = TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, tokenizer.bos_token_id)]
    )
    folder = tmp_path_factory.mktemp("bos_tokenizer")
    tokenizer.save_pretrained(folder)
    assert AutoTokenizer.from_pretrained(folder)("a")["input_ids"][0] == tokenizer.bos_token_id
    return folder


def model_config(demo_model, tokenizer=None):
    return OmegaConf.merge(
        OmegaConf.structured(ModelConfig),
        {
            "name": "demo",
            "pretrained": str(demo_model),
            "dtype": "float32",
            "device": "cpu",
            "batch_size": "8",
            "tokenizer": str(tokenizer) if tokenizer else None,
        },
    )


@pytest.fixture(scope="module", params=["plain", "bos"])
def run(request, demo_model, task_dir, bos_tokenizer):
    """The three tasks through lm-eval, with the demo tokenizer as it is and with one that adds a BOS."""
    tokenizer = bos_tokenizer if request.param == "bos" else None
    task = OmegaConf.merge(OmegaConf.structured(TaskConfig), {"name": "conv", "include_path": str(task_dir)})
    out = harness.evaluate(model_config(demo_model, tokenizer), task, 0, fewshot_seed=1234)
    out["metrics"] = metrics.cell_metrics(out["results"], out["tasks"], out["group_map"], out["model"])
    out["tokenizer"] = AutoTokenizer.from_pretrained(tokenizer or demo_model)
    return out


def gold(sample):
    return sample["arguments"][sample["doc"]["label"]][:2]


def test_loss_paper_is_the_original_formula(run):
    """Per document NLL / max(1, len(tokenizer.encode(answer)) - 1), averaged; written out with plain transformers."""
    tokenizer = run["tokenizer"]
    all_losses = []
    for name in TASKS:
        losses = []
        for sample in run["results"]["samples"][name]:
            nll = -float(sample["filtered_resps"][sample["doc"]["label"]][0])
            losses.append(nll / max(1, len(tokenizer.encode(gold(sample)[1])) - 1))
        assert run["metrics"][name]["loss_paper"] == pytest.approx(sum(losses) / len(losses), abs=1e-6)
        all_losses += losses
    assert run["metrics"]["conv"]["loss_paper"] == pytest.approx(sum(all_losses) / len(all_losses), abs=1e-6)
    lengths = [len(tokenizer.encode(gold(s)[1])) for s in run["results"]["samples"]["conv_plain"]]
    assert min(lengths) <= 2 and max(lengths) >= 5  # one-token and multi-token answers both present


def by_hand(model, ids: list[int], n_answer: int) -> float:
    """Summed NLL of the last `n_answer` of `ids`, one plain forward pass."""
    with torch.no_grad():
        logprobs = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), dim=-1)
    return -sum(logprobs[i - 1, ids[i]].item() for i in range(len(ids) - n_answer, len(ids)))


def test_tokens_and_bytes_are_those_lm_eval_scored(run, demo_model):
    """A context that ends in a space: the space is scored, so its byte counts. An empty context: the answer
    is scored after the prefix token, and a BOS the tokenizer adds by itself is not an answer token."""
    tokenizer = run["tokenizer"]
    model = AutoModelForCausalLM.from_pretrained(demo_model, dtype=torch.float32).eval()
    for name in ("conv_space", "conv_empty"):
        expected_loss, expected_bpb = [], []
        for sample in run["results"]["samples"][name]:
            context, answer = gold(sample)
            if context:
                assert context.endswith(" ") and not answer.startswith(" ")
                scored = " " + answer
                ctx_ids = tokenizer(context.rstrip())["input_ids"]
                answer_ids = tokenizer(context.rstrip() + scored)["input_ids"][len(ctx_ids) :]
            else:
                scored = answer
                ctx_ids = [tokenizer.bos_token_id]  # lm-eval's prefix token
                answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
            nll = by_hand(model, ctx_ids + answer_ids, len(answer_ids))
            assert -sample["filtered_resps"][sample["doc"]["label"]][0] == pytest.approx(nll, abs=1e-4)
            expected_loss.append(nll / len(answer_ids))
            expected_bpb.append(nll / (math.log(2) * len(scored.encode("utf-8"))))
        m = run["metrics"][name]
        assert m["loss"] == pytest.approx(sum(expected_loss) / len(expected_loss), rel=1e-4)
        assert m["bpb"] == pytest.approx(sum(expected_bpb) / len(expected_bpb), rel=1e-4)


def test_loss_paper_by_hand():
    losses = [
        metrics.AnswerLoss(nll=3.0, tokens=3, bytes=6, paper_tokens=3),
        metrics.AnswerLoss(nll=2.0, tokens=1, bytes=2, paper_tokens=1),
    ]
    s = metrics.summarize(losses)
    assert s["loss"] == pytest.approx((1.0 + 2.0) / 2)
    assert s["loss_paper"] == pytest.approx((3.0 / 2 + 2.0 / 1) / 2)  # divisor max(1, n - 1)
    assert s["loss_paper_stderr"] == pytest.approx(0.25)  # std(1.5, 2, ddof=1) / sqrt(2)


# --- the chunks method ----------------------------------------------------------------------------------------


def original_validation_loss(model, tokenizer, path, max_length: int, chunk: int) -> tuple[float, int]:
    """The original loop, written out: every non-blank line, truncated, consecutive chunks scored alone."""
    total, count = 0.0, 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        ids = tokenizer(json.loads(line)["text"], truncation=True, max_length=max_length, return_tensors="pt").input_ids
        for i in range(0, ids.size(1) - 1, chunk):
            batch = ids[:, i : i + chunk]
            if batch.size(1) < 2:
                continue
            with torch.no_grad():
                logits = model(batch).logits
            total += torch.nn.functional.cross_entropy(logits[0, :-1], batch[0, 1:], reduction="sum").item()
            count += batch.size(1) - 1
    return total / count, count


@pytest.mark.parametrize("tokenizer_kind,max_length,chunk", [("plain", None, 50), ("bos", 40, 16)])
def test_chunks_equal_the_original_loop(demo_model, bos_tokenizer, tmp_path, tokenizer_kind, max_length, chunk):
    """On the demo corpus plus one-token documents: documents longer than L are truncated, chunks shorter
    than 2 dropped, special tokens kept as the tokenizer adds them."""
    path = tmp_path / "corpus.jsonl"
    path.write_text(DEMO_CORPUS.read_text(encoding="utf-8") + '{"text": "a"}\n{"text": "ab"}\n', encoding="utf-8")
    tokenizer_path = bos_tokenizer if tokenizer_kind == "bos" else None
    task = OmegaConf.merge(
        OmegaConf.structured(TaskConfig),
        {
            "name": "val_conv",
            "corpus": {
                "path": str(path),
                "method": "chunks",
                "chunk_length": chunk,
                "context_length": max_length,
                "batch_size": 2,
            },
        },
    )
    out = corpus.evaluate(model_config(demo_model, tokenizer_path), task, str(tmp_path / "cache"))
    model = AutoModelForCausalLM.from_pretrained(demo_model, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path or demo_model)
    length = max_length or model.config.max_position_embeddings
    loss, count = original_validation_loss(model, tokenizer, path, length, chunk)
    texts = [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert max(len(tokenizer(t)["input_ids"]) for t in texts) > length  # truncation happens
    assert min(len(tokenizer(t)["input_ids"]) for t in texts) < 2  # a document with no chunk at all
    m = out["metrics"]
    assert m["tokens"] == count and m["packing"] == "chunks" and "bpb" not in m
    assert m["loss"] == pytest.approx(loss, abs=1e-6)


def test_paper_hf_computes_the_released_tables_validation_losses():
    """+experiment=paper_hf runs the corpora as the original did: chunks of 50 tokens, 16 for SlimPajama,
    5,000 documents, under the released table's display names (so collect --convention paper fills them)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_config import load

    cfg = load("+experiment=paper_hf")
    tasks = [t for t in cfg.hydra.sweeper.params.task.split(",") if t.startswith("val_")]
    assert len(tasks) == 5
    for task in tasks:
        paper, corrected = load(f"task={task}").task, load(f"task={task.removesuffix('_paper')}").task
        assert task.endswith("_paper") and paper.display == corrected.display
        assert paper.corpus.method == "chunks" and corrected.corpus.method == "packed"
        assert paper.corpus.chunk_length == (16 if task == "val_slimpajama_paper" else 50)
        assert paper.corpus.max_documents == 5000 and paper.corpus.dataset == corrected.corpus.dataset


@pytest.mark.slow
def test_demo_results_in_paper_convention_extend_the_released_table(tmp_path, cache_dir):
    """A user's own sweep collected in the paper convention, concatenated with the released table's rows, fits:
    demo checkpoints (task and corpus named as the paper's HellaSwag and C4) beside the paper's families."""
    import pandas as pd
    from conftest import SHARED
    from hydra import compose, initialize_config_dir

    from llm_line.analysis import collect
    from llm_line.analysis.groups import fit_groups
    from llm_line.analysis.table import read_table
    from llm_line.evaluation.cell import run_cell
    from llm_line.evaluation.config import cell_dir

    released_csv = SHARED / "data" / "llm-line-hf-models.csv"
    if not released_csv.exists():
        pytest.skip(f"the paper's released table is not at {released_csv}")
    root = tmp_path / "results"
    tasks = [
        ["task=demo_sounds", "task.display=HellaSwag"],
        ["task=val_demo", "task.display=C4", "task.corpus.method=chunks"],
    ]
    with initialize_config_dir(config_dir=str(PACKAGE_DIR.parent / "conf"), version_base="1.3"):
        for revision in ("step0", "step100", "step200", "step300"):
            for task in tasks:
                cfg = compose(
                    "config", overrides=["model=demo", f"model.revision={revision}", *task, f"results_dir={root}"]
                )
                run_cell(cfg, root / cell_dir(cfg.model.name, revision, cfg.task.name, 0))
    ours = collect.collect([root], "paper").wide
    assert len(ours) == 4 and set(ours["Convention"]) == {"paper"} and ours["C4 Validation Loss"].notna().all()
    assert ours["HellaSwag Loss"].notna().all() and set(ours["Tokens"]) == {0, 102400, 204800, 307200}
    released = read_table(released_csv)
    table = pd.concat([released, ours], ignore_index=True)
    assert set(table["Convention"]) == {"paper"}
    fits = {f.group: f for f in fit_groups(table, "C4 Validation Loss", "HellaSwag Loss", n_boot=20)}
    assert fits["The Pile"].ok and fits["The Pile"].n > 10
    # four points, E at the minimum loss: it runs; such a law is flagged (little left to estimate) or fails
    assert fits["demo"].n == 4 and fits["demo"].status in ("ok", "flagged", "failed")


def test_corpus_method_is_part_of_the_settings_that_must_not_mix(tmp_path):
    """A packed result (also one written before methods or fingerprints existed) is reused for packed, refused
    for chunks."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from llm_line.evaluation import fingerprint

    with initialize_config_dir(config_dir=str(PACKAGE_DIR.parent / "conf"), version_base="1.3"):
        packed = compose("config", overrides=["task=val_demo"])
        chunks = compose("config", overrides=["task=val_demo", "task.corpus.method=chunks"])
    assert fingerprint.settings(packed)["corpus"]["method"] == "packed"
    assert "chunk_length" not in fingerprint.settings(packed)["corpus"]
    assert fingerprint.settings(chunks)["corpus"]["chunk_length"] == 50
    config = OmegaConf.to_container(packed, resolve=True)
    del config["task"]["corpus"]["method"]  # written before corpus methods existed: packed
    for result in ({"fingerprint": fingerprint.record(fingerprint.settings(packed))}, {"config": config}):
        fingerprint.check_reusable(result, fingerprint.settings(packed), tmp_path)
        with pytest.raises(fingerprint.ChangedSettings, match="corpus.method packed -> chunks"):
            fingerprint.check_reusable(result, fingerprint.settings(chunks), tmp_path)


def test_paper_convention_matches_the_released_tables_commonsense_qa_ratio():
    """CommonSenseQA's answers (" A" ... " E") are one token of two bytes: in the paper convention Loss / BPB is
    2 ln 2 for every row, as in the released table."""
    from conftest import SHARED

    from llm_line.analysis.table import read_table

    ours = metrics.summarize([metrics.AnswerLoss(nll=nll, tokens=1, bytes=2, paper_tokens=1) for nll in (0.7, 1.9)])
    assert ours["loss_paper"] / ours["bpb"] == pytest.approx(2 * math.log(2))
    released_csv = SHARED / "data" / "llm-line-hf-models.csv"
    if not released_csv.exists():
        pytest.skip(f"the paper's released table is not at {released_csv}")
    released = read_table(released_csv).dropna(subset=["CommonSenseQA Loss", "CommonSenseQA BPB"])
    ratio = released["CommonSenseQA Loss"] / released["CommonSenseQA BPB"]
    assert len(ratio) > 100 and ratio.to_numpy() == pytest.approx(2 * math.log(2), rel=1e-9)
