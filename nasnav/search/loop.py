"""Search strategies over the current (pruned) space, scoring candidates with any evaluator.

Every scored candidate is appended to ``rounds/NNN/candidates.csv`` as soon as it is scored
(flushed and fsynced: the app polls the file, and a stopped job loses nothing). The file is
also the search's memory:

- the **cache**: an architecture already in the round's file is never scored again;
- the **population** of regularized (aging) evolution is the last ``population`` rows of the
  file (every scored child joins the population and the oldest leaves), so a stopped search
  resumes with exactly the population it had;
- ``rounds/NNN/search.json`` holds the last search's plan (target row count, time budget) and
  state (running / stopped / done / exhausted), so ``--resume`` continues to the same target.

Strategies: ``random`` (uniform, without repeats), ``evolution`` (Real et al. 2019: tournament
selection, mutation of one stage, uniform crossover, the oldest member dies), ``local`` (local
search with restarts) and ``guided`` (predictor-guided: a model of accuracy, passed in, picks what
to score next; both in ``nasnav.search.guided``). An evaluator is any
callable ``arch -> metrics dict`` with at least ``one_shot_acc``; constraints on params / FLOPs
need a cost model (``evaluator.cost`` with ``params(arch)`` and ``flops(arch)``).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

import numpy as np
import pandas as pd

from nasnav.choices import STRATEGIES
from nasnav.errors import InvalidInput
from nasnav.search.base import ENUMERATE_LIMIT, Member, random_proposals  # noqa: F401 (re-exported)
from nasnav.search.guided import Fit, Guided, Local
from nasnav.space import Arch, SearchSpace
from nasnav.store import layout
from nasnav.store.io import append_csv_rows, read_csv, write_json
from nasnav.store.records import candidate_columns, choice_column, read_candidates, search_state
from nasnav.store.run_dir import RunDir

PARENT_SEP = ";"  # a crossover child's parent column: "<arch a>;<arch b>"


# ---- constraints -------------------------------------------------------------------------------
class Constraints:
    """Max params / FLOPs, checked before scoring with a cost model (``params(a)``, ``flops(a)``)."""

    def __init__(self, space: SearchSpace, cost=None, max_params: int | None = None, max_flops: int | None = None):
        self.cost, self.max_params, self.max_flops = cost, max_params, max_flops
        if not self.active:
            return
        if cost is None or not hasattr(cost, "params") or not hasattr(cost, "flops"):
            raise InvalidInput("search.max_params / search.max_flops need an evaluator with a cost model "
                             "(evaluator.cost with params(arch) and flops(arch)); unset them for this evaluator")
        self._check_space(space)

    @property
    def active(self) -> bool:
        return self.max_params is not None or self.max_flops is not None

    def _check_space(self, space: SearchSpace) -> None:
        """ValueError if no architecture of ``space`` meets the limits (costs are additive per stage)."""
        for what, limit, fn in (("params", self.max_params, self.cost.params), ("FLOPs", self.max_flops, self.cost.flops)):
            if limit is None:
                continue
            cheapest = _cheapest(space, fn)
            if fn(cheapest) > limit:
                key = "max_params" if what == "params" else "max_flops"
                raise InvalidInput(f"search.{key}: no architecture of the current space has at most {limit:,} {what}; "
                                 f"the smallest ({cheapest}) has {fn(cheapest):,}. Raise search.{key} or unset it")

    def ok(self, arch: Arch) -> bool:
        if self.max_params is not None and self.cost.params(arch) > self.max_params:
            return False
        return self.max_flops is None or self.cost.flops(arch) <= self.max_flops


def _cheapest(space: SearchSpace, fn: Callable[[Arch], int]) -> Arch:
    """The cheapest architecture under an additive cost: per stage, the cheapest allowed choice."""
    base = [s.pinned if s.pinned is not None else (s.active[0],) for s in space.stages]
    out = []
    for i, s in enumerate(space.stages):
        if s.pinned is not None:
            out.append(s.pinned)
            continue

        def cost_of(c: str, i=i) -> int:
            return fn(Arch(tuple(base[:i] + [(c,)] + base[i + 1:])))

        out.append((min(s.active, key=cost_of),))  # one component is never costlier than two
    return Arch(tuple(out))


# ---- variation operators ---------------------------------------------------------------------
def mutate(space: SearchSpace, arch: Arch, rng: np.random.Generator) -> Arch:
    """Change one stage's choice: another component for ``one`` stages, flip one component for
    ``any`` stages (add or remove it, staying non-empty and within max_active)."""
    free = [i for i, s in enumerate(space.stages) if s.size() > 1]
    if not free:
        return arch
    i = free[int(rng.integers(len(free)))]
    stage, cur = space.stages[i], arch.choices[i]
    if stage.select == "one":
        options = [(c,) for c in stage.active if (c,) != cur]
    else:
        options = [tuple(x for x in stage.active if (x in cur) != (x == c)) for c in stage.active]
        options = [o for o in options if stage.allows(o) and o != cur]
        if not options:  # e.g. max_active reached everywhere: swap to any other choice
            options = [o for o in stage.choices() if o != cur]
    new = options[int(rng.integers(len(options)))]
    return Arch(arch.choices[:i] + (new,) + arch.choices[i + 1:])


def crossover(a: Arch, b: Arch, rng: np.random.Generator) -> Arch:
    """Uniform crossover: each stage's choice from one parent or the other."""
    pick = rng.random(len(a)) < 0.5
    return Arch(tuple(ca if p else cb for ca, cb, p in zip(a.choices, b.choices, pick)))


# ---- proposers ----------------------------------------------------------------------------------
class Evolution:
    """Regularized (aging) evolution; ``history`` (oldest first) seeds the population."""

    def __init__(self, space: SearchSpace, rng: np.random.Generator, seen: set[str], population: int = 50,
                 sample_size: int = 10, crossover_prob: float = 0.5, ok: Callable[[Arch], bool] = lambda a: True,
                 history: list[Member] = (), retries: int = 50):
        self.space, self.rng, self.seen, self.ok = space, rng, seen, ok
        self.size, self.sample_size, self.crossover_prob, self.retries = population, sample_size, crossover_prob, retries
        self.population: deque[Member] = deque(history[-population:] if population else [], maxlen=population)
        self._random = random_proposals(space, rng, seen, ok)

    def _tournament(self) -> Member:
        pop = list(self.population)
        n = min(self.sample_size, len(pop))
        idx = self.rng.choice(len(pop), size=n, replace=False)
        return max((pop[int(i)] for i in idx), key=lambda m: m.acc if math.isfinite(m.acc) else -math.inf)

    def _child(self) -> tuple[Arch, dict]:
        if self.rng.random() < self.crossover_prob and len(self.population) >= 2:
            a, b = self._tournament(), self._tournament()
            child = crossover(a.arch, b.arch, self.rng)
            if str(child) in self.seen or not self.ok(child):
                child = mutate(self.space, child, self.rng)
            parent = str(a.arch) if a.arch == b.arch else f"{a.arch}{PARENT_SEP}{b.arch}"
            return child, {"generation": max(a.generation, b.generation) + 1, "parent": parent}
        a = self._tournament()
        return mutate(self.space, a.arch, self.rng), {"generation": a.generation + 1, "parent": str(a.arch)}

    def propose(self) -> tuple[Arch, dict] | None:
        """The next unseen, feasible architecture; None when the space is exhausted."""
        if len(self.population) >= self.size:
            for _ in range(self.retries):
                child, meta = self._child()
                if str(child) not in self.seen and self.space.contains(child) and self.ok(child):
                    return child, meta
        return next(self._random, None)  # filling the population, or the neighbourhood is used up

    def tell(self, arch: Arch, metrics: dict, meta: dict) -> None:
        acc = metrics.get("one_shot_acc")
        self.population.append(Member(arch, float(acc) if acc is not None else math.nan, int(meta["generation"])))


# ---- the search loop ----------------------------------------------------------------------------
def plan_budget(run: RunDir, k: int, budget: int | None, seconds: float | None, resume: bool = False,
                fill: bool = False) -> tuple[int | None, float | None]:
    """How many new candidates (and seconds) to spend now.

    ``resume``: continue the round's last search to its target (0 if it finished);
    ``fill``: top the round up to ``budget`` candidates (re-running is then a no-op);
    otherwise: ``budget`` more.
    """
    n = len(read_candidates(run, k))
    if resume:
        st = search_state(run, k)
        if not st or st.get("state") not in ("running", "stopped", "failed"):
            return 0, seconds
        left = None if st.get("target") is None else max(0, int(st["target"]) - n)
        secs = st.get("seconds")
        if secs is not None:
            secs = max(0.0, float(secs) - float(st.get("seconds_used", 0.0)))
        return left, secs
    if fill and budget is not None:
        return max(0, budget - n), seconds
    return budget, seconds


def make_proposer(space: SearchSpace, rng: np.random.Generator, strategy: str, seen: set[str],
                  history: list[Member] = (), population: int = 50, sample_size: int = 10,
                  crossover_prob: float = 0.5, ok: Callable[[Arch], bool] = lambda a: True,
                  retries: int = 50, fit: Fit | None = None,
                  ) -> tuple[Callable[[], tuple[Arch, dict] | None], Callable[[Arch, dict, dict], None]]:
    """``(propose, tell)`` of a strategy: ``propose()`` gives the next unseen architecture and its
    generation / parent (None when exhausted), ``tell(arch, metrics, meta)`` reports its score.
    ``seen`` is read live; ``history`` (scored members, oldest first) seeds evolution's population,
    local search's incumbent and the guided search's model. ``guided`` needs ``fit``, the model of
    accuracy it consults (``nasnav.analysis.surrogate.make_fit``: passed in, search does not import
    analysis)."""
    if strategy not in STRATEGIES:
        raise InvalidInput(f"search strategy '{strategy}' is unknown; strategies: {', '.join(STRATEGIES)}")
    if strategy == "evolution":
        proposer = Evolution(space, rng, seen, population, sample_size, crossover_prob, ok, history=list(history),
                             retries=retries)
        return proposer.propose, proposer.tell
    if strategy == "local":
        local = Local(space, rng, seen, list(history), ok=ok)
        return local.propose, local.tell
    if strategy == "guided":
        if fit is None:
            raise InvalidInput("search strategy 'guided' needs a model of accuracy to consult; this caller gives "
                               "none: use random, evolution or local")
        guided = Guided(space, rng, seen, fit, list(history), ok=ok)
        return guided.propose, guided.tell
    gen = random_proposals(space, rng, seen, ok)
    return (lambda: next(gen, None)), (lambda *a: None)


def run_search(run: RunDir, space: SearchSpace, k: int, evaluator: Callable[[Arch], dict], budget: int | None,
               rng: np.random.Generator, strategy: str = "random", seconds: float | None = None,
               should_stop: Callable[[], bool] = lambda: False, progress: Callable[[int, int], None] | None = None,
               population: int = 50, sample_size: int = 10, crossover_prob: float = 0.5,
               max_params: int | None = None, max_flops: int | None = None, cost=None,
               retries: int = 50, prior: pd.DataFrame | None = None, fit: Fit | None = None,
               archs: list[Arch] | None = None) -> pd.DataFrame:
    """Score up to ``budget`` new candidates of ``space`` (None: until ``seconds`` or exhaustion).

    ``prior``: candidates scored in earlier rounds whose scores still hold (steering.evidence
    ``all``): they are not scored again, and those in ``space`` seed evolution's population.
    ``fit``: the model the ``guided`` strategy consults (see ``make_proposer``). ``archs``: score
    exactly these (those not scored yet, in order) instead of asking the strategy, which is recorded.
    Returns the round's whole candidates table. Stops early (state ``stopped``) when
    ``should_stop()`` turns true; the caller decides what that means (a job raises JobStopped).
    """
    if strategy not in STRATEGIES:
        raise InvalidInput(f"search strategy '{strategy}' is unknown; strategies: {', '.join(STRATEGIES)}")
    if budget is None and seconds is None:
        raise InvalidInput("search: give a budget in candidates (--budget) and/or seconds (--seconds)")
    constraints = Constraints(space, cost if cost is not None else getattr(evaluator, "cost", None),
                              max_params, max_flops)
    ok = constraints.ok if constraints.active else (lambda a: True)
    path = run.ensure_round_dir(k) / layout.CANDIDATES
    done = read_csv(path, columns=candidate_columns(space))
    columns = list(done.columns) if path.exists() and path.stat().st_size else None  # keep an existing header
    seen = set(done["arch"].astype(str))
    history = members(space, done)
    if prior is not None and len(prior):
        seen |= set(prior["arch"].astype(str))
        history = members(space, prior) + history
    if archs is not None:  # the analyst's (or the surrogate's) list: no strategy asked
        queue = iter([(a, {"generation": 0, "parent": ""}) for a in archs])
        propose, tell = (lambda: next((p for p in queue if str(p[0]) not in seen), None)), (lambda *a: None)
    else:
        propose, tell = make_proposer(space, rng, strategy, seen, history, population, sample_size, crossover_prob,
                                      ok, retries, fit)

    # the search's plan, for --resume; scoring a given list is no search: a paused search's plan stays as it was
    state_path = run.round_dir(k) / layout.SEARCH_STATE if archs is None else None
    state = {"strategy": strategy, "budget": budget, "seconds": seconds, "seconds_used": 0.0,
             "target": None if budget is None else len(done) + budget, "scored": 0, "state": "running",
             "started": time.time()}
    if state_path is not None:
        write_json(state_path, state)
    t0, scored, end = time.time(), 0, "done"
    try:
        while budget is None or scored < budget:
            if should_stop():
                end = "stopped"
                break
            if seconds is not None and time.time() - t0 >= seconds:
                break
            nxt = propose()
            if nxt is None:
                end = "exhausted"
                break
            arch, meta = nxt
            t = time.time()
            metrics = evaluator(arch)
            row = {"round": k, "arch": str(arch), "strategy": strategy, **meta, **metrics,
                   "seconds": round(time.time() - t, 4)}
            for stage, choice in zip(space.stages, arch.choices):
                row[choice_column(stage.name)] = "+".join(choice)
            if columns is None:  # a new file: the standard columns plus any extra metric the evaluator gives
                columns = candidate_columns(space) + sorted(set(metrics) - set(candidate_columns(space)))
            append_csv_rows(path, [row], columns)
            seen.add(str(arch))
            tell(arch, metrics, meta)
            scored += 1
            if progress:
                progress(scored, budget or 0)
    except (KeyboardInterrupt, SystemExit):
        end = "stopped"
        raise
    except BaseException:
        end = "failed"
        raise
    finally:
        state.update(state=end, scored=scored, seconds_used=round(time.time() - t0, 3), finished=time.time())
        if state_path is not None:
            write_json(state_path, state)
    return read_csv(path, columns=candidate_columns(space))


def members(space: SearchSpace, done: pd.DataFrame) -> list[Member]:
    """Rows already scored (file order) that belong to ``space``: evolution's memory."""
    out = []
    nan = pd.Series([math.nan] * len(done), dtype=float)
    gens = pd.to_numeric(done["generation"], errors="coerce") if "generation" in done else nan
    accs = pd.to_numeric(done["one_shot_acc"], errors="coerce") if "one_shot_acc" in done else nan
    for text, acc, gen in zip(done["arch"].astype(str), accs, gens):
        try:
            arch = space.parse(text, check_active=False)
        except ValueError:
            continue
        if space.contains(arch):
            out.append(Member(arch, float(acc), 0 if pd.isna(gen) else int(gen)))
    return out
