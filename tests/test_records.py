"""Per-document records beside result.json recompute the cell's metrics without a model."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from llm_line.evaluation import records, store


def test_records_recompute_the_result(cli, tmp_path):
    cli("task=demo", "shots=2", results_dir=tmp_path)
    (result_path,) = tmp_path.rglob(store.RESULT)
    result = json.loads(result_path.read_text())
    path = result_path.parent / records.RECORDS
    table = pq.read_table(path)
    assert table.schema == records.SCHEMA
    leaves = result["task"]["groups"]["demo"]
    assert sorted(set(table.column("task").to_pylist())) == sorted(leaves)
    assert not list(result_path.parent.glob(".*.tmp"))
    recomputed = records.recompute(path)
    for task in leaves:
        expected = result["metrics"][task]
        assert recomputed[task]["n_docs"] == expected["n_docs"]
        for key in ("acc", "acc_norm", "loss", "loss_stderr", "loss_paper", "bpb", "bpb_stderr", "nll"):
            assert recomputed[task][key] == pytest.approx(expected[key], rel=1e-12), (task, key)
    row = table.slice(0, 1).to_pylist()[0]
    assert len(row["loglikelihood"]) == len(row["tokens"]) == len(row["chars"]) > 1
    assert 0 <= row["gold"] < len(row["loglikelihood"])
