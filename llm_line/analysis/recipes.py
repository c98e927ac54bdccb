"""The paper's figures as recipes: what each one plots, from which rows, in which layout.

A recipe is data only; `llm_line.analysis.figures` draws it with `llm_line.analysis.panels.grid`. To add a figure, add a
`Recipe` to `RECIPES`: its name (`llm-line figures --only NAME`), x, the y sets (each a row or column of
panels; several losses in one set are drawn together with their mean), the facets, the groups (one law and
one colour each), the rows it needs and what it tells (both go into DIR/index.md and docs/figures.md).

Rows, as in the paper's notebook (brendel-group/llm-line, figures/figs.ipynb): rows marked `Overtraining`
are left out of every figure; the from-scratch figures leave out rows with `Hugging Face` = True (a table
without that column, such as a collected lingua ladder, counts as trained from scratch); `x_below` keeps
rows whose in-domain validation loss is below the cut (rows whose pretraining data has no validation set
are kept).
"""

from __future__ import annotations

from dataclasses import dataclass

from llm_line.analysis.averages import AVERAGE_PRESETS
from llm_line.analysis.panel_parts import YSet
from llm_line.analysis.row_selection import IN_DOMAIN_COLUMNS

IN_DOMAIN = "in-domain validation loss"  # as x: each pretraining dataset's own validation loss
VALIDATION = tuple(dict.fromkeys(IN_DOMAIN_COLUMNS.values()))
TESTS = AVERAGE_PRESETS["paper-test"][1]  # the paper's seven test losses
AVERAGE_TEST = "Average Test Loss"
AVERAGE_VALIDATION = "Average Validation Loss"  # of the validation sets other than FineWeb-Edu (the x)
AVERAGES = {
    AVERAGE_TEST: TESTS,
    AVERAGE_VALIDATION: tuple(c for c in VALIDATION if c != "FineWeb-Edu Validation Loss"),
}
FW = "FineWeb-Edu Validation Loss"
MATCHED_YS = (YSet(("C4 Validation Loss",), "Train-to-Train"), YSet(("ARC-Easy Loss",), "Train-to-Test"))


@dataclass(frozen=True)
class Recipe:
    """One figure of the paper: see the module docstring."""

    name: str
    title: str
    tells: str
    x: str  # a loss column, or IN_DOMAIN
    ys: tuple[YSet, ...]
    row: str | tuple[str, ...] | None = None  # column(s) or "y"
    col: str | tuple[str, ...] | None = None
    group: tuple[str, ...] = ("Pretraining Data",)
    marker: str | None = "Architecture"
    per: tuple[str, ...] = ()  # one figure per combination of these columns' values
    from_scratch: bool = False
    min_groups: int = 1  # facets with fewer groups are not drawn
    x_below: float | None = None  # the paper's cut on the in-domain validation loss
    varies: tuple[str, ...] = ()  # columns that must hold two or more values


RECIPES = [
    Recipe(
        "train_to_train_test",
        "Train-to-train and train-to-test",
        "Every validation loss (left) and every test loss (right) against the in-domain validation loss, one "
        "figure per architecture and pretraining dataset: each follows its own shifted power law, and so does "
        "their mean (black).",
        IN_DOMAIN,
        (
            YSet(VALIDATION, "Train-to-Train"),
            YSet(TESTS, "Train-to-Test"),
        ),
        col="y",
        group=(),
        per=("Architecture", "Pretraining Data"),
        x_below=4.5,
    ),
    Recipe(
        "intervention_pretraining_data",
        "Intervening on the pretraining data",
        "Architecture and tokenizer held fixed (columns), only the pretraining data changed: each dataset "
        "has its own line, for validation (C4) and test (ARC-Easy) losses alike. The pretraining data moves "
        "the line.",
        FW,
        MATCHED_YS,
        row="y",
        col=("Architecture", "Tokenizer"),
        group=("Pretraining Data",),
        min_groups=2,
        x_below=4.0,
    ),
    Recipe(
        "intervention_tokenizer",
        "Intervening on the tokenizer",
        "Architecture and pretraining data held fixed (columns), only the tokenizer changed: the lines "
        "move less than with the pretraining data.",
        FW,
        MATCHED_YS,
        row="y",
        col=("Architecture", "Pretraining Data"),
        group=("Tokenizer",),
        min_groups=2,
        x_below=4.0,
    ),
    Recipe(
        "intervention_architecture",
        "Intervening on the architecture",
        "Pretraining data and tokenizer held fixed (columns), only the architecture changed (Llama, GPT, "
        "Mamba): the checkpoints stay on one line. Architecture hardly moves it.",
        FW,
        MATCHED_YS,
        row="y",
        col=("Pretraining Data", "Tokenizer"),
        group=("Architecture",),
        marker=None,
        min_groups=2,
        x_below=4.0,
    ),
    Recipe(
        "overview",
        "Loss-to-loss scaling (overview)",
        "HellaSwag loss against FineWeb-Edu validation loss for models trained from scratch, one law per "
        "pretraining dataset and tokenizer, marked by architecture: which changes move the line.",
        FW,
        (YSet(("HellaSwag Loss",)),),
        group=("Pretraining Data", "Tokenizer"),
        from_scratch=True,
    ),
    Recipe(
        "model_size",
        "Model size",
        "Average test loss against FineWeb-Edu validation loss, coloured by model size, one panel per "
        "pretraining dataset: every size follows the same line.",
        FW,
        (YSet((AVERAGE_TEST,)),),
        col=("Pretraining Data",),
        group=("Size",),
        from_scratch=True,
        varies=("Size",),
    ),
    Recipe(
        "context_length",
        "Context length",
        "Average validation loss (other than FineWeb-Edu) against FineWeb-Edu validation loss, coloured by "
        "context length, one panel per pretraining dataset: the context length does not move the line.",
        FW,
        (YSet((AVERAGE_VALIDATION,)),),
        col=("Pretraining Data",),
        group=("Context Length",),
        from_scratch=True,
        varies=("Context Length",),
    ),
    Recipe(
        "optimizer",
        "Optimizer settings",
        "Average validation loss against FineWeb-Edu validation loss, one law per optimizer | schedule | "
        "learning rate | weight decay, one panel per pretraining dataset: optimizer settings hardly move it.",
        FW,
        (YSet((AVERAGE_VALIDATION,)),),
        col=("Pretraining Data",),
        group=("Optimizer", "Scheduler", "Learning Rate", "Weight Decay"),
        from_scratch=True,
        varies=("Optimizer", "Scheduler", "Learning Rate", "Weight Decay"),
    ),
]
