"""Predictor-guided proposals (as BANANAS and NASLib's predictor-guided search do), and local search.

``Guided`` asks a model of accuracy which architectures to score next. Every ``batch`` scores it
refits the model on everything scored, builds a pool of unseen architectures (mutations of one or
two stages of the best scored candidates by the model's estimate, plus uniform samples), and
proposes the pool's best by an upper confidence bound (mean + ``kappa`` x sd), one at a time,
until the next refit. Every ``local_every``-th proposal (0: none) is instead an unseen neighbour (one
stage changed) of the best own score, as local search would score next: the model smooths over
its neighbours, so without these moves it can leave the incumbent's own neighbourhood unexplored
(on NB201 without noise it scored a near-best in 82 % of runs, evolution in 100 %; chosen on the
steering suite's tuning tables, BENCHMARKS.md). The model is passed in (dependency injection): ``fit(archs, scores)``
returns ``predict(archs) -> (mean, sd)``; ``nasnav.analysis.surrogate`` provides one, and this
module imports nothing from the analysis layer (a sibling). Until ``warmup`` scores exist it
proposes uniformly at random.

``Local`` is plain local search (White et al. 2021): from the best architecture scored so far,
score its unseen neighbours (one stage changed) in random order; when every neighbour of the
current best is scored without improving on it, restart from a random architecture.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from nasnav.search.base import Member, random_proposals
from nasnav.space import Arch, SearchSpace

LOCAL_EVERY = 2  # every 2nd proposal a neighbour of the best own score (0 to 5 tried on the suite's tuning tables)

Predict = Callable[[Sequence[Arch]], tuple[np.ndarray, np.ndarray]]
Fit = Callable[[Sequence[Arch], np.ndarray], Predict]


class Guided:
    """Predictor-guided proposer; ``history`` (scored members, oldest first) counts as scored."""

    def __init__(self, space: SearchSpace, rng: np.random.Generator, seen: set[str], fit: Fit,
                 history: Sequence[Member] = (), batch: int = 10, growth: float = 0.1, warmup: int = 20,
                 parents: int = 10, mutations: int = 15, randoms: int = 150, kappa: float = 0.5,
                 ok: Callable[[Arch], bool] = lambda a: True, local_every: int = LOCAL_EVERY):
        self.space, self.rng, self.seen, self.fit, self.ok = space, rng, seen, fit, ok
        self.batch, self.growth, self.warmup, self.parents = batch, growth, warmup, parents
        self.mutations, self.randoms, self.kappa = mutations, randoms, kappa
        self.local_every, self._count, self._centre, self._near = local_every, 0, None, []
        self._best: tuple[Arch, float] | None = None  # the best own score in the space: the local moves' centre
        self._choices = [list(st.choices()) for st in space.stages]  # allowed choices per stage
        self._index = [{c: i for i, c in enumerate(ch)} for ch in self._choices]
        self.scored: dict[str, tuple[Arch, float]] = {}
        self.inside: list[Arch] = []  # the scored architectures that lie in the space: parents
        for m in history:
            self.tell(m.arch, {"one_shot_acc": m.acc}, {})
        self.queue: list[Arch] = []
        self._random = random_proposals(space, rng, seen, ok)

    def _rows(self, archs: Sequence[Arch]) -> np.ndarray:
        """(n, stages) indices of each architecture's choice among its stage's allowed choices."""
        return np.array([[self._index[j].get(c, 0) for j, c in enumerate(a.choices)] for a in archs], dtype=np.int64)

    def _pool(self, predict: Predict) -> list[Arch]:
        """Unseen architectures near the model's best scored ones (1 or 2 stages changed), plus uniform ones."""
        archs = self.inside
        sizes = np.array([len(c) for c in self._choices])
        free = np.flatnonzero(sizes > 1)
        if not len(free):
            return []
        rows = []
        if archs:
            mean, _ = predict(archs)
            order = np.argsort(-np.asarray(mean), kind="stable")[: self.parents]
            kids = np.repeat(self._rows([archs[int(i)] for i in order]), self.mutations, axis=0)
            for times in (0, 1):  # every child changes one stage, half of them a second one
                which = np.arange(len(kids)) if times == 0 else np.flatnonzero(self.rng.random(len(kids)) < 0.5)
                stage = free[self.rng.integers(len(free), size=len(which))]
                step = 1 + (self.rng.random(len(which)) * (sizes[stage] - 1)).astype(np.int64)
                kids[which, stage] = (kids[which, stage] + step) % sizes[stage]
            rows.append(kids)
        rows.append((self.rng.random((self.randoms, len(sizes))) * sizes).astype(np.int64))
        pool: dict[str, Arch] = {}
        for row in np.unique(np.concatenate(rows), axis=0):
            arch = Arch(tuple(self._choices[j][int(i)] for j, i in enumerate(row)))
            key = str(arch)
            if key not in self.seen and self.ok(arch):
                pool[key] = arch
        return list(pool.values())

    def _refill(self) -> None:
        archs = [a for a, _ in self.scored.values()]
        predict = self.fit(archs, np.array([v for _, v in self.scored.values()]))
        pool = self._pool(predict)
        if not pool:
            return
        mean, sd = predict(pool)
        ucb = np.asarray(mean) + self.kappa * np.asarray(sd)
        batch = max(self.batch, int(self.growth * len(self.scored)))  # refits grow rarer as the model settles
        self.queue = [pool[int(i)] for i in np.argsort(-ucb, kind="stable")[:batch]][::-1]

    def propose(self) -> tuple[Arch, dict] | None:
        """The next unseen architecture; None when the space is exhausted."""
        if len(self.scored) >= self.warmup:
            self._count += 1
            if self.local_every and self._count % self.local_every == 0:
                arch = self._neighbour()
                if arch is not None:
                    return arch, {"generation": 1, "parent": self._centre or ""}
            while True:
                while self.queue:
                    arch = self.queue.pop()
                    if str(arch) not in self.seen:
                        return arch, {"generation": 1, "parent": ""}
                self._refill()
                if not self.queue:
                    break
        return next(self._random, None)

    def _neighbour(self) -> Arch | None:
        """An unseen neighbour (one stage changed) of the best own score in the space."""
        if self._best is None:
            return None
        best = self._best[0]
        if str(best) != self._centre:
            self._centre = str(best)
            nb = neighbours(self.space, best)
            self._near = [nb[int(i)] for i in self.rng.permutation(len(nb))]
        while self._near:
            arch = self._near.pop()
            if str(arch) not in self.seen and self.ok(arch):
                return arch
        return None

    def tell(self, arch: Arch, metrics: dict, meta: dict) -> None:
        acc = metrics.get("one_shot_acc")
        if acc is None or not math.isfinite(float(acc)):
            return
        inside = self.space.contains(arch)
        if str(arch) not in self.scored and inside:
            self.inside.append(arch)
        self.scored[str(arch)] = (arch, float(acc))
        if inside and (self._best is None or float(acc) > self._best[1]):
            self._best = (arch, float(acc))


def neighbours(space: SearchSpace, arch: Arch) -> list[Arch]:
    """Every architecture of ``space`` that differs from ``arch`` in one stage's choice."""
    out = []
    for i, stage in enumerate(space.stages):
        for choice in stage.choices():
            if choice != arch.choices[i]:
                out.append(Arch(arch.choices[:i] + (choice,) + arch.choices[i + 1:]))
    return out


class Local:
    """Local search with random restarts; ``history`` seeds the incumbent."""

    def __init__(self, space: SearchSpace, rng: np.random.Generator, seen: set[str],
                 history: Sequence[Member] = (), ok: Callable[[Arch], bool] = lambda a: True):
        self.space, self.rng, self.seen, self.ok = space, rng, seen, ok
        self.best: tuple[Arch, float] | None = None
        for m in history:
            if math.isfinite(m.acc) and (self.best is None or m.acc > self.best[1]):
                self.best = (m.arch, m.acc)
        self.queue: list[Arch] = []
        self.centre: str | None = None
        self._random = random_proposals(space, rng, seen, ok)

    def propose(self) -> tuple[Arch, dict] | None:
        if self.best is not None and self.centre != str(self.best[0]):
            self.centre = str(self.best[0])
            nb = neighbours(self.space, self.best[0])
            self.queue = [nb[int(i)] for i in self.rng.permutation(len(nb))]
        while self.queue:
            arch = self.queue.pop()
            if str(arch) not in self.seen and self.ok(arch):
                return arch, {"generation": 1, "parent": self.centre or ""}
        # a local optimum (every neighbour scored): restart from a random architecture
        self.centre = None
        self.best = None
        nxt = next(self._random, None)
        return nxt

    def tell(self, arch: Arch, metrics: dict, meta: dict) -> None:
        acc = metrics.get("one_shot_acc")
        if acc is None or not math.isfinite(float(acc)):
            return
        if self.best is None or float(acc) > self.best[1]:
            self.best = (arch, float(acc))
