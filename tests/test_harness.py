"""lm-eval's task index: a cell of local tasks never pays for indexing lm-eval's own ~14,000 task YAMLs."""

from __future__ import annotations

import pytest

from llm_line.errors import CellError
from llm_line.evaluation import harness


def test_a_local_task_loads_from_the_index_of_local_folders_alone(monkeypatch, tmp_path):
    monkeypatch.setattr(harness, "_task_managers", {})
    manager, loaded = harness.load_task("demo_colors", None)
    assert list(loaded["tasks"]) == ["demo_colors"]
    assert set(harness._task_managers) == {(None, False)}
    assert manager is harness._task_managers[None, False]
    # a group of the user's folder over a task of this project's folder: both indexed without lm-eval's own
    (tmp_path / "mine.yaml").write_text("group: mine\ntask: [demo_colors, demo_sounds]\n")
    _, loaded = harness.load_task("mine", str(tmp_path))
    assert sorted(loaded["tasks"]) == ["demo_colors", "demo_sounds"]
    assert (str(tmp_path), True) not in harness._task_managers


def test_a_name_the_local_folders_lack_is_judged_by_the_full_index(monkeypatch):
    monkeypatch.setattr(harness, "_task_managers", {})
    with pytest.raises(CellError, match="does not know the task 'demo_colours'; did you mean demo_colors"):
        harness.load_task("demo_colours", None)
    assert set(harness._task_managers) == {(None, False), (None, True)}
