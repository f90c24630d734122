"""The searches over standalone trainings that ``bench/search_efficiency.py`` sets against nasnav.

Each runs against ``trainer(arch, seed) -> {"val_acc", "test_acc", "seconds", ...}`` (bench/standalone.py)
until it has spent ``max_seconds`` of (simulated) wall time or ``max_evals`` trainings, and returns a
``Curve``: the incumbent (best validation accuracy so far) after every training.

- ``random``: uniform draws without repetition;
- ``optuna-tpe``: Optuna's TPE sampler, one categorical parameter per stage (an architecture it
  suggests again is answered from memory at no cost);
- ``evolution``: regularized evolution (Real et al. 2019): a population of ``REA_POPULATION`` filled
  at random, then a tournament of ``REA_TOURNAMENT`` picks the parent, its mutation (one stage's
  choice changed) is trained and joins, the oldest member leaves; nasnav's own ``Evolution``
  proposer with crossover off (mutation only, as the paper);
- ``local``: local search (White et al. 2020): the neighbours (one stage changed) of the best
  architecture so far in random order, moving as soon as one is better; a random restart at a
  local optimum; nasnav's own ``Local`` proposer.

Every method's own overhead (proposing, Optuna's model) is measured and added to the training time.
"""

from __future__ import annotations

import time

import numpy as np

from bench.nb201_methods import sample
from nasnav.search.guided import Local
from nasnav.search.loop import Evolution

TRAIN_SEED = 100  # the seed of every standalone training (the ranking benchmark's first seed: shared cache)
TOL = 1e-6  # accuracies come from float32 means: 979/1000 against the level 984/1000 - 0.005 must count as reached
REA_POPULATION, REA_TOURNAMENT = 10, 3  # NAS-Bench-201's REA settings (Dong & Yang 2020) for budgets of ~100


class Curve:
    """(time, incumbent validation accuracy, incumbent test accuracy, arch) after each evaluation."""

    def __init__(self, t0: float = 0.0):
        self.t = t0
        self.points: list[tuple[float, float, float, str]] = []
        self.best_val = -1.0
        self.best_test = float("nan")
        self.best_arch = ""
        self.evals = 0
        self.tests: dict[str, float] = {}  # test accuracy of every architecture trained

    def add(self, seconds: float, res: dict) -> None:
        self.t += seconds
        self.evals += 1
        self.tests[str(res["arch"])] = res["test_acc"]
        if res["val_acc"] > self.best_val:
            self.best_val, self.best_test, self.best_arch = res["val_acc"], res["test_acc"], res["arch"]
        self.points.append((self.t, self.best_val, self.best_test, self.best_arch))

    def at(self, t: float) -> float:
        """Incumbent test accuracy at time t (nan before the first result)."""
        done = [p[2] for p in self.points if p[0] <= t]
        return done[-1] if done else float("nan")

    def to_dict(self) -> dict:
        return {"t": self.t, "points": self.points, "evals": self.evals, "tests": self.tests}

    @classmethod
    def from_dict(cls, d: dict) -> Curve:
        c = cls()
        c.t, c.evals, c.tests = float(d["t"]), int(d["evals"]), dict(d["tests"])
        c.points = [tuple(p) for p in d["points"]]
        if c.points:
            _, c.best_val, c.best_test, c.best_arch = c.points[-1]
        return c

    def reach(self, level: float) -> float | None:
        for t, _, test, _ in self.points:
            if test >= level - TOL:
                return t
        return None


def run_random(space, trainer, rep: int, max_evals: int, max_seconds: float) -> Curve:
    rng = np.random.default_rng([rep, 5])
    c, seen = Curve(), set()
    while c.evals < min(max_evals, space.size()) and c.t < max_seconds:
        t = time.perf_counter()
        a = space.sample(rng)
        if str(a) in seen:
            continue
        seen.add(str(a))
        overhead = time.perf_counter() - t
        res = trainer(a, TRAIN_SEED)
        c.add(res["seconds"] + overhead, res)
    return c


def run_tpe(space, trainer, rep: int, max_evals: int, max_seconds: float) -> Curve:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=rep))
    choices = [["+".join(ch) for ch in s.choices()] for s in space.stages]
    c, memory, pending = Curve(), {}, 0.0
    trials = 0
    while c.evals < min(max_evals, space.size()) and c.t < max_seconds and trials < 5 * max_evals:
        trials += 1
        t = time.perf_counter()
        trial = study.ask()
        arch = "/".join(trial.suggest_categorical(s.name, ch) for s, ch in zip(space.stages, choices))
        pending += time.perf_counter() - t
        if arch in memory:  # asked again: answered from memory, no training
            t = time.perf_counter()
            study.tell(trial, memory[arch])
            pending += time.perf_counter() - t
            continue
        res = trainer(arch, TRAIN_SEED)
        memory[arch] = res["val_acc"]
        t = time.perf_counter()
        study.tell(trial, res["val_acc"])
        pending += time.perf_counter() - t
        c.add(res["seconds"] + pending, res)
        pending = 0.0
    return c


def _proposer(kind: str):
    def make(space, rng, seen, history):
        if kind == "evolution":
            p = Evolution(space, rng, seen, population=REA_POPULATION, sample_size=REA_TOURNAMENT, crossover_prob=0.0)
        else:
            p = Local(space, rng, seen)
        return p.propose, p.tell

    return make


def run_proposer(kind: str, space, trainer, rep: int, max_evals: int, max_seconds: float) -> Curve:
    """``evolution`` or ``local`` over standalone trainings (validation accuracy is the score they see)."""
    c = Curve()
    last = [time.perf_counter()]

    def evaluate(arch) -> dict:
        overhead = time.perf_counter() - last[0]  # the proposer's tell and propose since the last training
        res = trainer(arch, TRAIN_SEED)
        c.add(res["seconds"] + overhead, res)
        last[0] = time.perf_counter()
        return {"one_shot_acc": res["val_acc"]}

    sample(space, evaluate, min(max_evals, space.size()), np.random.default_rng([rep, 7 if kind == "local" else 6]),
           proposer=_proposer(kind), stop=lambda m: c.t >= max_seconds)
    return c


def baseline(method: str, space, trainer, rep: int, max_evals: int, max_seconds: float) -> Curve:
    if method == "random":
        return run_random(space, trainer, rep, max_evals, max_seconds)
    if method == "optuna-tpe":
        return run_tpe(space, trainer, rep, max_evals, max_seconds)
    return run_proposer(method, space, trainer, rep, max_evals, max_seconds)


BASELINES = ("optuna-tpe", "evolution", "local", "random")
