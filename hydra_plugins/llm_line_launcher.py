"""llm-line's launchers: the local one (the default) and hydra-submitit-launcher's SLURM launcher, taking jobs
of several cells ("packs") from the sweeper.

Both run each cell through Hydra's `run_job`, which creates the cell's run dir, opens its log and saves its
config before the cell's own work (llm_line/evaluation/cell.py) begins; where that fails (a file where the run dir or a
folder above it must be, a name too long, a full disk), that cell alone fails (`setup_failed`): one line,
its `failure.json` where its run dir exists, and the other cells run; the sweep fails at the end.

`LocalLauncher` (`conf/hydra/launcher/local.yaml`, the default of conf/config.yaml): the cells one after another
in this process, as Hydra's basic launcher runs them.

`PackedSlurmLauncher` (`conf/hydra/launcher/slurm.yaml` selects it): everything else is
hydra-submitit-launcher's and submitit's: the sbatch options, job arrays, requeue on timeout or preemption
(`checkpoint`). What it adds:

- a job runs the cells of its pack one after another in one process, so the model is loaded once
  (llm_line/evaluation/harness.py keeps the last model loaded); each cell gets its own run dir, log and result or
  failure file through Hydra's `run_job`; a failing cell does not stop the next; the job fails at the end
  if any cell failed. With `tasks_per_node > 1` each task runs its share of the pack (every n-th cell).
- submitit's requeue (USR2: preemption or the time limit ahead) ends the pack at once, told apart from a
  cell's own exit by watching submitit's signal handler (`RequeueWatch`). The requeued job runs the same
  pack again; finished cells are skipped (their result), the interrupted cell's claim is taken over (it
  names this job at an earlier restart). With no requeue left, every cell of the pack not yet run gets a
  `failure.json` naming the cell that was running, and the job ends.
- the job ids of each array reach the sweeper (`on_submitted`) as soon as that array is submitted.
- a sweep becomes several job arrays of at most MaxArraySize tasks (`scontrol show config`; 1000 if
  unreadable), submitted one right after another; `array_parallelism` is shared among them.
- a failed sbatch leaves no pickled jobs behind (arrays already submitted are cancelled).
- with `wait=False` (the sweeper's `hydra.sweeper.wait=false`) it returns once everything is submitted.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from llm_line.errors import CellError, user_error_line
from llm_line.evaluation.compat import failed_job
from llm_line.files import write_json

log = logging.getLogger(__name__)


def cell_config(launcher: Any, overrides: Sequence[str]) -> tuple[DictConfig, Path]:
    """(the cell's config without `hydra`, its run dir), composed as the launcher composes a cell."""
    cfg = launcher.hydra_context.config_loader.load_sweep_config(launcher.config, list(overrides))
    run_dir = Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, run_dir


def user_line(error: BaseException) -> str | None:
    """The one line of a user-fixable error, or of the one it was raised from (logging's "Unable to configure
    handler" wraps the OSError of a log file that cannot be opened); None for a bug."""
    cause: BaseException | None = error
    while cause is not None:
        line = user_error_line(cause)
        if line is not None:
            return line
        cause = cause.__cause__
    return None


def setup_failed(launcher: Any, overrides: Sequence[str], error: BaseException) -> JobReturn:
    """The failed JobReturn of a cell whose job ended before the cell's own work began (called where `error`
    is caught). A user-fixable error (its run dir cannot be created, its log not opened) becomes one line
    naming the cell, logged now, with a `failure.json` where the run dir exists (so the next plan counts the
    cell as failed before); anything else (a bug) keeps its error and traceback."""
    line = user_line(error)
    if line is None:
        return failed_job(error, overrides)

    from llm_line.evaluation import store
    from llm_line.evaluation.cell import failure_record
    from llm_line.evaluation.identity import CellId

    try:
        cfg, run_dir = cell_config(launcher, overrides)
    except Exception:  # noqa: BLE001  (the cell does not compose: `error` may be why; it is what is reported)
        log.error("%s: %s", " ".join(overrides), line)
        return failed_job(error, overrides)
    cell = CellId.of(cfg)
    message = f"{cell.describe()}: its run dir could not be set up: {line}"
    if not os.path.isdir(run_dir):  # (never raises: a name too long is no folder either)
        message += " (no failure.json: its run dir does not exist)"
    else:
        try:
            write_json(run_dir / store.FAILURE, failure_record(cfg, cell, CellError(message), time.time()))
        except OSError as e:
            message += f" (no failure.json either: {user_error_line(e) or e})"
    log.error("%s", message)
    failed = CellError(message)
    failed.__cause__ = error
    return failed_job(failed, overrides)


class LocalLauncher(Launcher):
    """The cells one after another in this process, as Hydra's basic launcher runs them, except that a cell
    whose job cannot be set up fails alone (`setup_failed`) instead of ending the sweep."""

    def __init__(self) -> None:
        super().__init__()
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        log.info("Launching %d jobs locally", len(job_overrides))
        returns: list[JobReturn] = []
        for num, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info("\t#%d : %s", num, " ".join(filter_overrides(overrides)))
            try:
                cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
                with open_dict(cfg):
                    cfg.hydra.job.id = cfg.hydra.job.num = num
                returns.append(
                    run_job(
                        hydra_context=self.hydra_context,
                        task_function=self.task_function,
                        config=cfg,
                        job_dir_key="hydra.sweep.dir",
                        job_subdir_key="hydra.sweep.subdir",
                    )
                )
            except Exception as e:  # before or around the cell's own work (whose errors run_job keeps)
                returns.append(setup_failed(self, overrides, e))
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return returns


class NotRunError(RuntimeError):
    """A cell of a pack that was never started: its job ended first (requeues exhausted)."""


class RequeueWatch:
    """Wraps submitit's handler of the requeue signal (USR2: preemption, or the time limit ahead) to tell a
    job's end from a cell's own error: after it, `requeued` (submitit requeued the job and raises SystemExit)
    or `exhausted` (no requeue left: submitit raises UncompletedJobError inside whatever cell runs; its
    message here)."""

    def __init__(self, handler: Any) -> None:
        self.handler, self.requeued, self.exhausted = handler, False, ""

    @classmethod
    def install(cls) -> RequeueWatch:
        import submitit

        sig = submitit.JobEnvironment._usr_sig()
        watch = cls(signal.getsignal(sig))
        if callable(watch.handler):  # submitit's own (a job); absent when the pack runs outside submitit
            signal.signal(sig, watch)
        return watch

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        import submitit

        try:
            self.handler(signum, frame)
        except submitit.core.utils.UncompletedJobError as e:
            self.exhausted = str(e)
            raise
        except SystemExit:
            self.requeued = True
            raise


DEFAULT_MAX_ARRAY_SIZE = 1000


def max_array_size() -> int:
    """The cluster's MaxArraySize (an array's largest index + 1), or 1000 where it cannot be read."""
    if shutil.which("scontrol") is None:
        return DEFAULT_MAX_ARRAY_SIZE
    try:
        out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30).stdout
    except (subprocess.SubprocessError, OSError):
        return DEFAULT_MAX_ARRAY_SIZE
    found = re.search(r"^MaxArraySize\s*=\s*(\d+)", out, re.MULTILINE)
    return int(found.group(1)) if found else DEFAULT_MAX_ARRAY_SIZE


def chunks(n: int, size: int) -> list[range]:
    return [range(i, min(i + size, n)) for i in range(0, n, size)]


class PackedSlurmLauncher(SlurmLauncher):
    """SlurmLauncher whose jobs are packs of cells; see the module docstring."""

    def __call__(
        self,
        pack: list[list[str]],
        job_dir_key: str,
        job_nums: list[int],
        job_id: str,
        singleton_state: dict[type, Singleton],
    ) -> list[JobReturn]:
        """The job: every cell of the pack in turn (this task's share of them), each through
        hydra-submitit-launcher's own cell runner; submitit's requeue or timeout ends it at once."""
        import submitit

        env = submitit.JobEnvironment()
        cells = list(zip(pack, job_nums, strict=False))[env.global_rank :: max(1, env.num_tasks)]
        watch = RequeueWatch.install()
        returns: list[JobReturn] = []
        for i, (overrides, num) in enumerate(cells):
            try:
                returns.append(super().__call__(overrides, job_dir_key, num, job_id, singleton_state))
            except (Exception, SystemExit) as e:  # composing failed, or the cell exited: the next cell still runs
                if watch.requeued:  # submitit requeued this job and exits it: the requeued job resumes here
                    raise
                returns.append(setup_failed(self, overrides, e))
            if watch.exhausted:  # the signal may have come outside the cell's own work: blame it too if it left nothing
                self.blame_unfinished([o for o, _ in cells[i:]], " ".join(overrides), watch.exhausted)
                raise submitit.core.utils.UncompletedJobError(watch.exhausted)
        failed = [
            " ".join(overrides)
            for (overrides, _), ret in zip(cells, returns, strict=False)
            if ret.status == JobStatus.FAILED
        ]
        if failed:
            raise RuntimeError(
                f"{len(failed)} of {len(cells)} cells of this job failed (see their failure.json): " + "; ".join(failed)
            )
        return returns

    def blame_unfinished(self, unfinished: list[list[str]], running: str, reason: str) -> None:
        """Requeues exhausted: a `failure.json` for each cell of the pack not yet run, naming the cell that was
        running when the job's time ran out, so the next sweep launches exactly these (and the cell running).
        `unfinished[0]` is that running cell: its own failure record (written where the signal hit its work) is
        kept; it is blamed only if the signal came before or after its work and it left neither result nor failure."""
        assert self.hydra_context is not None and self.config is not None

        from llm_line.evaluation import claims, store
        from llm_line.evaluation.cell import failure_record, finished
        from llm_line.evaluation.identity import CellId

        error = NotRunError(f"not run: {reason} (the job's time ran out while it computed {running})")
        for overrides in unfinished:
            cfg, run_dir = cell_config(self, overrides)
            holder = claims.read(run_dir / store.RUNNING)
            if finished(cfg, run_dir) is not None or (holder is not None and claims.alive(holder)):
                continue
            if overrides is unfinished[0] and (run_dir / store.FAILURE).exists():
                continue
            write_json(run_dir / store.FAILURE, failure_record(cfg, CellId.of(cfg), error, time.time()))
            log.error("%s", error)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """Hydra's interface: one cell per job."""
        returns, _ = self.launch_packs([[list(o)] for o in job_overrides], initial_job_idx, wait=True)
        return returns

    def launch_packs(
        self,
        packs: Sequence[Sequence[Sequence[str]]],
        initial_job_idx: int = 0,
        wait: bool = True,
        on_submitted: Callable[[list[str]], None] | None = None,
    ) -> tuple[list[JobReturn], list[str]]:
        """Submit one job per pack in arrays that fit; return the cells' JobReturns (if `wait`) and job ids.

        `on_submitted(job_ids)` is called right after each array is submitted, with the ids of every job
        submitted so far (one per pack, in order): the sweeper records them in its manifest at once, so a
        launcher killed while it waits, or between two arrays, leaves a manifest that says what is queued."""
        import submitit

        assert self.config is not None
        executor = submitit.AutoExecutor(
            cluster=self._EXECUTOR,
            folder=self.params["submitit_folder"],
            slurm_max_num_timeout=self.params.get("max_num_timeout", 0),
        )
        params = {k: v for k, v in self.params.items() if k not in ("submitit_folder", "max_num_timeout")}
        parallelism = int(params.pop("array_parallelism", 256))
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)

        job_params, num = [], initial_job_idx
        for pack in packs:
            nums = list(range(num, num + len(pack)))
            num += len(pack)
            for n, overrides in zip(nums, pack, strict=False):
                log.info("\t#%d : %s", n, " ".join(filter_overrides(overrides)))
            job_params.append(
                ([list(o) for o in pack], "hydra.sweep.dir", nums, f"job_id_for_{nums[0]}", Singleton.get_state())
            )
        jobs = self.submit_arrays(executor, job_params, parallelism, on_submitted)
        ids = [job.job_id for job in jobs]
        if not wait:
            return [], ids
        returns: list[JobReturn] = []
        for job in jobs:
            try:
                returns.extend(ret for task in job.results() for ret in task)  # one list per task of the job
            except Exception as e:  # noqa: BLE001  (a failed job, cancelled or with failed cells)
                returns.append(failed_job(e))
        return returns, ids

    def submit_arrays(
        self,
        executor: Any,
        job_params: list[tuple],
        parallelism: int,
        on_submitted: Callable[[list[str]], None] | None = None,
    ) -> list[Any]:
        """Submit `job_params` as arrays below MaxArraySize; on any failure cancel them and remove the pickles."""
        pickles = Path(executor.folder)
        while any(tag in pickles.name for tag in ("%j", "%A", "%a", "%t")):
            pickles = pickles.parent
        before = set(pickles.glob("*.pkl"))
        size = max_array_size()
        parts = chunks(len(job_params), size)
        jobs: list[Any] = []
        try:
            for part in parts:
                share = max(1, parallelism * len(part) // len(job_params))
                executor.update_parameters(slurm_array_parallelism=share)
                jobs.extend(executor.map_array(self, *zip(*[job_params[i] for i in part], strict=False)))
                if on_submitted is not None:
                    on_submitted([job.job_id for job in jobs])
        except Exception:
            arrays = sorted({job.job_id.split("_")[0] for job in jobs})
            if arrays:
                subprocess.run(["scancel", *arrays], check=False)
            for path in set(pickles.glob("*.pkl")) - before:
                path.unlink(missing_ok=True)
            for job in jobs:
                job.paths.submitted_pickle.unlink(missing_ok=True)
            raise
        log.info(
            "Submitted %d jobs in %d job arrays (%s)",
            len(jobs),
            len(parts),
            ", ".join(sorted({job.job_id.split("_")[0] for job in jobs})),
        )
        return jobs
