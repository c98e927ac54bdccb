"""`python -m llm_line.sweeps.status`: each cell's state from its files and the sweep manifest."""

import json
import os
import socket

from llm_line.evaluation import claims, store
from llm_line.files import write_json
from llm_line.sweeps import manifests, status

CELL = {"model": "m", "revision": "main", "task": "t", "shots": 0, "limit": None}


def make_grid(root, launcher_pid):
    cells = []
    for name in ("done", "failed", "running", "dead", "queued", "skipped"):
        cells.append({"run_dir": f"m/main/{name}/0shot", "cell": {**CELL, "task": name}, "launched": name != "skipped"})
        (root / cells[-1]["run_dir"]).mkdir(parents=True)
    write_json(
        root / "m/main/done/0shot" / store.RESULT,
        {"schema": 1, "cell": cells[0]["cell"], "metrics": {"done": {"acc": 1.0}}, "n_docs": 1},
    )
    write_json(root / "m/main/failed/0shot" / store.FAILURE, {"error": "CellError: no such revision\nmore"})
    here = {"host": socket.gethostname(), "started": "now"}
    write_json(root / "m/main/running/0shot" / store.RUNNING, {**here, "pid": os.getpid()})
    write_json(root / "m/main/dead/0shot" / store.RUNNING, {**here, "pid": 2**22 + 12345})
    manifest = {"cells": cells, "host": socket.gethostname(), "pid": launcher_pid, "launcher": "BasicLauncher"}
    write_json(root / manifests.MANIFESTS / "20260101T000000-1.json", manifest)


def run_status(root, capsys, *args):
    assert status.main([str(root), "--json", *args]) == 0
    (grid,) = json.loads(capsys.readouterr().out)
    return {row["run_dir"].split("/")[2]: (row["state"], row["detail"]) for row in grid["cells"]}


def test_states_while_the_sweep_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(claims, "slurm_queue", lambda: None)
    make_grid(tmp_path, launcher_pid=os.getpid())
    got = run_status(tmp_path, capsys)
    assert {k: v[0] for k, v in got.items()} == {
        "done": "done",
        "failed": "failed",
        "running": "running",
        "dead": "missing",
        "queued": "queued",
        "skipped": "missing",
    }
    assert got["failed"][1] == "CellError: no such revision"


def test_cells_of_a_sweep_that_is_gone_are_missing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(claims, "slurm_queue", lambda: None)
    make_grid(tmp_path, launcher_pid=2**22 + 12346)
    assert run_status(tmp_path, capsys)["queued"][0] == "missing"


def test_slurm_queue_decides_for_slurm_sweeps(tmp_path, capsys, monkeypatch):
    make_grid(tmp_path, launcher_pid=2**22 + 12346)
    path = next((tmp_path / manifests.MANIFESTS).glob("*.json"))
    manifest = json.loads(path.read_text())
    for entry in manifest["cells"]:
        entry["job"] = "7_" + str(manifest["cells"].index(entry))
    write_json(path, {**manifest, "launcher": "...SlurmLauncher", "job_name": "llm-line", "arrays": ["7"]})
    write_json(
        tmp_path / "m/main/running/0shot" / store.RUNNING,
        {"slurm_job_id": "8", "slurm_array_job_id": "7", "slurm_array_task_id": "2", "started": "now"},
    )
    # another sweep's jobs with the same name in the queue change nothing: its arrays are not this sweep's
    monkeypatch.setattr(claims, "slurm_queue", lambda: {"8", "7_2", "7_4", "array:7", "99_0", "array:99"})
    got = run_status(tmp_path, capsys)
    assert got["queued"][0] == "queued" and got["running"][0] == "running"
    monkeypatch.setattr(claims, "slurm_queue", lambda: {"99_0", "array:99"})
    got = run_status(tmp_path, capsys)
    assert got["queued"][0] == "missing" and got["running"][0] == "missing"
    monkeypatch.setattr(claims, "slurm_queue", lambda: set())
    got = run_status(tmp_path, capsys)
    assert got["queued"][0] == "missing" and got["running"][0] == "missing"


def test_without_manifest_cells_are_found_on_disk(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(claims, "slurm_queue", lambda: None)
    make_grid(tmp_path, launcher_pid=os.getpid())
    for path in (tmp_path / manifests.MANIFESTS).glob("*.json"):
        path.unlink()
    got = run_status(tmp_path, capsys)
    assert sorted(got) == ["dead", "done", "failed", "running"]


def test_text_report_lists_the_cells_asked_for(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(claims, "slurm_queue", lambda: None)
    make_grid(tmp_path, launcher_pid=os.getpid())
    status.main([str(tmp_path), "--show", "failed"])
    out = capsys.readouterr().out
    assert "6 cells  done 1  failed 1  running 1  queued 1  missing 2" in out
    assert "[#####.........................]  16.7% done" in out
    assert "failed   m/main/failed/0shot  CellError: no such revision" in out
    assert "m/main/done/0shot" not in out


def test_a_result_copied_from_another_cell_is_not_done(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(claims, "slurm_queue", lambda: None)
    make_grid(tmp_path, launcher_pid=os.getpid())
    done = tmp_path / "m/main/done/0shot" / store.RESULT
    (tmp_path / "m/main/skipped/0shot" / store.RESULT).write_bytes(done.read_bytes())
    got = run_status(tmp_path, capsys)
    assert got["done"][0] == "done"
    assert got["skipped"][0] == "failed" and "holds the result of another cell" in got["skipped"][1]


def test_a_failure_newer_than_the_result_wins(tmp_path, capsys, monkeypatch):
    """An old result beside a newer failure (a forced recompute that failed, before the result was set aside)."""
    monkeypatch.setattr(claims, "slurm_queue", lambda: None)
    make_grid(tmp_path, launcher_pid=os.getpid())
    run_dir = tmp_path / "m/main/done/0shot"
    write_json(run_dir / store.FAILURE, {"error": "CellError: out of memory"})
    os.utime(run_dir / store.RESULT, ns=(1, 1))
    assert run_status(tmp_path, capsys)["done"] == ("failed", "CellError: out of memory")


def test_a_no_op_rerun_hides_no_queued_cell_and_a_stale_claim_no_queued_job(tmp_path, capsys, monkeypatch):
    """The first sweep's jobs are queued; a second sweep launched nothing; `status` combines both manifests."""
    make_grid(tmp_path, launcher_pid=2**22 + 12346)
    path = next((tmp_path / manifests.MANIFESTS).glob("*.json"))
    first = json.loads(path.read_text())
    for i, entry in enumerate(first["cells"]):
        entry["job"] = f"7_{i}"
    write_json(path, {**first, "arrays": ["7"]})
    rerun = {**first, "arrays": [], "cells": [{**e, "launched": False, "job": None} for e in first["cells"]]}
    write_json(tmp_path / manifests.MANIFESTS / "20260102T000000-2.json", rerun)
    queue = {"7_3", "7_4", "array:7"}  # "dead" (its claim left by an earlier run: requeued) and "queued"
    monkeypatch.setattr(claims, "slurm_queue", lambda: queue)
    got = run_status(tmp_path, capsys)
    assert got["queued"] == ("queued", "7_4") and got["dead"] == ("queued", "7_3")
    assert got["skipped"][0] == "missing" and got["done"][0] == "done"
    assert status.main([str(tmp_path), "--json", "--all"]) == 0
    older, newer = json.loads(capsys.readouterr().out)
    assert {r["state"] for r in newer["cells"] if r["run_dir"].endswith("queued/0shot")} == {"missing"}
    monkeypatch.setattr(claims, "slurm_queue", lambda: set())  # the jobs are gone: the stale claim says so
    state, detail = run_status(tmp_path, capsys)["dead"]
    assert state == "missing" and detail.startswith("stale claim: ") and "remove " in detail
