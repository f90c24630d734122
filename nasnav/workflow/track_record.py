"""What the steering suite measured for each kind of auto-pilot proposal: shown beside a proposal.

``bench/steering_suite.py`` runs the default policy on the tuning tables (published tables with real
accuracies) and writes, next to this module, ``track_record.json``: per kind of proposal
(``narrow``, ``prune``), how often accepting it kept a near-best architecture (the best 0.1% of the
table) in the space, and the pick's regret with the surrogate's estimate against the best own score.
This module only reads that file (shipped with the code; no run directory involved).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

FILE = Path(__file__).with_name("track_record.json")
WORDS = {"narrow": "narrowing", "prune": "pruning by fitness"}


@functools.cache
def _load(path: Path = FILE) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def track_record(kind: str, path: Path = FILE) -> str | None:
    """One sentence on proposals of ``kind`` (a ``Verdict`` value: ``narrow``, ``prune``), or None
    when the suite has no record of it."""
    data = _load(path)
    rec = data.get("records", {}).get(str(kind))
    if not isinstance(rec, dict) or not rec.get("runs"):
        return None
    tables = rec.get("tables", [])
    return (f"Track record: on {len(tables)} tuning tables ({', '.join(tables)}; {data.get('seeds', '?')} seeds, "
            f"{data.get('budget', '?')} evaluations), accepting such a {WORDS.get(kind, kind)} kept a near-best "
            f"architecture (the best 0.1%) in {rec['kept_near_best']:.0%} of {rec['runs']} runs; it shrank the space "
            f"{rec['shrink_median']:g}x (median).")


def pick_record(path: Path = FILE) -> str | None:
    """One sentence on the recommended final candidate (the surrogate's estimate against the best own
    score), or None."""
    rec = _load(path).get("pick")
    if not isinstance(rec, dict) or not rec.get("runs"):
        return None
    return (f"Track record: on the tuning tables, picking by this estimate left {rec['surrogate']:.2f} pp of test "
            f"accuracy to the table's best on average, picking by the own score {rec['score']:.2f} pp "
            f"({rec['runs']} runs).")
