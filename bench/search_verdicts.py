"""How nasnav's time to a level compares with each baseline's: the search benchmark's verdict lines
(bench/search_efficiency.py, and its re-measured view in bench/search_reseed.py)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

TARGETED = ("optuna-tpe", "evolution")  # issue 24: nasnav within 1/5 of their time


def median_reach(xs) -> float:
    """Median time to reach, a run that never reached counting as infinite."""
    return float(np.median([np.inf if x is None else x for x in xs]))


def ratio_text(a: float, b: float, horizon: float) -> tuple[float | None, str]:
    """nasnav's median time to reach ``a`` over a baseline's ``b`` (inf: not reached within the budget)."""
    if np.isfinite(a) and np.isfinite(b):
        return a / b, f"{a / b:.2f}"
    if np.isfinite(a):
        return None, f"< {a / horizon:.2f} (baseline's median run did not reach it in {horizon:.0f} s)"
    return None, "nasnav's median run did not reach it"


def time_ratios(reach: dict[str, list], baselines: list[str], budget: float, what: str) -> tuple[dict, str]:
    """Each baseline's ratio (None where a median run did not reach) and one line saying them all."""
    ratios, texts = {}, []
    for m in baselines:
        ratios[m], text = ratio_text(median_reach(reach["nasnav"]), median_reach(reach[m]), budget)
        texts.append((m, text))
    if not np.isfinite(median_reach(reach["nasnav"])):
        return ratios, f"nasnav / each baseline's median time to reach{what}: **nasnav's median run did not reach it**"
    return ratios, f"nasnav / each baseline's median time to reach{what}: " + ", ".join(
        f"{m} **{text}**" + (" (target <= 0.20)" if m in TARGETED else "") for m, text in texts)


def at_end(median_at: Callable[[str, float], float], methods: list[str], baselines: list[str], t_end: float,
           budget: float, what: str) -> tuple[dict, str]:
    """Each method's median incumbent (``median_at(method, t)``) at nasnav's end ("1") and twice it ("2"), judged
    only at times the baselines' budget reached (a baseline stopped earlier would be held at its end), and one
    line saying whether nasnav's is at least every baseline's there."""
    judged = [x for x in (1, 2) if budget >= x * t_end]
    at = {m: {str(x): median_at(m, x * t_end) for x in judged} for m in methods}
    behind = [f"{m} at {x}x ({at[m][x]:.4f} > {at['nasnav'][x]:.4f})" for m in baselines for x in at["nasnav"]
              if not at["nasnav"][x] >= at[m][x]]
    line = (f"nasnav's median{what} incumbent at its end time and twice it is at least every baseline's: "
            + (f"**not judged**: the baselines' budget ({budget:.0f} s) is shorter than "
               + ("nasnav's end" if not judged else "twice nasnav's end") if len(judged) < 2 else
               "**met**" if not behind else "**missed**: " + ", ".join(behind)))
    return at, line
