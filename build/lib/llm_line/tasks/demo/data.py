"""Loader for the offline demo tasks: jsonl files that sit beside this module.

lm-eval resolves `!function` relative to the task YAML, so pointing `custom_dataset` here makes the demo
tasks independent of the working directory (a plain `dataset_path: json` resolves relative paths
against the cwd, which differs between a laptop, a test and a SLURM job).
"""

from pathlib import Path

import datasets

HERE = Path(__file__).parent


def load(data_files: dict, **_metadata) -> datasets.DatasetDict:
    """Load `{split: file name}` from this folder as a DatasetDict."""
    files = {split: str(HERE / name) for split, name in data_files.items()}
    return datasets.load_dataset("json", data_files=files)
