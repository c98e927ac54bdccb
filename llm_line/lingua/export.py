"""Export lingua checkpoints to Hugging Face model folders, one subfolder per training step.

    python -m llm_line.lingua.export RUN_DIR OUT_DIR        # every checkpoint of a run -> OUT_DIR/step{N}/
    python -m llm_line.lingua.export RUN_DIR/checkpoints/0000016000 OUT_DIR   # one checkpoint
    python evaluate.py model=lingua model.path=OUT_DIR model.step=16000 task=piqa

What lingua writes (its `lingua/checkpoint.py`): `RUN_DIR/checkpoints/<step, 10 digits>/` holds a
torch.distributed checkpoint (`*.distcp`, `.metadata`) of {"model": ..., "optim": ...}, the run's whole
config as `params.json` and `train_state_*.json`; lingua's eval consolidates it into
`consolidated/consolidated.pth` + `params.json`. Either form is read here; a checkpoint that is not yet
consolidated is consolidated in place (the same layout lingua itself writes; needs memory for the optimizer
state too).

Architectures (state-dict key names as in lingua's `apps/main/transformer.py` and `apps/mamba`):
- Llama (`LMTransformer`) -> `LlamaForCausalLM`. lingua rotates (x[2i], x[2i+1]) pairs of each head (complex
  multiplication); transformers rotates (x[i], x[i + head_dim/2]) ("rotate_half"). The rows of wq and wk are
  permuted within each head so both compute the same attention scores; v and o are unchanged.
- Mamba (`LMMamba`, a Mamba-2 style SSD block) -> `Mamba2ForCausalLM`: same in_proj order [z, x, B, C, dt],
  causal depthwise conv without bias, A = -exp(A_log), per-head D, gated RMSNorm of y * silu(z). Exported only
  where the two compute the same function: n_groups = 1 (transformers normalises per group, lingua over the
  whole width), a conv (conv_size set), D per head (not D_has_head_dim), no learned initial states, norm_eps
  1e-5 (lingua's gated norm always uses 1e-5, transformers one eps for all norms); dt_bias absent -> zeros.
  transformers' Mamba (v1) class is a different block (per-channel dt, x_proj/dt_proj) and cannot hold it.

Tokenizer: lingua's `tiktoken` tokenizer is a tiktoken BPE file + lingua's pre-tokenisation regex (Llama-3's)
+ 256 special tokens after the BPE ranks (<|begin_of_text|> first): the exporter rebuilds exactly that as a
Hugging Face tokenizer whose special-token mode prepends BOS, as lingua did for every training document
(lm-eval adds it with add_bos_token, which conf/model/lingua.yaml sets), and that encodes text as lingua's
`encode_ordinary` does: a special token's text in a document is ordinary text. `bytes` is rebuilt too;
SentencePiece (`sp`) needs --hf-tokenizer. --hf-tokenizer copies any Hugging Face tokenizer instead.

Each export folder also gets the run's `params.json` (as `lingua_params.json`), and OUT_DIR gets
`llm_line.json`: the run's name and metadata (architecture, parameters, data, tokenizer, tokens per step),
which conf/model/lingua.yaml reads, and the documents' framing in training (`add_bos`, `add_eos`), which
corpus cells (llm_line/evaluation/corpus.py) follow. Exports are written to a temporary folder and renamed, and skipped
if present (--force redoes them). Each step folder records where it came from (`llm_line_source.json`: the run's
name and dump_dir, the checkpoint folder); an OUT_DIR holding another run's export is refused, and every
checkpoint to export is loaded and checked against its params.json before anything is written.
"""

from __future__ import annotations

import argparse
import json
import logging
import pickle
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from llm_line.arguments import comma_separated, existing_folder, nonnegative_int, output_folder
from llm_line.errors import CellError, run_command
from llm_line.files import atomic_file, write_json

log = logging.getLogger(__name__)

CHECKPOINT_FOLDER = re.compile(r"^\d{10}$")  # lingua names checkpoint folders by step, 10 digits
CONSOLIDATED = Path("consolidated") / "consolidated.pth"
PARAMS = "params.json"
META = "llm_line.json"  # read by conf/model/lingua.yaml (llm_line.evaluation.config.export_meta)
SOURCE = "llm_line_source.json"  # in each step folder: the run (name, dump_dir) and checkpoint it came from

# Names of the data sources in lingua/configs (make_configs.py) as the analysis calls them.
DATA_NAMES = {"fineweb_edu_100bt": "FineWeb-Edu", "c4": "C4", "pile_uc": "The Pile UC"}

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


class ExportError(CellError):
    """A checkpoint cannot be exported as asked; the message says why and what to do."""


# ----------------------------------------------------------------------------------------------- checkpoints


def find_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every checkpoint of a run dir, a `checkpoints/` folder, or one checkpoint folder."""
    run_dir = Path(run_dir)
    if is_checkpoint(run_dir):
        return [(checkpoint_step(run_dir), run_dir)]
    base = run_dir / "checkpoints" if (run_dir / "checkpoints").is_dir() else run_dir
    if not base.is_dir():
        raise ExportError(f"{run_dir} is not a lingua run dir, checkpoints folder or checkpoint")
    found = sorted((int(p.name), p) for p in base.iterdir() if p.is_dir() and CHECKPOINT_FOLDER.match(p.name))
    if not found:
        raise ExportError(f"no lingua checkpoints (folders named by 10-digit steps) in {base}")
    return found


def is_checkpoint(folder: Path) -> bool:
    return (folder / CONSOLIDATED).exists() or (folder / ".metadata").exists() or (folder / "consolidated.pth").exists()


def checkpoint_step(folder: Path) -> int:
    """The training step of a checkpoint folder: its 10-digit name, else its train state."""
    for candidate in (folder, folder.parent):
        if CHECKPOINT_FOLDER.match(candidate.name):
            return int(candidate.name)
    for state in sorted(folder.glob("train_state_*.json")) + sorted(folder.parent.glob("train_state_*.json")):
        return int(json.loads(state.read_text())["step"])
    raise ExportError(f"cannot tell the training step of {folder}: not named by step and no train_state_*.json")


@dataclass
class Checkpoint:
    """A loaded lingua checkpoint: the run's params.json and the model's state dict, with the files they came
    from (for messages)."""

    params: dict[str, Any]
    state: dict[str, torch.Tensor]
    file: Path  # consolidated.pth
    params_file: Path


def params_file(folder: Path) -> Path:
    """Where a checkpoint folder keeps the run's params.json (beside consolidated.pth, else in the folder)."""
    consolidated = folder if (folder / "consolidated.pth").exists() else folder / CONSOLIDATED.parent
    return consolidated / PARAMS if (consolidated / PARAMS).exists() else folder / PARAMS


def read_params(folder: Path) -> dict[str, Any]:
    """The run's params.json of a checkpoint folder, checked to hold a model section."""
    path = params_file(folder)
    if not path.exists():
        raise ExportError(f"{folder} has no {PARAMS}: lingua writes the run's config there; copy it from the run")
    params = read_json(path)
    if not isinstance(params.get("model"), dict):
        raise ExportError(f"{path} has no model section: not a lingua run's params.json")
    return params


def read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ExportError(f"{path} is not readable JSON ({e}); restore it or remove it") from None
    if not isinstance(value, dict):
        raise ExportError(f"{path} holds a JSON {type(value).__name__}, not an object")
    return value


def load_checkpoint(folder: Path) -> Checkpoint:
    """A lingua checkpoint (consolidated if needed); the weights stay memory-mapped until they are used."""
    if not (folder / "consolidated.pth").exists() and not (folder / CONSOLIDATED).exists():
        consolidate(folder)
    params = read_params(folder)
    file = folder / "consolidated.pth" if (folder / "consolidated.pth").exists() else folder / CONSOLIDATED
    try:
        raw = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as e:
        raise ExportError(
            f"{file} is not a readable torch checkpoint ({first_sentence(e)}; truncated or corrupt?): copy it again, "
            "or delete it where the .distcp files are beside it (the export then consolidates them anew)"
        ) from None
    state = raw["model"] if isinstance(raw, dict) and "model" in raw else raw
    if not isinstance(state, dict):
        raise ExportError(f"{file} holds a {type(state).__name__}, not a state dict")
    cleaned = {}
    for key, value in state.items():
        for wrapper in ("_orig_mod.", "module."):  # torch.compile / DDP wrappers around the model
            if key.startswith(wrapper):
                key = key[len(wrapper) :]
        cleaned[key.replace("._orig_mod.", ".")] = value  # compiled submodules
    return Checkpoint(params, cleaned, file, params_file(folder))


def consolidate(folder: Path) -> None:
    """Write lingua's consolidated form of a torch.distributed checkpoint next to it, as lingua's eval does."""
    if not (folder / ".metadata").exists():
        raise ExportError(f"{folder} holds neither {CONSOLIDATED} nor a torch.distributed checkpoint (.metadata)")
    from torch.distributed.checkpoint.api import CheckpointException
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    target = folder / CONSOLIDATED
    target.parent.mkdir(exist_ok=True)
    log.info("Consolidating %s", folder)
    try:
        with atomic_file(target, "wb") as f:
            dcp_to_torch_save(folder, f)  # type: ignore[arg-type]  # it torch.saves to the path or file it is given
    except CheckpointException as e:  # a shard that is truncated, corrupt or missing; the cause is per rank
        cause = next((error for error, _stack in e.failures.values()), e)
        raise ExportError(
            f"{folder}: its torch.distributed checkpoint cannot be read ({first_sentence(cause)}; a .distcp shard "
            "truncated, corrupt or missing?): copy the checkpoint folder again"
        ) from None
    if (folder / PARAMS).exists():
        shutil.copyfile(folder / PARAMS, target.parent / PARAMS)


def first_sentence(error: BaseException) -> str:
    """The first sentence of an error's message (torch's go on for a paragraph)."""
    return str(error).strip().split("\n")[0].split(". ")[0] or type(error).__name__


def architecture(checkpoint: Checkpoint) -> str:
    if any(".attention.wq." in key for key in checkpoint.state):
        return "llama"
    if any(".ssm.in_proj." in key for key in checkpoint.state):
        return "mamba"
    raise ExportError(
        f"{checkpoint.file}: unknown lingua architecture: expected apps/main (layers.N.attention.wq) or "
        "apps/mamba (layers.N.ssm.in_proj) state-dict keys"
    )


class Keys:
    """Takes state-dict entries by name, each checked against the shape the run's params.json implies (so a
    checkpoint and a params.json of different models are one line, not a reshape traceback), and checks at the
    end that none was left over."""

    def __init__(self, checkpoint: Checkpoint, settings: str):
        self.state = dict(checkpoint.state)
        self.checkpoint = checkpoint
        self.settings = settings  # the params.json values the shapes follow from, for messages

    def peek(self, key: str) -> torch.Tensor:
        if key not in self.state:
            raise ExportError(f"{self.checkpoint.file} lacks {key!r}: not a whole lingua checkpoint of this model")
        return self.state[key]

    def take(self, key: str, *shape: int) -> torch.Tensor:
        value = self.peek(key)
        if tuple(value.shape) != shape:
            raise ExportError(
                f"{self.checkpoint.file}: {key} has shape {list(value.shape)}, but {self.checkpoint.params_file} "
                f"({self.settings}) implies {list(shape)}: the weights and params.json are of different models"
            )
        return self.state.pop(key)

    def maybe(self, key: str, *shape: int) -> torch.Tensor | None:
        return self.take(key, *shape) if key in self.state else None

    def done(self) -> None:
        if self.state:
            raise ExportError(
                f"{self.checkpoint.file} has weights this exporter does not map: {sorted(self.state)[:8]}"
            )


def output_weights(keys: Keys, embeddings: torch.Tensor, tied: bool) -> torch.Tensor | None:
    """lingua's output projection: its own weight, or (weight_tying) the embedding's, sometimes listed twice."""
    shared = keys.maybe("output.tied_module.weight", *embeddings.shape)
    if tied:
        if shared is not None and not torch.equal(shared, embeddings):
            raise ExportError(
                f"{keys.checkpoint.file}: weight_tying is set but output.tied_module.weight differs from tok_embeddings"
            )
        return None
    return keys.take("output.weight", *embeddings.shape)


def divides(checkpoint: Checkpoint, part: str, whole: str, part_value: int, whole_value: int) -> None:
    """Refuse a params.json whose sizes cannot describe any model (a head count that does not divide the width)."""
    if part_value < 1 or whole_value % part_value:
        raise ExportError(
            f"{checkpoint.params_file}: {whole}={whole_value} is not a multiple of {part}={part_value}; "
            "fix the model section (it must be the config the checkpoint was trained with)"
        )


# ----------------------------------------------------------------------------------------------------- llama


def rope_pairs_to_halves(weight: torch.Tensor, n_heads: int, head_dim: int) -> torch.Tensor:
    """Reorder the output rows of a q/k projection from adjacent rotary pairs (lingua) to halves (transformers).

    Within each head, lingua's row 2i and 2i+1 form rotary pair i; transformers pairs row i with i + head_dim/2.
    """
    rows = weight.reshape(n_heads, head_dim // 2, 2, -1)  # head, pair, member of the pair, input
    return rows.transpose(1, 2).reshape(n_heads * head_dim, -1)


def llama(checkpoint: Checkpoint, special_ids: dict[str, int | None]):
    from transformers import LlamaConfig, LlamaForCausalLM

    params, args = checkpoint.params, checkpoint.params["model"]
    dim, n_layers = int(args["dim"]), int(args["n_layers"])
    if not args.get("head_dim"):
        divides(checkpoint, "n_heads", "dim", int(args["n_heads"]), dim)
    head_dim = int(args.get("head_dim") or dim // int(args["n_heads"]))
    n_heads = int(args.get("n_heads") or dim // head_dim)
    n_kv_heads = int(args.get("n_kv_heads") or n_heads)
    divides(checkpoint, "n_kv_heads", "n_heads", n_kv_heads, n_heads)
    if head_dim % 2:
        raise ExportError(f"{checkpoint.params_file}: head_dim={head_dim} is odd; rotary embeddings need it even")
    if args.get("sliding_window"):
        raise ExportError("sliding-window attention has no LlamaForCausalLM equivalent")
    keys = Keys(checkpoint, f"dim={dim}, n_layers={n_layers}, n_heads={n_heads}, n_kv_heads={n_kv_heads}")
    embeddings = keys.take("tok_embeddings.weight", keys.peek("tok_embeddings.weight").shape[0], dim)
    vocab_size = embeddings.shape[0]
    tied = bool(args.get("weight_tying", False))
    ffn_dim = keys.peek("layers.0.feed_forward.w1.weight").shape[0]
    q_rows, kv_rows = n_heads * head_dim, n_kv_heads * head_dim
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=dim,
        intermediate_size=ffn_dim,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_kv_heads,
        head_dim=head_dim,
        hidden_act="silu",
        max_position_embeddings=int(args.get("max_seqlen") or params.get("data", {}).get("seq_len") or 2048),
        rms_norm_eps=float(args.get("norm_eps", 1e-5)),
        rope_parameters={"rope_type": "default", "rope_theta": float(args.get("rope_theta", 10000.0))},
        tie_word_embeddings=tied,
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=special_ids["bos_token_id"],
        eos_token_id=special_ids["eos_token_id"],
        pad_token_id=special_ids["pad_token_id"],
    )
    weights = {"model.embed_tokens.weight": embeddings}
    for i in range(n_layers):
        src, dst = f"layers.{i}.", f"model.layers.{i}."
        weights[dst + "self_attn.q_proj.weight"] = rope_pairs_to_halves(
            keys.take(src + "attention.wq.weight", q_rows, dim), n_heads, head_dim
        )
        weights[dst + "self_attn.k_proj.weight"] = rope_pairs_to_halves(
            keys.take(src + "attention.wk.weight", kv_rows, dim), n_kv_heads, head_dim
        )
        weights[dst + "self_attn.v_proj.weight"] = keys.take(src + "attention.wv.weight", kv_rows, dim)
        weights[dst + "self_attn.o_proj.weight"] = keys.take(src + "attention.wo.weight", dim, q_rows)
        weights[dst + "mlp.gate_proj.weight"] = keys.take(src + "feed_forward.w1.weight", ffn_dim, dim)
        weights[dst + "mlp.up_proj.weight"] = keys.take(src + "feed_forward.w3.weight", ffn_dim, dim)
        weights[dst + "mlp.down_proj.weight"] = keys.take(src + "feed_forward.w2.weight", dim, ffn_dim)
        weights[dst + "input_layernorm.weight"] = keys.take(src + "attention_norm.weight", dim)
        weights[dst + "post_attention_layernorm.weight"] = keys.take(src + "ffn_norm.weight", dim)
    weights["model.norm.weight"] = keys.take("norm.weight", dim)
    output = output_weights(keys, embeddings, tied)
    if output is not None:
        weights["lm_head.weight"] = output
    keys.done()
    return LlamaForCausalLM, config, weights


# ----------------------------------------------------------------------------------------------------- mamba


def mamba(checkpoint: Checkpoint, special_ids: dict[str, int | None]):
    from transformers import Mamba2Config, Mamba2ForCausalLM

    state, args = checkpoint.state, checkpoint.params["model"]
    dim, n_layers, n_heads = int(args["dim"]), int(args["n_layers"]), int(args["n_heads"])
    n_groups, state_dim = int(args.get("n_groups", 1)), int(args.get("state_dim", 128))
    problems = []
    if n_groups != 1:
        problems.append(f"n_groups={n_groups} (transformers normalises y per group, lingua over the whole width)")
    if args.get("conv_size") is None:
        problems.append("conv_size=null (transformers' Mamba2 always has the causal conv)")
    if args.get("D_has_head_dim"):
        problems.append("D_has_head_dim=true (transformers' Mamba2 has one D per head)")
    if float(args.get("norm_eps", 1e-5)) != 1e-5:
        problems.append(f"norm_eps={args['norm_eps']} (lingua's gated norm uses 1e-5; transformers one eps for all)")
    init_states = [k for k in state if k.endswith(".ssm.init_states")]
    if any(state[k].abs().max() > 0 for k in init_states):
        problems.append("learned initial states (transformers' Mamba2 starts from zeros)")
    keys = Keys(checkpoint, f"dim={dim}, n_layers={n_layers}, n_heads={n_heads}, state_dim={state_dim}")
    hidden = keys.peek("layers.0.ssm.out_proj.weight").shape[1]
    if hidden % dim:
        problems.append(f"SSM width {hidden} is not a multiple of dim {dim} (transformers needs an integer expand)")
    if problems:
        raise ExportError(
            f"{checkpoint.params_file}: this lingua Mamba cannot be expressed as transformers' Mamba2ForCausalLM: "
            + "; ".join(problems)
        )
    divides(checkpoint, "n_heads", "the SSM width", n_heads, hidden)
    for key in init_states:  # all zeros (checked above): transformers' Mamba2 starts from zeros too
        keys.take(key, *state[key].shape)
    embeddings = keys.take("tok_embeddings.weight", keys.peek("tok_embeddings.weight").shape[0], dim)
    conv_size, xbc = int(args["conv_size"]), hidden + 2 * state_dim  # the conv runs over x, B and C
    tied = bool(args.get("weight_tying", False))
    config = Mamba2Config(
        vocab_size=embeddings.shape[0],
        hidden_size=dim,
        num_hidden_layers=n_layers,
        num_heads=n_heads,
        head_dim=hidden // n_heads,
        expand=hidden // dim,
        state_size=state_dim,
        n_groups=n_groups,
        conv_kernel=conv_size,
        use_conv_bias=False,
        use_bias=False,
        hidden_act="silu",
        layer_norm_epsilon=1e-5,
        chunk_size=int(args.get("ssm_chunk_size", 256)),
        time_step_limit=(0.0, float("inf")),
        residual_in_fp32=True,
        tie_word_embeddings=tied,
        bos_token_id=special_ids["bos_token_id"],
        eos_token_id=special_ids["eos_token_id"],
        pad_token_id=special_ids["pad_token_id"],
    )
    weights = {"backbone.embeddings.weight": embeddings}
    for i in range(n_layers):
        src, dst = f"layers.{i}.", f"backbone.layers.{i}."
        weights[dst + "norm.weight"] = keys.take(src + "ssm_norm.weight", dim)
        weights[dst + "mixer.in_proj.weight"] = keys.take(src + "ssm.in_proj.weight", hidden + xbc + n_heads, dim)
        weights[dst + "mixer.conv1d.weight"] = keys.take(src + "ssm.conv_weight", xbc, conv_size).unsqueeze(1)
        weights[dst + "mixer.A_log"] = keys.take(src + "ssm.A_log", n_heads)
        weights[dst + "mixer.D"] = keys.take(src + "ssm.D", n_heads)
        dt_bias = keys.maybe(src + "ssm.dt_bias", n_heads)
        weights[dst + "mixer.dt_bias"] = dt_bias if dt_bias is not None else torch.zeros(n_heads)
        weights[dst + "mixer.norm.weight"] = keys.take(src + "ssm.ssm_norm.weight", hidden)
        weights[dst + "mixer.out_proj.weight"] = keys.take(src + "ssm.out_proj.weight", dim, hidden)
    weights["backbone.norm_f.weight"] = keys.take("norm.weight", dim)
    output = output_weights(keys, embeddings, tied)
    if output is not None:
        weights["lm_head.weight"] = output
    keys.done()
    return Mamba2ForCausalLM, config, weights


# ------------------------------------------------------------------------------------------------- tokenizer


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


# ---------------------------------------------------------------------------------------------------- export


def run_meta(params: dict[str, Any], arch: str, parameters: int, tokenizer: str) -> dict[str, Any]:
    """What the analysis needs to know about the run (conf/model/lingua.yaml reads it)."""
    data = params.get("data", {})
    dist = params.get("distributed", {})
    data_parallel = int(dist.get("dp_replicate", 1) or 1) * int(dist.get("dp_shard", 1) or 1)
    tokens_per_step = (
        int(data.get("batch_size", 0))
        * int(data.get("seq_len", 0))
        * int(params.get("grad_acc_steps", 1) or 1)
        * data_parallel
    ) or None
    sources = sorted((data.get("sources") or {}).items(), key=lambda item: -float(item[1]))
    return {
        "name": params.get("name"),
        "dump_dir": params.get("dump_dir"),  # with the name, the run's identity (checked before a re-export)
        "family": f"lingua-{arch}",
        "architecture": {"llama": "Llama", "mamba": "Mamba2"}[arch],
        "parameters": parameters,
        "pretraining_data": "+".join(DATA_NAMES.get(name, name) for name, _ in sources) or None,
        "tokenizer": tokenizer,
        "tokens_per_step": tokens_per_step,
        "seq_len": data.get("seq_len"),
        "steps": params.get("steps"),
        # how lingua framed every training document (BOS d EOS); validation corpora are framed the same way
        # (llm_line/evaluation/corpus.py, task.corpus.separator=auto). None where the run's params do not say.
        "add_bos": data.get("add_bos"),
        "add_eos": data.get("add_eos"),
    }


@dataclass
class Converted:
    """A checkpoint turned into a transformers class, config and weights (not yet instantiated or written)."""

    params: dict[str, Any]
    arch: str
    model_class: Any
    config: Any
    weights: dict[str, torch.Tensor]
    tokenizer: Any
    tokenizer_name: str


def convert(folder: Path, run_dir: Path, tokenizers: dict[str, Any], **options: Any) -> Converted:
    """Load, check and convert one checkpoint; every check an export makes happens here, before any writing.

    The weights stay memory-mapped (only wq/wk are reordered), so converting to check is cheap. `tokenizers`
    caches the tokenizer per tokenizer setting across the checkpoints of a run.
    """
    checkpoint = load_checkpoint(folder)
    params = checkpoint.params
    key = json.dumps([params.get("data", {}).get("tokenizer"), params.get("data", {}).get("seq_len")], default=str)
    if key not in tokenizers:
        tokenizers[key] = build_tokenizer(
            params, run_dir, options.get("tokenizer_file"), options.get("hf_tokenizer"), options.get("lingua_dir")
        )
    tokenizer, tokenizer_name = tokenizers[key]
    arch = architecture(checkpoint)
    model_class, config, weights = {"llama": llama, "mamba": mamba}[arch](checkpoint, special_token_ids(tokenizer))
    if len(tokenizer) > config.vocab_size:
        raise ExportError(
            f"{checkpoint.file}: the tokenizer has {len(tokenizer)} tokens, the model only {config.vocab_size} "
            "embeddings; pass the run's tokenizer (--tokenizer-file or --hf-tokenizer)"
        )
    return Converted(params, arch, model_class, config, weights, tokenizer, tokenizer_name)


def write_export(converted: Converted, target: Path, source: dict[str, Any], dtype: str) -> dict[str, Any]:
    """Write a converted checkpoint as the Hugging Face folder `target`, with where it came from (SOURCE);
    return the run's metadata."""
    config = converted.config
    config.dtype = getattr(torch, dtype)
    with torch.device("meta"):  # no random initialisation: every weight comes from the checkpoint
        model = converted.model_class(config)
    result = model.load_state_dict(
        {k: v.to(config.dtype).contiguous() for k, v in converted.weights.items()}, strict=False, assign=True
    )
    missing = set(result.missing_keys) - ({"lm_head.weight"} if config.tie_word_embeddings else set())
    if missing or result.unexpected_keys:
        raise ExportError(
            f"weights do not fit {converted.model_class.__name__}: missing {sorted(missing)}, "
            f"unexpected {sorted(result.unexpected_keys)}"
        )
    if config.tie_word_embeddings:
        model.tie_weights()
    # Written whole into a fresh temporary folder next to the target, then renamed: a step folder is complete or absent.
    partial = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        model.save_pretrained(partial)
        converted.tokenizer.save_pretrained(partial)
        write_json(partial / "lingua_params.json", converted.params)
        write_json(partial / SOURCE, source)
        if target.exists():
            shutil.rmtree(target)
        partial.rename(target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return run_meta(converted.params, converted.arch, model.num_parameters(), converted.tokenizer_name)


# ------------------------------------------------------------------------------------- which run a folder holds


def run_identity(params: dict[str, Any]) -> dict[str, Any]:
    """What tells two lingua runs apart: the name and dump_dir lingua recorded (the same after a run dir moves)."""
    return {"run": params.get("name"), "dump_dir": params.get("dump_dir")}


def same_run(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Same name, and the same dump_dir where both record one (exports before dump_dir was kept have none)."""
    if a.get("run") != b.get("run"):
        return False
    return a.get("dump_dir") is None or b.get("dump_dir") is None or a["dump_dir"] == b["dump_dir"]


def describe(identity: dict[str, Any]) -> str:
    return f"{identity['run']!r}" + (f" ({identity['dump_dir']})" if identity.get("dump_dir") else "")


def exported_run(target: Path) -> dict[str, Any] | None:
    """The run a step folder was exported from: its SOURCE record, else (older exports) its lingua_params.json;
    None for a folder that is not an export."""
    if (target / SOURCE).exists():
        return read_json(target / SOURCE)
    if (target / "lingua_params.json").exists():
        return run_identity(read_json(target / "lingua_params.json"))
    return None


def check_export_folder(out_dir: Path, run_dir: Path, identity: dict[str, Any], targets: list[Path]) -> None:
    """Refuse, before anything is written, an export folder that holds another run's export (its llm_line.json
    or any step folder this export would skip or replace): the folder is the model's identity."""
    fix = f"export to another folder, or remove {out_dir} first"
    if (out_dir / META).exists():
        meta = read_json(out_dir / META)
        held = {"run": meta.get("name"), "dump_dir": meta.get("dump_dir")}
        if not same_run(held, identity):
            raise ExportError(
                f"{out_dir} holds the export of run {describe(held)}, not of {run_dir} (run {describe(identity)}): "
                + fix
            )
    for target in targets:
        if not target.exists():
            continue
        held_by = exported_run(target)
        if held_by is None:
            raise ExportError(f"{target} exists but is not a lingua export (no {SOURCE}): {fix}")
        if not same_run(held_by, identity):
            raise ExportError(
                f"{target} is an export of run {describe(held_by)}, not of {run_dir} (run {describe(identity)}): " + fix
            )


def select_steps(run_dir: Path, steps: set[int] | None) -> list[tuple[int, Path]]:
    """The checkpoints to export: all of the run's, or those in `steps`, every one of which must exist."""
    found = find_checkpoints(run_dir)
    if steps is None:
        return found
    missing = sorted(steps - {step for step, _ in found})
    if missing:
        raise ExportError(
            f"{run_dir} has no checkpoint at step {', '.join(map(str, missing))}; its steps: "
            + ", ".join(str(step) for step, _ in found)
        )
    return [(step, folder) for step, folder in found if step in steps]


def export_run(
    run_dir: Path, out_dir: Path, steps: set[int] | None = None, force: bool = False, **options: Any
) -> list[Path]:
    """Export every checkpoint of `run_dir` (or those in `steps`) to `out_dir/step{N}`; return the folders.

    Everything is checked first (the steps exist, `out_dir` holds no other run, every checkpoint to export loads
    and fits its params.json and tokenizer), so a refused export writes nothing.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    dtype = options.pop("dtype", "float32")
    chosen = select_steps(run_dir, steps)
    identity = run_identity(read_params(chosen[0][1]))
    targets = {step: out_dir / f"step{step}" for step, _ in chosen}
    check_export_folder(out_dir, run_dir, identity, list(targets.values()))
    todo = [(s, f) for s, f in chosen if force or not (targets[s] / "config.json").exists()]
    tokenizers: dict[str, Any] = {}
    for _, folder in todo:
        convert(folder, run_dir, tokenizers, **options)  # checked, then dropped: the weights are memory-mapped
    out_dir.mkdir(parents=True, exist_ok=True)
    for step, folder in chosen:
        if (step, folder) not in todo:
            log.info("Skipping step %d: %s exists (--force redoes it)", step, targets[step])
            continue
        log.info("Exporting step %d: %s -> %s", step, folder, targets[step])
        source = identity | {"checkpoint": str(folder.resolve()), "step": step}
        meta = write_export(convert(folder, run_dir, tokenizers, **options), targets[step], source, dtype)
        write_json(out_dir / META, meta)
    return list(targets.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "run_dir", type=existing_folder, help="a lingua run dir (dump_dir), its checkpoints/ or one checkpoint"
    )
    parser.add_argument("out_dir", type=output_folder, help="export folder: one step{N} subfolder per checkpoint")
    parser.add_argument("--steps", type=comma_separated(nonnegative_int), help="only these steps, comma-separated")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--lingua-dir", help="where lingua ran (relative tokenizer paths are resolved there)")
    parser.add_argument("--tokenizer-file", help="the run's tiktoken BPE file, if not at data.tokenizer.path")
    parser.add_argument("--hf-tokenizer", help="use this Hugging Face tokenizer (hub id or folder) instead")
    parser.add_argument("--force", action="store_true", help="re-export steps that are already exported")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    folders = export_run(
        args.run_dir,
        args.out_dir,
        steps=set(args.steps) if args.steps else None,
        force=args.force,
        dtype=args.dtype,
        lingua_dir=args.lingua_dir,
        tokenizer_file=args.tokenizer_file,
        hf_tokenizer=args.hf_tokenizer,
    )
    print(f"{len(folders)} checkpoint(s) in {args.out_dir}: {', '.join(f.name for f in folders)}")
    print(f"evaluate: python evaluate.py model=lingua model.path={args.out_dir} model.step=N task=...")
    return 0


if __name__ == "__main__":
    sys.exit(run_command("python -m llm_line.lingua.export", main, None))
