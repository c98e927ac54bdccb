"""`llm-line`: one command for everything beside evaluation (which stays `python evaluate.py`, a Hydra app).

    llm-line status results/                      # where a sweep stands
    llm-line collect results/ -o data/results.csv # result files -> tables
    llm-line fit --x "C4 Validation Loss" --y "HellaSwag Loss"
    llm-line plot --x "C4 Validation Loss" --y "HellaSwag Loss" -o figures/c4_hellaswag
    llm-line figures --data data/results.csv -o figures/  # the paper's figures, figures/index.md

Each subcommand is the `main(argv)` of one module (`python -m llm_line.<module>` runs the same code); it is
imported only when chosen, so `llm-line status` never pays for pandas, scipy or torch. Both ways run it through
`llm_line.errors.run_command`, the one error path: a user-fixable error is one line and exit 1.
"""

from __future__ import annotations

import importlib
import sys

from llm_line.errors import run_command

# subcommand -> (module with a `main(argv) -> int`, one line of help)
COMMANDS = {
    "status": ("llm_line.sweeps.status", "where a sweep stands: done, failed, running, queued, missing cells"),
    "collect": ("llm_line.analysis.collect", "collect result files into a wide and a long table"),
    "fit": ("llm_line.analysis.fit", "fit loss-to-loss laws per group of a table"),
    "plot": ("llm_line.analysis.plot", "plot losses against each other with their fitted laws"),
    "intervention": ("llm_line.analysis.intervention", "offsets of every group from a base group's law"),
    "figures": ("llm_line.analysis.figures", "every figure of the paper the rows support, with an index of their laws"),
    "export": ("llm_line.lingua.export", "export lingua checkpoints as transformers models to evaluate"),
    "prepare-data": ("llm_line.lingua.prepare_data", "cut a corpus into lingua's training chunks"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: llm-line COMMAND [ARGS...]   (llm-line COMMAND --help for its options)", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "Evaluation itself is a Hydra app: python evaluate.py [-m] model=... task=... shots=..."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"llm-line: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    sys.argv[0] = f"llm-line {name}"
    return run_command(sys.argv[0], module.main, rest)


if __name__ == "__main__":
    sys.exit(main())
