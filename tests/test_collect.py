"""Collect: result files -> long and wide tables; bad files skipped and reported; the released table read alike."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from llm_line.analysis import collect, wide_table
from llm_line.analysis.table import read_table
from llm_line.evaluation import store
from llm_line.evaluation.config import cell_dir, step_of
from llm_line.files import write_json

ROOT = Path(__file__).resolve().parents[1]
RELEASED = ROOT.parent / "shared" / "data" / "llm-line-hf-models.csv"

META = {
    "family": "pythia",
    "architecture": "GPT-NeoX",
    "parameters": None,
    "pretraining_data": "The Pile",
    "tokenizer": "gpt-neox",
    "tokens_per_step": 2097152,
}


def task_metrics(loss, acc=0.5, n_docs=100):
    return {
        "acc": acc,
        "acc_stderr": 0.01,
        "acc_norm": acc + 0.01,
        "acc_norm_stderr": 0.01,
        "loss": loss,
        "loss_stderr": 0.02,
        "nll": 2 * loss,
        "nll_per_byte": loss / 3,
        "bpb": loss / 2,
        "bpb_stderr": 0.01,
        "answer_tokens": 2.0,
        "answer_bytes": 6.0,
        "n_docs": n_docs,
    }


def write_result(
    root,
    model,
    revision,
    task,
    metrics,
    *,
    display=None,
    kind="lm_eval",
    shots=0,
    limit=None,
    meta=META,
    groups=None,
    num_parameters=162322944,
    finished="2026-11-26T10:00:00+0000",
):
    cell = {"model": model, "revision": revision, "task": task, "shots": shots, "limit": limit}
    result = {
        "schema": store.SCHEMA_VERSION,
        "status": "ok",
        "cell": cell,
        "metrics": metrics,
        "n_docs": metrics[task].get("n_docs", 0),
        "model": {
            "loaded_from": model,
            "resolved_commit": "abc123",
            "device": "cpu",
            "dtype": "float32",
            "batch_size": 8,
            "num_parameters": num_parameters,
            "num_parameters_non_embedding": num_parameters // 2,
            "meta": dict(meta),
        },
        "task": {
            "kind": kind,
            "display": display or task,
            "versions": {},
            "n_shot": {task: shots},
            "fewshot_seed": 1234,
            "groups": groups or {},
        },
        "run": {"finished": finished},
    }
    path = Path(root) / cell_dir(model, revision, task, shots, limit) / store.RESULT
    write_json(path, result)
    return path


@pytest.fixture
def results(tmp_path):
    """Two Pythia checkpoints x hellaswag, mmlu (a group), a corpus; plus a few-shot and a debugging cell."""
    root = tmp_path / "results"
    for revision, loss in (("step1000", 3.0), ("step143000", 2.5)):
        write_result(
            root,
            "EleutherAI/pythia-160m",
            revision,
            "hellaswag",
            {"hellaswag": task_metrics(loss)},
            display="HellaSwag",
        )
        mmlu = {
            "mmlu": task_metrics(loss + 1),
            "mmlu_stem": task_metrics(loss + 1.1),
            "mmlu_humanities": task_metrics(loss + 0.9),
            "mmlu_abstract_algebra": task_metrics(loss + 1.2),
        }
        write_result(
            root,
            "EleutherAI/pythia-160m",
            revision,
            "mmlu",
            mmlu,
            display="MMLU",
            groups={
                "mmlu": ["mmlu_stem", "mmlu_humanities"],
                "mmlu_stem": ["mmlu_abstract_algebra"],
                "mmlu_humanities": [],
            },
        )
        write_result(
            root,
            "EleutherAI/pythia-160m",
            revision,
            "c4",
            {"c4": {"loss": loss + 0.5, "bpb": (loss + 0.5) / 3, "tokens": 1000, "bytes": 4000}},
            display="C4",
            kind="corpus",
        )
    write_result(
        root,
        "EleutherAI/pythia-160m",
        "step1000",
        "hellaswag",
        {"hellaswag": task_metrics(2.9)},
        display="HellaSwag",
        shots=5,
    )
    write_result(
        root, "EleutherAI/pythia-160m", "step1000", "piqa", {"piqa": task_metrics(9.0)}, display="PIQA", limit=10
    )
    return root


def test_long_table_has_every_value_with_metadata(results):
    c = collect.collect([results])
    assert c.skipped == [] and c.n_results == 8
    long = c.long
    # 13 numbers per task entry; mmlu has 4 entries; the corpus cell 4
    assert len(long) == 2 * (13 + 4 * 13 + 4) + 13 + 13
    row = long[
        (long.revision == "step1000") & (long.task == "hellaswag") & (long.shots == 0) & (long.metric == "loss")
    ].iloc[0]
    assert row.value == 3.0 and row.subtask == "hellaswag" and row.kind == "lm_eval" and row.display == "HellaSwag"
    assert row.step == 1000 and row.tokens == 1000 * 2097152 and row["size"] == 162322944
    assert row.architecture == "GPT-NeoX" and row.pretraining_data == "The Pile" and row.family == "pythia"
    assert row.resolved_commit == "abc123" and row.path.endswith("hellaswag/0shot/result.json")
    subjects = long[long.subtask == "mmlu_abstract_algebra"]
    assert len(subjects) == 2 * 13  # leaf subtasks are kept in the long table
    assert long[long.task == "piqa"]["limit"].tolist() == [10] * 13


def test_wide_table_has_the_released_layout(results):
    wide = collect.collect([results]).wide
    assert list(wide["Revision"]) == ["step1000", "step143000"]  # one row per checkpoint, by step
    assert list(wide.columns[:7]) == wide_table.META_COLUMNS
    final = wide.set_index("Revision").loc["step143000"]
    assert final["HellaSwag Loss"] == 2.5 and final["HellaSwag Accuracy"] == 0.5 and final["HellaSwag BPB"] == 1.25
    assert final["C4 Validation Loss"] == 3.0 and final["C4 Validation BPB"] == 1.0
    assert final["MMLU Loss"] == 3.5 and final["MMLU_stem Loss"] == pytest.approx(3.6)
    assert final["MMLU_humanities Loss"] == pytest.approx(3.4)
    assert final["Steps"] == 143000 and final["Tokens"] == 143000 * 2097152 and final["Size"] == 162322944
    assert final["Pretraining Data"] == "The Pile" and final["Architecture"] == "GPT-NeoX"
    assert final["Tokenizer"] == "gpt-neox" and final["Name"] == "EleutherAI/pythia-160m"
    first = wide.set_index("Revision").loc["step1000"]
    assert first["HellaSwag Loss (5-shot)"] == 2.9 and first["HellaSwag Loss"] == 3.0
    assert pd.isna(final["HellaSwag Loss (5-shot)"])
    assert not any("abstract_algebra" in c for c in wide.columns)  # subjects: long table only
    assert not any(c.startswith("PIQA") for c in wide.columns)  # a task.limit run never passes for a result
    metric_columns = [c for c in wide.columns if c not in wide_table.META_COLUMNS + wide_table.EXTRA_COLUMNS]
    assert metric_columns.index("C4 Validation Loss") < metric_columns.index("HellaSwag Accuracy")
    assert metric_columns.index("MMLU BPB") < metric_columns.index("MMLU_humanities Accuracy")


def test_size_is_metadata_parameters_when_given_and_tokens_need_a_step(tmp_path):
    meta = {**META, "parameters": 123689472, "tokens_per_step": None}
    write_result(tmp_path, "m", "main", "hellaswag", {"hellaswag": task_metrics(2.0)}, meta=meta)
    write_result(tmp_path, "n", "step10", "hellaswag", {"hellaswag": task_metrics(2.0)}, meta=meta)
    wide = collect.collect([tmp_path]).wide.set_index("Name")
    assert wide.loc["m", "Size"] == 123689472 and wide.loc["m", "Parameters"] == 162322944
    assert pd.isna(wide.loc["m", "Steps"]) and pd.isna(wide.loc["m", "Tokens"])
    assert wide.loc["n", "Steps"] == 10 and pd.isna(wide.loc["n", "Tokens"])  # no tokens_per_step


def test_bad_files_are_skipped_and_reported_with_path_and_reason(results, tmp_path):
    bad = results / "bad"
    truncated = write_result(bad, "m", "step1", "hellaswag", {"hellaswag": task_metrics(2.0)})
    truncated.write_text(truncated.read_text()[:100])
    no_task = write_result(bad, "m", "step2", "hellaswag", {"hellaswag": task_metrics(2.0)})
    data = json.loads(no_task.read_text())
    data["metrics"] = {"other": {}}
    no_task.write_text(json.dumps(data))
    failed = bad / "m" / "step3" / "hellaswag" / "0shot" / store.FAILURE
    write_json(failed, {"schema": 1, "status": "failed", "cell": {}, "error": "OSError: hub unreachable"})
    (bad / "m" / "step1" / "hellaswag" / "0shot" / "result.json.corrupt-20261126").write_text("{")  # set aside
    out = tmp_path / "data" / "results.csv"
    cmd = [sys.executable, "-m", "llm_line.analysis.collect", str(results), "-o", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert f"skipped (corrupt) {truncated}: unreadable" in proc.stderr
    assert f"skipped (corrupt) {no_task}: metrics lack the task's own entry 'hellaswag'" in proc.stderr
    assert f"skipped (failed) {failed}: OSError: hub unreachable" in proc.stderr
    assert "skipped 1 failed, 2 corrupt" in proc.stderr
    assert "Collected 8 results" in proc.stdout and "skipped 3" in proc.stdout
    strict = subprocess.run(cmd + ["--strict"], cwd=ROOT, capture_output=True, text=True)
    assert strict.returncode == 1


def test_the_same_cell_under_two_roots_keeps_the_later_one(tmp_path, capsys):
    early = write_result(
        tmp_path / "a", "m", "step1", "hellaswag", {"hellaswag": task_metrics(2.0)}, finished="2026-11-01T00:00:00+0000"
    )
    write_result(
        tmp_path / "b", "m", "step1", "hellaswag", {"hellaswag": task_metrics(1.5)}, finished="2026-11-02T00:00:00+0000"
    )
    c = collect.collect([tmp_path / "a", tmp_path / "b"])
    assert c.n_results == 1 and c.wide["hellaswag Loss"].tolist() == [1.5]
    assert [(s.kind, s.path) for s in c.skipped] == [("duplicate", early)]


def test_cli_writes_csv_and_parquet_that_read_back_alike(results, tmp_path):
    out = tmp_path / "data" / "results.csv"
    assert collect.main([str(results), "-o", str(out)]) == 0
    names = sorted(p.name for p in out.parent.iterdir())
    assert names == ["results.csv", "results.parquet", "results_long.csv", "results_long.parquet"]
    from_csv, from_parquet = read_table(out), read_table(out.with_suffix(".parquet"))
    pd.testing.assert_frame_equal(from_csv, from_parquet, check_dtype=False)
    assert from_csv["HellaSwag Loss"].dtype == "float64" and from_csv["Tokens"].dtype == "float64"
    long = pd.read_parquet(out.parent / "results_long.parquet")
    assert len(long) == len(collect.collect([results]).long)


def test_cli_help_and_errors(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "llm_line.analysis.collect", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0 and "RESULTS_ROOT" in proc.stdout and "parquet" in proc.stdout.lower()
    proc = subprocess.run(
        [sys.executable, "-m", "llm_line.analysis.collect", str(tmp_path / "nope")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "llm_line.analysis.collect", str(tmp_path), "-o", str(tmp_path / "x.csv")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "no valid result.json" in proc.stderr


@pytest.fixture
def released():
    if not RELEASED.exists():
        pytest.skip(f"the paper's released table is not at {RELEASED}")
    return read_table(RELEASED)


def test_released_table_reads_into_the_same_form(released):
    assert released.shape == (129, 80)
    assert set(released["Convention"]) == {"paper"}  # written by the paper's original code
    assert [c for c in released.columns if c.startswith("Intervention")] == [
        "Intervention: Size",
        "Intervention: Context Length",
        "Intervention: Optimizer",
        "Intervention: Architecture",
        "Intervention: Pretraining Data",
        "Intervention: Tokenizer",
    ]
    assert released["Intervention: Size"].dtype == bool
    assert released["HellaSwag Loss"].dtype == "float64" and released["Tokens"].dtype == "float64"
    assert set(wide_table.META_COLUMNS) <= set(released.columns)
    llamas = released[released["Architecture"] == "Llama"]
    assert sorted(llamas["Pretraining Data"].unique()) == ["C4", "FineWeb-Edu", "The Pile Deduped"]


def test_collected_columns_are_named_as_in_the_released_table(released, tmp_path):
    """Every paper task (its conf/task display name) and corpus lands in a column the released table has."""
    for path in sorted((ROOT / "conf" / "task").glob("*.yaml")):
        conf = yaml.safe_load(path.read_text())
        if conf["name"].startswith("demo") or conf["name"] == "val_demo" or "display" not in conf:
            continue  # the demo; the corpora's _paper variants take their display from the corpus they extend
        if conf.get("corpus"):  # the corpora's display names are the released table's
            assert conf["display"] in wide_table.PAPER_CORPORA, path
            continue
        metrics = {conf["name"]: task_metrics(2.0)}
        groups = {}
        if conf["name"] == "mmlu":
            subs = ["mmlu_stem", "mmlu_other", "mmlu_humanities", "mmlu_social_sciences"]
            metrics.update({s: task_metrics(2.0) for s in subs})
            groups = {"mmlu": subs, **{s: [] for s in subs}}
        write_result(tmp_path, "m", "step1", conf["name"], metrics, display=conf["display"], groups=groups)
    for display in wide_table.PAPER_CORPORA:
        task = display.lower().replace(" ", "_")
        write_result(tmp_path, "m", "step1", task, {task: {"loss": 3.0, "bpb": 1.0}}, display=display, kind="corpus")
    wide = collect.collect([tmp_path]).wide
    ours = [c for c in wide.columns if c not in wide_table.EXTRA_COLUMNS]
    missing = [c for c in ours if c not in released.columns and not c.startswith("MMLU_")]
    assert missing == []
    assert {"MMLU_stem Loss", "MMLU_other Loss", "MMLU_humanities Loss", "MMLU_social_sciences Loss"} <= set(ours)
    assert len(ours) == 7 + 5 * 2 + 10 * 3 + 4 * 3


def test_one_step_parser_for_every_familys_revision_names():
    assert [step_of(r) for r in ("step3000", "step-001000-2BT", "step20000-tokens84B", "main", "abc123")] == [
        3000,
        1000,
        20000,
        None,
        None,
    ]


def test_steps_and_tokens_from_every_familys_revisions(tmp_path):
    """Steps parsed from OLMo, HuggingFaceFW-ablation and Pythia revisions; Tokens as the result recorded them."""
    cases = {  # revision: (recorded meta.tokens, expected Steps, expected Tokens)
        "step-001000-2BT": (2_097_152_000, 1000, 2_097_152_000),
        "step20000-tokens84B": (83_886_080_000, 20000, 83_886_080_000),
        "step3000": (None, 3000, 3000 * 2097152),  # an older result without meta.tokens: step x tokens_per_step
        "main": (300_000_000_000, None, 300_000_000_000),
    }
    for revision, (tokens, _, _) in cases.items():
        write_result(
            tmp_path, "m", revision, "hellaswag", {"hellaswag": task_metrics(2.0)}, meta={**META, "tokens": tokens}
        )
    wide = collect.collect([tmp_path]).wide.set_index("Revision")
    for revision, (_, steps, tokens) in cases.items():
        assert pd.isna(wide.loc[revision, "Steps"]) if steps is None else wide.loc[revision, "Steps"] == steps
        assert wide.loc[revision, "Tokens"] == tokens


@pytest.fixture
def both_conventions(tmp_path):
    """One checkpoint: a task with loss and loss_paper, and C4 computed packed (val_c4) and chunked (val_c4_paper)."""
    write_result(
        tmp_path,
        "m",
        "step1",
        "hellaswag",
        {"hellaswag": {**task_metrics(2.0), "loss_paper": 2.2}},
        display="HellaSwag",
    )
    for task, method, loss in (("val_c4", "packed", 3.0), ("val_c4_paper", "chunks", 3.4)):
        path = write_result(
            tmp_path,
            "m",
            "step1",
            task,
            {task: {"loss": loss, "tokens": 10, "n_docs": 2, **({"bpb": 1.1} if method == "packed" else {})}},
            display="C4",
            kind="corpus",
        )
        result = json.loads(path.read_text())
        result["task"]["settings"] = {"method": method}
        write_json(path, result)
    return tmp_path


def test_convention_chooses_the_loss_columns(both_conventions, capsys):
    corrected = collect.collect([both_conventions]).wide.iloc[0]
    assert corrected["Convention"] == "corrected"
    assert corrected["HellaSwag Loss"] == 2.0 and corrected["C4 Validation Loss"] == 3.0
    assert corrected["C4 Validation BPB"] == 1.1 and corrected["HellaSwag BPB"] == 1.0
    paper = collect.collect([both_conventions], "paper")
    row = paper.wide.iloc[0]
    assert row["Convention"] == "paper"
    assert row["HellaSwag Loss"] == 2.2 and row["C4 Validation Loss"] == 3.4 and row["HellaSwag BPB"] == 1.0
    assert "C4 Validation BPB" not in paper.wide.columns  # chunks score no byte-complete text
    assert "1 corpus cells of method packed" in capsys.readouterr().err
    long = paper.long  # every number, both conventions
    assert set(long[long.metric == "loss"].value) == {2.0, 3.0, 3.4}
    assert set(long[long.metric == "loss_paper"].value) == {2.2}
    assert sorted(long.corpus_method.dropna().unique()) == ["chunks", "packed"]


def test_convention_option_on_the_command_line(both_conventions, tmp_path):
    out = tmp_path / "out" / "paper.csv"
    assert collect.main([str(both_conventions), "-o", str(out), "--convention", "paper"]) == 0
    table = read_table(out)
    assert list(table["Convention"]) == ["paper"] and table.loc[0, "HellaSwag Loss"] == 2.2
    with pytest.raises(SystemExit):
        collect.main([str(both_conventions), "-o", str(out), "--convention", "papers"])
