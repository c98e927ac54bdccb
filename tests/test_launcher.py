"""The packed SLURM launcher's submission logic, without SLURM: arrays below MaxArraySize, no pickles left."""

import pytest

from hydra_plugins import llm_line_launcher
from hydra_plugins.llm_line_launcher import PackedSlurmLauncher


class FakeJob:
    def __init__(self, job_id, folder):
        self.job_id = job_id
        self.paths = type("Paths", (), {"submitted_pickle": folder / f"{job_id}_submitted.pkl"})
        self.paths.submitted_pickle.write_bytes(b"x")  # submitit moves a submitted job's pickle here


class FakeExecutor:
    """Pickles each job into its folder like submitit, then 'submits' arrays; the n-th submission fails."""

    def __init__(self, folder, fail_at=None):
        self.folder, self.fail_at, self.arrays, self.parallelism = folder / "%j", fail_at, [], []

    def update_parameters(self, slurm_array_parallelism):
        self.parallelism.append(slurm_array_parallelism)

    def map_array(self, fn, *args):
        n = len(args[0])
        for i in range(n):
            (self.folder.parent / f"{len(self.arrays)}-{i}.pkl").write_bytes(b"x")
        if len(self.arrays) == self.fail_at:
            raise RuntimeError("sbatch: error: Batch job submission failed")
        array = str(100 + len(self.arrays))
        self.arrays.append(array)
        for i in range(n):
            (self.folder.parent / f"{len(self.arrays) - 1}-{i}.pkl").unlink()
        return [FakeJob(f"{array}_{i}", self.folder.parent) for i in range(n)]


def params(n):
    return [([["task=t"]], "hydra.sweep.dir", [i], f"job_id_for_{i}", {}) for i in range(n)]


def test_jobs_are_split_into_arrays_below_max_array_size(tmp_path, monkeypatch):
    monkeypatch.setattr(llm_line_launcher, "max_array_size", lambda: 1001)
    executor = FakeExecutor(tmp_path)
    jobs = PackedSlurmLauncher.submit_arrays(None, executor, params(1002), parallelism=64)
    assert len(jobs) == 1002 and executor.arrays == ["100", "101"]
    assert executor.parallelism == [63, 1]  # array_parallelism shared among the arrays


def test_a_failed_submission_leaves_no_pickles_and_cancels_what_it_submitted(tmp_path, monkeypatch):
    monkeypatch.setattr(llm_line_launcher, "max_array_size", lambda: 2)
    cancelled = []
    monkeypatch.setattr(llm_line_launcher.subprocess, "run", lambda cmd, check: cancelled.append(cmd))
    executor = FakeExecutor(tmp_path, fail_at=1)
    with pytest.raises(RuntimeError, match="submission failed"):
        PackedSlurmLauncher.submit_arrays(None, executor, params(5), parallelism=4)
    assert cancelled == [["scancel", "100"]]
    assert not list(tmp_path.glob("*.pkl"))


def test_each_array_is_reported_as_soon_as_it_is_submitted(tmp_path, monkeypatch):
    """The sweeper records the jobs in its manifest from this callback: true from the first sbatch on."""
    monkeypatch.setattr(llm_line_launcher, "max_array_size", lambda: 2)
    seen = []
    executor = FakeExecutor(tmp_path)
    PackedSlurmLauncher.submit_arrays(None, executor, params(3), parallelism=4, on_submitted=seen.append)
    assert seen == [["100_0", "100_1"], ["100_0", "100_1", "101_0"]]
