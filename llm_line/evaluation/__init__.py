"""One cell's evaluation: the config schema, where a cell runs, lm-eval and the scorer, metrics, the corpus
loss and its documents, the offline demo, evaluate.py's input checks, loggers, per-document records and
the settings fingerprint with its compatibility rules."""
