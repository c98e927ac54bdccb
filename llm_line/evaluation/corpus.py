"""Validation loss on a pretraining corpus: documents packed into full context windows, every token scored once.

The method (the x-axis of loss-to-loss scaling laws; `task.corpus.method: packed`, the default):

1. Documents are read in a deterministic order (a local jsonl / jsonl.gz / jsonl.zst / parquet file or glob, or
   a Hugging Face dataset, optionally shuffled with a seed) and selected: the first `max_documents`, stopping
   once `max_tokens` tokens are reached (whole documents).
2. Each document is tokenized with the model's own tokenizer, without special tokens. Documents with no tokens
   (empty text) are skipped and counted as `empty_documents`.
3. The token stream is `S d1 S d2 S ... dn S`, S the separator: the model's EOS (how GPT-NeoX / Pythia were
   trained) or BOS (Llama-style tokenizers that add a BOS themselves; `separator: auto` picks by that). A lingua
   export with `separator: auto` is framed as lingua trained it, `BOS d1 EOS BOS d2 EOS ...` (its llm_line.json's
   `add_bos` / `add_eos`), each BOS context only, never predicted.
4. The stream is cut into windows of `context_length` input tokens, each predicting the next `context_length`
   tokens; consecutive windows share one boundary token, so every token after the first S is predicted
   exactly once: every document token and the S that ends each document. Within a window documents attend to
   earlier documents, as in packed pretraining. The last window is shorter.
5. loss = total NLL / predicted tokens (nats); bpb = total NLL / (ln 2 * UTF-8 bytes of the documents).

`task.corpus.method: chunks` is the protocol of the paper's original code, whose numbers fill its released
table: each document is tokenized as `tokenizer(text, truncation=True, max_length=L)` (special tokens as the
tokenizer adds them, L = context_length), its ids cut into consecutive chunks of `chunk_length` tokens
starting at 0, `chunk_length`, ... (while more than one token remains), chunks shorter than 2 dropped, and
every chunk scored on its own: tokens 2..k of a chunk predicted from the chunk only. loss = total NLL /
predicted tokens. Bits per byte is not reported: the first token of every chunk and everything past L is
never predicted, so no byte count matches the NLL. Steps 1-2 (selection, cached tokens) are shared.

The parts: reading, selecting and tokenizing the documents, cached (`llm_line.evaluation.corpus_tokens`); the
stream or chunks they become (`llm_line.evaluation.corpus_windows`); the model's NLL on them
(`llm_line.evaluation.corpus_scoring`). This module is the cell: it runs them for one model and one corpus
and says what the result records.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from llm_line.errors import CellError
from llm_line.evaluation.config import ModelConfig, TaskConfig
from llm_line.evaluation.corpus_scoring import check_head, chunks_loss, packed_loss
from llm_line.evaluation.corpus_tokens import cached_documents, selection, source_fingerprint, tokenizer_fingerprint
from llm_line.evaluation.corpus_windows import frame, lingua_framing, paper_chunks, resolve_separator, special_tokens
from llm_line.evaluation.harness import load_model

log = logging.getLogger(__name__)

CHUNKS = (
    "each document truncated to context_length tokens (special tokens as the tokenizer adds them), cut "
    "into consecutive chunks of chunk_length tokens, each chunk scored on its own (the paper's original code)"
)
PACKING = (
    "documents joined as S d1 S d2 ... dn S (S = separator); non-overlapping windows of context_length "
    "inputs, every token after the first S predicted once; causal attention across documents in a window"
)
LINGUA_PACKING = (
    "documents framed as lingua trained the export (llm_line.json add_bos/add_eos: BOS d EOS), joined; "
    "non-overlapping windows of context_length inputs, every document token and EOS predicted once, BOS "
    "context only; causal attention across documents in a window"
)


METHODS = ("packed", "chunks")


def evaluate(model_cfg: ModelConfig, task: TaskConfig, cache_dir: str) -> dict[str, Any]:
    """The validation loss of one model on one corpus: metrics, and what the result records about the run."""
    corpus = task.corpus
    assert corpus is not None  # cell.compute sends only corpus tasks here
    if corpus.method not in METHODS:
        raise CellError(f"task.corpus.method must be one of {', '.join(METHODS)}, not {corpus.method!r}")
    loaded = load_model(model_cfg)
    model, tokenizer = loaded.lm.model, loaded.lm.tokenizer
    context_length = corpus.context_length or loaded.lm.max_length
    if corpus.context_length and corpus.context_length > loaded.lm.max_length:  # positions it never learned
        raise CellError(
            f"task.corpus.context_length={corpus.context_length} is longer than the model's context "
            f"({loaded.lm.max_length} tokens); use {loaded.lm.max_length} or less, or null for the "
            "model's own"
        )

    docs, cache = cached_documents(corpus, task.limit, tokenizer, Path(cache_dir))
    model.eval()
    framing = lingua_framing(model_cfg, tokenizer) if corpus.method == "packed" and corpus.separator == "auto" else None
    if corpus.method == "packed":
        if framing is not None:  # BOS ... EOS per document, as lingua trained the export
            bos_id, separator_id = framing
            separator = "lingua:" + "+".join(
                name for name, i in (("bos", bos_id), ("eos", separator_id)) if i is not None
            )
            stream, labels = frame(docs, bos_id, separator_id)
        else:
            separator, separator_id = resolve_separator(corpus.separator, tokenizer)
            stream, labels = frame(docs, None, separator_id)
        check_head(model, stream, loaded.device)
        out = packed_loss(model, stream, context_length, corpus.batch_size, loaded.device, labels)
        nbytes = int(docs.nbytes.sum())
        method = {
            "bpb": out["nll"] / (math.log(2) * nbytes),
            "bytes": nbytes,
            "separator": separator,
            "separator_token_id": separator_id,
        }
    else:
        prefix, suffix = special_tokens(tokenizer)
        chunks = paper_chunks(docs, prefix, suffix, context_length, corpus.chunk_length)
        check_head(model, chunks[0][chunks[0] >= 0], loaded.device)
        per_batch = corpus.batch_size * max(1, context_length // corpus.chunk_length)  # batch_size windows' tokens
        out = chunks_loss(model, chunks, per_batch, loaded.device)
        method = {"chunk_length": corpus.chunk_length, "special_tokens": len(prefix) + len(suffix)}
    log.info(
        "%s: %d tokens in %d %s, %.1f s (%.0f tokens/s)",
        task.display,
        out["tokens"],
        out["windows"],
        "windows" if corpus.method == "packed" else "chunks",
        out["seconds"],
        out["tokens"] / out["seconds"],
    )
    metrics = {
        "loss": out["nll"] / out["tokens"],
        "nll": out["nll"],
        "tokens": out["tokens"],
        **method,
        "documents": docs.count,
        "empty_documents": docs.empty,
        "n_docs": docs.count,
        "windows": out["windows"],
        "context_length": context_length,
        "packing": corpus.method,
        "tokens_per_s": out["tokens"] / out["seconds"],
        "forward_s": round(out["seconds"], 3),
    }
    details = {
        "method": (LINGUA_PACKING if framing else PACKING) if corpus.method == "packed" else CHUNKS,
        "source": source_fingerprint(corpus),
        "selection": selection(corpus, task.limit),
        "tokenizer_sha256": tokenizer_fingerprint(tokenizer),
        "context_length_from": "task.corpus.context_length" if corpus.context_length else "model",
        "cache": cache,
    }
    return {"metrics": metrics, "details": details, "model": {**loaded.info(), "batch_size": corpus.batch_size}}
