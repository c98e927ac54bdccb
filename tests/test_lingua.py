"""lingua: tiny checkpoints in lingua's layout and key names, exported in one command, checked against
reference forwards written here with lingua's conventions; the exports evaluated and swept by step."""

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from llm_line.lingua import checkpoints, export, make_configs

ROOT = Path(__file__).resolve().parents[1]

# A tiny BPE in tiktoken's file format: the 256 bytes, then merges each made of two earlier tokens.
MERGES = [
    "th",
    "he",
    "in",
    "er",
    "an",
    " t",
    " a",
    "the",
    " th",
    " the",
    "ing",
    "re",
    " c",
    "on",
    "at",
    "en",
    "es",
    " s",
    "or",
    "ed",
    " w",
    " o",
    "ll",
    "is",
    " is",
]
N_RANKS = 256 + len(MERGES)
VOCAB = N_RANKS + 256  # lingua appends 256 special tokens after the BPE ranks
# Llama-3's pre-tokenisation regex, which lingua's tiktoken tokenizer uses for any BPE file.
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
TEXTS = [
    "the cat sat on the mat",
    "Is it? It's 12345 ingredients...\n\n  spaced\tout",
    "naïve café — 東京 🙂",
    " leading space",
    "they'll WE'RE ok",
]
# Special tokens' text inside a document: lingua's encode_ordinary treats it as ordinary text.
SPECIAL_TEXT = "a <|begin_of_text|>b<|end_of_text|> <|reserved_special_token_9|>\n"


def write_bpe(path: Path) -> dict:
    ranks = {bytes([i]): i for i in range(256)}
    for token in MERGES:
        ranks[token.encode()] = len(ranks)
    path.write_text("".join(f"{base64.b64encode(t).decode()} {r}\n" for t, r in ranks.items()))
    return ranks


def llama_args():
    return {
        "dim": 64,
        "n_layers": 2,
        "n_heads": 4,
        "n_kv_heads": 2,
        "head_dim": None,
        "rope_theta": 10000.0,
        "norm_eps": 1e-5,
        "multiple_of": 32,
        "ffn_dim_multiplier": None,
        "max_seqlen": 64,
        "vocab_size": VOCAB,
        "weight_tying": False,
        "sliding_window": None,
        "seed": 42,
    }


def mamba_args(weight_tying=True):
    return {
        "dim": 64,
        "n_layers": 2,
        "n_heads": 4,
        "state_dim": 16,
        "n_groups": 1,
        "conv_size": 4,
        "dt_bias": True,
        "D_has_head_dim": False,
        "learnable_init_states": False,
        "ssm_chunk_size": 256,
        "vocab_size": VOCAB,
        "weight_tying": weight_tying,
        "multiple_of": 32,
        "ffn_dim_multiplier": None,
        "norm_eps": 1e-5,
        "seed": 42,
    }


def ffn_dim(args):  # lingua's FeedForward: 2/3 of 4*dim, rounded up to multiple_of
    hidden = int(2 * 4 * args["dim"] / 3)
    return args["multiple_of"] * -(-hidden // args["multiple_of"])


def ssm_dim(args):  # lingua's SSM: 2/3 of 3*dim, rounded up to multiple_of
    hidden = int(2 * 3 * args["dim"] / 3)
    return args["multiple_of"] * -(-hidden // args["multiple_of"])


def llama_state(args, gen):
    dim, hd = args["dim"], args["dim"] // args["n_heads"]
    w = lambda *shape: torch.randn(*shape, generator=gen) * 0.15  # noqa: E731
    norm = lambda: 1 + torch.randn(dim, generator=gen) * 0.1  # noqa: E731
    sd = {"tok_embeddings.weight": w(VOCAB, dim), "norm.weight": norm(), "output.weight": w(VOCAB, dim)}
    for i in range(args["n_layers"]):
        p = f"layers.{i}."
        sd |= {
            p + "attention.wq.weight": w(args["n_heads"] * hd, dim),
            p + "attention.wk.weight": w(args["n_kv_heads"] * hd, dim),
            p + "attention.wv.weight": w(args["n_kv_heads"] * hd, dim),
            p + "attention.wo.weight": w(dim, args["n_heads"] * hd),
            p + "feed_forward.w1.weight": w(ffn_dim(args), dim),
            p + "feed_forward.w3.weight": w(ffn_dim(args), dim),
            p + "feed_forward.w2.weight": w(dim, ffn_dim(args)),
            p + "attention_norm.weight": norm(),
            p + "ffn_norm.weight": norm(),
        }
    return sd


def mamba_state(args, gen):
    dim, hidden, heads, n = args["dim"], ssm_dim(args), args["n_heads"], args["state_dim"]
    w = lambda *shape, s=0.15: torch.randn(*shape, generator=gen) * s  # noqa: E731
    norm = lambda size: 1 + torch.randn(size, generator=gen) * 0.1  # noqa: E731
    embeddings = w(VOCAB, dim)
    sd = {
        "tok_embeddings.weight": embeddings,
        "norm.weight": norm(dim),
        "output.tied_module.weight": embeddings.clone(),
    }  # how lingua's TiedLinear shows up in a state dict
    for i in range(args["n_layers"]):
        p = f"layers.{i}."
        dt = torch.empty(heads).uniform_(0.001, 0.1, generator=gen)
        sd |= {
            p + "ssm_norm.weight": norm(dim),
            p + "ssm.in_proj.weight": w(2 * hidden + 2 * n + heads, dim),
            p + "ssm.conv_weight": w(hidden + 2 * n, args["conv_size"], s=0.5),
            p + "ssm.dt_bias": dt + torch.log(-torch.expm1(-dt)),  # inverse softplus, as lingua initialises it
            p + "ssm.A_log": torch.empty(heads).uniform_(1, 16, generator=gen).log(),
            p + "ssm.D": norm(heads),
            p + "ssm.out_proj.weight": w(dim, hidden),
            p + "ssm.ssm_norm.weight": norm(hidden),
        }
    return sd


def params_json(name, model, data_source="fineweb_edu_100bt", tokenizer="tokenizers/tiny.tiktoken"):
    """The parts of lingua's dumped TrainArgs that matter here, in its layout."""
    return {
        "name": name,
        "dump_dir": f"/runs/{name}",
        "seed": 42,
        "grad_acc_steps": 2,
        "steps": 200,
        "data": {
            "root_dir": "data",
            "sources": {data_source: 100.0},
            "batch_size": 4,
            "seq_len": 64,
            "n_views": 2,
            "add_bos": True,
            "add_eos": True,
            "tokenizer": {"name": "tiktoken", "path": tokenizer},
        },
        "optim": {"lr": 3e-3, "weight_decay": 0.033, "warmup": 5000, "scheduler": "cosine"},
        "model": model,
        "distributed": {"dp_replicate": 2, "dp_shard": 1, "tp_size": 1, "model_dtype": "bf16"},
    }


def write_consolidated(folder: Path, params: dict, state: dict, step: int) -> None:
    (folder / "consolidated").mkdir(parents=True)
    torch.save({"model": state}, folder / "consolidated" / "consolidated.pth")
    for where in (folder, folder / "consolidated"):
        (where / "params.json").write_text(json.dumps(params))
    (folder / "train_state_00000.json").write_text(json.dumps({"step": step, "acc_step": 0}))


def write_distributed(folder: Path, params: dict, state: dict, step: int) -> None:
    """An unconsolidated checkpoint, as lingua's CheckpointManager.save leaves it (model + optimizer)."""
    import torch.distributed.checkpoint as dcp

    folder.mkdir(parents=True)
    dcp.save({"model": state, "optim": {"state": {}, "param_groups": []}}, checkpoint_id=str(folder))
    (folder / "params.json").write_text(json.dumps(params))
    (folder / "train_state_00000.json").write_text(json.dumps({"step": step, "acc_step": 0}))


# ------------------------------------------------------------------------- reference forwards (lingua's math)


def rms(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def llama_reference(sd, args, tokens):
    """lingua's LMTransformer: RoPE rotates adjacent pairs (x[2i], x[2i+1]) as complex numbers."""
    batch, seq = tokens.shape
    heads, kv_heads, eps = args["n_heads"], args["n_kv_heads"], args["norm_eps"]
    hd = args["dim"] // heads
    freqs = 1.0 / args["rope_theta"] ** (torch.arange(0, hd, 2).float() / hd)
    rotation = torch.polar(torch.ones(seq, hd // 2), torch.outer(torch.arange(seq).float(), freqs))

    def rope(t):
        pairs = torch.view_as_complex(t.reshape(*t.shape[:-1], hd // 2, 2).contiguous())
        return torch.view_as_real(pairs * rotation[None, :, None, :]).flatten(-2)

    x = sd["tok_embeddings.weight"][tokens]
    causal = torch.ones(seq, seq, dtype=torch.bool).tril()
    for i in range(args["n_layers"]):
        p = f"layers.{i}."
        h = rms(x, sd[p + "attention_norm.weight"], eps)
        q = rope((h @ sd[p + "attention.wq.weight"].T).view(batch, seq, heads, hd))
        k = rope((h @ sd[p + "attention.wk.weight"].T).view(batch, seq, kv_heads, hd))
        v = (h @ sd[p + "attention.wv.weight"].T).view(batch, seq, kv_heads, hd)
        k, v = (t.repeat_interleave(heads // kv_heads, dim=2) for t in (k, v))
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / hd**0.5
        attn = scores.masked_fill(~causal, float("-inf")).softmax(-1)
        out = torch.einsum("bhqk,bkhd->bqhd", attn, v).reshape(batch, seq, heads * hd)
        x = x + out @ sd[p + "attention.wo.weight"].T
        h = rms(x, sd[p + "ffn_norm.weight"], eps)
        x = (
            x
            + (F.silu(h @ sd[p + "feed_forward.w1.weight"].T) * (h @ sd[p + "feed_forward.w3.weight"].T))
            @ sd[p + "feed_forward.w2.weight"].T
        )
    return rms(x, sd["norm.weight"], eps) @ sd["output.weight"].T


def mamba_reference(sd, args, tokens):
    """lingua's LMMamba, token by token: h_t = exp(dt A) h_{t-1} + dt B_t x_t, y_t = C_t h_t + D x_t."""
    batch, seq = tokens.shape
    hidden, heads, n, k = ssm_dim(args), args["n_heads"], args["state_dim"], args["conv_size"]
    hd = hidden // heads
    x = sd["tok_embeddings.weight"][tokens]
    for i in range(args["n_layers"]):
        p = f"layers.{i}.ssm."
        u = rms(x, sd[f"layers.{i}.ssm_norm.weight"], args["norm_eps"]) @ sd[p + "in_proj.weight"].T
        z, xbc, dt = u.split([hidden, hidden + 2 * n, heads], dim=-1)
        padded = F.pad(xbc, (0, 0, k - 1, 0))  # causal: output t sees inputs t-k+1 .. t
        conv = sum(padded[:, j : j + seq] * sd[p + "conv_weight"][:, j] for j in range(k))
        xs, b, c = F.silu(conv).split([hidden, n, n], dim=-1)
        xs = xs.view(batch, seq, heads, hd)
        dt = F.softplus(dt + sd[p + "dt_bias"])
        a = -torch.exp(sd[p + "A_log"])
        state = torch.zeros(batch, heads, hd, n)
        ys = []
        for t in range(seq):
            state = (
                state * torch.exp(dt[:, t] * a)[:, :, None, None]
                + (dt[:, t, :, None] * xs[:, t])[..., None] * b[:, t, None, None, :]
            )
            ys.append(torch.einsum("bhpn,bn->bhp", state, c[:, t]) + sd[p + "D"][None, :, None] * xs[:, t])
        y = torch.stack(ys, dim=1).reshape(batch, seq, hidden)
        x = x + rms(y * F.silu(z), sd[p + "ssm_norm.weight"], 1e-5) @ sd[p + "out_proj.weight"].T
    return rms(x, sd["norm.weight"], args["norm_eps"]) @ sd["tok_embeddings.weight"].T


# ------------------------------------------------------------------------------------------------------ tests


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two lingua runs (Llama, Mamba), two checkpoints each, one consolidated and one not; then exported."""
    base = tmp_path_factory.mktemp("lingua")
    (base / "tokenizers").mkdir()
    ranks = write_bpe(base / "tokenizers" / "tiny.tiktoken")
    gen = torch.Generator().manual_seed(0)
    built = {"base": base, "ranks": ranks}
    for arch, args, make in (("llama", llama_args(), llama_state), ("mamba", mamba_args(), mamba_state)):
        run = base / "runs" / f"tiny-{arch}"
        params = params_json(f"tiny-{arch}", args)
        states = {100: make(args, gen), 200: make(args, gen)}
        write_consolidated(run / "checkpoints" / "0000000100", params, states[100], 100)
        write_distributed(run / "checkpoints" / "0000000200", params, states[200], 200)
        out = base / "exports" / f"tiny-{arch}"
        command = [sys.executable, "-m", "llm_line.lingua.export", str(run), str(out), "--lingua-dir", str(base)]
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        built[arch] = {"args": args, "states": states, "out": out, "run": run}
    return built


TOKENS = torch.tensor([[5, 280, 17, 99, 300, 3, 511, 256, 42, 7, 270, 1], [9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 300, 290]])


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["llama", "mamba"])
@pytest.mark.parametrize("step", [100, 200])
def test_exported_logits_match_lingua_reference(runs, arch, step):
    from transformers import AutoModelForCausalLM

    run = runs[arch]
    model = AutoModelForCausalLM.from_pretrained(run["out"] / f"step{step}", dtype=torch.float32).eval()
    with torch.no_grad():
        got = model(TOKENS).logits
    reference = {"llama": llama_reference, "mamba": mamba_reference}[arch]
    expected = reference(run["states"][step], run["args"], TOKENS)
    assert got.shape == (2, 12, VOCAB)
    assert (got - expected).abs().max().item() < 1e-4
    assert type(model).__name__ == {"llama": "LlamaForCausalLM", "mamba": "Mamba2ForCausalLM"}[arch]


def test_without_the_rope_permutation_the_logits_differ(runs):
    """The q/k permutation is what makes the export right (guards against a reference that shares the bug)."""
    from transformers import AutoModelForCausalLM

    run = runs["llama"]
    model = AutoModelForCausalLM.from_pretrained(run["out"] / "step100", dtype=torch.float32).eval()
    hd = run["args"]["dim"] // run["args"]["n_heads"]
    with torch.no_grad():
        for layer, heads in ((model.model.layers[0], 4), (model.model.layers[1], 4)):
            w = layer.self_attn.q_proj.weight
            w.copy_(w.view(heads, 2, hd // 2, -1).transpose(1, 2).reshape(heads * hd, -1))  # undo it for q
        got = model(TOKENS).logits
    expected = llama_reference(run["states"][100], run["args"], TOKENS)
    assert (got - expected).abs().max().item() > 1e-2


def test_export_layout_and_metadata(runs):
    out = runs["llama"]["out"]
    assert sorted(p.name for p in out.iterdir()) == ["llm_line.json", "step100", "step200"]
    assert (runs["llama"]["run"] / "checkpoints" / "0000000200" / "consolidated" / "consolidated.pth").exists()
    meta = json.loads((out / "llm_line.json").read_text())
    assert meta["name"] == "tiny-llama" and meta["architecture"] == "Llama" and meta["family"] == "lingua-llama"
    assert meta["pretraining_data"] == "FineWeb-Edu"
    assert meta["tokens_per_step"] == 4 * 64 * 2 * 2  # batch x seq_len x grad_acc x data-parallel ranks
    assert (meta["add_bos"], meta["add_eos"]) == (True, True)  # the run's framing of its documents
    args = runs["llama"]["args"]
    hd = args["dim"] // args["n_heads"]
    expected = (
        2 * VOCAB * args["dim"]
        + args["dim"]
        + args["n_layers"]
        * (
            2 * args["dim"] * args["n_heads"] * hd
            + 2 * args["dim"] * args["n_kv_heads"] * hd
            + 3 * args["dim"] * ffn_dim(args)
            + 2 * args["dim"]
        )
    )
    assert meta["parameters"] == expected
    mamba = json.loads((runs["mamba"]["out"] / "llm_line.json").read_text())
    assert mamba["architecture"] == "Mamba2"
    assert json.loads((out / "step100" / "lingua_params.json").read_text())["name"] == "tiny-llama"


def test_tokenizer_is_lingua_tiktoken(runs):
    """The exported tokenizer splits text exactly as lingua's tiktoken setup does, and prepends its BOS."""
    tiktoken = pytest.importorskip("tiktoken")
    from transformers import AutoTokenizer

    names = {
        0: "<|begin_of_text|>",
        1: "<|end_of_text|>",
        2: "<|fim_prefix|>",
        3: "<|fim_middle|>",
        253: "<|fim_end_fill|>",
        254: "<|fim_pad|>",
        255: "<|fim_suffix|>",
    }
    specials = {names.get(i, f"<|reserved_special_token_{i}|>"): N_RANKS + i for i in range(256)}
    lingua_like = tiktoken.core.Encoding(
        name="tiny", pat_str=LLAMA3_PATTERN, mergeable_ranks=runs["ranks"], special_tokens=specials
    )
    tokenizer = AutoTokenizer.from_pretrained(runs["llama"]["out"] / "step100")
    for text in TEXTS + [SPECIAL_TEXT]:
        expected = lingua_like.encode_ordinary(text)
        assert tokenizer(text, add_special_tokens=False)["input_ids"] == expected, text
        assert tokenizer(text)["input_ids"] == [N_RANKS] + expected
        assert tokenizer.decode(expected) == text
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id) == (N_RANKS, N_RANKS + 1)
    assert len(tokenizer) == VOCAB
    ordinary = tokenizer(SPECIAL_TEXT, add_special_tokens=False)["input_ids"]
    assert len(ordinary) == 59 and max(ordinary) < N_RANKS  # no special id, though the text names three
    assert N_RANKS in lingua_like.encode(SPECIAL_TEXT, allowed_special="all")  # what matching specials would do


def test_export_is_idempotent_and_refuses_what_it_cannot_express(runs, tmp_path):
    run, out = runs["llama"]["run"], runs["llama"]["out"]
    before = (out / "step100" / "model.safetensors").stat().st_mtime_ns
    export.export_run(run, out, lingua_dir=str(runs["base"]))
    assert (out / "step100" / "model.safetensors").stat().st_mtime_ns == before  # skipped, not redone
    with pytest.raises(checkpoints.ExportError, match="holds the export of run 'tiny-llama'"):
        export.check_export_folder(out, tmp_path, {"run": "other", "dump_dir": "/runs/other"}, [])

    args = mamba_args() | {"n_groups": 2}
    params = params_json("grouped", args)
    write_consolidated(tmp_path / "0000000010", params, mamba_state(mamba_args(), torch.Generator()), 10)
    with pytest.raises(checkpoints.ExportError, match="n_groups=2"):
        export.export_run(tmp_path / "0000000010", tmp_path / "out", lingua_dir=str(runs["base"]))


@pytest.mark.slow
def test_evaluate_sweeps_an_export_by_step(runs, tmp_path, cli):
    out = runs["llama"]["out"]
    proc = cli(
        "-m",
        "model=lingua",
        f"model.path={out}",
        "model.step=100,200",
        "task=demo_colors,val_demo",
        "task.limit=4",
        "model.batch_size=4",
        results_dir=tmp_path,
    )
    for step in (100, 200):
        corpus = json.loads(
            (tmp_path / "lingua--tiny-llama" / f"step{step}" / "val_demo" / "0shot_limit4" / "result.json").read_text()
        )
        assert corpus["metrics"]["val_demo"]["separator"] == "lingua:bos+eos"  # framed as lingua trained it
        result = json.loads(
            (
                tmp_path / "lingua--tiny-llama" / f"step{step}" / "demo_colors" / "0shot_limit4" / "result.json"
            ).read_text()
        )
        assert result["cell"]["revision"] == f"step{step}"
        meta = result["model"]["meta"]
        assert meta["architecture"] == "Llama" and meta["tokens"] == step * 4 * 64 * 2 * 2
        assert result["model"]["loaded_from"] == str(out / f"step{step}")
        assert result["model"]["num_parameters"] == meta["parameters"]
    assert proc.returncode == 0
    missing = cli("model=lingua", f"model.path={out}", "task=demo_colors", results_dir=tmp_path, check=False)
    assert missing.returncode != 0 and "step100, step200" in missing.stderr + missing.stdout


def framed_reference(model, stream, labels, context):
    """NLL per predicted token of windows of `context` inputs over the whole model, labels IGNORE skipped."""
    nll, count = 0.0, 0
    for start in range(0, len(stream) - 1, context):
        inputs, targets = stream[start : start + context], labels[start + 1 : start + context + 1]
        with torch.no_grad():
            logprobs = model(input_ids=inputs[None]).logits[0, : len(targets)].double().log_softmax(-1)
        scored = targets != -100
        nll -= logprobs[torch.arange(len(targets))[scored], targets[scored]].sum().item()
        count += int(scored.sum())
    return nll / count, count


def test_a_corpus_on_an_export_is_framed_as_lingua_trained(runs, tmp_path):
    """separator=auto on a lingua export: BOS d EOS per document (lingua's add_bos/add_eos, from llm_line.json),
    each BOS context only; the loss against a hand computation; an export without those fields keeps auto."""
    import shutil

    from omegaconf import OmegaConf
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llm_line.evaluation import corpus, corpus_tokens, corpus_windows
    from llm_line.evaluation.config import CorpusConfig, ModelConfig, TaskConfig

    out = runs["llama"]["out"]
    tokenizer = AutoTokenizer.from_pretrained(out / "step100")
    docs = corpus_tokens.tokenize(iter(TEXTS), tokenizer, None, None)
    stream, labels = corpus_windows.frame(docs, tokenizer.bos_token_id, tokenizer.eos_token_id)
    bos, eos = N_RANKS, N_RANKS + 1  # lingua's <|begin_of_text|>, <|end_of_text|>
    # lingua's tokenizer.encode(text, add_bos=True, add_eos=True) per document, concatenated
    expected = [i for text in TEXTS for i in [bos, *tokenizer(text, add_special_tokens=False)["input_ids"], eos]]
    assert stream.tolist() == expected
    assert labels.tolist() == [-100 if i == bos else i for i in expected]

    texts = tmp_path / "docs.jsonl"
    texts.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))

    def evaluate(path, separator="auto"):
        model_cfg = ModelConfig(name="tiny", path=str(path), pretrained=str(path), revision="step100", batch_size="4")
        task = TaskConfig(name="val_docs", corpus=CorpusConfig(path=str(texts), separator=separator))
        out = corpus.evaluate(OmegaConf.structured(model_cfg), OmegaConf.structured(task), str(tmp_path / "cache"))
        return out["metrics"]

    framed = evaluate(out)
    model = AutoModelForCausalLM.from_pretrained(out / "step100", dtype=torch.float32).eval()
    loss, count = framed_reference(model, stream, labels, framed["context_length"])
    assert (framed["separator"], framed["separator_token_id"]) == ("lingua:bos+eos", eos)
    assert framed["tokens"] == count == int(docs.lengths.sum()) + len(TEXTS)  # every token and EOS, no BOS
    assert abs(framed["loss"] - loss) < 1e-5
    assert framed["windows"] > 1  # the framing crosses window boundaries
    assert evaluate(out, "eos")["loss"] != framed["loss"]  # an explicit separator still wins

    older = tmp_path / "older"  # an export written before llm_line.json recorded the framing
    shutil.copytree(out, older)
    meta = json.loads((older / "llm_line.json").read_text())
    (older / "llm_line.json").write_text(json.dumps({k: v for k, v in meta.items() if k not in ("add_bos", "add_eos")}))
    assert evaluate(older)["separator"] == "bos"  # auto's rule: its tokenizer adds a BOS


def test_make_configs_are_the_committed_ones(tmp_path):
    make_configs.write_all(tmp_path)
    committed = ROOT / "lingua" / "configs"
    generated = {p.name: p.read_text() for p in tmp_path.iterdir()}
    assert generated == {p.name: p.read_text() for p in committed.iterdir()}, (
        "lingua/configs is stale: run python -m llm_line.lingua.make_configs"
    )


def test_ladder_matches_the_paper_setup():
    """~70M-420M parameters (counted as transformers counts the exported models), 8.4B tokens, the optimizer."""
    import yaml
    from transformers import LlamaConfig, LlamaForCausalLM, Mamba2Config, Mamba2ForCausalLM

    runs_ = make_configs.runs()
    assert len(runs_) == 2 * 3 * 3 * 2 + 5 * 3
    for entry in runs_:
        cfg = yaml.safe_load(make_configs.render(entry))
        data, optim = cfg["data"], cfg["optim"]
        assert (
            cfg["steps"] * data["batch_size"] * data["seq_len"] * cfg["grad_acc_steps"] * make_configs.GPUS
            == 16000 * 524288
        )  # 8.39B tokens
        if "-ctx" not in entry["name"]:
            assert data["seq_len"] == 2048
        if entry["name"].endswith(("-llama3", "-gpt2")):  # not an intervention
            assert (optim["lr"], optim["weight_decay"], optim["warmup"], optim["scheduler"]) == (
                3e-3,
                0.033,
                5000,
                "cosine",
            )
    counts = {}
    for arch, (dim, layers, heads) in [("llama", s) for s in make_configs.SIZES["llama"]] + [
        ("mamba", s) for s in make_configs.SIZES["mamba"]
    ]:
        with torch.device("meta"):
            if arch == "llama":
                model = LlamaForCausalLM(
                    LlamaConfig(
                        hidden_size=dim,
                        num_hidden_layers=layers,
                        num_attention_heads=heads,
                        intermediate_size=256 * -(-int(8 * dim / 3) // 256),
                        vocab_size=128256,
                    )
                )
                expected = make_configs.llama_parameters(dim, layers, 128256)
            else:
                model = Mamba2ForCausalLM(
                    Mamba2Config(
                        hidden_size=dim,
                        num_hidden_layers=layers,
                        num_heads=heads,
                        head_dim=2 * dim // heads,
                        expand=2,
                        state_size=128,
                        n_groups=1,
                        use_conv_bias=False,
                        vocab_size=128256,
                    )
                )
                expected = make_configs.mamba_parameters(dim, layers, heads, 128256) + layers * heads  # + dt_bias
        assert model.num_parameters() == expected
        counts[(arch, dim)] = expected
    assert 65e6 < min(counts.values()) < 75e6 and 400e6 < max(counts.values()) < 430e6


def lingua_wsd(step, warmup, n_steps, decay_fraction, min_ratio):
    """lingua's wsd learning-rate factor (lingua/optim.py, one cycle, steps up to n_steps): linear warmup, 1.0,
    then over the last decay_fraction of steps 1 / (p / min_ratio + 1 - p) with p going from 0 to 1."""
    decay_steps = int(n_steps * decay_fraction)
    if step < warmup:
        return step / warmup
    if step <= n_steps - decay_steps:
        return 1.0
    progress = (step - (n_steps - decay_steps)) / decay_steps
    return 1 / (progress / min_ratio + 1 - progress)


def test_wsd_runs_cool_down():
    """The wsd runs' last 10% of steps train at a falling but real learning rate (mean 0.046 x peak, not 8e-6)."""
    import yaml

    wsd = [yaml.safe_load(make_configs.render(e)) for e in make_configs.runs() if e["name"].endswith("-wsd")]
    assert len(wsd) == 3
    for cfg in wsd:
        optim, steps = cfg["optim"], cfg["steps"]
        assert optim["scheduler"] == "wsd" and "cycle_length" not in optim  # lingua's default cycle: 1.0
        factor = [
            lingua_wsd(s, optim["warmup"], steps, optim["decay_fraction"], optim["lr_min_ratio"])
            for s in range(steps + 1)
        ]
        assert factor[2500] == 0.5 and set(factor[5000:14401]) == {1.0}
        decay = factor[14401:]
        assert len(decay) == 1600
        assert decay[0] == pytest.approx(0.9417, abs=1e-4) and decay[799] == pytest.approx(0.0198, abs=1e-4)
        assert decay[-1] == pytest.approx(0.01)
        assert sum(decay) / len(decay) == pytest.approx(0.0462, abs=1e-4)
    # What the cosine runs' lr_min_ratio would do to a wsd run: 0.0016 x peak from the first decay step.
    broken = [lingua_wsd(s, 5000, 16000, 0.1, 1e-6) for s in range(14401, 16001)]
    assert broken[0] == pytest.approx(0.0016, abs=1e-4) and sum(broken) / len(broken) == pytest.approx(8e-6, abs=1e-6)


def test_lingua_folder_does_not_shadow_meta_lingua(tmp_path):
    """With this repository first on the path, `import lingua` still finds Meta's package (here a stand-in)."""
    meta = tmp_path / "lingua"
    meta.mkdir()
    (meta / "__init__.py").write_text("WHO = 'meta'\n")
    proc = subprocess.run(
        [sys.executable, "-c", "import lingua; print(lingua.WHO)"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"},
    )
    assert proc.stdout.strip() == "meta", proc.stderr
    assert not list((ROOT / "lingua").rglob("*.py"))


def test_prepare_data_writes_lingua_chunks(tmp_path):
    import gzip

    import pyarrow as pa
    import pyarrow.parquet as pq

    from llm_line.lingua import prepare_data

    raw = tmp_path / "raw"
    raw.mkdir()
    with gzip.open(raw / "c4-train.00000-of-01024.json.gz", "wt") as f:
        f.writelines(json.dumps({"text": f"doc {i}", "url": "x"}) + "\n" for i in range(30))
    pq.write_table(
        pa.table({"text": [f"edu {i}" for i in range(20)], "score": list(range(20))}), raw / "000_00000.parquet"
    )
    prepare_data.main(["c4", str(tmp_path / "data"), "--source-dir", str(raw), "--chunks", "4", "--val-docs", "5"])
    out = tmp_path / "data" / "c4"
    chunks = sorted(out.glob("*.chunk.*.jsonl"))  # the glob lingua's data loader uses
    assert [p.name for p in chunks] == [f"c4.chunk.0{i}.jsonl" for i in range(4)]
    lines = [json.loads(line) for p in chunks for line in p.read_text().splitlines()]
    val = [json.loads(line)["text"] for line in (out / "c4.val.jsonl").read_text().splitlines()]
    assert val == [f"doc {i}" for i in range(5)]
    assert sorted(d["text"] for d in lines) == sorted(f"doc {i}" for i in range(5, 30))
    assert all(set(d) == {"text"} for d in lines)
    texts = list(prepare_data.documents([raw / "000_00000.parquet"]))
    assert texts == [f"edu {i}" for i in range(20)]


def test_prepare_data_reads_zst_and_writes_nothing_from_a_broken_file(tmp_path):
    """The Pile's .jsonl.zst goes through the corpus reader; a bad line stops it with no chunk left behind."""
    import zstandard

    from llm_line.lingua import prepare_data

    raw = tmp_path / "raw"
    raw.mkdir()
    lines = "".join(json.dumps({"text": f"pile {i}", "meta": {}}) + "\n" for i in range(12))
    (raw / "00.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(lines.encode()))
    prepare_data.main(["pile_uc", str(tmp_path / "data"), "--source-dir", str(raw), "--chunks", "2", "--val-docs", "2"])
    out = tmp_path / "data" / "pile_uc"
    assert [json.loads(line)["text"] for line in (out / "pile_uc.val.jsonl").read_text().splitlines()] == [
        "pile 0",
        "pile 1",
    ]
    assert sum(len(p.read_text().splitlines()) for p in out.glob("*.chunk.*.jsonl")) == 10

    (raw / "01.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(b'{"text": "fine"}\n{"text": \n'))
    from llm_line.errors import CellError

    with pytest.raises(CellError, match=r"01.jsonl.zst:2 is not a JSON line"):
        prepare_data.main(["pile_uc", str(tmp_path / "fresh"), "--source-dir", str(raw), "--chunks", "2"])
    assert not [p for p in (tmp_path / "fresh").rglob("*") if p.is_file()]  # not even a temporary file
