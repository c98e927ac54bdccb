"""Tools around Meta's lingua (https://github.com/facebookresearch/lingua), which trains the paper's ladder.

This package does not contain or import lingua: `make_configs` writes training configs in lingua's YAML
format, `prepare_data` writes the three corpora as lingua's jsonl chunks, and `export` turns lingua
checkpoints into Hugging Face model folders that `evaluate.py` loads. See lingua/README.md.

Meta's lingua is also a top-level package called `lingua`: run its training from its own checkout and these
tools from this repository's root, so each finds its own.
"""
