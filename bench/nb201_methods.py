"""The three ways of looking for a good architecture that ``bench/nb201_table.py`` compares, run in
memory against any evaluator: random search, regularized evolution, and auto-pilot rounds.

Search uses nasnav's own proposers (``nasnav.search.loop.make_proposer``, as ``run_search`` does); the
auto-pilot decides with the very functions the app and the headless pipeline call
(``nasnav.analysis.fitness.evidence_frame`` and ``steering_fitness``, ``nasnav.steering.policy.decide``),
round after round as ``nasnav.steering.policy.autopilot_round`` + ``nasnav.workflow.pipeline.run_round`` do, only
without a run directory around them (no files, so thousands of runs take minutes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nasnav.analysis.fitness import evidence_frame, steering_fitness
from nasnav.search.loop import make_proposer, members
from nasnav.space import SearchSpace
from nasnav.steering.actions import apply_actions
from nasnav.steering.policy import decide, round_limit, searches_further

COLUMNS = ["round", "arch", "one_shot_acc", "table_acc"]


def sample(space: SearchSpace, evaluator, budget: int, rng: np.random.Generator, strategy: str = "random",
           population: int = 50, sample_size: int = 10, prior: pd.DataFrame | None = None, k: int = 0,
           stop=None, proposer=None) -> pd.DataFrame:
    """Score up to ``budget`` unseen architectures of ``space`` (fewer if it runs out, or once
    ``stop(metrics)`` is true), as ``run_search`` does: ``prior`` candidates are not scored again and
    seed evolution's population. One row per candidate, in scoring order, tagged with round ``k``.
    ``proposer(space, rng, seen, history) -> (propose, tell)`` replaces ``strategy``'s (another kind
    of search: ``bench/suite_methods.py``)."""
    seen: set[str] = set() if prior is None else set(prior["arch"].astype(str))
    history = members(space, prior) if prior is not None and len(prior) else []
    if proposer is not None:
        propose, tell = proposer(space, rng, seen, history)
    else:
        propose, tell = make_proposer(space, rng, strategy, seen, history, population, sample_size)
    rows = []
    while len(rows) < budget:
        nxt = propose()
        if nxt is None:
            break
        arch, meta = nxt
        metrics = evaluator(arch)
        seen.add(str(arch))
        tell(arch, metrics, meta)
        rows.append({"round": k, "arch": str(arch), **metrics})
        if stop is not None and stop(metrics):
            break
    return pd.DataFrame(rows, columns=COLUMNS)


@dataclass
class PilotResult:
    space: SearchSpace  # the final space
    evaluations: int  # every scoring, the final space's round included
    decided: int  # scorings before the final space was decided (all rounds but its own)
    passes: int  # search passes: rounds plus extensions
    scored: pd.DataFrame  # every candidate scored, all rounds
    sizes: list[int] = field(default_factory=list)  # space size of each round (extensions not repeated)
    stop: str = ""  # why it stopped
    steps: list[tuple[str, SearchSpace, SearchSpace]] = field(default_factory=list)  # (decision kind, space
    # before, space after) of every decision taken: the suite's track record of each kind of proposal


def autopilot(space: SearchSpace, evaluator, sc, budget: int, rng: np.random.Generator, seed: int = 0,
              strategy: str = "random", population: int = 50, sample_size: int = 10, proposer=None) -> PilotResult:
    """``autopilot_round`` after ``autopilot_round`` without a run directory. Each pass scores
    ``budget`` candidates (``steering.evidence: all``: earlier scores are reused, never repeated);
    fitness on the evidence and the auto-pilot's proposal then make the next round's space, or, when
    nothing is clearly worse and ``steering.extend`` is on, the next pass extends the same round;
    until ``sc.rounds`` passes are spent or nothing more is proposed. ``proposer``: as ``sample``'s."""
    rounds: list[pd.DataFrame] = []  # each round's candidates (an extended round grows)
    sizes: list[int] = []
    passes, last, extend = 0, 0, False  # search passes so far; rows scored in the current space
    steps = []
    search = dict(strategy=strategy, population=population, sample_size=sample_size, proposer=proposer)
    while True:
        prior = evidence_frame(rounds, "all") if sc.evidence == "all" and rounds else None
        if not extend:  # a new round
            sizes.append(space.size())
            rounds.append(sample(space, evaluator, budget, rng, prior=prior, k=len(rounds), **search))
            last = len(rounds[-1])
        else:  # the same round, searched further
            more = sample(space, evaluator, budget, rng, prior=prior, k=len(rounds) - 1, **search)
            rounds[-1] = pd.concat([rounds[-1], more], ignore_index=True)
            last += len(more)
        passes += 1
        if passes >= sc.rounds:
            why = round_limit(sc).why
            break
        evidence = evidence_frame(rounds, sc.evidence)
        decision = decide(steering_fitness(evidence, space, sc, seed), evidence, space, sc, passes)
        why = decision.why
        extend = searches_further(decision, sc)
        if extend:
            continue
        if decision.empty:
            break
        new, _ = apply_actions(space, decision.actions)
        steps.append((decision.kind.value, space, new))
        space, last = new, 0
    scored = pd.concat(rounds, ignore_index=True)
    return PilotResult(space, len(scored), len(scored) - last, passes, scored, sizes, why, steps)
