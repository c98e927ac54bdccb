"""Reading documents' text from local parquet and JSON-lines files (plain, .gz or .zst), streaming.

One reader for every place that reads local document files: the validation corpora of
`llm_line.evaluation.corpus_tokens` and the pretraining data `llm_line.lingua.prepare_data` writes for lingua.
Light on purpose (no torch).
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llm_line.errors import CellError


def open_lines(path: Path) -> io.BufferedIOBase:
    """The file's lines as bytes, decompressed by its suffix (.zst needs the `zstandard` package); decoding is
    per line, so a bad byte is reported with its line."""
    if path.name.endswith(".zst"):
        import zstandard

        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True))
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


def read_file(path: Path, field: str, option: str = "task.corpus.text_field") -> Iterator[str]:
    """The `field` of every record of a parquet or JSON-lines file; blank lines are not records. `option` is
    the setting a message points at to name another field."""
    if path.name.endswith(".parquet"):
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path)
        if field not in parquet.schema_arrow.names:
            raise CellError(f"{path} has no column {field!r} (columns: {parquet.schema_arrow.names}); set {option}")
        for batch in parquet.iter_batches(columns=[field]):
            yield from (text_value(t, path, "?", field) for t in batch.column(0).to_pylist())
        return
    with open_lines(path) as lines:
        for number, raw in enumerate(lines, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise CellError(
                    f"{path}:{number} is not UTF-8 text (byte {raw[e.start]:#04x} at column {e.start + 1}); "
                    "a corpus file must be UTF-8 JSON lines"
                ) from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise CellError(f"{path}:{number} is not a JSON line ({e})") from None
            if not isinstance(record, dict) or field not in record:
                keys = sorted(record) if isinstance(record, dict) else type(record).__name__
                raise CellError(f"{path}:{number} has no field {field!r} ({keys}); set {option}")
            yield text_value(record[field], path, number, field)


def text_value(value: Any, where: Any, number: Any, field: str) -> str:
    """A record's text: None (a missing value) is empty text; anything else that is not a string is an error."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise CellError(f"{where}:{number}: field {field!r} is a {type(value).__name__}, not text")
    return value
