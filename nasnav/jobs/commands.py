"""The command lines of the jobs the app starts: one builder per job, the one place outside the CLI
that knows its arguments (a test parses every builder's output with the CLI's own parser)."""

from __future__ import annotations

from nasnav.store.run_dir import RunDir


def supernet(run: RunDir, resume: bool = False) -> list[str]:
    return ["supernet", str(run.path)] + (["--resume"] if resume else [])


def search(run: RunDir, strategy: str, budget: int, resume: bool = False) -> list[str]:
    """Constraints (search.max_params, max_flops) are read from the run's config."""
    return ["search", str(run.path), "--strategy", strategy, "--budget", str(int(budget))] + (["--resume"] if resume else [])


def next_round(run: RunDir) -> list[str]:
    return ["round", str(run.path)]


def spotcheck(run: RunDir, n: int = 20, top: int = 8, k: int | None = None) -> list[str]:
    """``n`` architectures sampled over round ``k``'s space (default the current) and its ``top`` best
    candidates; a side job (``jobs.control``: lane ``spotcheck``), beside searches and decisions."""
    return ["spotcheck", str(run.path), "--n", str(int(n)), "--top", str(int(top))] + (
        [] if k is None else ["--round", str(int(k))])


def retrain(run: RunDir, arch: str, seeds: int) -> list[str]:
    return ["retrain", str(run.path), "--arch", arch, "--seeds", str(int(seeds))]  # exports when done


def export(run: RunDir, arch: str) -> list[str]:
    return ["export", str(run.path), "--arch", arch]


def evaluate(run: RunDir, archs: list[str]) -> list[str]:
    """Score exactly ``archs`` in the current round (the surrogate's predicted best): a search job."""
    return ["evaluate", str(run.path)] + [x for a in archs for x in ("--arch", a)]
