"""A round's analysis on disk: the candidates fitness is computed from, fitness, importance and the
scatterplot's projection written into the round's folder."""

from __future__ import annotations

import pandas as pd

from nasnav.analysis.fitness import evidence_frame, stage_importance, steering_fitness
from nasnav.analysis.projection import Projector, get_projector
from nasnav.store import layout, records
from nasnav.store.io import write_csv
from nasnav.store.run_dir import RunDir


def steering_candidates(run: RunDir, cfg, k: int) -> pd.DataFrame:
    """The candidates behind round k's fitness: round k's, or with ``steering.evidence: all`` those
    of rounds 0..k (the current branch: abandoned rounds live elsewhere)."""
    evidence = getattr(cfg.steering, "evidence", "round")
    ks = [j for j in run.rounds() if j <= k] if evidence == "all" else [k]
    return evidence_frame([records.read_candidates(run, j) for j in ks] or [records.read_candidates(run, k)], evidence)




def run_projector(run: RunDir, cfg) -> Projector:
    """The run's Projector: fitted on the original space of its config, cached in RUN/projection/."""
    method, seed = cfg.search.projection, cfg.seed
    size = getattr(cfg.search, "projection_reference", 1000)
    cache = run.path / "projection" / f"{method}-hamming-seed{seed}-n{size}.npz"
    return get_projector(cfg.search_space().unpruned(), method, seed, "hamming", size, cache)


def analyze_round(run: RunDir, cfg, k: int | None = None) -> dict:
    """Fitness, stage importance and projection of round k's candidates, written to
    rounds/k/fitness.csv, importance.csv and projection.csv; returns the three frames."""
    k = run.current_round() if k is None else k
    space = records.read_space(run, k, cfg.kind)
    df = records.read_candidates(run, k)
    evidence = steering_candidates(run, cfg, k)
    fit = steering_fitness(evidence, space, cfg.steering, cfg.seed)
    imp = stage_importance(evidence, space)
    archs = list(dict.fromkeys(df["arch"].astype(str))) if len(df) else []
    proj = pd.DataFrame(columns=["arch", "x", "y"])
    if archs:
        xy = run_projector(run, cfg).transform(archs)
        proj = pd.DataFrame({"arch": archs, "x": xy[:, 0], "y": xy[:, 1]})
    rdir = run.ensure_round_dir(k)
    write_csv(rdir / layout.FITNESS, fit)
    write_csv(rdir / layout.IMPORTANCE, imp)
    write_csv(rdir / layout.PROJECTION, proj)
    return {"fitness": fit, "importance": imp, "projection": proj}
