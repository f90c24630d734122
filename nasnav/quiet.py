"""Loggers turned down for the length of a block: set-up noise that would otherwise fill the job logs."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings

SRUN_HINT = "The `srun` command is available on your system but is not used"


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


def hide_srun_hint() -> None:
    """From now on in this process, outside a Slurm job, hide Lightning's hint that ``srun`` is installed but
    not used: on a machine with Slurm installed, every local training (Trainer, fit, validate) would print it.
    Inside a Slurm job (``SLURM_JOB_ID`` set), where it points at a real mistake, it stays."""
    if "SLURM_JOB_ID" not in os.environ:
        warnings.filterwarnings("ignore", message=SRUN_HINT)  # idempotent: an equal filter is replaced
