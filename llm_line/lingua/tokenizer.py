"""lingua's tokenizers rebuilt as Hugging Face tokenizers, and which one a run used. Its own module: the tokenizer
is rebuilt from lingua's files, not read from the checkpoint, and shared by every checkpoint of a run.

lingua's `tiktoken` tokenizer is a tiktoken BPE file + lingua's pre-tokenisation regex (Llama-3's)
+ 256 special tokens after the BPE ranks (<|begin_of_text|> first): the exporter rebuilds exactly that as a
Hugging Face tokenizer whose special-token mode prepends BOS, as lingua did for every training document
(lm-eval adds it with add_bos_token, which conf/model/lingua.yaml sets), and that encodes text as lingua's
`encode_ordinary` does: a special token's text in a document is ordinary text. `bytes` is rebuilt too;
SentencePiece (`sp`) needs --hf-tokenizer. --hf-tokenizer copies any Hugging Face tokenizer instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llm_line.lingua.checkpoints import ExportError

# lingua's tiktoken setup: Llama-3's pre-tokenisation regex, and 256 special tokens whose ids follow the BPE
# ranks; these seven are named, the others are <|reserved_special_token_{offset}|>.
TIKTOKEN_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"""
    r"""|\s+(?!\S)|\s+"""
)
TIKTOKEN_NAMED_SPECIALS = {
    0: "<|begin_of_text|>",
    1: "<|end_of_text|>",
    2: "<|fim_prefix|>",
    3: "<|fim_middle|>",
    253: "<|fim_end_fill|>",
    254: "<|fim_pad|>",
    255: "<|fim_suffix|>",
}
N_TIKTOKEN_SPECIALS = 256


def tiktoken_tokenizer(bpe_file: Path, max_length: int):
    """lingua's tiktoken tokenizer (BPE ranks + Llama-3 regex + its 256 specials) as a Hugging Face tokenizer."""
    from tokenizers import AddedToken, processors
    from transformers.convert_slow_tokenizer import TikTokenConverter

    backend = TikTokenConverter(vocab_file=str(bpe_file), pattern=TIKTOKEN_PATTERN).converted()
    n_ranks = backend.get_vocab_size()
    specials = [TIKTOKEN_NAMED_SPECIALS.get(i, f"<|reserved_special_token_{i}|>") for i in range(N_TIKTOKEN_SPECIALS)]
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    bos, eos = specials[0], specials[1]
    assert backend.token_to_id(bos) == n_ranks and backend.token_to_id(eos) == n_ranks + 1
    return wrap_with_bos(backend, processors.ByteLevel(trim_offsets=False), bos, eos, max_length)


def bytes_tokenizer(max_length: int):
    """lingua's byte tokenizer (ids 0-255 = bytes, BOS 256, EOS 257) as a Hugging Face tokenizer."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {char: byte for byte, char in bytes_to_unicode().items()}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], fuse_unk=False))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken("<bos>", special=True), AddedToken("<eos>", special=True)])
    return wrap_with_bos(backend, processors.ByteLevel(trim_offsets=False), "<bos>", "<eos>", max_length)


def wrap_with_bos(backend, post, bos: str, eos: str, max_length: int):
    """A transformers tokenizer around `backend` that prepends BOS when asked for special tokens.

    Special tokens come only from that template: a special token's text inside a document (`<|begin_of_text|>`)
    is split into ordinary tokens (`split_special_tokens`), as lingua's `encode_ordinary` did in training.
    """
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    bos_id = backend.token_to_id(bos)
    backend.post_processor = processors.Sequence(
        [
            post,
            processors.TemplateProcessing(
                single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)]
            ),
        ]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=bos,
        eos_token=eos,
        model_max_length=max_length,
        clean_up_tokenization_spaces=False,
        split_special_tokens=True,
    )


def build_tokenizer(
    params: dict[str, Any], run_dir: Path, tokenizer_file: str | None, hf_tokenizer: str | None, lingua_dir: str | None
):
    """(tokenizer, its label for the analysis) for the run described by `params`."""
    data = params.get("data", {})
    max_length = int(data.get("seq_len") or params["model"].get("max_seqlen") or 2048)
    spec = data.get("tokenizer", {}) or {}
    name, path = spec.get("name", "bytes"), str(spec.get("path") or "")
    if hf_tokenizer:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(hf_tokenizer), Path(hf_tokenizer).name
    if name == "bytes":
        return bytes_tokenizer(max_length), "bytes"
    if name == "tiktoken":
        if tokenizer_file:
            candidates = [Path(tokenizer_file)]
        elif not path:
            raise ExportError("the run records no tokenizer file (data.tokenizer.path): pass --tokenizer-file FILE")
        else:  # lingua resolves the path from where it ran: try there, then the run dir and its parents
            bases = ([Path(lingua_dir)] if lingua_dir else []) + [Path.cwd(), run_dir, *run_dir.parents]
            candidates = [Path(path)] if Path(path).is_absolute() else [base / path for base in bases]
        found = next((c.expanduser() for c in candidates if c.expanduser().is_file()), None)
        if found is None:
            raise ExportError(
                f"the run's tokenizer file {path!r} (data.tokenizer.path, relative to where lingua ran) was not "
                "found; pass --lingua-dir DIR (where lingua ran) or --tokenizer-file FILE"
            )
        return tiktoken_tokenizer(found, max_length), tokenizer_label(path)
    raise ExportError(f"lingua tokenizer {name!r}: pass the matching Hugging Face tokenizer with --hf-tokenizer")


def tokenizer_label(path: str) -> str:
    lowered = path.lower()
    for needle, label in (("llama3", "llama3"), ("llama-3", "llama3"), ("gpt2", "gpt2"), ("r50k", "gpt2")):
        if needle in lowered:
            return label
    return Path(path).stem


def special_token_ids(tokenizer) -> dict[str, int | None]:
    return {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id, "pad_token_id": None}
