"""Argument types for the `llm-line` commands: a number out of range or an output that cannot be written is
refused where the argument is parsed (argparse's `error: argument --x: ...`, exit 2), before any work.

    parser.add_argument("--chunks", type=positive_int)
    parser.add_argument("--csv", type=output_file(".csv"))

An output path is checked up front (its folder exists or can be created, and is writable; the path itself is
not a folder), so a long fit or export never fails at its last step. A path that names an existing folder,
or ends in `/`, means "write inside it" only where the command says so (`output_file(..., in_folder=NAME)`);
everywhere else it is refused.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def prog(module: str) -> str:
    """The program name a module's `--help` shows: `llm-line fit` when run through `llm-line` (`cli.main` sets
    `sys.argv[0]`), else `python -m llm_line.analysis.fit`. Here, not in `cli`, so no command imports `cli`."""
    return sys.argv[0] if sys.argv[0].startswith("llm-line ") else f"python -m {module}"


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def positive_int(text: str) -> int:
    """A whole number of at least 1 (a count where 0 would silently mean "none" or "default")."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def nonnegative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} cannot be negative")
    return value


def comma_separated(item: Callable[[str], T]) -> Callable[[str], list[T]]:
    """An argparse type for a comma-separated list, each item parsed (and range-checked) by `item`."""

    def parse(text: str) -> list[T]:
        parts = [part.strip() for part in text.split(",")]
        if not all(parts):
            raise argparse.ArgumentTypeError(f"{text!r} has an empty item; separate the values by single commas")
        return [item(part) for part in parts]

    return parse


def finite_float(text: str) -> float:
    """A real number that is neither nan nor infinite."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number")
    return value


def positive_float(text: str) -> float:
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be greater than 0")
    return value


def probability(text: str) -> float:
    """A number strictly between 0 and 1 (a confidence level, a fraction)."""
    value = finite_float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{value} must lie strictly between 0 and 1")
    return value


def writable_location(path: Path) -> str | None:
    """Why `path` cannot be created as a file, or None: its nearest existing ancestor must be a folder this
    user can write in, and the path itself must not be a folder."""
    path = path.expanduser()
    if path.is_dir():
        return f"{path} is a folder; name a file inside it"
    absolute = path.absolute()
    existing = next(p for p in absolute.parents if p.exists())
    if not existing.is_dir():
        return f"{path} cannot be created: {existing} is a file"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{path} cannot be written: {existing} is not writable by this user"
    if any(len(os.fsencode(part)) > 255 for part in absolute.parts):
        return f"{path}: a part of the path is longer than 255 bytes"
    return None


def output_file(*suffixes: str, in_folder: str | None = None) -> Callable[[str], Path]:
    """An argparse type for an output file: checked writable before any work.

    `suffixes` are added when the name has none of them (`-o out` -> `out.csv`). With `in_folder`, a path
    that is an existing folder or ends in `/` means the file `in_folder` inside it; without, it is refused.
    """

    def parse(text: str) -> Path:
        path = Path(text).expanduser()
        if text.endswith(os.sep) or path.is_dir():
            if in_folder is None:
                raise argparse.ArgumentTypeError(f"{text} is a folder; name a file (e.g. {Path(text) / 'out'})")
            path = path / in_folder
        if suffixes and path.suffix not in suffixes:
            path = path.with_name(path.name + suffixes[0])
        problem = writable_location(path)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return path

    return parse


def output_folder(text: str) -> Path:
    """An argparse type for an output folder: it exists as a folder or can be created, and is writable."""
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder")
    existing = next(p for p in (path.absolute(), *path.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"{text} cannot be created: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{text} cannot be written: {existing} is not writable by this user")
    return path


def existing_folder(text: str) -> Path:
    """An argparse type for an input folder: it must exist and be a folder."""
    path = Path(text).expanduser()
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text} does not exist")
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder")
    return path
