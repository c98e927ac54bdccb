"""lingua state dicts -> transformers models: the config and the renamed (for Llama, reordered) weights of a
`LlamaForCausalLM` or `Mamba2ForCausalLM`, every weight checked against the shape the run's params.json implies.
Its own module: the architectures' mapping is one concern, apart from reading checkpoints
(`llm_line.lingua.checkpoints`) and writing the export (`llm_line.lingua.export`).

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
"""

from __future__ import annotations

import torch

from llm_line.lingua.checkpoints import Checkpoint, ExportError


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
