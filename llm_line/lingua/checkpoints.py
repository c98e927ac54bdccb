"""Reading lingua checkpoints: finding them in a run dir, their step, the run's params.json, and the model's state
dict (consolidating a torch.distributed checkpoint first). Its own module because the weight mapping
(`llm_line.lingua.weights`), the tokenizer (`llm_line.lingua.tokenizer`) and the export command
(`llm_line.lingua.export`) all start from what is read here, and `ExportError` is the one error all of them raise.

What lingua writes (its `lingua/checkpoint.py`): `RUN_DIR/checkpoints/<step, 10 digits>/` holds a
torch.distributed checkpoint (`*.distcp`, `.metadata`) of {"model": ..., "optim": ...}, the run's whole
config as `params.json` and `train_state_*.json`; lingua's eval consolidates it into
`consolidated/consolidated.pth` + `params.json`. Either form is read here; a checkpoint that is not yet
consolidated is consolidated in place (the same layout lingua itself writes; needs memory for the optimizer
state too).
"""

from __future__ import annotations

import json
import logging
import pickle
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from llm_line.errors import CellError
from llm_line.files import atomic_file

log = logging.getLogger(__name__)

CHECKPOINT_FOLDER = re.compile(r"^\d{10}$")  # lingua names checkpoint folders by step, 10 digits
CONSOLIDATED = Path("consolidated") / "consolidated.pth"
PARAMS = "params.json"


class ExportError(CellError):
    """A checkpoint cannot be exported as asked; the message says why and what to do."""


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
