"""The paper's from-scratch ladder as lingua training configs, generated from the tables below.

    python -m llm_line.lingua.make_configs            # (re)write lingua/configs/*.yaml and lingua/configs/launch.sh

The tables are the single source of truth; lingua/configs/ holds their output (committed, and a test checks
it is current). Each YAML is a lingua `TrainArgs` config (apps/main/train.py for Llama, apps/mamba/train.py for
Mamba) and reads three environment variables when lingua loads it, so the same files work on any cluster:
LINGUA_DATA (root of the prepared jsonl chunks, see prepare_data.py), LINGUA_TOKENIZERS, LINGUA_RUNS (where
runs write checkpoints).

Ladder: Llama with d_model 256/512/1024 and 4/8/12 layers, Mamba with the same widths and twice the layers
(its block has no MLP), each ~70M / ~160M / ~420M parameters with the Llama-3 tokenizer (the embeddings of its
128k vocabulary dominate the small models; with GPT-2's 50k vocabulary the same shapes are smaller). Every
architecture x size x pretraining corpus x tokenizer, trained for 16,000 steps of 256 x 2048 = 524,288 tokens
(8.39B tokens), AdamW with cosine decay, lr 3e-3, weight decay 0.033, 5000 warmup steps. Interventions, on the
Llama ladder trained on FineWeb-Edu with the Llama-3 tokenizer: context length 1024 and 4096 (same tokens per
step) and optimizer settings. The intervention values below are this project's choice: the paper's released
table does not list them, so compare with the paper before relying on them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from llm_line.arguments import output_folder
from llm_line.errors import run_command
from llm_line.files import atomic_file

OUT = Path(__file__).resolve().parents[2] / "lingua" / "configs"  # the repository's lingua/configs/

# (d_model, layers, heads): heads of 64 dimensions (Llama: attention heads; Mamba: SSM heads over 2 x d_model).
SIZES = {
    "llama": [(256, 4, 4), (512, 8, 8), (1024, 12, 16)],
    "mamba": [(256, 8, 8), (512, 16, 16), (1024, 24, 32)],
}
# Name in the run name -> lingua data source (a folder of *.chunk.*.jsonl under LINGUA_DATA, see prepare_data.py).
DATASETS = {"fineweb_edu": "fineweb_edu_100bt", "c4": "c4", "pile_uc": "pile_uc"}
# Name -> (tiktoken BPE file under LINGUA_TOKENIZERS, BPE ranks). lingua adds 256 special tokens to either.
TOKENIZERS = {"llama3": ("llama3/original/tokenizer.model", 128000), "gpt2": ("gpt2/gpt2.tiktoken", 50256)}

TOKENS_PER_STEP = 256 * 2048
STEPS = 16_000
GPUS = 8  # one node; per GPU and micro-step 16,384 tokens, gradient accumulation makes up the rest
TOKENS_PER_GPU_STEP = 16_384
OPTIM = {
    "lr": 3.0e-3,
    "weight_decay": 0.033,
    "warmup": 5000,
    "scheduler": "cosine",
    "lr_min_ratio": 1.0e-6,
    "clip": 1.0,
    "beta1": 0.9,
    "beta2": 0.95,
}
CHECKPOINT_EVERY = 1000  # every checkpoint is kept: the loss-to-loss curves use them all

# name -> (settings changed, what it tests); applied to the Llama ladder on FineWeb-Edu with Llama-3.
INTERVENTIONS: dict[str, tuple[dict[str, Any], str]] = {
    "ctx1024": ({"seq_len": 1024}, "context length 1024"),
    "ctx4096": ({"seq_len": 4096}, "context length 4096"),
    # lingua's wsd decays as 1 / (p / lr_min_ratio + 1 - p) over the last decay_fraction of steps (p: 0 -> 1):
    # with the cosine runs' lr_min_ratio 1e-6 the rate would be 0.0016 x peak from the first decay step on (mean
    # factor 8e-6, no cooldown training at all); 0.01 ends at 1% of peak with a mean factor of 0.046.
    "wsd": (
        {"scheduler": "wsd", "lr_min_ratio": 0.01, "decay_fraction": 0.1},
        "warmup-stable-decay schedule (lingua's wsd: the last 10% of steps decay to 1% of peak lr)",
    ),
    "lr1e-3": ({"lr": 1.0e-3}, "learning rate 1e-3"),
    "adam": ({"weight_decay": 0.0}, "no weight decay (Adam)"),
}
SCRIPTS = {"llama": "apps.main.train", "mamba": "apps.mamba.train"}


def llama_parameters(dim: int, layers: int, vocab: int) -> int:
    """Parameters of lingua's LMTransformer (untied output): embeddings, attention, SwiGLU, RMSNorms."""
    ffn = 256 * -(-int(2 * 4 * dim / 3) // 256)  # lingua rounds the SwiGLU width up to multiple_of=256
    return 2 * vocab * dim + dim + layers * (4 * dim * dim + 3 * dim * ffn + 2 * dim)


def mamba_parameters(dim: int, layers: int, heads: int, vocab: int, state: int = 128, conv: int = 4) -> int:
    """Parameters of lingua's LMMamba (untied output, no dt_bias): SSM width 2 x dim, one group."""
    hidden = 256 * -(-int(2 * 3 * dim / 3) // 256)
    in_proj = dim * (2 * hidden + 2 * state + heads)  # z, x, B, C, dt
    block = dim + in_proj + (hidden + 2 * state) * conv + 2 * heads + hidden + hidden * dim
    return 2 * vocab * dim + dim + layers * block


def run(arch: str, size: tuple[int, int, int], data: str, tokenizer: str, intervention: str = "") -> dict[str, Any]:
    """One run: its name, lingua config, and a one-line description."""
    dim, layers, heads = size
    changes = INTERVENTIONS[intervention][0] if intervention else {}
    seq_len = changes.get("seq_len", 2048)
    optim = {**OPTIM, **{k: v for k, v in changes.items() if k != "seq_len"}}  # the rest is optimizer
    name = f"{arch}-d{dim}-l{layers}-{data}-{tokenizer}" + (f"-{intervention}" if intervention else "")
    vocab = TOKENIZERS[tokenizer][1] + 256
    if arch == "llama":
        model: dict[str, Any] = {"dim": dim, "n_layers": layers, "n_heads": heads}
        parameters = llama_parameters(dim, layers, vocab)
    else:
        model = {
            "dim": dim,
            "n_layers": layers,
            "n_heads": heads,
            "n_groups": 1,
            "state_dim": 128,
            "conv_size": 4,
            "dt_bias": False,
            "D_has_head_dim": False,
            "init_args": {"A_init_min": 0.01, "A_init_max": 2},
        }
        parameters = mamba_parameters(dim, layers, heads, vocab)
    batch_size = TOKENS_PER_GPU_STEP // seq_len
    grad_acc = TOKENS_PER_STEP // (GPUS * batch_size * seq_len)
    assert batch_size * seq_len * grad_acc * GPUS == TOKENS_PER_STEP
    config: dict[str, Any] = {
        "name": name,
        "dump_dir": "${oc.env:LINGUA_RUNS}/" + name,
        "seed": 42,
        "steps": STEPS,
        "grad_acc_steps": grad_acc,
        "probe_freq": None,
        "optim": optim,
        "distributed": {
            "fsdp_type": "full_shard",
            "compile": True,
            "model_dtype": "bf16",
            "matmul_allow_tf32": False,
            "selective_activation_checkpointing": False,
            "tp_size": 1,
        },
        "model": model,
        "data": {
            "root_dir": "${oc.env:LINGUA_DATA}",
            "sources": {DATASETS[data]: 100.0},
            "batch_size": batch_size,
            "seq_len": seq_len,
            "n_views": 2,
            "load_async": True,
            "add_bos": True,
            "add_eos": True,
            "prefetch_size": 256,
            "tokenizer": {"name": "tiktoken", "path": "${oc.env:LINGUA_TOKENIZERS}/" + TOKENIZERS[tokenizer][0]},
        },
        "checkpoint": {"dump": {"every": CHECKPOINT_EVERY, "keep": 0}, "eval": {"every": CHECKPOINT_EVERY, "keep": 0}},
        "logging": {"freq": 10},
    }
    what = (
        f"{'Llama' if arch == 'llama' else 'Mamba'} d_model {dim}, {layers} layers, {parameters / 1e6:.0f}M "
        f"parameters; {data} with the {tokenizer} tokenizer; {STEPS} steps x {TOKENS_PER_STEP:,} tokens = "
        f"{STEPS * TOKENS_PER_STEP / 1e9:.2f}B tokens"
        + (f"; intervention: {INTERVENTIONS[intervention][1]}" if intervention else "")
    )
    return {"name": name, "arch": arch, "config": config, "what": what}


def runs() -> list[dict[str, Any]]:
    """Every run of the ladder: the grid, then the interventions."""
    grid = [
        run(arch, size, data, tok) for arch in SIZES for size in SIZES[arch] for data in DATASETS for tok in TOKENIZERS
    ]
    extra = [run("llama", size, "fineweb_edu", "llama3", name) for name in INTERVENTIONS for size in SIZES["llama"]]
    return grid + extra


def render(entry: dict[str, Any]) -> str:
    header = (
        f"# Generated by llm_line/lingua/make_configs.py; change the tables there and rerun, do not edit.\n"
        f"# {entry['what']}.\n"
        f"# Launch from a lingua checkout (docs/lingua.md in llm-line):\n"
        f"#   python -m lingua.stool script={SCRIPTS[entry['arch']]} config=THIS_FILE nodes=1 ngpu={GPUS} "
        f"partition=...\n"
    )
    return header + yaml.safe_dump(entry["config"], sort_keys=False, width=120)


def launch_script(entries: list[dict[str, Any]]) -> str:
    lines = [
        "#!/usr/bin/env bash",
        "# Generated by llm_line/lingua/make_configs.py. Submits every run of the ladder with lingua's stool, one",
        "# SLURM job each. Run it from your lingua checkout with its environment active; see docs/lingua.md.",
        "#   LINGUA_DATA=... LINGUA_TOKENIZERS=... LINGUA_RUNS=... bash /path/to/llm-line/lingua/configs/launch.sh "
        "PARTITION [RUN_NAME_GLOB]",
        "set -euo pipefail",
        ': "${LINGUA_DATA:?}" "${LINGUA_TOKENIZERS:?}" "${LINGUA_RUNS:?}"',
        'partition="${1:?usage: launch.sh PARTITION [RUN_NAME_GLOB]}"; only="${2:-*}"',
        'here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"',
        "submit() {  # script name",
        '  [[ "$2" == $only ]] || return 0',
        '  if [ -e "$LINGUA_RUNS/$2" ]; then echo "skip $2: $LINGUA_RUNS/$2 exists"; return 0; fi',
        f'  python -m lingua.stool script="$1" config="$here/$2.yaml" nodes=1 ngpu={GPUS} partition="$partition"',
        "}",
    ]
    lines += [f"submit {SCRIPTS[e['arch']]} {e['name']}" for e in entries]
    return "\n".join(lines) + "\n"


def write_all(out: Path = OUT) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    entries = runs()
    written = []
    for entry in entries:
        path = out / f"{entry['name']}.yaml"
        with atomic_file(path) as f:
            f.write(render(entry))
        written.append(path)
    with atomic_file(out / "launch.sh") as f:
        f.write(launch_script(entries))
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=output_folder, default=OUT, help="where to write the configs")
    args = parser.parse_args(argv)
    written = write_all(args.out)
    print(f"wrote {len(written)} configs and launch.sh to {args.out}")


if __name__ == "__main__":
    sys.exit(run_command("python -m llm_line.lingua.make_configs", main, None))
