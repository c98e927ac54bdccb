"""The hub code path users run, against a hub on 127.0.0.1 (tests/hub_server.py): revisions resolved against
the repository's branches, the preflight, the download recorded with its commit, the same cell offline from
the cache, hub datasets for lm-eval tasks and corpora, and one clear line for each way the hub can fail."""

import json
import shutil
import socket

import pytest
import torch
from hub_server import HubServer, Repo, checkpoint_copy
from huggingface_hub import constants
from omegaconf import OmegaConf

from llm_line.errors import CellError
from llm_line.evaluation import hub, store
from llm_line.sweeps import prefetch

ORG = "llm-line"
MODEL = f"{ORG}/demo-hub"
BIN = f"{ORG}/demo-bin"  # main: pytorch_model.bin only; step100: no weights at all
STEPS = (0, 100, 200, 300)


@pytest.fixture(scope="module")
def repos(demo_model, tmp_path_factory, cache_dir):
    """The demo model as a hub model repository (one branch per checkpoint), a lm-eval dataset, a corpus."""
    data = tmp_path_factory.mktemp("hub_data")
    colors, corpus = data / "colors", data / "corpus"
    colors.mkdir()
    corpus.mkdir()
    for split in ("train", "validation"):
        shutil.copy(hub_tasks_dir() / f"colors_{split}.jsonl", colors / f"{split}.jsonl")
    shutil.copy(corpus_file(), corpus / "validation.jsonl")
    branches = {f"step{s}": demo_model / f"step{s}" for s in STEPS} | {"main": demo_model / "step300"}
    bin_branches = {
        "main": checkpoint_copy(demo_model / "step300", data / "bin_only", "bin"),
        "step100": checkpoint_copy(demo_model / "step100", data / "no_weights", None),
    }
    return [
        Repo("model", MODEL, branches),
        Repo("model", BIN, bin_branches),
        Repo("model", f"{ORG}/gated", branches, gated=True),
        Repo("model", f"{ORG}/private", branches, private=True),
        Repo("dataset", f"{ORG}/demo-colors", {"main": colors}),
        Repo("dataset", f"{ORG}/demo-corpus", {"main": corpus}),
    ]


def hub_tasks_dir():
    from llm_line.evaluation.demo import TASK_DIR

    return TASK_DIR


def corpus_file():
    from llm_line.evaluation.config import PACKAGE_DIR

    return PACKAGE_DIR / "corpora" / "demo.jsonl"


@pytest.fixture
def online(repos, tmp_path, monkeypatch):
    """A running hub for this test, in-process: huggingface_hub pointed at it, offline mode off, fresh caches."""
    with HubServer(repos) as server:
        monkeypatch.setattr(constants, "ENDPOINT", server.url)  # both read HF_ENDPOINT when first imported
        monkeypatch.setattr(
            constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/{revision}/{filename}"
        )
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setenv("LLM_LINE_CACHE", str(tmp_path / "llm_line"))
        monkeypatch.setattr(hub, "_refs", {})
        monkeypatch.setattr(hub, "_files", {})
        yield server


def test_patterns_and_names_resolve_against_the_branch_list_listed_once(online):
    assert hub.resolve(MODEL, "step1*") == hub.Resolved("step100", online.repos[("model", MODEL)].commit("step100"))
    assert hub.resolve(MODEL, "step300").name == "step300" and hub.resolve(MODEL, "main").name == "main"
    with pytest.raises(
        CellError,
        match=r"'step150' of llm-line/demo-hub does not exist on the hub; "
        r"nearest: step0, step100, step200, step300",
    ):
        hub.resolve(MODEL, "step150")
    with pytest.raises(CellError, match=r"'step\*' matches 4 branches"):
        hub.resolve(MODEL, "step*")
    assert online.requests.count(f"GET /api/models/{MODEL}/refs") == 1  # one listing per repository
    hub._refs.clear()  # a new process within REFS_LIFETIME_S reads the listing from disk
    assert hub.resolve(MODEL, "step2*").name == "step200"
    assert online.requests.count(f"GET /api/models/{MODEL}/refs") == 1


def test_offline_resolution_uses_the_cached_listing_and_says_what_it_cannot_verify(online, monkeypatch):
    hub.list_refs(MODEL)
    online.stop()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    hub._refs.clear()
    assert hub.resolve(MODEL, "step1*").name == "step100"  # the saved listing, at any age
    checks = hub.preflight(
        [cell(MODEL, "step100"), cell(f"{ORG}/never-listed", "step5"), cell(f"{ORG}/never-listed", "step5*")]
    )
    text = hub.report(checks)
    assert "1 missing, 1 unverified" in text and "llm-line/never-listed@step5" in text
    assert "cannot resolve revision 'step5*' of llm-line/never-listed offline" in text


def cell(repo, revision, dataset=None):
    return OmegaConf.create(
        {
            "model": {"pretrained": repo, "demo_size": None, "revision": revision, "tokenizer": None},
            "task": {
                "name": "t",
                "include_path": None,
                "corpus": {"dataset": dataset, "dataset_revision": None} if dataset else None,
            },
        }
    )


def test_preflight_stops_a_grid_with_missing_revisions_unless_told_to_launch_the_rest(online, caplog):
    cells = [
        cell(MODEL, "step100"),
        cell(MODEL, "step150"),
        cell(MODEL, "step1*"),
        cell(MODEL, "step250"),
        cell(MODEL, "main", dataset=f"{ORG}/demo-corpus"),
    ]
    missing = hub.missing_cells([hub.hub_revisions([c]) for c in cells])
    assert "nearest: step0, step100, step200, step300" in caplog.text  # step150's neighbours, listed
    assert "nearest: step100, step200, step300" in caplog.text  # step250's (only one branch above it)
    assert sorted(missing) == [1, 3] and "step150" in missing[1]
    assert online.requests.count(f"GET /api/models/{MODEL}/refs") == 1
    assert online.requests.count(f"GET /api/datasets/{ORG}/demo-corpus/refs") == 1
    assert not [r for r in online.requests if "/resolve/" in r]  # no downloads


def test_prefetch_downloads_a_grid_into_the_cache(online):
    corpus = f"{ORG}/demo-corpus"
    cells = [cell(MODEL, "step1*", dataset=corpus), cell(MODEL, "main", dataset=corpus)]
    prefetch.fetch(cells)
    assert hub.downloaded_commit(MODEL, "step100") == online.repos[("model", MODEL)].commit("step100")
    assert hub.downloaded_commit(MODEL, "main") == online.repos[("model", MODEL)].commit("main")
    assert not [r for r in online.requests if r.startswith(f"GET /datasets/{corpus}/resolve/")]  # streamed corpora
    assert online.requests.count(f"GET /{MODEL}/resolve/{hub.downloaded_commit(MODEL, 'main')}/model.safetensors") == 1


NO_WEIGHTS = (
    "llm-line/demo-bin@step100 has no loadable weights {where} (model.safetensors, pytorch_model.bin, or either "
    "sharded with its .index.json); it has: config.json, generation_config.json, llm_line_demo.json, "
    "tokenizer.json, tokenizer_config.json. Pick another revision"
)


def test_the_preflight_lists_each_revisions_files_and_requires_loadable_weights(online):
    cells = [cell(MODEL, "step100"), cell(BIN, "main"), cell(BIN, "step100"), cell(BIN, "main")]
    checks = hub.preflight(cells)
    assert [c.weights for c in checks] == [["model.safetensors"], ["pytorch_model.bin"], None]
    assert [c.problem for c in checks] == [None, None, NO_WEIGHTS.format(where="on the hub")]
    text = hub.report(checks)
    assert text.startswith("hub preflight: 3 repository revisions, 1 missing, 0 unverified")
    assert f"  missing: {NO_WEIGHTS.format(where='on the hub')}" in text
    bin_repo = online.repos[("model", BIN)]
    for branch in ("main", "step100"):  # one file listing per revision, at its commit
        assert online.requests.count(f"GET /api/models/{BIN}/tree/{bin_repo.commit(branch)}") == 1
    assert hub.missing_cells([hub.hub_revisions([c]) for c in cells]) == {2: NO_WEIGHTS.format(where="on the hub")}
    assert len([r for r in online.requests if "/tree/" in r]) == 3  # listed once per process
    assert not [r for r in online.requests if "/resolve/" in r]  # nothing downloaded


def test_prefetch_downloads_the_weights_a_revision_has_and_fails_on_none(online, demo_model, monkeypatch):
    from transformers import AutoModelForCausalLM

    corpus = f"{ORG}/demo-corpus"  # a corpus cell: no lm-eval task data to download
    with pytest.raises(CellError) as error:
        prefetch.fetch([cell(BIN, "step100", dataset=corpus)])
    assert str(error.value) == NO_WEIGHTS.format(where="on the hub")
    assert not [r for r in online.requests if "/resolve/" in r]

    prefetch.fetch([cell(BIN, "main", dataset=corpus)])
    commit = online.repos[("model", BIN)].commit("main")
    snapshot = hub._cached_snapshot(BIN, commit)
    assert snapshot is not None and (snapshot / "pytorch_model.bin").is_file()
    assert not list(snapshot.glob("*.safetensors"))
    ids = torch.tensor([[1, 2, 3, 4]])
    loaded, original = (AutoModelForCausalLM.from_pretrained(path) for path in (snapshot, demo_model / "step300"))
    assert torch.equal(loaded(ids).logits, original(ids).logits)  # the .bin holds the branch's weights

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # a compute node: the cache's snapshot is checked
    hub._refs.clear()
    (check,) = hub.preflight([cell(BIN, "main")])
    assert check.weights == ["pytorch_model.bin"] and check.problem is None
    (snapshot / "pytorch_model.bin").unlink()
    hub._refs.clear()
    (check,) = hub.preflight([cell(BIN, "main")])
    assert check.problem.startswith(f"{BIN}@main has no loadable weights in the hub cache (HF_HUB_OFFLINE is set")


@pytest.mark.parametrize(
    "files, weights",
    [
        (["model.safetensors", "pytorch_model.bin"], ["model.safetensors"]),  # safetensors preferred
        (
            ["model.safetensors.index.json", "model-00002-of-00002.safetensors", "model-00001-of-00002.safetensors"],
            ["model.safetensors.index.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"],
        ),
        (  # a shard missing: the whole .bin set instead
            [
                "model.safetensors.index.json",
                "model-00001-of-00002.safetensors",
                "pytorch_model.bin.index.json",
                "pytorch_model-00001-of-00002.bin",
                "pytorch_model-00002-of-00002.bin",
            ],
            ["pytorch_model.bin.index.json", "pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"],
        ),
        (["model.safetensors.index.json", "model-00001-of-00002.safetensors"], None),
        (["model-00001-of-00001.safetensors"], None),  # shards without their index
        (["pytorch_model.bin", "config.json"], ["pytorch_model.bin"]),
        (["config.json", "tokenizer.json", "adapter_model.safetensors"], None),
    ],
)
def test_loadable_weights(files, weights):
    assert hub.loadable_weights(files) == weights


@pytest.mark.parametrize(
    "repo, message",
    [
        (
            f"{ORG}/gated",
            "model llm-line/gated is gated: accept its terms on its hub page, then log in with `hf auth login`",
        ),
        (
            f"{ORG}/private",
            "model 'llm-line/private' is neither a local folder nor a model on the Hugging Face hub, or it is private",
        ),
        (f"{ORG}/nope", "model 'llm-line/nope' is neither a local folder nor a model on the Hugging Face hub"),
    ],
)
def test_hub_refusals_are_one_clear_line(online, repo, message):
    with pytest.raises(CellError) as error:
        hub.resolve(repo, "main")
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_an_unreachable_hub_is_one_clear_line(online, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(constants, "HF_HUB_ETAG_TIMEOUT", 1)
    with pytest.raises(CellError) as error:
        hub.resolve(MODEL, "main")
    text = str(error.value)
    assert text.startswith(f"cannot load {MODEL}: the Hugging Face hub at http://127.0.0.1:{port} is unreachable")
    assert "HF_HUB_OFFLINE=1" in text and "\n" not in text


@pytest.fixture(scope="module")
def hub_tasks(tmp_path_factory):
    """An lm-eval task whose dataset_path is a hub dataset id (the demo colors task, served by the hub)."""
    folder = tmp_path_factory.mktemp("hub_tasks")
    text = (hub_tasks_dir() / "demo_colors.yaml").read_text()
    text = text.replace("task: demo_colors", "task: hub_colors").replace("custom_dataset: !function data.load\n", "")
    head, rest = text.split("dataset_kwargs:\n", 1)
    rest = rest.split("output_type:", 1)[1]
    (folder / "hub_colors.yaml").write_text(f"{head}dataset_path: {ORG}/demo-colors\noutput_type:{rest}")
    return folder


@pytest.fixture
def hub_env(monkeypatch, tmp_path):
    """`hub_env(url, offline)`: the environment of the CLI runs that follow (a temporary HF_HOME for the test)."""

    def use(server_url, offline):
        monkeypatch.setenv("HF_ENDPOINT", server_url)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
        for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
            monkeypatch.setenv(name, "1") if offline else monkeypatch.delenv(name, raising=False)

    return use


@pytest.mark.slow
def test_a_hub_model_on_a_hub_dataset_task_downloads_records_its_commit_then_runs_offline(
    repos, hub_tasks, cli, hub_env, tmp_path
):
    """model=hf model.name=<org>/<repo> model.step=100 on an lm-eval task with a hub dataset_path."""
    cell_args = [
        "model=hf",
        f"model.name={MODEL}",
        "model.step=100",
        "task=demo",
        "task.name=hub_colors",
        f"task.include_path={hub_tasks}",
        "task.limit=8",
    ]
    with HubServer(repos) as server:
        hub_env(server.url, offline=False)
        first = cli(*cell_args, results_dir=tmp_path / "online")
        commit = server.repos[("model", MODEL)].commit("step100")
    # the server is gone: the same cell (computed again) is served from the cache
    hub_env(server.url, offline=True)
    second = cli(*cell_args, results_dir=tmp_path / "offline")
    results = []
    for root, proc in ((tmp_path / "online", first), (tmp_path / "offline", second)):
        (path,) = root.rglob(store.RESULT)
        assert "llm-line--demo-hub/step100/hub_colors/0shot_limit8" in str(path), proc.stderr[-2000:]
        results.append(store.read_result(path))
    for result in results:
        assert result["model"]["resolved_revision"] == "step100" and result["model"]["resolved_commit"] == commit
        assert result["n_docs"] == 8
    assert results[0]["metrics"] == results[1]["metrics"]
    assert 0.0 <= results[0]["metrics"]["hub_colors"]["acc"] <= 1.0


@pytest.mark.slow
def test_a_missing_branch_fails_with_the_nearest_ones(repos, cli, hub_env, tmp_path):
    with HubServer(repos) as server:
        hub_env(server.url, offline=False)
        proc = cli(
            "model=hf", f"model.name={MODEL}", "model.step=150", "task=demo_sounds", results_dir=tmp_path, check=False
        )
    assert proc.returncode != 0
    assert (
        "revision 'step150' of llm-line/demo-hub does not exist on the hub; nearest: step0, step100, step200, "
        "step300" in proc.stderr + proc.stdout
    )
    assert not list(tmp_path.rglob(store.RESULT))


@pytest.mark.slow
def test_a_corpus_task_streams_a_hub_dataset(repos, cli, hub_env, tmp_path):
    with HubServer(repos) as server:
        hub_env(server.url, offline=False)
        cli(
            "task=val_demo",
            "task.corpus.path=null",
            f"task.corpus.dataset={ORG}/demo-corpus",
            "task.corpus.max_documents=20",
            results_dir=tmp_path,
        )
        assert any(r.startswith(f"GET /datasets/{ORG}/demo-corpus/resolve/") for r in server.requests)
    (path,) = tmp_path.rglob(store.RESULT)
    result = json.loads(path.read_text())
    assert result["task"]["settings"]["dataset"] == f"{ORG}/demo-corpus"
    lines = [json.loads(line)["text"] for line in corpus_file().read_text().splitlines() if line.strip()]
    assert result["n_docs"] == sum(1 for text in lines[:20] if text) == 19  # the local file's first 20, one empty
    assert result["metrics"]["val_demo"]["loss"] > 0


@pytest.mark.slow
def test_the_sweep_stops_on_missing_revisions_and_prefetches_the_rest(repos, cli, hub_env, tmp_path):
    sweep = ["-m", "model=hf", f"model.name={MODEL}", "model.step=100,150", "task=val_demo"]
    with HubServer(repos) as server:
        hub_env(server.url, offline=False)
        stopped = cli(*sweep, results_dir=tmp_path, check=False)
        assert stopped.returncode != 0 and not [r for r in server.requests if "/resolve/" in r]
        assert "1 cells of this grid ask for hub revisions that do not exist" in stopped.stderr
        assert (
            "'step150' of llm-line/demo-hub does not exist on the hub; nearest: step0, step100, step200"
            in stopped.stdout + stopped.stderr
        )  # the preflight's report, logged
        cli(*sweep, "hydra.sweeper.skip_missing=true", "hydra.sweeper.prefetch=true", results_dir=tmp_path)
        commit = server.repos[("model", MODEL)].commit("step100")
        assert f"GET /{MODEL}/resolve/{commit}/model.safetensors" in server.requests
    assert not list(tmp_path.rglob(store.RESULT))  # prefetch launches nothing
    refs = tmp_path / "hf" / "hub" / "models--llm-line--demo-hub" / "refs" / "step100"
    assert refs.read_text() == commit


@pytest.mark.slow
def test_a_sweep_prefetches_a_bin_only_revision_that_then_runs_offline_and_stops_on_one_without_weights(
    repos, cli, hub_env, tmp_path
):
    sweep = ["-m", "model=hf", f"model.name={BIN}", "model.revision=main,step100", "task=val_demo", "task.limit=4"]
    with HubServer(repos) as server:
        hub_env(server.url, offline=False)
        stopped = cli(*sweep, results_dir=tmp_path, check=False)
        assert stopped.returncode != 0 and not [r for r in server.requests if "/resolve/" in r]
        assert "1 cells of this grid ask for hub revisions that do not exist or hold no loadable weights" in (
            stopped.stderr
        )
        assert NO_WEIGHTS.format(where="on the hub") in stopped.stdout + stopped.stderr
        cli(*sweep, "hydra.sweeper.skip_missing=true", "hydra.sweeper.prefetch=true", results_dir=tmp_path)
        commit = server.repos[("model", BIN)].commit("main")
        assert f"GET /{BIN}/resolve/{commit}/pytorch_model.bin" in server.requests
    hub_env(server.url, offline=True)  # a compute node: the prefetched .bin-only revision loads from the cache
    cli("model=hf", f"model.name={BIN}", "task=val_demo", "task.limit=4", results_dir=tmp_path)
    (path,) = tmp_path.rglob(store.RESULT)
    result = store.read_result(path)
    assert result["model"]["resolved_commit"] == commit and result["metrics"]["val_demo"]["loss"] > 0
