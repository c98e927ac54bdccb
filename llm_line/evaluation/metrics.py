"""The metrics of a cell, from lm-eval's own output: its scores as they are, plus the correct answer's loss.

lm-eval already scores accuracy (acc, acc_norm and their stderr); those numbers are copied unchanged.
What it does not report is the loss of the *correct* answer, the y-axis of loss-to-loss scaling laws. It
is computed here from lm-eval's per-document samples, the same way for every task (no per-task code):

- the gold choice is found exactly as lm-eval's `ConfigurableTask.process_results` finds it;
- its log-likelihood is lm-eval's own (`filtered_resps`), so the loss is the one lm-eval scored;
- its token count is the one lm-eval's tokenisation gives the continuation in context, and its bytes are
  those of the text lm-eval scored (a context's trailing space moves into the continuation).

Per document: `nll` (summed over the answer's tokens, nats), `loss` = nll / tokens, `nll_per_byte` =
nll / UTF-8 bytes of the scored answer (leading space included) and `bpb` = nll / (ln 2 * bytes). Each is
averaged over documents; a group (mmlu, its categories) averages over all documents of its leaf tasks, i.e.
weighted by sample count.

`loss_paper` is the same NLL in the convention of the paper's released table (its original `main.py`):
nll / max(1, len(tokenizer.encode(answer)) - 1), the answer tokenized alone and one token taken off for a BOS
that GPT-NeoX and GPT-2 tokenizers never add. It equals `loss` for one-token answers and is higher for longer
ones; use it to extend or compare with the released table (docs/conventions.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


class Tokenization(Protocol):
    """How the model's tokenizer split an answer (llm_line.evaluation.harness.LoadedModel implements it)."""

    def scored_answer(self, context: str, continuation: str) -> tuple[str, int]:
        """(the text lm-eval scored as the continuation, its tokens)."""

    def paper_tokens(self, continuation: str) -> int:
        """Tokens of the continuation encoded alone, as the paper's original code counted them."""


@dataclass(frozen=True)
class AnswerLoss:
    """The correct answer of one document: its negative log-likelihood, tokens and bytes."""

    nll: float
    tokens: int  # scored in context
    bytes: int  # UTF-8 bytes of the scored text
    paper_tokens: int  # the answer encoded alone (the released table's divisor is this minus one)


def gold_index(task: Any, doc: dict) -> int:
    """Index of the correct choice, decided as lm-eval's `process_results` decides it.

    Multiple-input tasks (winogrande) put the gold index in `doc_to_text`; others in `doc_to_target`,
    either as an index or as the text of the choice. Tasks with several gold answers use the first.
    """
    if task.OUTPUT_TYPE == "loglikelihood":
        return 0
    gold = task.doc_to_text(doc) if task.multiple_input else task.doc_to_target(doc)
    if isinstance(gold, list):
        gold = gold[0]
    if isinstance(gold, str):
        gold = task.doc_to_choice(doc).index(gold)
    return int(gold)


def answer_losses(task: Any, samples: Iterable[dict], tokenization: Tokenization) -> list[AnswerLoss]:
    """The correct answer's loss for every document lm-eval scored for `task`."""
    if task.OUTPUT_TYPE not in ("multiple_choice", "loglikelihood"):
        return []
    losses = []
    for sample in samples:
        gold = gold_index(task, sample["doc"])
        context, continuation = sample["arguments"][gold][:2]
        loglikelihood = float(sample["filtered_resps"][gold][0])
        scored, tokens = tokenization.scored_answer(context, continuation)
        losses.append(
            AnswerLoss(
                nll=-loglikelihood,
                tokens=tokens,
                bytes=len(scored.encode("utf-8")),
                paper_tokens=tokenization.paper_tokens(continuation),
            )
        )
    return losses


def summarize(losses: list[AnswerLoss]) -> dict[str, float]:
    """Average the per-document losses; stderr as lm-eval computes it for a mean (sample std / sqrt n)."""
    if not losses:
        return {}
    nll = np.array([x.nll for x in losses])
    per_token = nll / np.array([max(x.tokens, 1) for x in losses])
    per_paper_token = nll / np.array([max(1, x.paper_tokens - 1) for x in losses])
    per_byte = nll / np.array([max(x.bytes, 1) for x in losses])
    bpb = per_byte / math.log(2)

    def stderr(values: np.ndarray) -> float:
        return float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else float("nan")

    return {
        "loss": float(per_token.mean()),
        "loss_stderr": stderr(per_token),
        "loss_paper": float(per_paper_token.mean()),
        "loss_paper_stderr": stderr(per_paper_token),
        "nll": float(nll.mean()),
        "nll_per_byte": float(per_byte.mean()),
        "bpb": float(bpb.mean()),
        "bpb_stderr": stderr(bpb),
        "answer_tokens": float(np.mean([x.tokens for x in losses])),
        "answer_bytes": float(np.mean([x.bytes for x in losses])),
    }


def lm_eval_scores(entry: dict[str, Any]) -> dict[str, float]:
    """lm-eval's numbers for one task or group, keys without the filter suffix (`acc,none` -> `acc`)."""
    scores = {}
    for key, value in entry.items():
        if "," not in key or not isinstance(value, (int, float)):
            continue
        metric, filter_name = key.split(",", 1)
        scores[metric if filter_name == "none" else f"{metric}_{filter_name}"] = float(value)
    return scores


def leaves(name: str, group_map: dict[str, list[str]]) -> list[str]:
    """All leaf tasks below `name` (itself if it is a task)."""
    if name not in group_map:
        return [name]
    return [leaf for child in group_map[name] for leaf in leaves(child, group_map)]


def cell_metrics(
    results: dict[str, Any],
    tasks: dict[str, Any],
    group_map: dict[str, list[str]],
    tokenization: Tokenization,
) -> dict[str, dict[str, float]]:
    """Metrics of every task and group in an lm-eval run: lm-eval's scores, answer losses, doc counts."""
    per_task = {name: answer_losses(task, results["samples"][name], tokenization) for name, task in tasks.items()}
    metrics = {}
    for name, entry in results["results"].items():
        losses = [loss for leaf in leaves(name, group_map) for loss in per_task.get(leaf, [])]
        n_docs = sum(results["n-samples"][leaf]["effective"] for leaf in leaves(name, group_map))
        metrics[name] = {**lm_eval_scores(entry), **summarize(losses), "n_docs": n_docs}
    return metrics
