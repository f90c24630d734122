"""Loggers turned down for the length of a block: set-up noise that would otherwise fill the job logs."""

from __future__ import annotations

import contextlib
import logging


@contextlib.contextmanager
def quiet_loggers(names: tuple[str, ...], level: int):
    """Raise the named loggers to ``level`` inside the block; their levels are restored after it."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(level)
    try:
        yield
    finally:
        for lg, before in zip(loggers, levels):
            lg.setLevel(before)
