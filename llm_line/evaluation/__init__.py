"""One cell's evaluation: the config schema, where a cell runs, its claim, lm-eval and the scorer, the hub's
revisions, metrics, the corpus loss and its documents, the offline demo, evaluate.py's input checks, loggers,
per-document records, the result store with its reuse decision, and the settings fingerprint with its
compatibility rules. Imports nothing of sweeps or analysis (tests/test_layout.py)."""
