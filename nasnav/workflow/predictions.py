"""What the surrogate of accuracy says about a round: the candidate to retrain and why, the
architectures predicted best but not scored yet, predicted accuracy for the map's unscored points.

The surrogate (``nasnav.analysis.surrogate``) is fitted on the scored candidates the round's
steering uses (``steering.evidence``); with ``steering.pick: surrogate`` the recommended candidate is
the best estimate blending its own score (weight ``steering.pick_blend``) with the surrogate's
posterior mean, which corrects the winner's curse of the best of many noisy scores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from nasnav.analysis.fitness import evidence_frame
from nasnav.analysis.surrogate import predict_archs, predicted_best, recommend
from nasnav.errors import InvalidInput
from nasnav.search.loop import run_search
from nasnav.space import SearchSpace
from nasnav.stop import stop_requested
from nasnav.store import records
from nasnav.store.run_dir import RunDir
from nasnav.workflow.analysis import steering_candidates
from nasnav.workflow.search import supernet_evaluator


def recommendations(candidates: pd.DataFrame, space: SearchSpace, sc, n: int = 5) -> pd.DataFrame:
    """The ``n`` candidates to retrain first, by ``steering.pick``: the surrogate's estimate (columns
    of ``surrogate.recommend``) or the best own score (``predicted`` etc. then NaN)."""
    if getattr(sc, "pick", "score") == "surrogate":
        out = recommend(candidates, space, float(getattr(sc, "pick_blend", 0.0)))
    else:
        out = recommend(candidates, space, 1.0)  # the estimate is the own score; the prediction stays for reading
    return out.head(n)


def round_recommendations(run: RunDir, cfg, k: int | None = None, n: int = 5) -> pd.DataFrame:
    """``recommendations`` for round k of a run (default: the current round)."""
    k = run.current_round() if k is None else k
    return recommendations(steering_candidates(run, cfg, k), records.read_space(run, k, cfg.kind), cfg.steering, n)


def why(row, sc=None) -> str:
    """One sentence on a recommended candidate: its own score, the prediction and its interval."""
    own = f"own score {row['score']:.4f}"
    pred = row.get("predicted", math.nan)
    if pred is None or not math.isfinite(float(pred)):
        return f"{own} (too few scored candidates for a prediction)"
    blend = float(getattr(sc, "pick_blend", 0.0)) if sc is not None and getattr(sc, "pick", "") == "surrogate" else 1.0
    text = (f"{own}; predicted {pred:.4f} [{row['low']:.4f}, {row['high']:.4f}] (95% interval of the surrogate "
            f"fitted on every scored candidate)")
    if blend < 1:
        text += f"; estimate {row['estimate']:.4f} = {blend:g} x own score + {1 - blend:g} x prediction"
    return text


def round_predicted_best(run: RunDir, cfg, k: int | None = None, n: int = 10) -> pd.DataFrame:
    """The ``n`` architectures of round k's space not scored yet with the best predicted accuracy."""
    k = run.current_round() if k is None else k
    return predicted_best(steering_candidates(run, cfg, k), records.read_space(run, k, cfg.kind), n)


def round_predictions(run: RunDir, cfg, k: int, archs: Sequence[str]) -> pd.DataFrame:
    """Predicted accuracy and sd of ``archs`` (the map's unscored points) from round k's evidence."""
    return predict_archs(steering_candidates(run, cfg, k), records.read_space(run, k, cfg.kind), archs)


def score_archs(run: RunDir, cfg, archs: Sequence[str], k: int | None = None, evaluator=None) -> pd.DataFrame:
    """Score exactly ``archs`` (those not scored yet) in round k with its supernet (or ``evaluator``):
    the "score the predicted best" button. Each must lie in the round's space (InvalidInput naming
    the first that does not). Returns the round's candidates."""
    k = run.current_round() if k is None else k
    space = records.read_space(run, k, cfg.kind)
    parsed = [space.parse(a) for a in archs]  # InvalidInput names a pruned or unknown component
    if not parsed:
        raise InvalidInput("evaluate --arch: give at least one architecture")
    prior = None
    if cfg.steering.evidence == "all" and k > 0:
        prior = evidence_frame([records.read_candidates(run, j) for j in run.rounds() if j < k], "all")
    evaluator = evaluator if evaluator is not None else supernet_evaluator(run, cfg, k)
    return run_search(run, space, k, evaluator, len(parsed), np.random.default_rng([cfg.seed, k, 23]),
                      strategy="guided", should_stop=stop_requested, prior=prior, archs=parsed)
