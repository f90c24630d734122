"""What every proposer shares: uniform proposals without repeats and a scored member's record."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from nasnav.space import Arch, SearchSpace

ENUMERATE_LIMIT = 20000  # spaces up to this size are enumerated (exact "no repeats", exhaustion detected)


def random_proposals(space: SearchSpace, rng: np.random.Generator, seen: set[str],
                     ok: Callable[[Arch], bool] = lambda a: True) -> Iterator[tuple[Arch, dict]]:
    """Uniform samples without repeats (``seen`` is read live); enumerates small spaces so that
    the generator ends exactly when every (feasible) architecture has been seen."""
    if space.size() <= ENUMERATE_LIMIT:
        archs = list(space)
        for i in rng.permutation(len(archs)):
            if str(archs[i]) not in seen and ok(archs[i]):
                yield archs[i], {"generation": 0, "parent": ""}
        return
    misses = 0
    while misses < 1000:
        arch = space.sample(rng)
        if str(arch) in seen or not ok(arch):
            misses += 1
            continue
        misses = 0
        yield arch, {"generation": 0, "parent": ""}


@dataclass
class Member:
    arch: Arch
    acc: float
    generation: int
