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
--source-dir DIR skips the download and reads files already there; --text-field NAME reads another field than
`text` (the output's field stays `text`). A re-run into the same folder leaves exactly the chunks asked for (an
earlier run's extra chunks are removed), and output lingua could not train on (no documents, none left after
--val-docs, an empty chunk) is refused before anything is written.
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

from llm_line.arguments import existing_folder, nonnegative_int, output_folder, positive_float, positive_int
from llm_line.errors import CellError, run_command
from llm_line.evaluation.documents import read_file
from llm_line.files import atomic_file

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


def documents(files: list[Path], text_field: str = "text") -> Iterator[str]:
    """The text of every document in the files, in order (parquet, jsonl, jsonl.gz, jsonl.zst)."""
    return itertools.chain.from_iterable(read_file(path, text_field, option="--text-field") for path in files)


def split(
    files: list[Path], out_dir: Path, source: str, chunks: int, val_docs: int, seed: int, text_field: str = "text"
) -> dict[str, int]:
    """Write the documents of `files` as `<source>.chunk.NN.jsonl` (random chunk per document) and `<source>.val.jsonl`.

    Every file appears whole once all are written, or (on an error) none of them does: documents too few to
    fill the validation file and every chunk are refused before anything appears.
    """
    rng = random.Random(seed)
    names = [f"{source}.chunk.{i:02d}.jsonl" for i in range(chunks)]
    val_name = f"{source}.val.jsonl"
    counts = {name: 0 for name in names} | {val_name: 0}
    with ExitStack() as stack:
        outputs = [stack.enter_context(atomic_file(out_dir / name)) for name in names]
        val = stack.enter_context(atomic_file(out_dir / val_name))
        for text in documents(files, text_field):
            line = json.dumps({"text": text}, ensure_ascii=False) + "\n"
            if counts[val_name] < val_docs:
                val.write(line)
                counts[val_name] += 1
                continue
            i = rng.randrange(chunks)
            outputs[i].write(line)
            counts[names[i]] += 1
        check_counts(counts, names, val_docs, f"{len(files)} file(s) in {files[0].parent}")
    return counts


def check_counts(counts: dict[str, int], names: list[str], val_docs: int, where: str) -> None:
    """Refuse an output lingua cannot train on: no documents, none left after --val-docs, or an empty chunk
    (its data-parallel ranks would have nothing to read)."""
    total = sum(counts.values())
    if total == 0:
        raise CellError(f"the {where} hold no documents; nothing to write")
    if val_docs >= total:
        raise CellError(
            f"--val-docs {val_docs} takes all {total} documents of the {where}, leaving none to train on; "
            f"use --val-docs below {total}"
        )
    empty = [name for name in names if counts[name] == 0]
    if empty:
        raise CellError(
            f"the {total - val_docs} training documents leave {len(empty)} of {len(names)} chunks empty "
            f"({empty[0]}, ...); use fewer --chunks, a smaller --val-docs or more source files"
        )


def foreign_chunks(out_dir: Path, source: str) -> list[Path]:
    """Chunk files of another prefix in the source's folder: lingua's `*.chunk.*.jsonl` glob would train on them."""
    return sorted(p for p in out_dir.glob("*.chunk.*.jsonl") if not p.name.startswith(f"{source}.chunk."))


def remove_stale_chunks(out_dir: Path, source: str, written: dict[str, int]) -> list[str]:
    """Remove this source's chunk files that this run did not write (an earlier run with more --chunks), so
    lingua's glob reads exactly this run's documents; return their names."""
    stale = sorted(p for p in out_dir.glob(f"{source}.chunk.*.jsonl") if p.name not in written)
    for path in stale:
        path.unlink()
    return [p.name for p in stale]


def shuffle_chunks(chunks: list[Path], terashuf: str, memory_gb: float, seed: int) -> None:
    """Shuffle every chunk file in place with terashuf (reads stdin, writes stdout, uses $MEMORY GB)."""
    env = {**os.environ, "MEMORY": str(memory_gb), "SEED": str(seed)}
    for chunk in chunks:
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
    parser.add_argument("--source-dir", type=existing_folder, help="read raw files from here instead of downloading")
    parser.add_argument("--text-field", default="text", help="the field (parquet column) holding each document's text")
    parser.add_argument("--terashuf", help="path of a terashuf binary: shuffle each chunk afterwards")
    parser.add_argument("--memory", type=positive_float, default=8.0, help="GB of memory terashuf may use")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    out = args.root / args.source
    foreign = foreign_chunks(out, args.source)
    if foreign:
        raise CellError(
            f"{out} holds {foreign[0].name}, which lingua's *.chunk.*.jsonl glob would read as part of "
            f"{args.source}; move {'it' if len(foreign) == 1 else f'these {len(foreign)} files'} out of {out}"
        )
    if args.source_dir:
        pattern = SOURCES[args.source][1].rsplit("/", 1)[-1]
        files = sorted(p for p in args.source_dir.rglob("*") if fnmatch.fnmatch(p.name, pattern))
        files = files[: args.max_files] if args.max_files else files
    else:
        files = download(args.source, args.root / "raw" / args.source, args.max_files)
    if not files:
        raise CellError(f"no {args.source} files ({SOURCES[args.source][1]}) found in {args.source_dir}")
    counts = split(files, out, args.source, args.chunks, args.val_docs, args.seed, args.text_field)
    stale = remove_stale_chunks(out, args.source, counts)
    if stale:
        print(f"removed {len(stale)} chunk(s) of an earlier run with more --chunks: {', '.join(stale)}")
    if args.terashuf:
        shuffle_chunks([out / name for name in counts if ".chunk." in name], args.terashuf, args.memory, args.seed)
    print(f"{sum(counts.values())} documents from {len(files)} files -> {out}: {counts}")


if __name__ == "__main__":
    sys.exit(run_command("python -m llm_line.lingua.prepare_data", main, None))
