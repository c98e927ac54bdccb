"""Tools around Meta's lingua (https://github.com/facebookresearch/lingua), which trains the paper's ladder.

This package neither contains nor imports lingua: `make_configs` writes training configs in lingua's YAML
format (into the repository's `lingua/configs/`), `prepare_data` writes the three corpora as lingua's jsonl
chunks, and `export` turns lingua checkpoints into Hugging Face model folders that `evaluate.py` loads:

    python -m llm_line.lingua.export RUN_DIR EXPORT_DIR

It lives inside `llm_line` so that the top-level name `lingua` stays Meta's: the repository's `lingua/` folder
holds only configs and a launch script (no Python package), so running lingua's own commands never picks up
this project instead. See docs/lingua.md.
"""
