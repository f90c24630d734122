"""Search strategies over the current (pruned) space; every scored candidate is appended to
``rounds/NNN/candidates.csv`` as soon as it is scored (the app polls the file)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd

from nasnav.runs import RunDir, append_csv_rows, read_csv
from nasnav.space import Arch, SearchSpace

BASE_COLUMNS = ["round", "arch", "one_shot_acc", "val_loss", "params", "flops", "strategy", "generation",
                "parent", "seconds"]


def choice_column(stage_name: str) -> str:
    return f"choice_{stage_name}"


def candidate_columns(space: SearchSpace) -> list[str]:
    return BASE_COLUMNS + [choice_column(s.name) for s in space.stages]


def read_candidates(run: RunDir, k: int) -> pd.DataFrame:
    """Candidates of round k (empty frame if none yet)."""
    return read_csv(run.round_dir(k) / "candidates.csv", columns=BASE_COLUMNS)


def random_proposals(space: SearchSpace, rng: np.random.Generator, seen: set[str]) -> Iterator[tuple[Arch, dict]]:
    """Uniform samples without repeats; enumerates small spaces to stop when all are seen."""
    if space.size() <= 20000:
        archs = list(space)
        for i in rng.permutation(len(archs)):
            if str(archs[i]) not in seen:
                yield archs[i], {"generation": 0, "parent": ""}
        return
    misses = 0
    while misses < 1000:
        arch = space.sample(rng)
        if str(arch) in seen:
            misses += 1
            continue
        misses = 0
        yield arch, {"generation": 0, "parent": ""}


def run_search(run: RunDir, space: SearchSpace, k: int, evaluator: Callable[[Arch], dict], budget: int,
               rng: np.random.Generator, strategy: str = "random", seconds: float | None = None,
               should_stop: Callable[[], bool] = lambda: False, progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Score up to ``budget`` new candidates (fewer if time or the space runs out).

    Candidates already in the round's file are never scored again, so a stopped search
    resumes where it stopped.
    """
    path = run.ensure_round_dir(k) / "candidates.csv"
    columns = candidate_columns(space)
    done = read_csv(path, columns=columns)
    seen = set(done["arch"].astype(str))
    t0 = time.time()
    scored = 0
    proposals = random_proposals(space, rng, seen)
    for arch, meta in proposals:
        if scored >= budget or should_stop() or (seconds is not None and time.time() - t0 > seconds):
            break
        t = time.time()
        metrics = evaluator(arch)
        row = {"round": k, "arch": str(arch), "strategy": strategy, **meta, **metrics,
               "seconds": round(time.time() - t, 4)}
        for stage, choice in zip(space.stages, arch.choices):
            row[choice_column(stage.name)] = "+".join(choice)
        append_csv_rows(path, [row], columns)
        seen.add(str(arch))
        scored += 1
        if progress:
            progress(scored, budget)
    return read_csv(path, columns=columns)
