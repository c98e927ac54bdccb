"""Bad input: a clear, actionable error, a non-zero exit, no half-written result, other cells untouched."""

import httpx2
import pytest
from huggingface_hub import errors as hub

from llm_line.evaluation import store
from llm_line.evaluation.harness import explain_load_error
from llm_line.evaluation.identity import CellId
from llm_line.files import write_json


@pytest.fixture(scope="module")
def done(tmp_path_factory, cache_dir):
    """A results root that already holds one finished cell, which no failing cell may touch."""
    from conftest import run_evaluate

    root = tmp_path_factory.mktemp("results")
    run_evaluate("task=demo_sounds", results_dir=root)
    (path,) = root.rglob(store.RESULT)
    return root, path, path.read_bytes()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model=pythai"], "Could not find 'model/pythai'"),
        (["model.revison=step1"], "Key 'revison' not in 'ModelConfig'"),
        (["task.name=hellaswg"], "lm-eval does not know the task 'hellaswg'; did you mean hellaswag"),
        (["task=demo_sounds", "model.revision=step7"], "revision 'step7' does not exist in local model"),
        (
            ["task=demo_sounds", "model=pythia", "model.size=70m"],
            "cannot load EleutherAI/pythia-70m at revision 'main': the Hugging Face hub is disabled",
        ),
        (
            ["task=demo_sounds", "model=pythia", "model.pretrained=/nonexistent/model"],
            "local model folder /nonexistent/model does not exist",
        ),
    ],
)
@pytest.mark.slow
def test_bad_input_fails_clearly_and_touches_nothing(done, cli, overrides, message):
    root, path, before = done
    proc = cli(*overrides, results_dir=root, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr + proc.stdout
    assert path.read_bytes() == before
    assert len(list(root.rglob(store.RESULT))) == 1


@pytest.mark.slow
def test_failed_cell_leaves_a_failure_record_and_no_result(done, cli):
    root, _, _ = done
    cli("task=demo_sounds", "model.revision=step7", results_dir=root, check=False)
    failure = root / "llm-line--demo-tiny" / "step7" / "demo_sounds" / "0shot" / store.FAILURE
    text = failure.read_text()
    assert '"status": "failed"' in text and "step7" in text
    assert not (failure.parent / store.RESULT).exists()


@pytest.mark.slow
def test_a_failing_cell_does_not_stop_the_rest_of_the_sweep(tmp_path, cli):
    proc = cli("-m", "task=demo_sounds", "model.revision=step7,step100", results_dir=tmp_path, check=False)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr  # one line per failed cell, as in a single run
    assert "error: revision 'step7' does not exist in local model" in proc.stderr
    (path,) = tmp_path.rglob(store.RESULT)
    assert store.read_result(path)["cell"]["revision"] == "step100"


def _hub_error(cls, text):
    response = httpx2.Response(404, request=httpx2.Request("GET", "https://huggingface.co/api/models/x"))
    return cls(text, response=response)


def test_missing_hub_revision_says_how_to_list_revisions():
    try:  # transformers wraps the hub's error in an OSError
        raise OSError("step7 is not a valid git identifier") from _hub_error(hub.RevisionNotFoundError, "404")
    except OSError as e:
        text = explain_load_error(e, "EleutherAI/pythia-70m", "step7")
    assert text.startswith("revision 'step7' does not exist for EleutherAI/pythia-70m")
    assert "list_repo_refs('EleutherAI/pythia-70m')" in text


def test_unknown_hub_model_says_so():
    error = _hub_error(hub.RepositoryNotFoundError, "404 repo not found")
    text = explain_load_error(error, "EleutherAI/pythia-71m", "main")
    assert "neither a local folder nor a model on the Hugging Face hub" in text


# --- issue 12: every bad input gets one clear line (docs/errors.md lists them) ----------------------------------

import json  # noqa: E402
import os  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

from hydra import compose, initialize_config_dir  # noqa: E402

from llm_line.analysis import collect  # noqa: E402
from llm_line.errors import CellError  # noqa: E402
from llm_line.evaluation import checks, demo  # noqa: E402
from llm_line.sweeps import status  # noqa: E402

CONF = Path(__file__).resolve().parents[1] / "conf"
CELL = {"model": "m", "revision": "main", "task": "t", "shots": 0, "limit": None}
GOOD = {"schema": store.SCHEMA_VERSION, "status": "ok", "cell": CELL, "metrics": {"t": {"acc": 0.5}}, "n_docs": 2}


def load(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def error_lines(proc) -> list[str]:
    """What the user reads about the error: stderr without log records (the job's INFO lines go to stderr)."""
    return [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("[20")]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["shots=-1"], "error: shots=-1: the number of few-shot examples cannot be negative; use shots=0 or more"),
        (
            ["task.limit=0"],
            "error: task.limit=0: evaluates no documents; use a positive number of documents, "
            "or task.limit=null for all",
        ),
        (["task.limit=-1"], "error: task.limit=-1: evaluates no documents"),
        (["task.include_path=/nonexistent/tasks"], "error: task.include_path=/nonexistent/tasks is not a folder"),
    ],
)
def test_bad_settings_are_one_line_before_anything_exists(tmp_path, cli, overrides, message):
    proc = cli(*overrides, results_dir=tmp_path / "results", check=False, block_torch=True)
    assert proc.returncode == 1
    (line,) = error_lines(proc)
    assert line.startswith(message)
    assert not (tmp_path / "results").exists()  # not even the run dir


def test_results_dir_that_is_a_file_is_one_line(tmp_path, cli):
    (tmp_path / "file").write_text("x")
    for results_dir, message in ((tmp_path / "file", "is a file"), (tmp_path / "file" / "sub", "cannot be created")):
        for mode in ([], ["-m"]):
            proc = cli(*mode, results_dir=results_dir, check=False, block_torch=True)
            assert proc.returncode == 1
            (line,) = error_lines(proc)
            assert line.startswith(f"error: results_dir={results_dir} ") and message in line


def test_read_only_results_dir_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(checks.os, "access", lambda path, mode: Path(path) != tmp_path)  # root may write anywhere
    with pytest.raises(
        CellError,
        match=f"results_dir={tmp_path}/new \\(its nearest existing folder {tmp_path}\\) is not writable by this user",
    ):
        checks.check_results_dir(str(tmp_path / "new"))
    monkeypatch.undo()
    checks.check_results_dir(str(tmp_path / "new"))


@pytest.mark.slow
def test_a_cell_error_is_one_line_with_its_traceback_in_the_log_and_failure_json(tmp_path, cli):
    proc = cli("task=demo_sounds", "shots=1000", "task.limit=1", results_dir=tmp_path, check=False)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr + proc.stdout
    message = "task demo_sounds has 16 few-shot examples (its train split), fewer than shots=1000; use shots=16"
    assert [line for line in error_lines(proc) if not line.startswith(("Error executing job", "Set the env"))] == [
        f"error: {message} or less"
    ]
    run_dir = tmp_path / "llm-line--demo-tiny" / "main" / "demo_sounds" / "1000shot_limit1"
    failure = json.loads((run_dir / store.FAILURE).read_text())
    assert failure["error"].startswith(f"CellError: {message}") and "check_fewshot_pool" in failure["traceback"]
    log_text = (run_dir / "evaluate.log").read_text()
    assert message in log_text and "Traceback" in log_text and "check_fewshot_pool" in log_text
    assert not (run_dir / store.RESULT).exists()


def test_hydra_full_error_keeps_the_whole_traceback():
    """HYDRA_FULL_ERROR=1 makes Hydra re-raise the UserError; its cause is the original, with its traceback."""
    with pytest.raises(checks.UserError) as raised, checks.one_line_errors():
        raise CellError("what is wrong; how to fix it")
    assert str(raised.value) == "error: what is wrong; how to fix it"
    assert isinstance(raised.value.__cause__, CellError) and raised.value.__cause__.__traceback__ is not None
    with pytest.raises(ValueError), checks.one_line_errors():  # a bug is not a user error: its traceback stays
        raise ValueError("bug")


def test_an_empty_model_folder_says_it_is_not_a_saved_model(tmp_path):
    from omegaconf import OmegaConf

    from llm_line.evaluation import harness
    from llm_line.evaluation.config import ModelConfig

    model = OmegaConf.structured(ModelConfig(name="mine", pretrained=str(tmp_path), revision="main"))
    with pytest.raises(
        CellError,
        match=f"local model folder {tmp_path} holds no config.json, so it is not a saved "
        "model; point model.pretrained at the folder that `save_pretrained` wrote",
    ):
        harness.resolve_source(model)


def test_a_broken_task_yaml_is_named_with_its_line(tmp_path):

    from llm_line.evaluation import harness
    from llm_line.evaluation.config import TaskConfig

    (tmp_path / "good.yaml").write_text("task: mine_good\ncustom_dataset: !function data.load\n")
    (tmp_path / "mine.yaml").write_text("task: mine\ndoc_to_text: [unclosed\noutput_type: multiple_choice\n")
    with pytest.raises(CellError, match=f"{tmp_path / 'mine.yaml'}:3: not valid YAML"):
        harness.load_tasks(TaskConfig(name="mine", include_path=str(tmp_path)), 0)


def test_a_corpus_that_is_not_utf8_names_file_and_line(tmp_path):

    from llm_line.evaluation import corpus_tokens
    from llm_line.evaluation.config import CorpusConfig

    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"text": "fine"}\n\n{"text": "caf\xe9"}\n')
    with pytest.raises(CellError, match=f"{path}:3 is not UTF-8 text \\(byte 0xe9 at column 14\\)"):
        list(corpus_tokens.read_texts(CorpusConfig(path=str(path))))
    path.write_bytes(os.urandom(64).replace(b"\n", b"") + b"\x80")
    with pytest.raises(CellError, match=f"{path}:1 is not UTF-8 text"):
        list(corpus_tokens.read_texts(CorpusConfig(path=str(path))))


def test_a_corpus_context_longer_than_the_model_is_refused(demo_model, tmp_path):

    from llm_line.evaluation import corpus

    cfg = load("task=val_demo", "task.corpus.context_length=257", f"model.pretrained={demo_model}")
    with pytest.raises(
        CellError,
        match="task.corpus.context_length=257 is longer than the model's context \\(256 tokens\\); use 256 or less",
    ):
        corpus.evaluate(cfg.model, cfg.task, str(tmp_path))


# --- result files: the whole schema, permissions, non-regular files ------------------------------------------


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"metrics": {}}, "metrics lack the task's own entry 't'"),
        ({"metrics": {"t": 0.5}}, "metrics lack the task's own entry 't'"),
        ({"n_docs": "2"}, "n_docs is '2', not a count"),
        ({"n_docs": -1}, "n_docs is -1, not a count"),
        ({"cell": {k: v for k, v in CELL.items() if k != "limit"}}, "cell lacks one of"),
        ({"status": "failed"}, "status 'failed', not 'ok'"),
    ],
)
def test_a_result_of_the_wrong_shape_is_not_done_anywhere(tmp_path, capsys, change, reason):
    path = tmp_path / "m" / "main" / "t" / "0shot" / store.RESULT
    write_json(path, {**GOOD, **change})
    with pytest.raises(store.CorruptResult, match=reason):
        store.read_result(path)
    assert status.cell_state(path.parent, {"cell": CELL, "launched": True}, False, None)[0] != "done"  # status agrees
    found = collect.collect([tmp_path])
    assert found.n_results == 0 and [s.kind for s in found.skipped] == ["corrupt"]
    # the runner recomputes it, keeping the file aside
    assert store.finished_result(path.parent, CellId.of_record(CELL)) is None
    assert len(list(path.parent.glob("result.json.corrupt-*"))) == 1


def test_a_result_this_user_cannot_read_is_not_corruption(tmp_path, monkeypatch):
    path = tmp_path / store.RESULT
    write_json(path, GOOD)
    real_open = Path.open

    def denied(self, *args, **kwargs):
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", denied)  # a real chmod 000 does not stop root
    with pytest.raises(CellError, match=f"{path}: permission denied; give this user read access"):
        store.finished_result(tmp_path, CellId.of_record(CELL))
    assert path.exists() and not list(tmp_path.glob("*.corrupt-*"))  # never set aside
    found = collect.collect([tmp_path])
    assert [(s.kind, s.path) for s in found.skipped] == [("unreadable", path)]


def test_a_folder_collect_cannot_list_is_reported_and_strict_fails(tmp_path, monkeypatch, capsys):
    from test_collect import write_result

    for task in ("a", "b"):
        write_result(tmp_path, "m", "main", task, {task: {"acc": 0.5, "n_docs": 1}})
    hidden = tmp_path / "m" / "main" / "b"
    real_scandir = os.scandir

    def scandir(path="."):
        if Path(path) == hidden:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    out = tmp_path / "t.csv"
    assert collect.main([str(tmp_path), "-o", str(out), "--strict"]) == 1
    err = capsys.readouterr().err
    assert f"skipped (unreadable) {hidden}: folder not searched (Permission denied)" in err
    assert len(pd_read(out)) == 1


def pd_read(path):
    import pandas as pd

    return pd.read_csv(path)


def test_a_fifo_or_endless_result_file_is_skipped_not_read(tmp_path):
    fifo_dir, zero_dir = tmp_path / "m" / "main" / "a" / "0shot", tmp_path / "m" / "main" / "b" / "0shot"
    fifo_dir.mkdir(parents=True)
    zero_dir.mkdir(parents=True)
    os.mkfifo(fifo_dir / store.RESULT)
    (zero_dir / store.RESULT).symlink_to("/dev/zero")
    (zero_dir / store.FAILURE).symlink_to("/dev/zero")
    for folder in (fifo_dir, zero_dir):
        with pytest.raises(store.CorruptResult, match="not a regular file"):
            store.read_result(folder / store.RESULT)
        assert status.cell_state(folder, {"launched": True}, False, None)[0] == "missing"
    found = collect.collect([tmp_path])
    assert sorted(s.reason for s in found.skipped) == ["not a regular file"] * 2
    huge = tmp_path / "huge.json"
    with huge.open("wb") as f:
        f.truncate(store.MAX_BYTES + 1)
    with pytest.raises(store.CorruptResult, match="more than a result holds"):
        store.read_result(huge)


# --- atomic files and the demo cache -------------------------------------------------------------------------


def test_two_collects_writing_one_table_at_once(tmp_path):
    from test_collect import write_result

    write_result(tmp_path / "r", "m", "main", "a", {"a": {"acc": 0.5, "n_docs": 1}})
    collection = collect.collect([tmp_path / "r"])
    errors = []

    def write():
        try:
            for _ in range(5):
                collect.write_tables(collection, tmp_path / "out.csv")
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "out.csv",
        "out.parquet",
        "out_long.csv",
        "out_long.parquet",
        "r",
    ]
    assert pd_read(tmp_path / "out.csv")["Name"].tolist() == ["m"]


@pytest.fixture
def fake_build(monkeypatch):
    """demo.build without the training: writes what a model folder holds, so the cache logic runs in ms."""
    calls = []

    def build(out, size, seed=0):
        calls.append(out)
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(demo, "build", build)
    return calls


def test_demo_cache_recovers_from_an_incomplete_folder_and_a_killed_build(tmp_path, fake_build):
    target = tmp_path / "demo" / "tiny"
    target.mkdir(parents=True)  # `mkdir -p $LLM_LINE_CACHE/demo/tiny`
    killed = tmp_path / "demo" / f"{demo.building_prefix(target)}abc"  # what a SIGKILLed build leaves
    (killed / "model").mkdir(parents=True)
    assert demo.ensure(target, "tiny") == target and (target / "config.json").exists()
    assert sorted(p.name for p in target.parent.iterdir()) == ["tiny", "tiny.lock"]
    assert demo.ensure(target, "tiny") == target and len(fake_build) == 1  # built once

    stray = tmp_path / "demo" / "small"
    stray.mkdir()
    (stray / "notes.txt").write_text("mine")  # not a model, but not ours to delete
    demo.ensure(stray, "small")
    (aside,) = stray.parent.glob("small.incomplete-*")
    assert (aside / "notes.txt").read_text() == "mine" and (stray / "config.json").exists()
