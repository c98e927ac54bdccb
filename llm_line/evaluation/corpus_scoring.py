"""Scoring windows with a model: the summed NLL of packed windows or of the paper's chunks, and the check that
the model's logits are its output head on its base's hidden states. Its own module: the forward passes and
their memory bound, apart from which tokens are laid out (`llm_line.evaluation.corpus_windows`).

Batches of windows run through the model's base (transformer) with no KV cache; the output head and the
cross-entropy run on chunks of at most `LOGITS_BYTES` of fp32 logits, so the batch x vocabulary logits are
never held in fp32 at once. NLL is accumulated on the device in float64 and read once at the end.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from llm_line.errors import CellError
from llm_line.evaluation.corpus_windows import IGNORE

if TYPE_CHECKING:
    from transformers import PreTrainedModel

LOGITS_BYTES = 1 << 30  # at most this much fp32 logits at once (per chunk of tokens)


def split_model(model: PreTrainedModel) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(the base model giving the final hidden states, the output head mapping them to logits)."""
    base, head = model.base_model, model.get_output_embeddings()
    if base is model or head is None:
        raise CellError(f"{type(model).__name__} has no separate base model and output head; corpus loss needs both")
    return base, head


def check_head(model: PreTrainedModel, stream: torch.Tensor, device: str) -> None:
    """Fail if the model's logits are not its head applied to its base's hidden states (e.g. logit soft-capping)."""
    base, head = split_model(model)
    sample = stream[: min(len(stream), 33)][None].to(device)
    with torch.inference_mode():
        full = model(input_ids=sample, use_cache=False).logits.float().log_softmax(-1)
        ours = head(base(input_ids=sample, use_cache=False)[0]).float().log_softmax(-1)
    tolerance = 1e-3 if next(model.parameters()).dtype == torch.float32 else 5e-2
    diff = (full - ours).abs().max().item()
    if diff > tolerance:
        raise CellError(
            f"{type(model).__name__}'s logits differ from its output head on its hidden states "
            f"(max |diff| {diff:.3g}): it post-processes logits, which corpus loss does not support"
        )


def window_nll(
    base: torch.nn.Module, head: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """Summed NLL (float64, on the device) of `targets` given `inputs`, both (batch, tokens)."""
    hidden = base(input_ids=inputs, use_cache=False)[0]
    hidden = hidden.reshape(-1, hidden.shape[-1])
    targets = targets.reshape(-1)
    chunk = max(1, LOGITS_BYTES // (4 * cast(torch.Tensor, head.weight).shape[0]))
    total = torch.zeros((), dtype=torch.float64, device=hidden.device)
    for start in range(0, len(targets), chunk):
        logits = head(hidden[start : start + chunk]).float()
        total += F.cross_entropy(logits, targets[start : start + chunk], reduction="sum").double()
    return total


def packed_loss(
    model: PreTrainedModel,
    stream: torch.Tensor,
    context_length: int,
    batch_size: int,
    device: str,
    labels: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Total NLL of `stream[1:]` given what precedes each token within its window of `context_length` inputs;
    with `labels` (`frame`), of the positions whose label is not IGNORE."""
    if context_length < 1 or batch_size < 1:
        raise CellError(f"context_length ({context_length}) and batch_size ({batch_size}) must be positive")
    base, head = split_model(model)
    labels = stream if labels is None else labels
    predicted = len(stream) - 1
    full = predicted // context_length
    n = full * context_length
    inputs, targets = stream[:n].view(full, context_length), labels[1 : n + 1].view(full, context_length)
    cuda = torch.device(device).type == "cuda"
    if cuda:
        inputs, targets = inputs.pin_memory(), targets.pin_memory()
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    total = torch.zeros((), dtype=torch.float64, device=device)
    with torch.inference_mode():
        for i in tqdm(range(0, full, batch_size), unit="batch", desc="Scoring", disable=None):
            total += window_nll(
                base,
                head,
                inputs[i : i + batch_size].to(device, non_blocking=True),
                targets[i : i + batch_size].to(device, non_blocking=True),
            )
        if n < predicted:  # the last, shorter window
            total += window_nll(base, head, stream[n:predicted][None].to(device), labels[n + 1 :][None].to(device))
    nll = total.item()  # the one synchronisation
    seconds = time.perf_counter() - started
    scored = int((labels[1:] != IGNORE).sum())
    return {"nll": nll, "tokens": scored, "windows": full + (n < predicted), "seconds": seconds}


def chunks_loss(model: PreTrainedModel, chunks: torch.Tensor, batch_size: int, device: str) -> dict[str, Any]:
    """Total NLL of tokens 2..k of every chunk given the tokens before them in that chunk only.

    Padding sits at the end of a row and attention is causal, so it changes no scored position; its targets
    are -100, which cross-entropy ignores.
    """
    base, head = split_model(model)
    inputs = chunks[:, :-1].clamp(min=0)
    targets = chunks[:, 1:].masked_fill(chunks[:, 1:] < 0, -100)
    started = time.perf_counter()
    total = torch.zeros((), dtype=torch.float64, device=device)
    with torch.inference_mode():
        for i in tqdm(range(0, len(chunks), batch_size), unit="batch", desc="Scoring", disable=None):
            total += window_nll(
                base, head, inputs[i : i + batch_size].to(device), targets[i : i + batch_size].to(device)
            )
    nll = total.item()
    seconds = time.perf_counter() - started
    return {"nll": nll, "tokens": int((targets >= 0).sum()), "windows": len(chunks), "seconds": seconds}
