"""Export lingua checkpoints to Hugging Face model folders, one subfolder per training step.

    python -m llm_line.lingua.export RUN_DIR OUT_DIR        # every checkpoint of a run -> OUT_DIR/step{N}/
    python -m llm_line.lingua.export RUN_DIR/checkpoints/0000016000 OUT_DIR   # one checkpoint
    python evaluate.py model=lingua model.path=OUT_DIR model.step=16000 task=piqa

Both a torch.distributed checkpoint and lingua's consolidated form are read (`llm_line.lingua.checkpoints`);
Llama runs become `LlamaForCausalLM`, Mamba runs `Mamba2ForCausalLM` (`llm_line.lingua.weights`), with the
run's tokenizer rebuilt from lingua's files (`llm_line.lingua.tokenizer`). This module is the command: what it
checks before writing, how a step folder is written, and what it records about the run.

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
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from llm_line.arguments import comma_separated, existing_folder, nonnegative_int, output_folder
from llm_line.errors import run_command
from llm_line.files import write_json
from llm_line.lingua.checkpoints import ExportError, find_checkpoints, load_checkpoint, read_json, read_params
from llm_line.lingua.tokenizer import build_tokenizer, special_token_ids
from llm_line.lingua.weights import architecture, llama, mamba

log = logging.getLogger(__name__)

META = "llm_line.json"  # read by conf/model/lingua.yaml (llm_line.evaluation.config.export_meta)
SOURCE = "llm_line_source.json"  # in each step folder: the run (name, dump_dir) and checkpoint it came from

# Names of the data sources in lingua/configs (make_configs.py) as the analysis calls them.
DATA_NAMES = {"fineweb_edu_100bt": "FineWeb-Edu", "c4": "C4", "pile_uc": "The Pile UC"}


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
