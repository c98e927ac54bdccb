"""Requests/s of lm-eval's HFLM and of llm-line's shared-prefix scorer (`model.backend=hf-shared`) on the same requests.

    python bench/mc_scoring.py                                  # CPU, float32, batch size 8
    python bench/mc_scoring.py --device cuda --dtype bfloat16 --batch-size 64 --scale 20

A Pythia-160M-shaped GPT-NeoX with random weights (no hub) scores synthetic token requests of three shapes:
HellaSwag-shaped (context ~50 tokens, 4 endings of 15-35 tokens) at 0-shot and 5-shot (context ~425 tokens, each
document with its own few-shot block), and MMLU-shaped (5-shot context ~150 tokens with one few-shot block per
subject, 4 one-token letters). Both backends get the same tokenized requests through `_loglikelihood_tokens` and
the same batch size (the scorer turns it into a token budget); printed per shape: requests/s of each, their
ratio and the largest |delta loglikelihood|. Targets on the 2-core CPU in float32: >= 2x at 0-shot, >= 3.5x at
5-shot, >= 1.3x MMLU-shaped, |delta| <= 1e-4. HFLM's log-softmax runs in float32 here (as the scorer's does), so
a bfloat16 run compares the same arithmetic.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHIA_160M = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072}
VOCAB = 50304


def tokens(rng: random.Random, n: int) -> list[int]:
    return [rng.randrange(1, VOCAB) for _ in range(n)]


def hellaswag(rng: random.Random, docs: int, shots: int) -> list:
    """Per document: its own context (few-shot examples of ~75 tokens each, then ~50) and 4 endings."""
    out = []
    for _ in range(docs):
        context = [t for _ in range(shots) for t in tokens(rng, 75)] + tokens(rng, rng.randint(40, 60))
        out += [(None, context, tokens(rng, rng.randint(15, 35))) for _ in range(4)]
    return out


def mmlu(rng: random.Random, docs: int, subjects: int = 2) -> list:
    """Documents of a few subjects, each subject with one 5-shot block (~100 tokens), a ~50-token question and
    the 4 letters as one token each."""
    blocks = [tokens(rng, 100) for _ in range(subjects)]
    letters = tokens(rng, 4)
    out = []
    for d in range(docs):
        context = blocks[d % subjects] + tokens(rng, rng.randint(40, 60))
        out += [(None, context, [letter]) for letter in letters]
    return out


def timed(lm, requests: list) -> tuple[float, list]:
    start = time.perf_counter()
    answers = lm._loglikelihood_tokens(requests, disable_tqdm=True)
    return time.perf_counter() - start, answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the number of documents per shape")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import torch
    import transformers
    from lm_eval.models.huggingface import HFLM

    from llm_line.evaluation import demo, scorer

    torch.manual_seed(0)
    config = transformers.GPTNeoXConfig(vocab_size=VOCAB, rotary_pct=0.25, max_position_embeddings=2048, **PYTHIA_160M)
    dtype = getattr(torch, args.dtype)
    model = transformers.GPTNeoXForCausalLM(config).to(device=args.device, dtype=dtype).eval()
    tokenizer = demo._train_tokenizer(["bench"])  # never used: the requests are token ids already
    kwargs = {"tokenizer": tokenizer, "batch_size": args.batch_size, "device": args.device, "softmax_dtype": "float32"}
    backends = {"hf": HFLM(pretrained=model, **kwargs), "hf-shared": scorer.SharedPrefixLM(pretrained=model, **kwargs)}
    rng = random.Random(0)
    shapes = {
        "HellaSwag 0-shot": hellaswag(rng, max(1, round(16 * args.scale)), 0),
        "HellaSwag 5-shot": hellaswag(rng, max(1, round(6 * args.scale)), 5),
        "MMLU-shaped": mmlu(rng, max(2, round(24 * args.scale))),
    }
    for lm in backends.values():  # first-call overheads outside the timings
        timed(lm, hellaswag(random.Random(1), 1, 0))
    print(
        f"Pythia-160M-shaped GPT-NeoX, random weights, {args.device} {args.dtype}, batch size {args.batch_size}, "
        f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(f"{'shape':<18} {'requests':>8} {'hf req/s':>9} {'hf-shared req/s':>15} {'ratio':>6} {'max |delta|':>11}")
    for name, requests in shapes.items():
        (t_hf, hf), (t_shared, shared) = (timed(backends[b], requests) for b in ("hf", "hf-shared"))
        delta = max(abs(a - b) for (a, _), (b, _) in zip(hf, shared, strict=True))
        greedy = "" if [g for _, g in hf] == [g for _, g in shared] else "  is_greedy differs"
        n = len(requests)
        speeds = f"{n / t_hf:>9.2f} {n / t_shared:>15.2f} {t_hf / t_shared:>5.2f}x"
        print(f"{name:<18} {n:>8} {speeds} {delta:>11.1e}{greedy}")


if __name__ == "__main__":
    main()
