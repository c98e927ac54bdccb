"""The results store: atomic writes, validation, corrupt files kept aside, colliding identities refused."""

import errno
import json
import os

import pytest

from llm_line.evaluation import store
from llm_line.evaluation.identity import CellId
from llm_line.files import write_json

CELL = {"model": "m", "revision": "main", "task": "t", "shots": 0, "limit": None}
RESULT = {"schema": store.SCHEMA_VERSION, "cell": CELL, "metrics": {"t": {"acc": 0.5}}, "n_docs": 2}


def test_write_is_atomic_and_round_trips(tmp_path):
    path = tmp_path / "a" / store.RESULT
    write_json(path, RESULT)
    assert store.read_result(path) == RESULT
    assert [p.name for p in path.parent.iterdir()] == [store.RESULT]  # no temp file left


def test_full_disk_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / store.RESULT
    write_json(path, RESULT)

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.os, "fsync", no_space)
    with pytest.raises(OSError, match="No space"):
        write_json(path, {**RESULT, "n_docs": 3})
    assert store.read_result(path) == RESULT
    assert [p.name for p in tmp_path.iterdir()] == [store.RESULT]


@pytest.mark.parametrize(
    "content",
    [
        "",
        '{"schema": 1, "cell"',
        "[]",
        json.dumps({**RESULT, "schema": 0}),
        json.dumps({k: v for k, v in RESULT.items() if k != "metrics"}),
    ],
)
def test_incomplete_results_are_set_aside_not_deleted(tmp_path, content):
    path = tmp_path / store.RESULT
    path.write_text(content)
    assert store.finished_result(tmp_path, CellId.of_record(CELL)) is None
    (aside,) = tmp_path.glob("result.json.corrupt-*")
    assert aside.read_text() == content
    assert not path.exists()


def test_valid_result_of_the_cell_is_found(tmp_path):
    write_json(tmp_path / store.RESULT, RESULT)
    assert store.finished_result(tmp_path, CellId.of_record(CELL)) == RESULT


def test_result_of_another_cell_in_the_folder_is_an_error(tmp_path):
    write_json(tmp_path / store.RESULT, RESULT)
    with pytest.raises(store.OtherCellResult, match="two cells map to one results folder"):
        store.finished_result(tmp_path, CellId.of_record({**CELL, "shots": 5}))


def test_remove_stale_drops_temp_files_and_old_failures(tmp_path):
    (tmp_path / ".result.json.abc.tmp").write_text("{")
    (tmp_path / store.FAILURE).write_text("{}")
    store.remove_stale(tmp_path)
    assert os.listdir(tmp_path) == []


def test_a_failure_newer_than_the_result_means_not_done(tmp_path):
    write_json(tmp_path / store.RESULT, RESULT)
    assert store.finished_result(tmp_path, CellId.of_record(CELL)) == RESULT
    write_json(tmp_path / store.FAILURE, {"error": "x"})
    os.utime(tmp_path / store.RESULT, ns=(1, 1))
    assert store.finished_result(tmp_path, CellId.of_record(CELL)) is None


def test_a_forced_recompute_sets_the_old_result_aside(tmp_path):
    write_json(tmp_path / store.RESULT, RESULT)
    aside = store.set_aside_for_recompute(tmp_path)
    assert aside.name.startswith("result.json.replaced-") and not (tmp_path / store.RESULT).exists()
    assert store.set_aside_for_recompute(tmp_path) is None
