"""What a table's validation scores allow at best: picks made knowing the WHOLE table's validation
accuracy (every architecture scored, 59,049 evaluations on a graph table against a budget of 315),
judged on test accuracy as the steering suite judges its picks.

- ``argmax``: the best validation score of the table (the winner's curse at its strongest);
- ``top10``: the mean regret over the 10 best validation scores (a pick among them by chance);
- ``smoothed10``: the same over the 10 best by validation plus the mean validation of the
  architecture's neighbours (one stage changed), a pick that averages out part of the noise.

If these regrets are no lower than a method's at 315 evaluations, no pick read from validation
scores can do much better on that table: its test accuracy barely follows validation at the top.
"""

from __future__ import annotations

import numpy as np

from bench.suite_tables import SuiteTable

TOP = 10


def neighbour_mean(observed: np.ndarray, choice: np.ndarray, radix: list[int]) -> np.ndarray:
    """Per architecture, the mean observed score of its neighbours in the table (one stage's
    choice changed); ``choice`` (N, stages) indexes each stage's candidates, ``radix`` their counts."""
    mult = np.cumprod([1, *radix[::-1]])[:-1][::-1]
    codes = choice @ mult
    lookup = np.full(int(np.prod(radix)), -1, dtype=np.int64)
    lookup[codes] = np.arange(len(codes))
    total, count = np.zeros(len(observed)), np.zeros(len(observed))
    for j, r in enumerate(radix):
        for alt in range(r):
            moved = choice[:, j] != alt
            other = lookup[codes[moved] + (alt - choice[moved, j]) * mult[j]]
            found = other >= 0
            rows = np.flatnonzero(moved)[found]
            total[rows] += observed[other[found]]
            count[rows] += 1
    return total / np.maximum(count, 1)


def validation_ceiling(t: SuiteTable) -> dict[str, float]:
    """Regrets (pp) of picks that know every architecture's observed score (seed 0's noise on NB201)."""
    observed = t.observed_at(0)
    radix = [len(s.candidates) for s in t.space.stages]
    smooth = observed + neighbour_mean(observed, t.choice, radix)
    top = np.argsort(-observed, kind="stable")[:TOP]
    top_smooth = np.argsort(-smooth, kind="stable")[:TOP]
    return {"argmax": round(float(t.best - t.truth[int(np.argmax(observed))]), 3),
            "top10": round(float(t.best - t.truth[top].mean()), 3),
            "smoothed10": round(float(t.best - t.truth[top_smooth].mean()), 3)}
