"""Shared helpers for benchmark scripts: machine description, tables, recording a run.

A script prints its section and hands it to ``report``, which records the run in
``bench/results/<benchmark>.jsonl`` (see bench/records.py) and regenerates BENCHMARKS.md from the
records (bench/report.py). ``NASNAV_BENCH_RESULTS`` points both at another directory.
"""

from __future__ import annotations

import datetime
import logging
import os
import platform
import shlex
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def machine() -> str:
    import torch

    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
            f"torch {torch.__version__}, threads {torch.get_num_threads()}{gpu}")


def command() -> str:
    """The command line that ran this process, the script named relative to the repository."""
    script = Path(sys.argv[0]).resolve()
    name = str(script.relative_to(ROOT)) if script.is_relative_to(ROOT) else sys.argv[0]
    return "python " + " ".join(shlex.quote(a) for a in [name, *sys.argv[1:]])


def median_spread(values) -> str:
    """'median [min, max]' of repeated measurements."""
    v = np.asarray(list(values), dtype=float)
    return f"{np.median(v):.3g} [{v.min():.3g}, {v.max():.3g}]"


def markdown_table(rows: list[dict]) -> str:
    if not rows:
        return "(no rows)\n"
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(out) + "\n"


def report(title: str, body: str, write: bool = True, *, group: str = "", params: dict | None = None,
           metrics: dict | None = None, benchmark: str | None = None) -> None:
    """Print a result section; unless ``write`` is False, record the run and regenerate BENCHMARKS.md.

    ``body`` is the section's markdown (prose, '###' sub-headings, tables from ``markdown_table``);
    ``group`` what runs are compared within (the preset: the page shows the newest run per group);
    ``params`` the script's resolved arguments; ``metrics`` headline numbers (bench/report.py reads
    some of them for the targets table). ``benchmark`` defaults to the script's name.
    """
    from bench.records import parse_body, results_dir
    from bench.report import save_run

    cmd, stamp, mach = command(), datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), machine()
    print(f"\n## {title}\n\n`{cmd}` — {stamp}, {mach}\n\n{body}\n")
    if not write:
        return
    name = benchmark or Path(sys.argv[0]).stem
    params = {k: v for k, v in (params or {}).items() if k != "no_write"}
    if params.get("quick"):  # a smoke run never stands in for the real one on the page
        group = f"{group} (quick)"
    record = {"benchmark": name, "group": group, "title": title, "date": stamp, "machine": mach, "command": cmd,
              "params": params, "metrics": metrics or {}, "blocks": parse_body(body)}
    page = save_run(record)
    log(f"recorded in {results_dir() / (name + '.jsonl')}; regenerated {page}")


def log(msg: str) -> None:
    """Progress line on stderr (flushed), with a clock: watch long runs with tail -f."""
    print(f"{datetime.datetime.now():%H:%M:%S} {msg}", file=sys.stderr, flush=True)


def set_threads(n: int | None) -> None:
    """Pin torch's intra-op threads (None: leave torch's default)."""
    if n:
        import torch

        torch.set_num_threads(n)


def quiet_engine() -> None:
    """Lightning's banners and performance hints off (the CLI does the same for its jobs): the
    benchmarks train through the engine's Lightning trainer many times per run."""
    from lightning.fabric.utilities.warnings import PossibleUserWarning

    for name in ("lightning.pytorch", "lightning.fabric", "lightning", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=PossibleUserWarning)  # few workers, few batches, ...
    warnings.filterwarnings("ignore", message=".*`validation_step` but have no `val_dataloader`.*")


class _LogHandler(logging.Handler):
    def __init__(self, prefix: str):
        super().__init__(logging.INFO)
        self.prefix = prefix

    def emit(self, record: logging.LogRecord) -> None:
        log(f"{self.prefix}{record.getMessage()}")


@contextmanager
def engine_progress(prefix: str = ""):
    """While inside, the engine's progress (logger ``nasnav``, INFO and up) goes to ``log``, each line
    after ``prefix``; the logger's level and handlers are as before afterwards."""
    logger = logging.getLogger("nasnav")
    handler, level = _LogHandler(prefix), logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
