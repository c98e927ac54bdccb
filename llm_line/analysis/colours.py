"""Colours that mean the same thing in every figure: a palette keyed by the value, and a continuous scale.

A category value (a pretraining dataset, an architecture, a tokenizer, a task) has one fixed colour in every
call and every figure: C4 is always blue, whether it is a pretraining dataset or the y loss
"C4 Validation Loss". Values are matched without case and without their loss suffix, so "The Pile UC
Validation Loss" takes the colour of The Pile. A value the palette does not know gets a colour from its
name (a CRC32 hash into tab20), the same in every run; where two values of one figure would then share a
colour, the later one (in sorted order) takes the next free tab20 colour.

Numeric groups (model size, context length) are coloured on a continuous scale instead (`Scale`), on a log
axis where the values span more than a factor of ten.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import LogNorm, Normalize, to_rgb

MEAN = (0.0, 0.0, 0.0)  # the mean of several y losses is always black
MISSING = (0.6, 0.6, 0.6)  # a numeric group's rows without a value

# one colour per known value; the families (data, architecture, tokenizer, task) never meet in one legend
PALETTE = {
    # pretraining data and validation corpora
    "c4": "#1f77b4",
    "fineweb-edu": "#ff7f0e",
    "the pile": "#2ca02c",
    "the pile uc": "#2ca02c",
    "the pile deduped": "#8fd175",
    "dolma": "#9467bd",
    "refinedweb": "#8c564b",
    "refineweb": "#8c564b",
    "slimpajama": "#e377c2",
    # architectures
    "llama": "#d62728",
    "gpt": "#17becf",
    "mamba": "#bcbd22",
    "mamba2": "#6b8e23",
    "olmo": "#9467bd",
    # tokenizers
    "gpt2-hf": "#1b9e77",
    "gpt-neox": "#d95f02",
    "tiktoken": "#7570b3",
    "gpt2": "#e7298a",
    # tasks: hues apart from the corpora's, which share their legends (train-to-train beside train-to-test)
    "arc-challenge": "#d62728",
    "arc-easy": "#17becf",
    "hellaswag": "#bcbd22",
    "mmlu": "#7b4173",
    "winogrande": "#393b79",
    "piqa": "#e7969c",
    "social iqa": "#637939",
    "commonsenseqa": "#8c6d31",
    "copa": "#843c39",
    "openbookqa": "#5254a3",
}
SUFFIXES = (" validation loss", " validation bpb", " accuracy", " loss", " bpb")


def key(value: object) -> str:
    """The palette key of a value: lower case, without a loss suffix."""
    text = str(value).strip().lower()
    for suffix in SUFFIXES:
        if text.endswith(suffix):
            return text[: -len(suffix)]
    return text


def _tab20(index: int) -> tuple[float, float, float]:
    return tuple(float(c) for c in colormaps["tab20"](index % 20)[:3])  # type: ignore[return-value]


def colour(value: object) -> tuple[float, float, float]:
    """The fixed colour of one value (known, or from its name's hash)."""
    known = PALETTE.get(key(value))
    if known:
        return to_rgb(known)
    return _tab20(zlib.crc32(key(value).encode()))


def colours(values: Iterable[object]) -> dict[str, tuple[float, float, float]]:
    """The colour of every value, with hash collisions among unknown values of one figure resolved."""
    out: dict[str, tuple[float, float, float]] = {}
    names = sorted({str(v) for v in values})
    for name in sorted(names, key=lambda n: key(n) not in PALETTE):  # known values keep theirs
        chosen = colour(name)
        if key(name) not in PALETTE:
            start = zlib.crc32(key(name).encode())
            for step in range(20):
                if chosen not in out.values():
                    break
                chosen = _tab20(start + step + 1)
        out[name] = chosen
    return out


@dataclass
class Scale:
    """A continuous colour scale over a numeric column (viridis; logarithmic over more than a decade)."""

    column: str
    norm: Normalize
    cmap: str = "viridis"

    @classmethod
    def over(cls, column: str, values: Iterable[float]) -> Scale:
        array = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
        lo, hi = (float(array.min()), float(array.max())) if len(array) else (0.0, 1.0)
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        log = lo > 0 and hi / lo > 10
        return cls(column, LogNorm(lo, hi) if log else Normalize(lo, hi))

    def __call__(self, value: float) -> tuple[float, float, float]:
        if not np.isfinite(value):  # rows without a value: grey, never a colour of the scale
            return MISSING
        return tuple(float(c) for c in colormaps[self.cmap](self.norm(value))[:3])  # type: ignore[return-value]

    def mappable(self):
        """What `Figure.colorbar` draws."""
        from matplotlib.cm import ScalarMappable

        return ScalarMappable(norm=self.norm, cmap=self.cmap)
