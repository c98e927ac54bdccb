"""Errors a user can fix. Light on purpose: raising or catching one must not import torch or lm_eval."""


class CellError(RuntimeError):
    """A cell cannot run for a reason the user can fix; the message says what is wrong and how to fix it."""
