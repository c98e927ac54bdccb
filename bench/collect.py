"""Time `llm_line.analysis.collect` on 10,000 result files (a paper-sized sweep) and print the figures.

    python bench/collect.py [N_FILES]

The files are synthetic but shaped like real ones: 1,000 checkpoints x 10 tasks, one in ten of them mmlu
with its 4 categories and 57 subjects (62 metric entries), the rest single tasks.
"""

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llm_line.analysis import collect  # noqa: E402
from llm_line.evaluation import store  # noqa: E402
from llm_line.evaluation.config import cell_dir  # noqa: E402

TASKS = [
    "hellaswag",
    "piqa",
    "winogrande",
    "arc_easy",
    "arc_challenge",
    "openbookqa",
    "copa",
    "social_iqa",
    "commonsense_qa",
    "mmlu",
]
ENTRY = {
    "acc": 0.5,
    "acc_stderr": 0.01,
    "acc_norm": 0.5,
    "acc_norm_stderr": 0.01,
    "loss": 2.0,
    "loss_stderr": 0.1,
    "nll": 4.0,
    "nll_per_byte": 0.5,
    "bpb": 0.7,
    "bpb_stderr": 0.01,
    "answer_tokens": 2.0,
    "answer_bytes": 6.0,
    "n_docs": 1000,
}


def write_files(root: Path, n_files: int) -> None:
    for i in range(n_files):
        model, step, task = f"org/model-{i // 100}", (i // 10) % 10 * 1000, TASKS[i % 10]
        metrics = {task: ENTRY}
        groups = {}
        if task == "mmlu":
            cats = ["mmlu_stem", "mmlu_other", "mmlu_humanities", "mmlu_social_sciences"]
            metrics.update({c: ENTRY for c in cats})
            metrics.update({f"mmlu_subject_{k}": ENTRY for k in range(57)})
            groups = {"mmlu": cats, **{c: [] for c in cats}}
        result = {
            "schema": 1,
            "status": "ok",
            "cell": {"model": model, "revision": f"step{step}", "task": task, "shots": 0, "limit": None},
            "metrics": metrics,
            "n_docs": 1000,
            "model": {
                "num_parameters": 10**8,
                "meta": {"architecture": "Llama", "pretraining_data": "C4", "tokens_per_step": 2**21},
            },
            "task": {"kind": "lm_eval", "display": task, "groups": groups},
            "run": {"finished": "2026-11-26T00:00:00"},
        }
        path = root / cell_dir(model, f"step{step}", task, 0) / store.RESULT
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2))


def main() -> None:
    n_files = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "results"
        write_files(root, n_files)
        started = time.perf_counter()
        collection = collect.collect([root])
        read = time.perf_counter() - started
        started = time.perf_counter()
        collect.write_tables(collection, Path(tmp) / "data" / "results.csv", long_csv=False)
        parquet = time.perf_counter() - started
        started = time.perf_counter()
        collection.long.to_csv(Path(tmp) / "long.csv", index=False)
        long_csv = time.perf_counter() - started
    print(f"{n_files} files -> {len(collection.wide)} checkpoints, {len(collection.long)} long rows")
    print(
        f"read + build tables: {read:.1f} s; write wide CSV + Parquet, long Parquet: {parquet:.1f} s; "
        f"long CSV: {long_csv:.1f} s"
    )


if __name__ == "__main__":
    main()
