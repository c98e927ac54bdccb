"""Shared fixtures: everything offline, the demo model built once per session in a temporary cache."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One demo-model cache for the whole session (building it takes seconds, not minutes).

    Under pytest-xdist each worker has its own cache, whose `demo/` models are shared by all workers (a link
    to one folder of the session; llm_line.evaluation.demo.ensure builds each model once, under a file lock).
    """
    path = tmp_path_factory.mktemp("llm_line_cache")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = tmp_path_factory.getbasetemp().parent / "demo_models"
        shared.mkdir(exist_ok=True)
        (path / "demo").symlink_to(shared, target_is_directory=True)
    os.environ["LLM_LINE_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def demo_model(cache_dir) -> Path:

    from llm_line.evaluation import demo

    return demo.ensure(cache_dir / "demo" / "tiny", "tiny")


def run_main(main, argv, capsys):
    """(exit status, stdout, stderr) of a command's `main(argv)`, whether it returns or exits (argparse)."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cli(cache_dir):
    """`cli(*overrides, results_dir=...)` runs `python evaluate.py` in a subprocess, as a user would."""
    return run_evaluate


def run_evaluate(*overrides: str, results_dir: Path, check: bool = True, block_torch: bool = False, **kwargs):
    """Run `python evaluate.py` in a subprocess as a user would; `block_torch` makes importing torch fail."""
    args = [*overrides, f"results_dir={results_dir}"]
    if block_torch:
        code = (
            "import sys, runpy; sys.modules['torch'] = None; "
            f"sys.argv = ['evaluate.py', *{args!r}]; runpy.run_path('evaluate.py', run_name='__main__')"
        )
        cmd = [sys.executable, "-c", code]
    else:
        cmd = [sys.executable, "evaluate.py", *args]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=os.environ.copy(), **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc
