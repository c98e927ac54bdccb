"""Download the ladder's three pretraining corpora and write them as lingua's training data.

    python -m llm_line.lingua.prepare_data fineweb_edu_100bt $LINGUA_DATA --max-files 40
    python -m llm_line.lingua.prepare_data c4 $LINGUA_DATA --max-files 120
    python -m llm_line.lingua.prepare_data pile_uc $LINGUA_DATA --max-files 3

lingua reads a data source as `<root_dir>/<source>/*.chunk.*.jsonl`, one {"text": ...} per line, each chunk
read in order by world_size / n_chunks data-parallel ranks; chunks beyond the number of ranks are ignored, so
--chunks must divide it (8 for the 8-GPU configs in lingua/configs). Documents are assigned to chunks at random
(seeded) and `--val-docs` of them go to `<source>.val.jsonl` instead, which lingua's training glob skips. The
order inside a chunk follows the source files; --terashuf PATH shuffles each chunk afterwards with terashuf, the
external-memory shuffler lingua's own setup script uses.

Sources (Hugging Face datasets; repo ids and file layouts as published, not re-checked here without network):
  fineweb_edu_100bt  HuggingFaceFW/fineweb-edu, the 100BT sample (parquet)
  c4                 allenai/c4, English training split (json.gz)
  pile_uc            monology/pile-uncopyrighted, training split (jsonl.zst; needs `pip install zstandard`)
An 8.4B-token run reads ~35-40 GB of text; --max-files bounds the download (files are taken in name order).
--source-dir DIR skips the download and reads files already there.
"""

from __future__ import annotations

import argparse
import fnmatch
import itertools
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

from llm_line.arguments import nonnegative_int, output_folder, positive_float, positive_int
from llm_line.documents import read_file
from llm_line.errors import CellError, run_command
from llm_line.store import atomic_file

SOURCES = {
    "fineweb_edu_100bt": ("HuggingFaceFW/fineweb-edu", "sample/100BT/*.parquet"),
    "c4": ("allenai/c4", "en/c4-train.*.json.gz"),
    "pile_uc": ("monology/pile-uncopyrighted", "train/*.jsonl.zst"),
}


def download(source: str, raw_dir: Path, max_files: int | None) -> list[Path]:
    """The source's raw files (the first `max_files` in name order), downloaded into raw_dir."""
    from huggingface_hub import HfApi, hf_hub_download

    repo, pattern = SOURCES[source]
    names = sorted(f for f in HfApi().list_repo_files(repo, repo_type="dataset") if fnmatch.fnmatch(f, pattern))
    if max_files:
        names = names[:max_files]
    return [Path(hf_hub_download(repo, name, repo_type="dataset", local_dir=raw_dir)) for name in names]


def documents(files: list[Path]) -> Iterator[str]:
    """The text of every document in the files, in order (parquet, jsonl, jsonl.gz, jsonl.zst)."""
    return itertools.chain.from_iterable(read_file(path, "text") for path in files)


def split(texts: Iterator[str], out_dir: Path, source: str, chunks: int, val_docs: int, seed: int) -> dict[str, int]:
    """Write `texts` as `<source>.chunk.NN.jsonl` (random chunk per document) and `<source>.val.jsonl`.

    Every file appears whole once all are written, or (on an error) none of them does.
    """
    rng = random.Random(seed)
    names = [f"{source}.chunk.{i:02d}.jsonl" for i in range(chunks)]
    val_name = f"{source}.val.jsonl"
    counts = {name: 0 for name in names} | {val_name: 0}
    with ExitStack() as files:
        outputs = [files.enter_context(atomic_file(out_dir / name)) for name in names]
        val = files.enter_context(atomic_file(out_dir / val_name))
        for text in texts:
            line = json.dumps({"text": text}, ensure_ascii=False) + "\n"
            if counts[val_name] < val_docs:
                val.write(line)
                counts[val_name] += 1
                continue
            i = rng.randrange(chunks)
            outputs[i].write(line)
            counts[names[i]] += 1
    return counts


def shuffle_chunks(out_dir: Path, terashuf: str, memory_gb: float, seed: int) -> None:
    """Shuffle every chunk file in place with terashuf (reads stdin, writes stdout, uses $MEMORY GB)."""
    env = {**os.environ, "MEMORY": str(memory_gb), "SEED": str(seed)}
    for chunk in sorted(out_dir.glob("*.chunk.*.jsonl")):
        with chunk.open("rb") as src, atomic_file(chunk, "wb") as dst:
            subprocess.run([terashuf], stdin=src, stdout=dst, env=env, check=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("source", choices=sorted(SOURCES))
    parser.add_argument(
        "root", type=output_folder, help="lingua's data root_dir (LINGUA_DATA); writes <root>/<source>/"
    )
    parser.add_argument(
        "--chunks", type=positive_int, default=8, help="chunk files; must divide the data-parallel ranks"
    )
    parser.add_argument(
        "--val-docs", type=nonnegative_int, default=10_000, help="documents held out in <source>.val.jsonl"
    )
    parser.add_argument("--max-files", type=positive_int, help="download at most this many source files")
    parser.add_argument("--source-dir", type=Path, help="read raw files from here instead of downloading")
    parser.add_argument("--terashuf", help="path of a terashuf binary: shuffle each chunk afterwards")
    parser.add_argument("--memory", type=positive_float, default=8.0, help="GB of memory terashuf may use")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    if args.source_dir:
        pattern = SOURCES[args.source][1].rsplit("/", 1)[-1]
        files = sorted(p for p in args.source_dir.rglob("*") if fnmatch.fnmatch(p.name, pattern))
        files = files[: args.max_files] if args.max_files else files
    else:
        files = download(args.source, args.root / "raw" / args.source, args.max_files)
    if not files:
        raise SystemExit(f"no {args.source} files found")
    out = args.root / args.source
    try:
        counts = split(documents(files), out, args.source, args.chunks, args.val_docs, args.seed)
    except CellError as e:  # a source file that is not what its name says
        raise SystemExit(f"error: {e}") from None
    if args.terashuf:
        shuffle_chunks(out, args.terashuf, args.memory, args.seed)
    print(f"{sum(counts.values())} documents from {len(files)} files -> {out}: {counts}")


if __name__ == "__main__":
    sys.exit(run_command("python -m llm_line.lingua.prepare_data", main, None))
