"""Bad input: a clear, actionable error, a non-zero exit, no half-written result, other cells untouched."""

import httpx2
import pytest
from huggingface_hub import errors as hub

from llm_line import store
from llm_line.harness import explain_load_error


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
        (["task=demo_sounds", "model=pythia", "model.size=70m"],
         "cannot load EleutherAI/pythia-70m at revision 'main': the Hugging Face hub is disabled"),
        (["task=demo_sounds", "model=pythia", "model.pretrained=/nonexistent/model"], "local model folder /nonexistent/model does not exist"),
    ],
)
def test_bad_input_fails_clearly_and_touches_nothing(done, cli, overrides, message):
    root, path, before = done
    proc = cli(*overrides, results_dir=root, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr + proc.stdout
    assert path.read_bytes() == before
    assert len(list(root.rglob(store.RESULT))) == 1


def test_failed_cell_leaves_a_failure_record_and_no_result(done, cli):
    root, _, _ = done
    cli("task=demo_sounds", "model.revision=step7", results_dir=root, check=False)
    failure = root / "llm-line--demo-tiny" / "step7" / "demo_sounds" / "0shot" / store.FAILURE
    text = failure.read_text()
    assert '"status": "failed"' in text and "step7" in text
    assert not (failure.parent / store.RESULT).exists()


def test_a_failing_cell_does_not_stop_the_rest_of_the_sweep(tmp_path, cli):
    proc = cli("-m", "task=demo_sounds", "model.revision=step7,step100", results_dir=tmp_path, check=False)
    assert proc.returncode != 0
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
