"""Bad input to `python evaluate.py` that only shows while it runs (issue 18): a run dir that cannot be set up
in the middle of a sweep, a disk that fills while the result is written, and `model.add_bos_token`.

One `-m` sweep of four demo cells, each failing its own way, runs once for the module (a subprocess, as a
user runs it); a full disk is injected into the atomic write's fsync (`FULL_DISK_FOR`: the run dirs and file
names whose write fails with ENOSPC), the other two cells are blocked by files where Hydra makes their folders.
"""

import json
import os
import re
import subprocess
import sys

import pytest
import torch
from conftest import ROOT

from llm_line.evaluation import store

# Runs evaluate.py with os.fsync failing for the temp files of FULL_DISK_FOR ("<run dir part>/<file name>", ...)
FULL_DISK = """
import errno, os, runpy, sys
full = [f for f in os.environ.get("FULL_DISK_FOR", "").split(",") if f]
fsync = os.fsync

def failing(fd):
    folder, name = os.path.split(os.readlink(f"/proc/self/fd/{fd}"))
    if any(folder.endswith(os.path.dirname(f)) and name.startswith(f".{os.path.basename(f)}.") for f in full):
        raise OSError(errno.ENOSPC, "No space left on device")
    fsync(fd)

os.fsync = failing
sys.argv = ["evaluate.py", *sys.argv[1:]]
runpy.run_path("evaluate.py", run_name="__main__")
"""
MODEL = "llm-line--demo-tiny/main"
RESULT_FULL = "demo_sounds/0shot"  # its result.json does not fit, its failure.json does
BOTH_FULL = "demo_colors/0shot"  # neither fits
LOG_IS_A_FOLDER = "demo_sounds/2shot"  # its run dir exists, but Hydra cannot open its log
RUN_DIR_IS_A_FILE = "demo_colors/2shot"  # a file where its run dir must be


def evaluate(*overrides, env=None):
    env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", FULL_DISK, *overrides], cwd=ROOT, capture_output=True, text=True, env=env
    )


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, cache_dir):
    root = tmp_path_factory.mktemp("results")
    (root / MODEL / LOG_IS_A_FOLDER / "evaluate.log").mkdir(parents=True)
    (root / MODEL / RUN_DIR_IS_A_FILE).parent.mkdir(parents=True)
    (root / MODEL / RUN_DIR_IS_A_FILE).write_text("not a folder")
    full = [f"{RESULT_FULL}/{store.RESULT}", f"{BOTH_FULL}/{store.RESULT}", f"{BOTH_FULL}/{store.FAILURE}"]
    proc = evaluate(
        "-m", "task=demo_sounds,demo_colors", "shots=0,2", f"results_dir={root}", env={"FULL_DISK_FOR": ",".join(full)}
    )
    return root, proc


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache_dir):
    """The metrics of the full-disk cells computed where the disk has room: what their logs must hold (the demo
    model's numbers depend on the CPU it was trained on, so they are computed, not written down)."""
    root = tmp_path_factory.mktemp("reference")
    proc = evaluate("-m", "task=demo_sounds,demo_colors", "shots=0", f"results_dir={root}")
    assert proc.returncode == 0, proc.stderr
    return {cell: store.read_result(root / MODEL / cell / store.RESULT)["metrics"] for cell in (RESULT_FULL, BOTH_FULL)}


def lines(proc) -> list[str]:
    """The console's lines (the log on stdout, the final error on stderr) without the log records'
    `[time][logger][level] - ` prefixes."""
    text = proc.stdout + proc.stderr
    return [re.sub(r"^(\[[^]]*\])+( - )?", "", line).strip() for line in text.splitlines() if line.strip()]


def about(proc, cell: str) -> set[str]:
    """The distinct lines about one cell (`demo_colors (2-shot)`): logged as it fails, and in the summary."""
    return {line for line in lines(proc) if line.startswith(f"llm-line/demo-tiny@main on {cell}")}


def test_the_sweep_runs_every_cell_and_fails_at_the_end_with_a_summary(sweep):
    root, proc = sweep
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    out = lines(proc)
    summary = out.index("4 cells or jobs failed:")
    cells = [re.search(r" on (\w+) \((\d)-shot\)", line).groups() for line in out[summary + 1 : summary + 5]]
    assert cells == [("demo_sounds", "0"), ("demo_sounds", "2"), ("demo_colors", "0"), ("demo_colors", "2")]
    assert out[-2].startswith("error: llm-line/demo-tiny@main on demo_sounds (0-shot) was computed but")  # the first
    assert not list(root.rglob(store.RESULT)) and not list(root.rglob(".*.tmp"))


def test_a_file_where_the_run_dir_must_be_fails_that_cell_alone(sweep):
    root, proc = sweep
    run_dir = root / MODEL / RUN_DIR_IS_A_FILE
    (line,) = about(proc, "demo_colors (2-shot)")
    assert line == (
        f"llm-line/demo-tiny@main on demo_colors (2-shot): its run dir could not be set up: {run_dir}: already "
        "exists; remove it or choose another path (no failure.json: its run dir does not exist)"
    )
    assert run_dir.read_text() == "not a folder"


def test_a_run_dir_hydra_cannot_log_into_gets_a_failure_record(sweep):
    root, proc = sweep
    run_dir = root / MODEL / LOG_IS_A_FOLDER
    message = f"its run dir could not be set up: {run_dir}/evaluate.log: is a folder, not a file"
    assert any(message in line for line in lines(proc))
    failure = json.loads((run_dir / store.FAILURE).read_text())
    assert failure["status"] == "failed" and failure["cell"]["shots"] == 2 and message in failure["error"]
    status = subprocess.run(
        [sys.executable, "-m", "llm_line.sweeps.status", str(root)], cwd=ROOT, capture_output=True, text=True
    ).stdout
    assert "4 cells  done 0  failed 2  running 0  queued 0  missing 2" in status  # no failure.json: missing


def test_a_full_disk_at_the_result_keeps_the_metrics_in_the_log_and_failure_json(sweep, reference):
    root, proc = sweep
    run_dir = root / MODEL / RESULT_FULL
    path = run_dir / store.RESULT
    line = lines(proc)[-2]  # the sweep's own last line (the summary's lines are its cells' errors too)
    assert line.startswith(
        f"error: llm-line/demo-tiny@main on demo_sounds (0-shot) was computed but its result was not saved: {path}: "
        "no space left on the device; free space there or write somewhere else ("
    )
    assert " free of " in line and " on the file system at /" in line  # the disk and its free space
    assert line.endswith(f"); its metrics are in the log and {run_dir}/failure.json")
    failure = json.loads((run_dir / store.FAILURE).read_text())
    assert failure["error"] == f"CellError: {line.removeprefix('error: ').split('; its metrics')[0]}"
    assert failure["metrics"] == reference[RESULT_FULL] and failure["metrics"]["demo_sounds"]["n_docs"] == 32
    log = (run_dir / "evaluate.log").read_text()
    metrics = log.index("Metrics of llm-line/demo-tiny@main on demo_sounds (0-shot): ")
    assert metrics < log.index("was computed but its result was not saved")  # logged before the write
    logged = json.loads(log[metrics:].split(": ", 1)[1].splitlines()[0])
    assert logged == failure["metrics"]


def test_a_full_disk_that_takes_the_failure_record_too_says_so(sweep, reference):
    root, proc = sweep
    run_dir = root / MODEL / BOTH_FULL
    (line,) = about(proc, "demo_colors (0-shot)")
    assert line.startswith("llm-line/demo-tiny@main on demo_colors (0-shot) was computed but its result was not saved")
    assert (
        f"its metrics are in the log only (failure.json could not be written either: {run_dir}/failure.json: no space "
        "left on the device; free space there or write somewhere else (" in line
    )
    assert not (run_dir / store.FAILURE).exists()
    log = (run_dir / "evaluate.log").read_text()
    logged = log[log.index("Metrics of llm-line/demo-tiny@main on demo_colors (0-shot): ") :].split(": ", 1)[1]
    assert json.loads(logged.splitlines()[0]) == reference[BOTH_FULL]


@torch.no_grad()
def test_add_bos_token_puts_the_bos_before_every_context(tmp_path, cache_dir, demo_model):
    """The demo tokenizer's BOS is its EOS (`<|endoftext|>`, id 0), which separated the documents it was trained
    on: a BOS before the context moves the demo's numbers only in the 4th-5th digit, so the summary looks alike.
    The per-document loglikelihoods are lm-eval's with the BOS, computed here by hand with and without it."""
    import pyarrow.parquet as pq
    from transformers import AutoModelForCausalLM, AutoTokenizer

    proc = evaluate("task=demo_sounds", "model.add_bos_token=true", f"results_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = pq.read_table(tmp_path / MODEL / "demo_sounds/0shot/documents.parquet").to_pylist()
    model = AutoModelForCausalLM.from_pretrained(demo_model, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(demo_model)
    docs = [json.loads(line) for line in (ROOT / "llm_line/tasks/demo/sounds_validation.jsonl").open()]

    def loglikelihood(context, continuation, bos):
        whole = tokenizer(context + continuation)["input_ids"]
        n = len(whole) - len(tokenizer(context)["input_ids"])
        ids = torch.tensor([[tokenizer.bos_token_id] * bos + whole])
        logprobs = torch.log_softmax(model(ids).logits[0], -1)
        return sum(logprobs[i - 1, ids[0, i]].item() for i in range(ids.shape[1] - n, ids.shape[1]))

    moved = 0.0
    for record in records:
        doc = docs[record["doc_id"]]
        context = f"Question: {doc['question']}\nAnswer:"
        for choice, scored in zip(doc["choices"], record["loglikelihood"], strict=True):
            with_bos, without = loglikelihood(context, f" {choice}", True), loglikelihood(context, f" {choice}", False)
            assert scored == pytest.approx(with_bos, abs=1e-5)
            moved = max(moved, abs(scored - without))
    assert moved > 1e-4  # 1.8e-4 at most: the BOS is there, and the demo model barely minds it


class NoCallbacks:
    def on_job_start(self, **kwargs):
        pass

    def on_job_end(self, **kwargs):
        pass


def test_a_slurm_pack_fails_only_the_cell_whose_run_dir_cannot_be_made(tmp_path, monkeypatch, capsys):
    """The packed SLURM launcher's job (`PackedSlurmLauncher.__call__`, as submitit runs it on a node) with
    submitit's environment faked and a task function that records what ran: the blocked cell fails with its
    one line, the cells after it still run, and the job fails at the end."""
    import signal

    import submitit
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.singleton import Singleton
    from hydra.types import HydraContext
    from omegaconf import open_dict

    from hydra_plugins.llm_line_launcher import PackedSlurmLauncher

    class Environment:
        global_rank, num_tasks, job_id = 0, 1, "7_0"
        _usr_sig = staticmethod(lambda: signal.SIGUSR2)

    monkeypatch.setattr(submitit, "JobEnvironment", Environment)
    (tmp_path / MODEL / "demo_colors").mkdir(parents=True)
    (tmp_path / MODEL / "demo_colors" / "0shot").write_text("not a folder")
    ran = []
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        config = compose("config", overrides=[f"results_dir={tmp_path}"], return_hydra_config=True)
        with open_dict(config):
            config.hydra.job.config_name = "config"
        launcher = PackedSlurmLauncher.__new__(PackedSlurmLauncher)
        launcher.config, launcher.task_function = config, lambda cfg: ran.append(cfg.task.name)
        launcher.hydra_context = HydraContext(
            config_loader=GlobalHydra.instance().config_loader(), callbacks=NoCallbacks()
        )
        pack = [[f"task={name}", f"results_dir={tmp_path}"] for name in ("demo_sounds", "demo_colors", "demo")]
        with pytest.raises(RuntimeError, match="^1 of 3 cells of this job failed"):
            launcher(pack, "hydra.sweep.dir", [0, 1, 2], "job_id_for_0", Singleton.get_state())
    assert ran == ["demo_sounds", "demo"]
    assert (
        f"llm-line/demo-tiny@main on demo_colors (0-shot): its run dir could not be set up: {tmp_path / MODEL}/"
        "demo_colors/0shot: already exists; remove it or choose another path"
        in capsys.readouterr().out  # the job's log
    )
