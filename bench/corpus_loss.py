"""Corpus-loss throughput (llm_line/evaluation/corpus_scoring.py) on random-initialised Pythia shapes: tokens/s and MFU.

    python bench/corpus_loss.py                                  # CPU: small settings, with the 50-token baseline
    python bench/corpus_loss.py --device cuda --tokens 4000000   # GPU: bf16, 2048-token windows

For each size (GPTNeoXConfig with Pythia-160M / Pythia-1.4B shapes; no download) it times `packed_loss` over
`--tokens` random tokens, and, with `--baseline` (default on CPU), the original release's method side by side:
every document cut into 50-token chunks, one forward per chunk with no earlier context, a `.item()` per chunk.

MFU = tokens/s x forward FLOPs per token / peak FLOP/s, with forward FLOPs per token = 2 x non-embedding
parameters + 2 x vocab x d_model + 4 x layers x context x d_model (attention scores and values, PaLM's
convention, no discount for the causal mask). Peak: the card's dense bf16/fp16 figure for known GPUs or
`--peak-tflops`; on CPU the throughput of a large fp32 matmul measured here (so CPU MFU is relative to what
this machine's GEMM achieves, not to a datasheet).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from llm_line.evaluation.corpus_scoring import packed_loss  # noqa: E402

SHAPES = {  # Pythia (Biderman et al., 2023): d_model, layers, heads
    "160m": (768, 12, 12),
    "1.4b": (2048, 24, 16),
}
VOCAB = 50304  # Pythia's padded embedding matrix
GPU_PEAK_TFLOPS = {"H100": 989.4, "H200": 989.4, "GH200": 989.4, "A100": 312.0, "L40S": 362.1, "A10G": 125.0}


def build(size: str, device: str, dtype: torch.dtype, attn: str) -> torch.nn.Module:
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    d, layers, heads = SHAPES[size]
    config = GPTNeoXConfig(
        vocab_size=VOCAB,
        hidden_size=d,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * d,
        max_position_embeddings=2048,
        rotary_pct=0.25,
        use_parallel_residual=True,
        tie_word_embeddings=False,
        attn_implementation=attn,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = GPTNeoXForCausalLM(config).to(dtype)
    return model.eval()


def non_embedding_parameters(model: torch.nn.Module) -> int:
    """Parameters outside the input embedding and the output head (transformers' `exclude_embeddings` keeps the
    head of an untied model such as GPT-NeoX, which would count it twice below)."""
    embeddings = model.get_input_embeddings().weight.numel() + model.get_output_embeddings().weight.numel()
    return model.num_parameters() - embeddings


def flops_per_token(model: torch.nn.Module, context: int) -> float:
    c = model.config
    return (
        2 * non_embedding_parameters(model)
        + 2 * VOCAB * c.hidden_size
        + 4 * c.num_hidden_layers * context * c.hidden_size
    )


def peak_flops(device: str, dtype: torch.dtype, given: float | None) -> tuple[float, str]:
    if given:
        return given * 1e12, f"{given} TFLOP/s (given)"
    if device.startswith("cuda"):
        name = torch.cuda.get_device_name(device)
        for key, tflops in GPU_PEAK_TFLOPS.items():
            if key in name and dtype in (torch.bfloat16, torch.float16):
                return tflops * 1e12, f"{tflops} TFLOP/s ({name}, dense {dtype})"
        return float("nan"), f"unknown for {name} / {dtype} (pass --peak-tflops)"
    n = 2048  # CPU: what a large matmul achieves here
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    started, reps = time.perf_counter(), 5
    for _ in range(reps):
        a @ b
    achieved = 2 * n**3 * reps / (time.perf_counter() - started)
    return (
        achieved,
        f"{achieved / 1e12:.3f} TFLOP/s (measured {n}x{n} {dtype} matmul, {torch.get_num_threads()} threads)",
    )


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def chunked_baseline(model: torch.nn.Module, stream: torch.Tensor, chunk: int, device: str) -> tuple[float, float]:
    """The original release's method: independent `chunk`-token pieces, one forward and one .item() each."""
    sync(device)
    started, nll, count = time.perf_counter(), 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(stream) - 1, chunk):
            piece = stream[start : start + chunk][None].to(device)
            if piece.shape[1] < 2:
                continue
            loss = model(input_ids=piece, labels=piece).loss
            nll += loss.item() * (piece.shape[1] - 1)
            count += piece.shape[1] - 1
    return count / (time.perf_counter() - started), nll / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", default="160m,1.4b", help=f"comma-separated, of {sorted(SHAPES)}")
    parser.add_argument("--context", type=int, default=2048, help="window length (tokens)")
    parser.add_argument("--batch-size", type=int, default=None, help="windows per forward (default: 16 GPU, 1 CPU)")
    parser.add_argument("--tokens", type=int, default=None, help="tokens scored per method (default: 4M GPU, 4096 CPU)")
    parser.add_argument("--dtype", default="auto", help="auto: bfloat16 on GPU, float32 on CPU")
    parser.add_argument("--attn", default="sdpa", help="attn_implementation (sdpa, eager, flash_attention_2)")
    parser.add_argument(
        "--baseline",
        choices=("auto", "on", "off"),
        default="auto",
        help="also time the 50-token-chunk method (auto: on CPU only)",
    )
    parser.add_argument("--baseline-tokens", type=int, default=None, help="tokens for the baseline (default: --tokens)")
    parser.add_argument("--chunk", type=int, default=50, help="the baseline's chunk length")
    parser.add_argument("--peak-tflops", type=float, default=None)
    args = parser.parse_args()

    gpu = args.device.startswith("cuda")
    dtype = {
        "auto": torch.bfloat16 if gpu else torch.float32,
        "bfloat16": torch.bfloat16,
        "float16": torch.float16,
        "float32": torch.float32,
    }[args.dtype]
    batch = args.batch_size or (16 if gpu else 1)
    tokens = args.tokens or (4_000_000 if gpu else 4096)
    baseline = args.baseline == "on" or (args.baseline == "auto" and not gpu)
    peak, peak_text = peak_flops(args.device, dtype, args.peak_tflops)
    print(
        f"device {args.device}, {dtype}, context {args.context}, batch {batch}, {tokens} tokens, "
        f"attention {args.attn}; peak {peak_text}; torch {torch.__version__}"
    )
    print(f"{'shape':<8}{'method':<28}{'tokens/s':>12}{'GFLOP/token':>13}{'MFU':>8}")
    generator = torch.Generator().manual_seed(0)
    for size in args.sizes.split(","):
        model = build(size, args.device, dtype, args.attn)
        stream = torch.randint(0, 50277, (tokens + 1,), generator=generator)
        warm = batch * args.context if gpu else 128  # one full batch on a GPU (kernels, allocator); less on CPU
        packed_loss(model, stream[: min(len(stream), warm + 1)], min(args.context, warm), batch, args.device)
        out = packed_loss(model, stream, args.context, batch, args.device)
        rate = out["tokens"] / out["seconds"]
        flops = flops_per_token(model, args.context)
        print(
            f"{size:<8}{f'packed, {args.context}-token windows':<28}{rate:>12.1f}{flops / 1e9:>13.3f}"
            f"{rate * flops / peak:>8.1%}"
        )
        if baseline:
            n = args.baseline_tokens or tokens
            chunked_baseline(model, stream[: 4 * args.chunk], args.chunk, args.device)  # warm-up
            base_rate, _ = chunked_baseline(model, stream[: n + 1], args.chunk, args.device)
            base_flops = flops_per_token(model, args.chunk)
            print(
                f"{size:<8}{f'original, {args.chunk}-token chunks':<28}{base_rate:>12.1f}{base_flops / 1e9:>13.3f}"
                f"{base_rate * base_flops / peak:>8.1%}"
            )
            print(f"{'':<8}{'packed / original':<28}{rate / base_rate:>12.2f}x")
        del model
        if gpu:
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
