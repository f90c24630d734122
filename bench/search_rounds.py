"""Do rounds pay? Round 0's supernet and the final round's, ranking the same architectures of the final space.

``bench/search_efficiency.py --ranking N`` calls ``round_ranking`` on each nasnav run it made: ``N``
architectures drawn uniformly from the final round's (pruned) space and the final round's ``--ranking-top``
best candidates by one-shot score, each scored by round 0's supernet and by the final round's (the
product's evaluator, ``nasnav.workflow.search.supernet_evaluator``: BN recalibration, validation split) and
trained standalone (the benchmark's trainer, seeds ``TRAIN_SEED``...); Kendall tau of each supernet's scores
against the mean standalone validation accuracy, with p and N.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import kendalltau

from bench.search_methods import TRAIN_SEED
from nasnav.search.base import random_proposals
from nasnav.store import records
from nasnav.store.records import read_candidates
from nasnav.workflow.search import supernet_evaluator


def _tau(scores, truth) -> tuple[float | None, float | None]:
    if len(scores) < 3 or np.ptp(truth) == 0 or np.ptp(scores) == 0:
        return None, None
    t, p = kendalltau(scores, truth)
    return float(t), float(p)


def round_ranking(run, cfg, trainer, n: int, top: int, rng: np.random.Generator, seeds: int = 1) -> dict:
    """Taus of round 0's and the final round's supernet on a sample of the final space and on its top candidates."""
    k = run.current_round()
    space = records.read_space(run, k, cfg.kind)
    gen = random_proposals(space, rng, set())
    sample = [str(a) for a, _ in (next(gen) for _ in range(min(n, space.size())))]
    best = read_candidates(run, k).sort_values("one_shot_acc", ascending=False, kind="mergesort")
    tops = [str(a) for a in best["arch"].head(top)]
    archs = list(dict.fromkeys(sample + tops))
    scores = {}
    for j in sorted({0, k}):
        ev = supernet_evaluator(run, cfg, j)
        scores[j] = {a: float(ev(space.parse(a))["one_shot_acc"]) for a in archs}
    truth = {a: float(np.mean([trainer(a, TRAIN_SEED + s)["val_acc"] for s in range(seeds)])) for a in archs}
    out = {"round": k, "size": space.size(), "full": records.read_space(run, 0, cfg.kind).size()}
    for name, group in (("space", sample), ("top", tops)):
        t = [truth[a] for a in group]
        for label, j in (("r0", 0), ("final", k)):
            tau, p = _tau([scores[j][a] for a in group], t)
            out[f"{name}_{label}"] = {"tau": tau, "p": p, "n": len(group)}
    return out


def fmt(d: dict) -> str:
    """'0.45 (p 3e-03, N 20)'."""
    return "-" if d["tau"] is None else f"{d['tau']:.2f} (p {d['p']:.0e}, N {d['n']})"
