"""Shared helpers for benchmark scripts: machine description, tables, appending to BENCHMARKS.md."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "BENCHMARKS.md"


def machine() -> str:
    import torch

    return (f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
            f"torch {torch.__version__}, threads {torch.get_num_threads()}")


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


def report(title: str, body: str, write: bool = True) -> None:
    """Print a result section and append it to BENCHMARKS.md (unless write is False)."""
    cmd = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    text = f"\n## {title}\n\n`{cmd}` — {stamp}, {machine()}\n\n{body}\n"
    print(text)
    if write:
        with open(BENCHMARKS, "a") as f:
            f.write(text)


def log(msg: str) -> None:
    """Progress line on stderr (flushed), with a clock: watch long runs with tail -f."""
    print(f"{datetime.datetime.now():%H:%M:%S} {msg}", file=sys.stderr, flush=True)


def set_threads(n: int | None) -> None:
    """Pin torch's intra-op threads (None: leave torch's default)."""
    if n:
        import torch

        torch.set_num_threads(n)
