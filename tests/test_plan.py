"""The sweep plan (llm_line/sweeps/plan.py): fast composition equals Hydra's, states, error cells, packs."""

import shutil

import pytest
from conftest import ROOT
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf, open_dict

from llm_line.evaluation import fingerprint, store
from llm_line.files import write_json
from llm_line.sweeps.plan import make_plan


@pytest.fixture
def loader_and_config(tmp_path):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        config = compose("config", overrides=[f"results_dir={tmp_path}"], return_hydra_config=True)
        with open_dict(config):
            config.hydra.job.config_name = "config"
            config.hydra.overrides.hydra = []
        yield GlobalHydra.instance().config_loader(), config


def cells(*grid):
    """Override lists of a small grid: every combination of the given `key=a,b` strings."""
    out = [[]]
    for item in grid:
        key, values = item.split("=", 1)
        out = [o + [f"{key}={v}"] for o in out for v in values.split(",")]
    return out


def test_fast_composition_equals_a_full_compose(loader_and_config, tmp_path):
    loader, config = loader_and_config
    grid = cells("model=pythia,olmo", "model.size=1b,1B", "model.step=3000,null", "task=piqa,val_c4", "shots=0")
    grid = [c + [f"results_dir={tmp_path}"] for c in grid if ("olmo" in c[0]) == ("1B" in c[1])]
    plan = make_plan(loader, config, grid)
    assert len(plan.cells) == 8 and {c.state for c in plan.cells} == {"launch"}
    for planned in plan.cells:
        full = loader.load_sweep_config(config, planned.overrides)
        mine = OmegaConf.to_container(planned.cfg, resolve=True)
        assert mine.pop("hydra") == {"sweep": OmegaConf.to_container(full.hydra.sweep, resolve=True)}
        assert planned.run_dir == str(full.hydra.sweep.subdir)
        del full.hydra
        assert mine == OmegaConf.to_container(full, resolve=True)


def test_bad_cells_are_errors_and_the_others_are_planned(loader_and_config, tmp_path):
    loader, config = loader_and_config
    grid = cells("model=demo", "task=demo_sounds,demo_colors,no_such_task", "shots=0,many", f"results_dir={tmp_path}")
    plan = make_plan(loader, config, grid, cells_per_job=32)
    states = [(c.overrides[1], c.overrides[2], c.state) for c in plan.cells]
    assert [s for s in states if s[2] != "error"] == [
        ("task=demo_sounds", "shots=0", "launch"),
        ("task=demo_colors", "shots=0", "launch"),
    ]
    errors = {c.detail.split(":")[0] for c in plan.cells if c.state == "error"}
    assert errors == {"MissingConfigException", "ConfigCompositionException"}


def test_states_and_packs(loader_and_config, tmp_path):
    loader, config = loader_and_config
    grid = cells(
        "model=demo", "model.size=tiny,small", "task=demo_sounds,demo_colors", "shots=0,2", f"results_dir={tmp_path}"
    )
    first = make_plan(loader, config, grid, cells_per_job=3)
    assert [len(p) for p in first.packs] == [3, 1, 3, 1]
    assert [first.cells[i].cfg.model.size for p in first.packs for i in p] == ["tiny"] * 4 + ["small"] * 4
    # a result of the right cell (done), one copied from another cell (error), a failure (launched again)
    done, copied, failed = (tmp_path / first.cells[i].run_dir for i in (0, 1, 2))
    done.mkdir(parents=True)
    write_json(
        done / store.RESULT,
        {
            "schema": 1,
            "cell": first.cells[0].cell.record(),
            "metrics": {first.cells[0].cell.task: {"acc": 1.0}},
            "n_docs": 1,
        },
    )
    copied.mkdir(parents=True)
    shutil.copy(done / store.RESULT, copied / store.RESULT)
    write_json(failed / store.FAILURE, {"error": "boom"})
    plan = make_plan(loader, config, grid, cells_per_job=32)
    assert [c.state for c in plan.cells[:4]] == ["done", "error", "failed", "launch"]
    assert "holds the result of another cell" in plan.cells[1].detail
    assert [len(p) for p in plan.packs] == [2, 4]
    text = plan.describe(32, 1000)
    assert (
        "8 cells in the grid: 1 done, 0 running and 0 queued elsewhere, 1 failed before, 1 with errors; 6 to launch"
        in text
    )
    assert "2 jobs (one model load each, at most 32 cells per job) in 1 job arrays of at most 1000" in text


def test_a_corpus_cell_computed_with_other_settings_is_an_error_cell(loader_and_config, tmp_path):
    loader, config = loader_and_config
    grid = cells("model=demo", "task=val_demo,demo_sounds", f"results_dir={tmp_path}")
    corpus = make_plan(loader, config, grid).cells[0]
    run_dir = tmp_path / corpus.run_dir
    run_dir.mkdir(parents=True)
    write_json(
        run_dir / store.RESULT,
        {
            "schema": 1,
            "cell": corpus.cell.record(),
            "metrics": {corpus.cell.task: {"loss": 1.0}},
            "n_docs": 1,
            "fingerprint": fingerprint.record(
                {**corpus.settings, "corpus": {**corpus.settings["corpus"], "max_documents": 3}}
            ),
        },
    )
    plan = make_plan(loader, config, grid)
    assert [c.state for c in plan.cells] == ["error", "launch"]
    assert "was computed with other settings (corpus.max_documents 3 -> null)" in plan.cells[0].detail


def full_values(loader, config, overrides):
    """What the plan reads of a cell, from a full compose of it."""

    from llm_line.evaluation import hub
    from llm_line.evaluation.identity import CellId, LoadKey

    full = loader.load_sweep_config(config, list(overrides))
    run_dir, settings = str(full.hydra.sweep.subdir), fingerprint.settings(full)
    return run_dir, CellId.of(full), settings, LoadKey.of(full.model), hub.hub_revisions([full])


def test_values_shared_across_cells_equal_each_cells_full_compose(loader_and_config, tmp_path):
    """Units resolved once for many cells (a checkpoint's model for all its tasks, a model's name for all its
    steps) give each cell what a compose of that cell gives, also where a unit reads another top-level value
    (the demo model's `pretrained` reads `cache_dir`) or a family table (OLMo's revision format per size)."""
    loader, config = loader_and_config
    grid = (
        cells("model=pythia", "model.size=70m,410m", "model.step=0,3000", "task=piqa,val_c4", "task.limit=null,5")
        + cells("model=olmo", "model.size=1B", "model.step=20000,30000", "task=piqa,mmlu")
        + cells("model=demo", "cache_dir=/tmp/a,/tmp/b", "task=demo_sounds,val_demo", "shots=0,2", "fewshot_seed=1,2")
        + cells("model=demo", "task=val_demo", "task.name=a", "task.corpus.max_documents=3", "model.size=tiny,small")
        + cells("model=demo", "task=val_demo", "task.name=b", "task.corpus.method=chunks", "model.size=tiny,small")
    )
    grid = [c + [f"results_dir={tmp_path}"] for c in grid]
    plan = make_plan(loader, config, grid)
    assert (len(plan.cells), plan.duplicates) == (30, 10) and {c.state for c in plan.cells} == {"launch"}
    for planned in plan.cells:
        run_dir, cell, settings, key, revisions = full_values(loader, config, planned.overrides)
        assert (planned.run_dir, planned.cell, planned.settings) == (run_dir, cell, settings)
        assert (planned.load_key, planned.hub_revisions) == (key, revisions)


def test_a_run_dir_pattern_of_ones_own_is_resolved_per_cell(loader_and_config, tmp_path):
    loader, config = loader_and_config
    with open_dict(config):  # as `hydra.sweep.subdir=...` on the command line
        config.hydra.overrides.hydra = ["hydra.sweep.subdir=${task.name}/${model.name}/x${shots}"]
    plan = make_plan(loader, config, cells("model=demo", "model.size=tiny,small", "task=demo_sounds", "shots=0,2"))
    assert [c.run_dir for c in plan.cells] == [
        f"demo_sounds/llm-line/demo-{size}/x{shots}" for size in ("tiny", "small") for shots in (0, 2)
    ]


def test_the_shipped_run_dir_pattern_is_the_one_the_plan_computes_directly():
    from llm_line.sweeps.compose import CELL_DIR

    assert OmegaConf.load(ROOT / "conf" / "config.yaml").hydra.sweep._get_node("subdir")._value() == CELL_DIR


def test_a_name_that_cannot_make_a_folder_is_an_error_cell_of_one_line(loader_and_config, tmp_path):
    loader, config = loader_and_config
    grid = cells("model=demo", "model.name=..,mine", "task=demo_sounds", "task.name=.,sounds", "model.revison=x,")
    plan = make_plan(loader, config, [[o for o in c if o != "model.revison="] for c in grid])
    details = sorted({c.detail for c in plan.cells if c.state == "error"})
    assert details == [
        "CellError: model.name='..' cannot name a results folder; use a name with a letter or digit",
        "CellError: task.name='.' cannot name a results folder; use a name with a letter or digit",
        "ConfigCompositionException: Could not override 'model.revison'.",
    ]
    assert [c.run_dir for c in plan.cells if c.state != "error"] == ["mine/main/sounds/0shot"]
    assert "8 cells in the grid: 0 done, 0 running and 0 queued elsewhere, 0 failed before, 7 with errors" in (
        plan.describe()
    )


def test_a_sweep_dry_run_counts_a_cell_that_cannot_make_a_folder_as_an_error(cli, tmp_path):
    results = tmp_path / "results"
    proc = cli(
        "-m", "model=demo", "model.name=..,mine", "task=demo_sounds", "hydra.sweeper.dry_run=true", results_dir=results
    )
    out = proc.stdout + proc.stderr
    assert (
        "2 cells in the grid: 0 done, 0 running and 0 queued elsewhere, 0 failed before, 1 with errors; 1 to launch"
        in out
    )
    assert "model.name='..' cannot name a results folder; use a name with a letter or digit" in out
    assert "Traceback" not in out and not results.exists()
