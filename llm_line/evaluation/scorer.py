"""Multiple-choice scoring that encodes a shared context once: lm-eval's HF model, `model.backend=hf-shared`.

lm-eval's `HFLM._loglikelihood_tokens` runs every request's whole context again and applies the LM head and a
log-softmax over the vocabulary at every position; only the positions that predict continuation tokens are used.
`SharedPrefixLM` is an `HFLM` whose loglikelihood path instead

- finds requests that share a token prefix (a question's context with its few-shot examples, a task's fixed
  few-shot block; found as common prefixes of the tokenized requests, never per task) and encodes each prefix
  once: a forward row holds the prefix and then several continuations, each attending to the prefix's keys and
  values and to itself only (a block mask) at explicit position ids that continue from the prefix, so rotary and
  absolute positions are those of the unpadded text. (Repeating the prefix's `DynamicCache` for each
  continuation was measured slower than HFLM on CPU: the cache copies cost more than the matmuls they saved.)
- applies the LM head and a float32 log-softmax only where a continuation token is predicted;
- fills batches to a token budget (requests sorted by length) rather than a fixed number of rows: the batch size
  times the longest request, which is what lm-eval's own batches of that size hold; `batch_size=auto` probes it
  once per sequence length and model shape for the life of the process (`_probed`).

Everything else stays lm-eval's: the tokenization (`TemplateLM.loglikelihood` encodes each pair with
`_encode_pair` before this path sees it), the left truncation to the model's window, tasks, filters, metrics.
The numbers equal `HFLM`'s (tests/test_scorer.py: within 1e-4 in float32, `is_greedy` identical). A model it
cannot serve (not a causal LM of an architecture listed in `SERVED`, a PEFT adapter, attention other than
sdpa/eager) and rolling-window requests (corpus perplexity tasks) take lm-eval's own path; the former is
logged once when the model loads.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from tqdm import tqdm
from transformers import PreTrainedModel

from llm_line.evaluation import compat

log = logging.getLogger(__name__)

NAME = "hf-shared"
# Architectures whose causal-LM logits are exactly `get_output_embeddings()(base_model(...).last_hidden_state)`
# and whose attention takes a KV cache with a padding mask and explicit position ids; each is checked against
# HFLM in tests/test_scorer.py. Others (Mamba, soft-capped logits, sliding windows, ...) fall back to HFLM.
SERVED = frozenset({"gpt_neox", "llama", "qwen2", "gpt2"})

Request = tuple[Any, list[int], list[int]]  # (request strings or None, context tokens, continuation tokens)


@dataclass
class Row:
    """One distinct model input (`(context + continuation)[-(max_length + 1):][:-1]`) and the requests it scores."""

    tokens: np.ndarray
    first_scored: int  # the earliest position whose logits one of its requests reads
    requests: list[int] = field(default_factory=list)


@dataclass
class Group:
    """Rows that share their first `prefix` tokens: those are encoded once, the rest of each row after them."""

    prefix: int
    rows: list[Row]


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    """Length of the longest common prefix of two token arrays."""
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if len(differ) else n


def group_rows(rows: list[Row]) -> list[Group]:
    """Rows sorted as token sequences, cut into runs that share a prefix where sharing saves computation.

    A run's shared prefix is the smallest common prefix of neighbours in it, capped at each row's first scored
    position (logits are only taken after the prefix). A row joins the run before it when the tokens it saves
    outweigh what the run loses by shrinking its prefix, and unless it shares much more (over twice as much)
    with the row after it, which then start a run of their own.
    """
    rows = sorted(rows, key=lambda r: r.tokens.tolist())
    if not rows:
        return []
    after = [common_prefix(a.tokens, b.tokens) for a, b in zip(rows, rows[1:], strict=False)] + [0]
    groups = [Group(rows[0].first_scored, [rows[0]])]
    for i, row in enumerate(rows[1:], start=1):
        current = groups[-1]
        shared = min(current.prefix, after[i - 1], row.first_scored)
        lost = (current.prefix - shared) * (len(current.rows) - 1)
        if shared > 0 and shared > lost and after[i] <= 2 * shared:
            current.prefix = shared
            current.rows.append(row)
        else:
            groups.append(Group(row.first_scored, [row]))
    return groups


@dataclass
class Pack:
    """One row of a forward pass: a group's prefix followed by several of its rows' suffixes, side by side.

    Each suffix attends to the prefix and to itself only (a block mask) and its positions continue from the
    prefix, so every suffix sees exactly what it would see after its own copy of the prefix: the prefix's keys
    and values are computed once and read by every suffix, with no cache copied per continuation.
    """

    prefix: int
    rows: list[Row]

    @property
    def length(self) -> int:
        return self.prefix + sum(len(r.tokens) - self.prefix for r in self.rows)


def packs(groups: list[Group], width: int) -> list[Pack]:
    """Each group's rows, longest first, in packs of at most `width` tokens (a row longer than that alone)."""
    out = []
    for group in groups:
        current = Pack(group.prefix, [])
        for row in sorted(group.rows, key=lambda r: -len(r.tokens)):
            if current.rows and current.length + len(row.tokens) - group.prefix > width:
                out.append(current)
                current = Pack(group.prefix, [])
            current.rows.append(row)
        out.append(current)
    return out


def batches(packs: list[Pack], budget: int) -> list[list[Pack]]:
    """Packs, longest first (an out-of-memory error shows at once, as in lm-eval), in forward passes of at most
    `budget` tokens counted with padding (a pack longer than the budget gets a pass of its own)."""
    out: list[list[Pack]] = []
    for pack in sorted(packs, key=lambda p: -p.length):
        if out and (len(out[-1]) + 1) * out[-1][0].length <= budget:
            out[-1].append(pack)
        else:
            out.append([pack])
    return out


class Scorer:
    """The shared-prefix forward passes of one causal LM: `score` returns `(loglikelihood, is_greedy)` per request."""

    def __init__(self, model: PreTrainedModel, device: torch.device, autocast: torch.dtype | None = None):
        self.model = model
        self.base: torch.nn.Module = model.base_model
        self.head: torch.nn.Linear = model.get_output_embeddings()
        self.device = device
        self.autocast = autocast
        self.additive_mask = model.config._attn_implementation == "eager"  # sdpa takes a boolean mask

    def score(
        self, requests: Sequence[Request], max_length: int, budget: int, progress: tqdm | None = None
    ) -> list[tuple[float, bool]]:
        """Score `(request, context ids, continuation ids)` triples as HFLM does, in passes of `budget` tokens."""
        rows: dict[bytes, Row] = {}
        targets: list[np.ndarray] = []
        starts: list[int] = []
        truncated = 0
        for i, (_, context, continuation) in enumerate(requests):
            assert len(context) > 0 and len(continuation) > 0 and len(continuation) <= max_length
            truncated += len(context) + len(continuation) > max_length + 1
            window = np.asarray((context + continuation)[-(max_length + 1) :], dtype=np.int64)
            tokens = window[:-1]
            first = len(tokens) - len(continuation)
            row = rows.setdefault(tokens.tobytes(), Row(tokens, first))
            row.first_scored = min(row.first_scored, first)
            row.requests.append(i)
            targets.append(window[-len(continuation) :])
            starts.append(first)
        if truncated:
            log.warning(
                "%d requests are longer than the model's window (%d tokens): truncated from the left as lm-eval "
                "truncates them",
                truncated,
                max_length,
            )
        # A pack holds up to four of the longest rows (within the window and the budget): enough to share most
        # of a prefix, while the masked-out part of its attention stays small.
        longest = max(len(row.tokens) for row in rows.values())
        width = max(longest, min(4 * longest, max_length, budget))
        results: list[tuple[float, bool]] = [(0.0, False)] * len(requests)
        with (
            torch.no_grad(),
            torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None),
        ):
            for batch in batches(packs(group_rows(list(rows.values())), width), budget):
                for i, answer in self.forward(batch, targets, starts):
                    results[i] = answer
                    if progress is not None:
                        progress.update(1)
        return results

    def forward(
        self, batch: list[Pack], targets: list[np.ndarray], starts: list[int]
    ) -> list[tuple[int, tuple[float, bool]]]:
        """One pass over right-padded packs; the head and log-softmax only where continuation tokens are predicted."""
        width = batch[0].length
        ids = np.zeros((len(batch), width), dtype=np.int64)
        positions = np.zeros_like(ids)
        segments = np.full_like(ids, -1)  # 0: the prefix, s: the s-th suffix, -1: padding
        scored = []  # (row, pack index, first and end position of its scored tokens)
        for b, pack in enumerate(batch):
            k = pack.prefix
            ids[b, :k], positions[b, :k], segments[b, :k] = pack.rows[0].tokens[:k], np.arange(k), 0
            offset = k
            for s, row in enumerate(pack.rows, start=1):
                n = len(row.tokens) - k
                end = offset + n
                ids[b, offset:end], positions[b, offset:end], segments[b, offset:end] = (
                    row.tokens[k:],
                    np.arange(k, k + n),
                    s,
                )
                scored.append((row, b, offset + row.first_scored - k, end))
                offset = end
        segment = torch.from_numpy(segments).to(self.device)
        causal = torch.ones(width, width, dtype=torch.bool, device=self.device).tril()
        allowed = causal & ((segment[:, :, None] == segment[:, None, :]) | (segment[:, None, :] == 0))
        mask = allowed[:, None]  # a padding position attends to itself, so no row is empty
        if self.additive_mask:
            dtype = self.head.weight.dtype
            mask = torch.zeros(mask.shape, dtype=dtype, device=self.device).masked_fill(~mask, torch.finfo(dtype).min)
        hidden = self.base(
            input_ids=torch.from_numpy(ids).to(self.device),
            attention_mask=mask,
            position_ids=torch.from_numpy(positions).to(self.device),
            use_cache=False,
        ).last_hidden_state
        at_pack = np.concatenate([np.full(end - first, b) for _, b, first, end in scored])
        at_position = np.concatenate([np.arange(first, end) for _, _, first, end in scored])
        picked = hidden[torch.from_numpy(at_pack).to(self.device), torch.from_numpy(at_position).to(self.device)]
        logprobs = F.log_softmax(self.head(picked), dim=-1, dtype=torch.float32)
        greedy = logprobs.argmax(dim=-1).cpu().numpy()
        out = []
        offset = 0
        for row, _, first, end in scored:
            for i in row.requests:
                begin = offset + starts[i] - row.first_scored
                target = targets[i]
                where = slice(begin, begin + len(target))
                index = torch.from_numpy(target).to(self.device).unsqueeze(1)
                loglikelihood = float(logprobs[where].gather(1, index).sum())
                out.append((i, (loglikelihood, bool((greedy[where] == target).all()))))
            offset += end - first
        return out


def unservable(lm: HFLM) -> str | None:
    """Why the shared-prefix path cannot score this model (it then takes HFLM's path), or None."""
    if lm.backend != "causal":
        return f"a {lm.backend} model"
    if getattr(lm.model, "peft_config", None) is not None:
        return "a PEFT adapter"
    model_type = getattr(lm.model.config, "model_type", None)
    if model_type not in SERVED:
        return f"architecture {model_type!r} (served: {', '.join(sorted(SERVED))})"
    if lm.model.get_output_embeddings() is None:
        return "no output embeddings"
    if lm.model.config._attn_implementation not in ("sdpa", "eager"):
        return f"attention {lm.model.config._attn_implementation!r} (served: sdpa, eager), which takes no block mask"
    return None


# Batch sizes `auto` found, per model shape and longest sequence length, for the life of the process. How many
# rows fit depends on what `HFLM._detect_batch_size` runs (the architecture and its sizes, dtype, device, the
# starting batch size, the softmax dtype) and not on the weights, so a pack over one model's revisions probes
# each length once instead of once per revision (bench/sweep.py --startup --probe).
_probed: dict[tuple[str, int], int] = {}


def shape_key(lm: HFLM) -> str:
    """What a batch-size probe of `lm` depends on: its config without the fields that name a checkpoint."""
    config = {
        key: value
        for key, value in lm.model.config.to_dict().items()
        if not key.startswith("_") and key not in ("transformers_version", "name_or_path")
    }
    parts = [type(lm.model).__name__, config, str(lm.model.dtype), str(lm.device), lm.max_batch_size]
    parts += [str(lm.softmax_dtype), str(lm.mixed_precision_dtype), lm.world_size]
    return json.dumps(parts, sort_keys=True, default=str)


@register_model(NAME)
class SharedPrefixLM(HFLM):
    """lm-eval's HF model with the shared-prefix loglikelihood path (module docstring); the rest is HFLM's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fallback = unservable(self)
        if self.fallback:
            log.warning("%s cannot serve %s: scoring with lm-eval's own HF path (backend hf)", NAME, self.fallback)
            self.scorer = None
        else:
            self.scorer = Scorer(self.model, torch.device(self.device), self.mixed_precision_dtype)

    @property
    def scored_by(self) -> str:
        """The backend whose path scores loglikelihoods: `hf-shared`, or `hf` after a fallback."""
        return "hf" if self.scorer is None else NAME

    def _loglikelihood_tokens(
        self, requests: list[Request], disable_tqdm: bool = False, override_bs: int | None = None
    ) -> list[tuple[float, bool]]:
        if self.scorer is None or override_bs is not None:  # rolling windows come with their own batch size
            return compat.hflm_loglikelihood_tokens(self, requests, disable_tqdm, override_bs)
        if not requests:
            return []
        lengths = [
            min(len(context) + len(continuation), self.max_length + 1) - 1 for _, context, continuation in requests
        ]
        longest = int(np.argmax(lengths))
        length = lengths[longest]
        progress = tqdm(
            total=len(requests), disable=disable_tqdm or self.rank != 0, desc="Running loglikelihood requests"
        )
        answers = self.scorer.score(requests, self.max_length, self.rows(requests, longest, length) * length, progress)
        progress.close()
        for (request, _, _), answer in zip(requests, answers, strict=True):
            if request is not None:
                self.cache_hook.add_partial("loglikelihood", request, answer)
        return answers

    def rows(self, requests: list[Request], longest: int, length: int) -> int:
        """Rows of the longest request a batch may hold: the batch size, or the one `auto` found for this length
        on a model of this shape (`_probed`)."""
        if self.batch_size != "auto" and not str(self.batch_size).startswith("auto"):
            return int(self.batch_size)
        key = (shape_key(self), length)
        if key not in _probed:
            _probed[key] = compat.detect_batch_size(self, requests, longest)
            log.info("batch_size=auto: %d rows of %d tokens", _probed[key], length)
        return _probed[key]


def backend_name(lm: Any) -> str:
    """The lm-eval backend that scored a cell's loglikelihoods (`result["model"]["backend"]`)."""
    if isinstance(lm, SharedPrefixLM):
        return lm.scored_by
    if isinstance(lm, HFLM):
        return "hf"
    return type(lm).__name__
