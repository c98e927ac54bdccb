"""Analysing results (never imports torch, transformers or lm_eval): result files to tables, the rows an
analysis sees, loss-to-loss fits, interventions, plots, panels, colours and the paper's figures."""
