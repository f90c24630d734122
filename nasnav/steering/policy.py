"""The auto-pilot's policy: frames in, a ``Decision`` out; no I/O.

``decide`` is what the app suggests, what ``analyze`` prints and what the headless auto-pilot does:
narrowing the space to what the best candidates use (``narrow_actions``) on the pass before the
last, and, with ``steering.prune`` on, pruning by fitness (``propose_actions``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from nasnav.analysis.fitness import design
from nasnav.analysis.surrogate import Surrogate, encode
from nasnav.choices import EVIDENCE_MODES as EVIDENCE
from nasnav.choices import FITNESS_MODES as FITNESS_METHODS
from nasnav.config import SteeringConfig
from nasnav.errors import InvalidInput
from nasnav.space import SearchSpace
from nasnav.steering.actions import Action, Op


class Verdict(StrEnum):
    """What a decision is: the kind of actions it proposes, or why it proposes none."""

    PRUNE = "prune"  # prune clearly worse components by fitness
    NARROW = "narrow"  # keep only what the best candidates use
    SMALL_ENOUGH = "small_enough"  # the space is at most steering.min_space_size
    NOTHING_LEFT = "nothing_left"  # every stage is pinned or down to one component
    TOO_SMALL_AFTER = "too_small_after"  # any prune would take the space below steering.min_space_size
    NOTHING_CLEARLY_WORSE = "nothing_clearly_worse"  # no evidence (yet) against any component: search further
    WITHIN_LIMIT = "within_limit"  # the space is within the narrowing limit
    TOO_FEW_CANDIDATES = "too_few_candidates"  # too few scored candidates to narrow
    ROUND_LIMIT = "round_limit"  # steering.rounds search passes are spent


PROPOSING = (Verdict.PRUNE, Verdict.NARROW)  # the kinds that carry actions


@dataclass(frozen=True)
class Decision:
    """The policy's answer: the actions it proposes and their ``kind``; or no actions, ``kind``
    saying why and ``why`` in words (what the app and the CLI show)."""

    actions: tuple[Action, ...]
    kind: Verdict
    why: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "actions", tuple(self.actions))
        assert bool(self.actions) == (self.kind in PROPOSING), (self.kind, self.actions)

    @property
    def empty(self) -> bool:
        """True when nothing is proposed (``kind`` and ``why`` say why)."""
        return not self.actions

    @classmethod
    def nothing(cls, kind: Verdict, why: str) -> Decision:
        """No actions, for the reason ``kind``, told in ``why``."""
        return cls((), kind, why)


def round_limit(sc) -> Decision:
    """The auto-pilot's decision once ``steering.rounds`` search passes are spent (the caller
    counts passes: ``decide`` does not)."""
    return Decision.nothing(Verdict.ROUND_LIMIT, f"round limit reached (steering.rounds={sc.rounds})")


def searches_further(decision: Decision, sc) -> bool:
    """Whether the auto-pilot scores more candidates in the same round instead of stopping:
    nothing is clearly worse (yet) and ``steering.extend`` is on."""
    return decision.kind is Verdict.NOTHING_CLEARLY_WORSE and bool(sc.extend)


# ---- the auto-pilot ------------------------------------------------------------------------------
def check_steering(sc) -> None:
    """ValueError naming the key for steering values config.py does not check itself."""

    if sc.fitness not in FITNESS_METHODS:
        raise InvalidInput(f"steering.fitness: '{sc.fitness}' is not one of {', '.join(FITNESS_METHODS)}")
    if not 0 < sc.quantile <= 1:
        raise InvalidInput(f"steering.quantile: {sc.quantile} must lie in (0, 1]")

    if sc.evidence not in EVIDENCE:
        raise InvalidInput(f"steering.evidence: '{sc.evidence}' is not one of {', '.join(EVIDENCE)}")
    for key in ("margin", "tail_margin", "protect_top", "min_frequency", "narrow_to", "interaction_sd"):
        if getattr(sc, key) < 0:
            raise InvalidInput(f"steering.{key}: {getattr(sc, key)} must not be negative")
    if sc.narrow_elite < 1:
        raise InvalidInput(f"steering.narrow_elite: {sc.narrow_elite} must be at least 1")
    if sc.narrow_by not in NARROW_BY:
        raise InvalidInput(f"steering.narrow_by: '{sc.narrow_by}' is not one of {', '.join(NARROW_BY)}")


def propose_actions(fit: pd.DataFrame, space: SearchSpace, sc) -> Decision:
    """The auto-pilot's policy on a fitness table: prune actions (``Verdict.PRUNE``), or why none.

    In each free stage, a component is pruned only if all of these hold (conservative on purpose:
    fitness is an average over the other stages and misses their interactions):
    its fitness interval lies wholly below the interval of the stage's best by ``margin``; its
    upper tail (``top_with``) trails the stage's best upper tail by ``tail_margin`` (a component that
    is bad on average but excellent in some cells survives); it is seen in at least
    ``min_frequency`` candidates; no candidate among the round's ``protect_top`` best uses it.
    Worst first, at most ``max_prune_per_round`` per stage, never emptying a stage, and never taking
    the space below ``min_space_size``. The same function decides for the app's proposals, the
    headless auto-pilot and ``bench/nb201_table.py``, where it is judged on a table of real accuracies.
    """
    check_steering(sc)
    size = space.size()
    if size <= sc.min_space_size:
        return Decision.nothing(Verdict.SMALL_ENOUGH, f"the space has {size} architecture(s), at most "
                                                      f"steering.min_space_size={sc.min_space_size}")
    free = [s for s in space.stages if s.pinned is None and len(s.active) > 1]
    if not free:
        return Decision.nothing(Verdict.NOTHING_LEFT,
                                "nothing left to prune: every stage is pinned or down to one component")
    largest = max(space.prune(s.name, s.active[0]).size() for s in free)  # the most one prune leaves
    if largest < sc.min_space_size:
        return Decision.nothing(Verdict.TOO_SMALL_AFTER, f"the space has {size} architecture(s): any prune would "
                                f"leave fewer than steering.min_space_size={sc.min_space_size}")
    proposals = []
    for s in space.stages:
        if s.pinned is not None or len(s.active) < 2:
            continue
        rows = fit[(fit["stage"] == s.name) & fit["component"].isin(s.active)]
        est = rows[rows["fitness"].notna() & rows["ci_low"].notna()]
        if len(est) < 2:
            continue
        best = est.loc[est["fitness"].idxmax()]
        tail = rows["top_with"].max()
        worse = []
        for _, r in est.iterrows():
            if r["component"] == best["component"] or r["frequency"] < sc.min_frequency or r["in_top"] > 0:
                continue
            gap = best["ci_low"] - r["ci_high"]
            if gap > sc.margin and r["top_with"] < tail - sc.tail_margin:
                worse.append((gap, r))
        worse.sort(key=lambda g: -g[0])
        for gap, r in worse[: sc.max_prune_per_round][: len(s.active) - 1]:
            q = f"{sc.quantile:.0%}" if sc.quantile < 1 else "best"
            reason = (f"{s.name}:{r['component']} fitness {r['fitness']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] "
                      f"lies below {best['component']} [{best['ci_low']:+.4f}, {best['ci_high']:+.4f}]; its {q} "
                      f"accuracy {r['top_with']:.4f} trails the stage's {tail:.4f}; seen in {int(r['frequency'])} "
                      f"candidates, none among the top {sc.protect_top}")
            proposals.append((gap, Action(Op.PRUNE, s.name, r["component"], reason=reason, evidence=r.to_dict())))
    proposals.sort(key=lambda p: -p[0])  # strongest evidence first
    actions, cur = [], space
    for _, a in proposals:
        nxt = cur.prune(a.stage, a.component)
        if nxt.size() < sc.min_space_size:
            continue
        actions.append(a)
        cur = nxt
    if actions:
        return Decision(tuple(actions), Verdict.PRUNE)
    if proposals:
        return Decision.nothing(Verdict.TOO_SMALL_AFTER, f"{len(proposals)} clearly worse component(s), but pruning any "
                                f"would leave fewer than steering.min_space_size={sc.min_space_size} architectures")
    return Decision.nothing(Verdict.NOTHING_CLEARLY_WORSE, f"nothing clearly worse: no component's {sc.confidence:.0%} interval lies below its stage's best by "
                f"more than {sc.margin} with an upper tail trailing by {sc.tail_margin}, {sc.min_frequency}+ candidates "
                f"and none of the top {sc.protect_top}")


NARROW_BY = ("model", "score", "surrogate")
RIDGE = 1.0  # ridge penalty of the additive model that ranks candidates for narrowing (accuracies in 0..1)
INTERACTION_SD = SteeringConfig.interaction_sd  # the config's default, for direct callers


def denoised(m: np.ndarray, y: np.ndarray, ridge: float = RIDGE, interaction_sd: float = INTERACTION_SD) -> np.ndarray:
    """The additive model's fit of the scores ``y`` of candidates with component masks ``m``: each
    candidate's accuracy as the sum of its components' effects (ridge-regularised least squares),
    so that one candidate's estimation error is shared out over every candidate using the same
    components instead of deciding its rank alone. A candidate whose score lies more than
    ``interaction_sd`` robust standard deviations (1.4826 x the median absolute deviation of the
    residuals) from the fit keeps its own score: noise that large is rare, so it is taken for an
    interaction the additive model cannot see (0: every candidate gets the fit)."""
    x = m.astype(float)
    mu = float(y.mean())
    beta = np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ (y - mu))
    fit = x @ beta + mu
    if interaction_sd <= 0:
        return fit
    resid = y - fit
    sd = 1.4826 * float(np.median(np.abs(resid - np.median(resid))))
    return np.where(np.abs(resid) > interaction_sd * sd, y, fit) if sd > 0 else fit


def narrow_actions(candidates: pd.DataFrame, space: SearchSpace, limit: int, elite: int = 20,
                   keep_top: int = 0, by: str = "model",
                   interaction_sd: float = INTERACTION_SD) -> Decision:
    """Keep, in each free stage, only components the best candidates use, so that at most ``limit``
    architectures remain: prune actions (``Verdict.NARROW``), or why none. The ``elite`` best scored candidates
    of the space (with ``by="model"`` by the additive model's fit of their scores, which averages
    out estimation noise, except for scores ``interaction_sd`` robust SDs off the fit, which stand;
    see ``denoised``; with ``by="score"`` by their raw one-shot accuracy) vote for the components
    they use with weight 1/rank; each stage starts with its most voted component
    and the space then widens, one component at a time, where that adds the largest share of the
    vote, while it stays within ``limit``. Unlike pruning by fitness this keeps what the best cells
    use even when it is poor on average (interactions), and it makes the space small without having
    scored its best architecture."""
    if space.size() <= limit:
        return Decision.nothing(Verdict.WITHIN_LIMIT, f"the space has {space.size():,} architecture(s), within the "
                                                      f"narrowing limit of {limit}")

    if by not in NARROW_BY:
        raise InvalidInput(f"steering.narrow_by: '{by}' is not one of {', '.join(NARROW_BY)}")
    m, y, names = design(candidates, space)
    if len(y) < 2:
        return Decision.nothing(Verdict.TOO_FEW_CANDIDATES, "too few scored candidates in the space to narrow it")
    if by == "model":
        rank_by = denoised(m, y, interaction_sd=interaction_sd)
    elif by == "surrogate":  # the Gaussian process's posterior mean: sees interactions, shrinks lucky scores
        rank_by = Surrogate.fit(encode(space, names), y).smoothed() if len(y) >= 3 else y
    else:
        rank_by = y
    order = np.argsort(-rank_by, kind="stable")[: max(2, int(elite))]
    archs = {j: space.parse(names[j]) for j in order}
    free = [i for i, st in enumerate(space.stages) if st.pinned is None and len(st.active) > 1]
    share: dict[int, dict[str, float]] = {}
    for i in free:
        votes = {c: 0.0 for c in space.stages[i].active}
        for rank, j in enumerate(order):
            for c in archs[j].choices[i]:
                votes[c] += 1.0 / (rank + 1)
        total = sum(votes.values()) or 1.0
        share[i] = {c: v / total for c, v in votes.items()}
    kept = {i: [max(share[i], key=share[i].get)] for i in free}
    for j in order[: max(0, int(keep_top))]:  # the very best candidates stay in, as far as the limit allows
        trial = {i: kept[i] + [c for c in archs[j].choices[i] if c not in kept[i]] for i in free}
        if _narrowed(space, trial).size() <= limit:
            kept = trial

    while True:
        best = None
        for i in free:
            mass = sum(share[i][c] for c in kept[i])
            for c, v in share[i].items():
                if c in kept[i] or v <= 0:
                    continue
                gain = (mass + v) / mass
                if best is None or gain > best[0]:
                    trial = {**kept, i: kept[i] + [c]}
                    if _narrowed(space, trial).size() <= limit:
                        best = (gain, i, c)
        if best is None:
            break
        kept[best[1]].append(best[2])
    actions = []
    for i in free:
        st = space.stages[i]
        used = ", ".join(f"{c} {share[i][c]:.0%}" for c in kept[i])
        for c in st.active:
            if c not in kept[i]:
                reason = (f"narrowing to at most {limit} architectures: the {len(order)} best "
                          f"candidates{' (by the additive model of their scores)' if by == 'model' else ''} "
                          f"use {st.name}:{c} for {share[i][c]:.0%} of their vote; kept: {used}")
                actions.append(Action(Op.PRUNE, st.name, c, reason=reason,
                                      evidence={"stage": st.name, "component": c, "elite_share": round(share[i][c], 4)}))
    if not actions:  # only with limit < 1: every stage is already down to one choice
        return Decision.nothing(Verdict.NOTHING_LEFT, "nothing left to narrow: every stage is pinned or down to one component")
    return Decision(tuple(actions), Verdict.NARROW)


def _narrowed(space: SearchSpace, kept: dict[int, list[str]]) -> SearchSpace:
    """``space`` with only the ``kept`` components active in the given stages."""
    for i, comps in kept.items():
        for c in space.stages[i].active:
            if c not in comps:
                space = space.prune(i, c)
    return space


def narrow_limit(sc, space: SearchSpace) -> int:
    """The most architectures narrowing keeps: ``steering.narrow_to`` itself when it is 1 or more, that
    share of ``space`` (at least ``min_space_size``) when below 1, 0 (no narrowing) when 0."""
    if sc.narrow_to >= 1:
        return int(sc.narrow_to)
    if sc.narrow_to <= 0:
        return 0
    return max(int(sc.min_space_size), int(space.size() * sc.narrow_to))


def decide(fit: pd.DataFrame, candidates: pd.DataFrame, space: SearchSpace, sc, passes: int) -> Decision:
    """The auto-pilot's proposal after ``passes`` search passes (the caller enforces the pass limit:
    ``round_limit``).
    While the space is larger than ``narrow_limit``, the pass before the last narrows it to the best
    candidates' components (``narrow_actions``), and so does any pass where nothing else is proposed
    and the auto-pilot would stop (``steering.extend`` off). Otherwise, with ``steering.prune`` on,
    it prunes by fitness (``propose_actions``)."""
    check_steering(sc)
    limit = narrow_limit(sc, space)
    narrow = bool(limit) and space.size() > limit

    def narrowed() -> Decision:
        return narrow_actions(candidates, space, limit, sc.narrow_elite, sc.protect_top, sc.narrow_by,
                              sc.interaction_sd)

    if narrow and passes == sc.rounds - 1:
        decision = narrowed()
        if not decision.empty:
            return decision
    if sc.prune:
        decision = propose_actions(fit, space, sc)
    else:
        decision = Decision.nothing(Verdict.NOTHING_CLEARLY_WORSE, "nothing clearly worse: pruning by fitness is off "
                                    "(steering.prune: false), " + (
            "and so is narrowing (steering.narrow_to: 0)" if not limit else
            f"and the space is within the narrowing limit of {limit:,} architectures" if not narrow else
            "and narrowing comes on the pass before the last (steering.rounds)"))
    if decision.empty and narrow and not sc.extend:  # it would stop here: narrow instead
        instead = narrowed()
        if not instead.empty:
            return instead
    return decision


# ---- selections (brushed regions of the scatterplot) --------------------------------------------

