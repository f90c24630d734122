"""The ways of finding (and picking) a good architecture that ``bench/steering_suite.py`` compares,
run in memory against a table evaluator (``arch -> {"one_shot_acc", "table_acc"}``).

- search: nasnav's proposers (``random``, ``evolution``: ``nasnav.search.loop.make_proposer``;
  ``local``, ``guided``: ``nasnav.search.guided``, the guided one over the surrogate of
  ``nasnav.analysis.surrogate``) through ``bench/nb201_methods.sample``; none depends on the budget,
  so one run gives every smaller budget as its prefix;
- the auto-pilot: ``bench/nb201_methods.autopilot`` (passes of search with the product's policy,
  ``steering.decide``, between them) with any of those proposers;
- the pick, the architecture the product would retrain: the best own score among the scored
  candidates of the final space, or the best surrogate estimate (``nasnav.analysis.surrogate.recommend``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.nb201_methods import PilotResult, autopilot, sample
from nasnav.analysis.surrogate import make_fit, recommend
from nasnav.search.guided import LOCAL_EVERY, Guided, Local
from nasnav.search.loop import make_proposer
from nasnav.space import SearchSpace

SEARCHES = ("random", "evolution", "local", "guided")


def proposer(kind: str, theta: float | None = None, noise: float | None = None, kappa: float = 0.5,
             local_every: int = LOCAL_EVERY):
    """A factory ``(space, rng, seen, history) -> (propose, tell)`` of a search kind."""
    if kind not in SEARCHES:
        raise ValueError(f"search kind '{kind}' is unknown; kinds: {', '.join(SEARCHES)}")

    def make(space: SearchSpace, rng: np.random.Generator, seen: set[str], history):
        if kind in ("random", "evolution"):
            return make_proposer(space, rng, kind, seen, list(history))
        p = Local(space, rng, seen, list(history)) if kind == "local" else \
            Guided(space, rng, seen, make_fit(space, theta, noise), list(history), kappa=kappa,
                   local_every=local_every)
        return p.propose, p.tell

    return make


def search(space: SearchSpace, evaluator, budget: int, rng: np.random.Generator, kind: str, **options) -> pd.DataFrame:
    """Score up to ``budget`` architectures with search ``kind``: one row per candidate in scoring order."""
    return sample(space, evaluator, budget, rng, proposer=proposer(kind, **options))


def pilot(space: SearchSpace, evaluator, sc, budget: int, rng: np.random.Generator, seed: int, kind: str,
          **options) -> PilotResult:
    """The auto-pilot's passes of ``budget`` evaluations each with search ``kind``."""
    return autopilot(space, evaluator, sc, budget, rng, seed=seed, proposer=proposer(kind, **options))


def pick(df: pd.DataFrame, space: SearchSpace, how: str = "score", blend: float = 0.0,
         theta: float | None = None, noise: float | None = None) -> str:
    """The architecture to retrain among the scored candidates of ``space``: the best own score
    (``score``), or the best blend of own score and the surrogate's posterior mean (``surrogate``)."""
    if how == "score":
        df = df.drop_duplicates("arch", keep="last")
        keep = np.array([space.contains(space.parse(a, check_active=False)) for a in df["arch"].astype(str)])
        inside = df[keep]
        return str(inside["arch"].iloc[int(np.nanargmax(inside["one_shot_acc"].to_numpy(dtype=float)))])  # NaN: a failed score
    return recommend(df, space, blend, theta=theta, noise=noise).iloc[0]["arch"]
