"""How nasnav's time to a level compares with each baseline's: the search benchmark's verdict lines
(bench/search_efficiency.py, and its re-measured view in bench/search_reseed.py)."""

from __future__ import annotations

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
