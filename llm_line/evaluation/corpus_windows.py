"""The token ids a corpus loss scores, from the tokenized documents: the packed stream with its labels (documents
framed by a separator, or by BOS and EOS as lingua trained an export), and the paper's chunks. Its own module:
how documents are laid out decides which tokens are predicted, apart from how the model scores them
(`llm_line.evaluation.corpus_scoring`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from llm_line.errors import CellError
from llm_line.evaluation.config import ModelConfig, export_meta
from llm_line.evaluation.corpus_tokens import Documents


def pack(docs: Documents, separator_id: int) -> torch.Tensor:
    """The token stream S d1 S d2 ... dn S as int64."""
    return frame(docs, None, separator_id)[0]


IGNORE = -100  # a label cross-entropy skips: a token that is context only, never predicted


def frame(docs: Documents, bos_id: int | None, eos_id: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(the token stream, its labels) with every document framed as `[BOS] d [EOS]`, as lingua trains
    (`add_bos`, `add_eos`); without a BOS the stream opens with the EOS the first document is predicted after
    (`pack`'s S d1 S ... dn S). Labels are the stream with each BOS set to IGNORE: a document's BOS is context,
    so every document token and every EOS is predicted exactly once, and nothing else."""
    if bos_id is None and eos_id is None:
        raise CellError("documents framed with neither BOS nor EOS run into each other; set task.corpus.separator")
    bos, eos = int(bos_id is not None), int(eos_id is not None)
    lead = 1 - bos
    per = docs.lengths + bos + eos
    total = lead + int(per.sum())
    stream = np.empty(total, dtype=np.int64)
    is_token = np.ones(total, dtype=bool)
    starts = lead + np.concatenate([[0], np.cumsum(per)[:-1]])  # each document's first position (its BOS)
    if bos_id is None:  # the leading EOS; one of the two is set (checked above)
        assert eos_id is not None
        stream[0], is_token[0] = eos_id, False
    if eos_id is not None:
        ends = starts + per - 1
        stream[ends], is_token[ends] = eos_id, False
    if bos_id is not None:
        stream[starts], is_token[starts] = bos_id, False
    stream[is_token] = docs.tokens
    labels = stream.copy()
    if bos_id is not None:
        labels[starts] = IGNORE
    return torch.from_numpy(stream), torch.from_numpy(labels)


def lingua_framing(model: ModelConfig, tokenizer: Any) -> tuple[int | None, int | None] | None:
    """(BOS id or None, EOS id or None) a lingua export was trained with, from the `add_bos` / `add_eos` its
    llm_line.json records; None for any other model (or an export written before those fields)."""
    add_bos, add_eos = (export_meta(model.path, key) for key in ("add_bos", "add_eos"))
    if add_bos is None or add_eos is None:
        return None
    ids = (tokenizer.bos_token_id if add_bos else None, tokenizer.eos_token_id if add_eos else None)
    for wanted, name, token_id in ((add_bos, "BOS", ids[0]), (add_eos, "EOS", ids[1])):
        if wanted and token_id is None:
            raise CellError(f"the export {model.path} was trained with {name} but its tokenizer has none; re-export it")
    return ids


def resolve_separator(separator: str, tokenizer: Any) -> tuple[str, int]:
    """(eos or bos, its token id). auto: bos if the tokenizer puts a BOS before text by itself, else eos."""
    if separator == "auto":
        bos = tokenizer.bos_token_id
        adds_bos = bos is not None and tokenizer("a", add_special_tokens=True)["input_ids"][:1] == [bos]
        separator = "bos" if adds_bos else "eos"
    if separator not in ("eos", "bos"):
        raise CellError(f"task.corpus.separator must be eos, bos or auto, not {separator!r}")
    token_id = tokenizer.eos_token_id if separator == "eos" else tokenizer.bos_token_id
    if token_id is None:
        raise CellError(f"the tokenizer has no {separator.upper()} token; set task.corpus.separator to the other one")
    return separator, int(token_id)


def special_tokens(tokenizer: Any) -> tuple[list[int], list[int]]:
    """(ids the tokenizer puts before a text, ids it puts after it) when it adds special tokens (BOS, EOS)."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a")["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return full[:start], full[start + len(plain) :]
    raise CellError(
        f"cannot tell the special tokens {type(tokenizer).__name__} adds around a text; use task.corpus.method=packed"
    )


def paper_chunks(
    docs: Documents, prefix: list[int], suffix: list[int], max_length: int, chunk_length: int
) -> torch.Tensor:
    """The chunks of the original protocol, one per row, right-padded with -1 to `chunk_length`.

    A document is `prefix + tokens + suffix` truncated to `max_length` as the tokenizer truncates (the text's
    tokens are cut, the special tokens kept); chunks start every `chunk_length` ids while more than one id
    remains, and chunks shorter than 2 are dropped.
    """
    keep = max_length - len(prefix) - len(suffix)
    if keep < 1 or chunk_length < 2:
        raise CellError(
            f"chunks need context_length ({max_length}) above the tokenizer's {len(prefix) + len(suffix)} "
            f"special tokens and chunk_length ({chunk_length}) of at least 2"
        )
    rows = []
    before, after = np.asarray(prefix, dtype=np.int64), np.asarray(suffix, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(docs.lengths)[:-1]])
    for start, length in zip(starts, docs.lengths, strict=False):
        ids = np.concatenate([before, docs.tokens[start : start + min(int(length), keep)].astype(np.int64), after])
        rows += [
            ids[i : i + chunk_length]
            for i in range(0, len(ids) - 1, chunk_length)
            if len(ids[i : i + chunk_length]) >= 2
        ]
    chunks = np.full((len(rows), chunk_length), -1, dtype=np.int64)
    for row, ids in enumerate(rows):
        chunks[row, : len(ids)] = ids
    return torch.from_numpy(chunks)
