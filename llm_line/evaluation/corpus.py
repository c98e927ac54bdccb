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

Batches of windows run through the model's base (transformer) with no KV cache; the output head and the
cross-entropy run on chunks of at most `LOGITS_BYTES` of fp32 logits, so the batch x vocabulary logits are
never held in fp32 at once. NLL is accumulated on the device in float64 and read once at the end.

Tokenizing a corpus is cached under `<cache_dir>/corpus/`, keyed by the tokenizer's content (vocabulary,
merges, normalisation) and the corpus selection, so a sweep over the checkpoints of one model family
tokenizes it once; concurrent jobs wait on a file lock rather than tokenizing it in parallel.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import random
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from llm_line.errors import CellError
from llm_line.evaluation.config import CorpusConfig, ModelConfig, TaskConfig, export_meta
from llm_line.evaluation.documents import read_file, text_value
from llm_line.evaluation.fingerprint import corpus_files as local_files  # the one reading of `path`
from llm_line.evaluation.harness import load_model
from llm_line.files import atomic_file

if TYPE_CHECKING:
    from transformers import PreTrainedModel

log = logging.getLogger(__name__)

CACHE_VERSION = 1  # bump when what a cache file holds, or how it is made, changes
LOGITS_BYTES = 1 << 30  # at most this much fp32 logits at once (per chunk of tokens)
TOKENIZE_BATCH = 256  # documents per tokenizer call (fast tokenizers parallelise within a call)
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


@dataclass
class Documents:
    """The selected documents, tokenized: concatenated token ids and per-document lengths and bytes."""

    tokens: np.ndarray  # uint32, every document's tokens, concatenated
    lengths: np.ndarray  # int64, tokens per document
    nbytes: np.ndarray  # int64, UTF-8 bytes per document
    empty: int  # documents skipped because they have no tokens

    @property
    def count(self) -> int:
        return len(self.lengths)


# --- reading documents -------------------------------------------------------------------------------------------


def read_texts(corpus: CorpusConfig) -> Iterator[str]:
    """The documents' texts, in selection order (after the shuffle, before any limit)."""
    if (corpus.path is None) == (corpus.dataset is None):
        raise CellError("a corpus needs exactly one of task.corpus.path (local files) or task.corpus.dataset (hub)")
    if corpus.path is not None:
        texts: Iterable[str] = itertools.chain.from_iterable(
            read_file(path, corpus.text_field) for path in local_files(corpus.path)
        )
        if corpus.shuffle_seed is not None:  # exact shuffle of the whole local corpus
            texts = list(texts)
            random.Random(corpus.shuffle_seed).shuffle(texts)
        return iter(texts)
    return _read_hub(corpus)


def _read_hub(corpus: CorpusConfig) -> Iterator[str]:
    import datasets

    try:
        data = datasets.load_dataset(
            corpus.dataset,
            corpus.dataset_config,
            split=corpus.split,
            streaming=corpus.streaming,
            revision=corpus.dataset_revision,
            data_files=corpus.data_files,
        )
    except Exception as e:
        raise CellError(
            f"could not load dataset {corpus.dataset} ({corpus.dataset_config}, split {corpus.split}): "
            f"{type(e).__name__}: {e}. Streaming needs the hub; with task.corpus.streaming=false it is "
            "downloaded once and HF_DATASETS_OFFLINE=1 reuses it. Or point task.corpus.path at local files."
        ) from e
    if corpus.shuffle_seed is not None:
        data = (
            data.shuffle(seed=corpus.shuffle_seed, buffer_size=corpus.shuffle_buffer)
            if corpus.streaming
            else data.shuffle(seed=corpus.shuffle_seed)
        )
    for number, row in enumerate(data):
        if corpus.text_field not in row:
            raise CellError(
                f"dataset {corpus.dataset} has no field {corpus.text_field!r} ({sorted(row)}); "
                "set task.corpus.text_field"
            )
        yield text_value(row[corpus.text_field], corpus.dataset, number, corpus.text_field)


# --- selection, tokenization and its cache -----------------------------------------------------------------------


def tokenize(texts: Iterable[str], tokenizer: Any, max_documents: int | None, max_tokens: int | None) -> Documents:
    """Tokenize the first `max_documents` texts, stopping after the document that reaches `max_tokens`."""
    chunks, lengths, nbytes, empty, total, read = [], [], [], 0, 0, 0
    selected = itertools.islice(texts, max_documents)
    progress = tqdm(total=max_documents, unit="doc", desc="Tokenizing", disable=None)  # silent when not a tty
    while max_tokens is None or total < max_tokens:
        batch = list(itertools.islice(selected, TOKENIZE_BATCH))
        if not batch:
            break
        progress.update(len(batch))
        ids = tokenizer(batch, add_special_tokens=False, return_attention_mask=False, verbose=False)["input_ids"]
        for text, doc in zip(batch, ids, strict=False):
            if max_tokens is not None and total >= max_tokens:
                break
            read += 1
            if not doc:
                empty += 1
                continue
            chunks.append(np.asarray(doc, dtype=np.uint32))
            lengths.append(len(doc))
            nbytes.append(len(text.encode("utf-8")))
            total += len(doc)
    progress.close()
    if not lengths:
        raise CellError(f"the corpus selection holds no text ({read} documents read, all empty)")
    return Documents(np.concatenate(chunks), np.asarray(lengths, np.int64), np.asarray(nbytes, np.int64), empty)


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A hash of everything that decides how the tokenizer splits text: model, vocabulary, normalisation."""
    digest = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = json.loads(backend.to_str())
        for key in ("truncation", "padding"):  # set by whoever loaded it; they do not change the split
            state.pop(key, None)
        digest.update(json.dumps(state, sort_keys=True).encode())
    else:  # a slow (Python) tokenizer: its vocabulary and settings
        digest.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
        digest.update(repr(sorted((k, repr(v)) for k, v in tokenizer.init_kwargs.items())).encode())
    return digest.hexdigest()


def source_fingerprint(corpus: CorpusConfig) -> dict[str, Any]:
    """What identifies the documents: local files by path, size and modification time; a dataset by name."""
    if corpus.path is not None:
        return {"files": [[str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns] for f in local_files(corpus.path)]}
    return {k: getattr(corpus, k) for k in ("dataset", "dataset_config", "dataset_revision", "data_files", "split")}


def selection(corpus: CorpusConfig, limit: int | None) -> dict[str, Any]:
    """How documents are chosen: with the source and the tokenizer, this decides the cached tokens."""
    caps = [n for n in (corpus.max_documents, limit) if n is not None]  # task.limit caps the documents
    shuffle = None
    if corpus.shuffle_seed is not None:
        shuffle = f"buffer {corpus.shuffle_buffer}" if corpus.dataset is not None and corpus.streaming else "exact"
    return {
        "text_field": corpus.text_field,
        "max_documents": min(caps) if caps else None,
        "max_tokens": corpus.max_tokens,
        "shuffle_seed": corpus.shuffle_seed,
        "shuffle": shuffle,
    }


def cached_documents(
    corpus: CorpusConfig, limit: int | None, tokenizer: Any, cache_dir: Path
) -> tuple[Documents, dict]:
    """The tokenized selection, from the cache or tokenized now (and cached, atomically, under a lock)."""
    from filelock import FileLock

    key: dict[str, Any] = {
        "version": CACHE_VERSION,
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "source": source_fingerprint(corpus),
        "selection": selection(corpus, limit),
    }
    text = json.dumps(key, sort_keys=True)
    path = Path(cache_dir).expanduser() / "corpus" / f"{hashlib.sha256(text.encode()).hexdigest()[:24]}.npz"
    info = {"file": str(path), "hit": True, "tokenize_s": 0.0}
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        docs = _load(path, text)
        if docs is None:
            info["hit"] = False
            started = time.perf_counter()
            sel = key["selection"]
            docs = tokenize(read_texts(corpus), tokenizer, sel["max_documents"], sel["max_tokens"])
            info["tokenize_s"] = round(time.perf_counter() - started, 3)
            _save(path, text, docs)
            log.info(
                "Tokenized %d documents (%d tokens) in %.1f s -> %s",
                docs.count,
                len(docs.tokens),
                info["tokenize_s"],
                path,
            )
    return docs, info


def _load(path: Path, key: str) -> Documents | None:
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            if str(f["key"]) != key:
                return None
            return Documents(f["tokens"], f["lengths"], f["nbytes"], int(f["empty"]))
    except Exception as e:  # unreadable: tokenize again and replace it
        log.warning("Ignoring unreadable corpus cache %s (%s)", path, e)
        return None


def _save(path: Path, key: str, docs: Documents) -> None:
    with atomic_file(path, "wb") as f:
        np.savez(
            f,
            key=np.array(key),
            tokens=docs.tokens,
            lengths=docs.lengths,
            nbytes=docs.nbytes,
            empty=np.array(docs.empty),
        )


# --- packing and the loss ----------------------------------------------------------------------------------------


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


# --- the cell ----------------------------------------------------------------------------------------------------


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
