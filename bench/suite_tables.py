"""The tables of ``bench/steering_suite.py``: what a method observes and what is true, per architecture.

``nb201`` (``nb201@<noise>``): NAS-Bench-201 CIFAR-10 (``bench/nb201_data.py``), observed as the
table's accuracy plus Gaussian noise (pp; each architecture keeps its error within a seed), truth the
accuracy itself. The NAS-Bench-Graph tables (``bench/nbg_data.py``): observed the published
validation accuracy, truth the test accuracy. Accuracies in percent; evaluators report fractions,
as the supernet does.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from bench.nb201_data import installed_table, load_anb, nb201_space, space_table
from bench.nbg_data import graph_table
from nasnav.space import SearchSpace

TUNING = ("nb201", "cora", "citeseer", "arxiv", "photo", "cs")  # settings are chosen on these only
TEST = ("pubmed", "computers", "physics", "proteins")  # reported, never tuned on
NB201_NOISE = 1.0  # pp, the tuning column's noise
NEAR_SHARE = 0.001  # near-best: the best 0.1% of a table's architectures by truth


@dataclass
class SuiteTable:
    name: str
    space: SearchSpace
    keys: list[str]  # every architecture string of the space
    observed: np.ndarray  # percent, what a method sees (before noise)
    truth: np.ndarray  # percent
    noise: float  # pp of Gaussian noise added per seed
    choice: np.ndarray  # (N, stages) index of each architecture's component in its stage's candidates

    def __post_init__(self) -> None:
        self.index = {k: i for i, k in enumerate(self.keys)}
        self.best = float(self.truth.max())
        n = max(1, int(round(NEAR_SHARE * len(self.truth))))
        self.near = float(np.sort(self.truth)[-n])

    def observed_at(self, seed: int) -> np.ndarray:
        """Every architecture's observed score (percent) in seed ``seed``: plus its persistent noise."""
        if not self.noise:
            return self.observed
        return self.observed + np.random.default_rng([seed, 201, int(self.noise * 100)]).normal(0, self.noise, len(self.observed))

    def evaluator(self, seed: int):
        """``arch -> {"one_shot_acc", "table_acc"}`` (fractions) of one seed: the observed score plus
        this seed's persistent noise, and the truth."""
        obs = self.observed_at(seed)
        index, truth = self.index, self.truth

        def evaluate(arch) -> dict:
            i = index[str(arch)]
            return {"one_shot_acc": float(obs[i]) / 100, "table_acc": float(truth[i]) / 100}

        return evaluate

    def truth_of(self, archs: Iterable[str]) -> np.ndarray:
        return self.truth[[self.index[str(a)] for a in archs]]

    def holds_near(self, space: SearchSpace, threshold: float | None = None) -> bool:
        """Whether ``space`` (a pruned / pinned version of the table's) holds an architecture whose truth
        reaches ``threshold`` (default: near-best)."""
        inside = np.ones(len(self.keys), dtype=bool)
        for j, st in enumerate(space.stages):
            allowed = np.array([c in st.active for c in st.candidates])
            inside &= allowed[self.choice[:, j]]
        return bool((self.truth[inside] >= (self.near if threshold is None else threshold) - 1e-9).any())

    def describe(self) -> str:
        what = f"noise {self.noise:g} pp" if self.name.startswith("nb201") else "validation vs test"
        return f"{self.name} ({len(self.keys):,} architectures, {what}, best {self.best:.2f}%)"


def _choices(space: SearchSpace, keys: list[str]) -> np.ndarray:
    pos = [{c: i for i, c in enumerate(s.candidates)} for s in space.stages]
    return np.array([[pos[j][p] for j, p in enumerate(k.split("/"))] for k in keys], dtype=np.int64)


@functools.cache
def load_table(name: str) -> SuiteTable:
    """A suite table by name: ``nb201``, ``nb201@<noise pp>`` or a NAS-Bench-Graph table."""
    if name.startswith("nb201"):
        noise = float(name.split("@")[1]) if "@" in name else NB201_NOISE
        path = installed_table()
        if path is None:
            raise ValueError("no NAS-Bench-201 table: pip install -r requirements-bench.txt")
        space = nb201_space()
        table = space_table(load_anb(path), space)
        keys = list(table)
        acc = np.array([table[k] for k in keys])
        return SuiteTable(name, space, keys, acc, acc, noise, _choices(space, keys))
    g = graph_table(name)
    keys = list(g.valid)
    return SuiteTable(name, g.space, keys, np.array([g.valid[k] for k in keys]), np.array([g.test[k] for k in keys]),
                      0.0, _choices(g.space, keys))
