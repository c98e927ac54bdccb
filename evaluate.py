"""Evaluate one cell (model @ revision x task x shots) with lm-evaluation-harness; `-m` sweeps a grid.

    python evaluate.py                                   # offline demo cell
    python evaluate.py -m model=pythia task=commonsense_qa shots=0,5,10 model.revision=step3000

The result lands in the cell's run dir, `<results_dir>/<model>/<revision>/<task>/<shots>shot/result.json`;
a cell with a valid result there is skipped. The logic lives in `llm_line/evaluation/cell.py`. An error the user can fix
prints one line and exits 1 (`HYDRA_FULL_ERROR=1` shows the traceback; it is also in the log and failure.json).
"""

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import llm_line.evaluation.config  # noqa: F401  (registers the structured configs and the cell_dir resolver)
from llm_line.evaluation.cell import run_cell
from llm_line.evaluation.checks import one_line_errors


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    with one_line_errors():
        run_cell(cfg, Path(HydraConfig.get().runtime.output_dir))


if __name__ == "__main__":
    main()
