"""What the CLI prints: its own lines on stdout, the engine's progress (the ``nasnav`` logger) beside
them, and nothing else of the libraries' chatter; set up once by ``main``."""

from __future__ import annotations

import logging
import warnings

QUIET_WARNINGS = (
    ".*does not have many workers.*",
    ".*number of training batches.*",
    ".*LeafSpec.*",
    ".*Grad strides do not match.*",  # DDP + 1x1 convs: harmless
    ".*recommended to use `Trainer\\(devices=1.*",
    ".*Checkpoint directory .* exists and is not empty.*",  # resuming reuses it
)


def say(msg: str) -> None:
    print(msg, flush=True)


class _Say(logging.Handler):
    """A log record as one plain line on whatever ``sys.stdout`` is at the time (tests swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        say(self.format(record))


def setup(quiet: bool = False) -> None:
    """Engine progress (logger ``nasnav``, INFO) to stdout as plain lines; Lightning's banners and
    known harmless warnings off. Called by the CLI's entry point only: a library never does this."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    log = logging.getLogger("nasnav")
    if not any(isinstance(h, _Say) for h in log.handlers):
        log.addHandler(_Say())
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False
