"""The corpus a validation loss is computed on, read, selected and tokenized: `Documents`, and its cache. Its own
module because the tokens depend only on the corpus, the selection and the tokenizer, never on the model's
weights: the cache is shared by every checkpoint of a model family, and nothing here needs torch.

Tokenizing a corpus is cached under `<cache_dir>/corpus/`, keyed by the tokenizer's content (vocabulary,
merges, normalisation) and the corpus selection, so a sweep over the checkpoints of one model family
tokenizes it once; concurrent jobs wait on a file lock rather than tokenizing it in parallel.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import random
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from llm_line.errors import CellError
from llm_line.evaluation.config import CorpusConfig
from llm_line.evaluation.documents import read_file, text_value
from llm_line.evaluation.fingerprint import corpus_files as local_files  # the one reading of `path`
from llm_line.files import atomic_file

log = logging.getLogger(__name__)

CACHE_VERSION = 1  # bump when what a cache file holds, or how it is made, changes
TOKENIZE_BATCH = 256  # documents per tokenizer call (fast tokenizers parallelise within a call)


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
