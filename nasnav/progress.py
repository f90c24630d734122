"""Progress bars for long work in a terminal (scoring candidates, spot checks, downloads).

Shown only when the stream (standard error) is a terminal: a job the app starts writes into its log file,
which the app reads, and there a bar would be noise, so there is none. Lightning's own bar for trainings
follows the same rule (``trainer.enable_progress_bar``, null: only on a terminal).
"""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm


def on_terminal(stream: TextIO | None = None) -> bool:
    stream = sys.stderr if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real file
        return False


def bar(total: int | None, desc: str, unit: str = "it", stream: TextIO | None = None, **kwargs) -> tqdm:
    """A tqdm bar on ``stream`` (standard error) when it is a terminal; else one that draws nothing
    (``update`` and ``close`` still work). ``unit="B"`` scales bytes (kB, MB)."""
    stream = sys.stderr if stream is None else stream
    return tqdm(total=total, desc=desc, unit=unit, file=stream, disable=not on_terminal(stream), leave=False,
                dynamic_ncols=True, unit_scale=unit == "B", **kwargs)
