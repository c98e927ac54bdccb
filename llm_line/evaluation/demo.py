"""The offline demo model: a tiny GPT-NeoX (Pythia's architecture) built and briefly trained on first use.

The Hugging Face hub is not always reachable (CI, air-gapped nodes, a laptop on a train), yet the whole
pipeline — lm-eval, transformers' loading code, metrics, results — must run end to end. So the demo model
is a real `save_pretrained` folder, trained for a few seconds on text rendered from the demo tasks' own
facts (`llm_line/tasks/demo/*.jsonl`), so its accuracy is well above chance and grows with training.

Every checkpoint is kept as a revision: `<cache>/demo/<size>/step<N>/`, and the folder itself holds the
final weights (revision `main`), so sweeps over revisions and sizes work offline exactly as on the hub.
Building is deterministic (fixed seeds, fixed data order) and guarded by a file lock, so concurrent jobs
build it once.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

TASK_DIR = Path(__file__).parents[1] / "tasks" / "demo"
EOS = "<|endoftext|>"


@dataclass(frozen=True)
class DemoSize:
    hidden: int
    layers: int
    heads: int
    steps: int


SIZES = {
    "tiny": DemoSize(hidden=32, layers=1, heads=2, steps=300),
    "small": DemoSize(hidden=64, layers=2, heads=4, steps=300),
}
CHECKPOINT_EVERY = 100  # revisions step0, step100, ... plus `main` = the last one
SEQ_LEN = 64
BATCH = 16


def training_texts() -> list[str]:
    """The demo corpus: every fact of the demo tasks, in the tasks' own prompt format and as a sentence."""
    texts = []
    for path in sorted(TASK_DIR.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            doc = json.loads(line)
            answer = doc["choices"][doc["label"]]
            texts.append(f"Question: {doc['question']}\nAnswer: {answer}")
            texts.append(f"The {doc['subject']} is known for {answer}.")
    return texts


def ensure(target: str | os.PathLike, size: str) -> Path:
    """Return the demo model folder `target`, building a model of `size` there first if it is missing."""
    if size not in SIZES:
        raise ValueError(f"unknown demo model size {size!r}; choose one of {sorted(SIZES)}")
    target = Path(target).expanduser()
    if (target / "config.json").exists():
        return target
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not (target / "config.json").exists():
            remove_leftovers(target)
            log.info("Building the offline demo model %r in %s (first use only)", size, target)
            with tempfile.TemporaryDirectory(dir=target.parent, prefix=building_prefix(target)) as tmp:
                build(Path(tmp) / "model", SIZES[size])
                os.replace(Path(tmp) / "model", target)  # atomic: the folder is whole or absent
    return target


def building_prefix(target: Path) -> str:
    """Name prefix of the temporary folders that builds of `target` use beside it."""
    return f".{target.name}.building-"


def remove_leftovers(target: Path) -> None:
    """Clear what an interrupted build or a stray `mkdir` left, so the build can take the name.

    Called under the build lock, so no other process is building: temp folders beside `target` are leftovers
    of killed builds. A `target` without config.json is not a model: an empty folder is removed, anything
    else is moved aside (never deleted: it may hold something the user put there).
    """
    for leftover in target.parent.glob(building_prefix(target) + "*"):
        shutil.rmtree(leftover, ignore_errors=True)
    if not (target.exists() or target.is_symlink()):
        return
    if target.is_dir() and not target.is_symlink() and not any(target.iterdir()):
        target.rmdir()
        return
    aside = target.with_name(f"{target.name}.incomplete-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    log.warning("%s holds no model (no config.json); moved it to %s and rebuilding", target, aside)
    os.replace(target, aside)


def build(out: Path, size: DemoSize, seed: int = 0) -> None:
    """Train a tokenizer and a tiny GPT-NeoX on the demo corpus; save every checkpoint under `out`."""
    import torch
    import transformers
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(seed)
    texts = training_texts()
    tokenizer = _train_tokenizer(texts)
    ids = []
    for text in texts:
        ids += tokenizer(text)["input_ids"] + [tokenizer.eos_token_id]
    data = torch.tensor(ids)
    config = GPTNeoXConfig(
        vocab_size=len(tokenizer),
        hidden_size=size.hidden,
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        intermediate_size=4 * size.hidden,
        max_position_embeddings=256,
        rope_parameters={"rope_theta": 10000.0, "partial_rotary_factor": 0.25},  # Pythia's rotary_pct=0.25
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    model = GPTNeoXForCausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)

    def save(step: int, folder: Path) -> None:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        (folder / "llm_line_demo.json").write_text(json.dumps({"step": step, "tokens": step * BATCH * SEQ_LEN}))

    out.mkdir(parents=True)
    model.train()
    for step in range(size.steps + 1):
        if step % CHECKPOINT_EVERY == 0:
            save(step, out / f"step{step}")
        if step == size.steps:
            break
        starts = torch.randint(0, len(data) - SEQ_LEN - 1, (BATCH,), generator=generator)
        batch = torch.stack([data[s : s + SEQ_LEN] for s in starts.tolist()])
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    log.info("Demo model trained: %d steps, final training loss %.3f", size.steps, loss.item())
    save(size.steps, out)


def _train_tokenizer(texts: list[str]):
    """A byte-level BPE like GPT-2's, trained on the demo corpus (so ` moo` is one token, as on real LMs)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512, special_tokens=[EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=EOS, unk_token=EOS)
