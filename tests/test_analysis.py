"""Fitness, stage importance and the stable projection."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nasnav.analysis.fitness import FITNESS_COLUMNS, fitness_table, stage_importance
from nasnav.analysis.projection import Projector, project
from nasnav.space import SearchSpace, Stage
from nasnav.workflow.analysis import analyze_round


def space3() -> SearchSpace:
    ops = ("a", "b", "c", "d")
    return SearchSpace((Stage("s1", ops), Stage("s2", ops, select="any", max_active=2), Stage("s3", ops)))


def synthetic(space: SearchSpace, n: int = 300, seed: int = 0, effects: dict | None = None, noise: float = 0.02,
              archs=None) -> pd.DataFrame:
    """Candidates with acc = 0.8 + sum of effects[(stage, component)] + noise."""
    rng = np.random.default_rng(seed)
    effects = effects or {}
    if archs is None:
        archs = list({str(space.sample(rng)): None for _ in range(n)})
    rows = []
    for text in archs:
        arch = space.parse(text, check_active=False)
        acc = 0.8 + rng.normal(0, noise)
        for (s, c), e in effects.items():
            if arch.uses(space.stage_index(s), c):
                acc += e
        rows.append({"arch": text, "one_shot_acc": acc})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("method", ["adjusted", "marginal"])
def test_harmful_component_interval_lies_below_zero(method):
    space = space3()
    df = synthetic(space, effects={("s1", "d"): -0.1, ("s2", "a"): 0.05})
    fit = fitness_table(df, space, method=method).set_index(["stage", "component"])
    assert fit.loc[("s1", "d"), "ci_high"] < 0
    assert fit.loc[("s2", "a"), "ci_low"] > 0
    assert fit.loc[("s1", "d"), "fitness"] == pytest.approx(-0.1, abs=0.02)
    assert fit.loc[("s2", "a"), "fitness"] == pytest.approx(0.05, abs=0.02)
    neutral = fit.loc[("s3", "b")]
    assert neutral["ci_low"] < 0 < neutral["ci_high"]


def test_table_shape_flags_and_pruned_rows():
    space = space3().prune("s1", "d").pin("s3", "b")
    df = synthetic(space3(), n=400)  # includes candidates outside the pruned space: ignored
    fit = fitness_table(df, space)
    assert list(fit.columns) == FITNESS_COLUMNS
    assert len(fit) == 12  # one row per ORIGINAL (stage, component)
    d = fit[(fit.stage == "s1") & (fit.component == "d")].iloc[0]
    assert d["pruned"] and d["frequency"] == 0 and np.isnan(d["fitness"])
    s3 = fit[fit.stage == "s3"].set_index("component")
    assert s3.loc["b", "pinned"] and not s3.loc["a", "pinned"] and s3.loc["a", "pruned"]
    assert np.isnan(s3.loc["b", "fitness"])  # always used: no "without" to compare with
    n_in = s3.loc["b", "frequency"]
    assert 0 < n_in < 400 and (fit[fit.stage == "s1"]["frequency"].sum() == n_in)
    empty = fitness_table(pd.DataFrame(columns=["arch", "one_shot_acc"]), space)
    assert len(empty) == 12 and (empty["frequency"] == 0).all()


def test_adjusted_fitness_removes_the_bias_of_correlated_sampling():
    """s1's choice has no effect, but candidates with s1=a mostly also have the good s3=a (as
    evolution would produce): the marginal difference credits s1=a, the adjusted one does not."""
    space = SearchSpace(space3().stages + (Stage("s4", tuple("abcdef")),))
    rng = np.random.default_rng(3)
    archs: dict[str, None] = {}
    while len(archs) < 400:
        arch = space.sample(rng)
        if arch.choices[0] == ("a",) and rng.random() < 0.8:
            arch = space.parse("/".join(["a", "+".join(arch.choices[1]), "a", arch.choices[3][0]]))
        archs[str(arch)] = None
    df = synthetic(space, effects={("s3", "a"): 0.1}, archs=list(archs), seed=4)
    adj = fitness_table(df, space).set_index(["stage", "component"]).loc[("s1", "a")]
    mar = fitness_table(df, space, method="marginal").set_index(["stage", "component"]).loc[("s1", "a")]
    assert mar["ci_low"] > 0.02  # spurious
    assert abs(adj["fitness"]) < 0.01 and adj["ci_low"] < 0.005  # not credited (unbiased over 40 seeds: mean -0.0001)


def test_bootstrap_is_seeded_and_tail_columns():
    space = space3()
    df = synthetic(space, effects={("s1", "d"): -0.1})
    a = fitness_table(df, space, bootstrap=50, seed=1)
    b = fitness_table(df, space, bootstrap=50, seed=1)
    pd.testing.assert_frame_equal(a, b)
    row = a.set_index(["stage", "component"]).loc[("s1", "d")]
    assert row["ci_high"] < 0 and row["best_with"] >= row["top_with"] >= row["mean_with"] - 0.05
    assert a["in_top"].groupby(a["stage"]).sum().loc["s1"] == 5  # each of the top 5 uses one s1 component
    with pytest.raises(ValueError, match="adjusted, marginal"):
        fitness_table(df, space, method="median")


def test_stage_importance_finds_the_stage_that_matters():
    space = space3()
    imp = stage_importance(synthetic(space, effects={("s3", "a"): 0.1, ("s3", "b"): 0.05}), space).set_index("stage")
    assert imp.loc["s3", "importance"] > 0.7
    assert imp.loc["s1", "importance"] < 0.05 and imp["importance"].sum() <= 1.0 + 1e-9


# ---- projection --------------------------------------------------------------------------------
def big_space() -> SearchSpace:
    ops = tuple(f"op{i}" for i in range(6))
    return SearchSpace((Stage("s1", ops), Stage("s2", ops), Stage("s3", ops, select="any", max_active=2),
                        Stage("s4", ops)))  # 6 * 6 * 21 * 6 = 4536 > the reference sample


@pytest.mark.parametrize("method", ["mds", "tsne", "pca", "umap"])
def test_projection_is_stable_when_points_arrive(method):
    space = big_space()
    rng = np.random.default_rng(0)
    archs = list({str(space.sample(rng)): None for _ in range(1200)})[:1000]
    proj = Projector(space, method, seed=0, reference_size=200)
    first = proj.transform(archs[:500])
    both = proj.transform(archs)
    assert np.array_equal(both[:500], first)  # nothing already drawn moves
    again = Projector(space, method, seed=0, reference_size=200).transform(archs[500:] + archs[:500])
    np.testing.assert_allclose(again[500:], first, atol=1e-9)  # a restart (any order) draws the same picture
    assert np.isfinite(both).all() and np.abs(both).max() < 1.5
    assert len(np.unique(both.round(6), axis=0)) > 900  # points do not pile up


def test_projection_cache_file_and_project_frame(tmp_path):
    space = big_space()
    archs = [str(space.sample(np.random.default_rng(i))) for i in range(50)]
    path = tmp_path / "proj.npz"
    a = Projector(space, "mds", seed=1, reference_size=200, cache_path=path).transform(archs)
    assert path.exists()
    b = Projector(space.prune("s1", "op0"), "mds", seed=1, reference_size=200, cache_path=path).transform(archs)
    np.testing.assert_array_equal(a, b)  # the cached layout, and pruning does not change the layout
    df = project(space, archs, "pca", seed=0)
    assert list(df.columns) == ["arch", "x", "y"] and len(df) == 50
    with pytest.raises(ValueError, match="methods: mds, tsne, umap, pca"):
        Projector(space, "isomap")
    with pytest.raises(ValueError, match="no component 'nope'"):
        project(space, ["nope/op0/op0/op0"], "pca")


def test_placing_5000_candidates_is_fast():
    """Placing is linear in the candidates; the one-off fit of the reference layout (about 2 s for
    mds on 1000 reference architectures, 2 cores) is measured by bench/throughput.py."""
    import time

    space = big_space()
    archs = [str(a) for a in space][:5000]
    proj = Projector(space, "mds", seed=0, reference_size=200)
    t = time.perf_counter()
    xy = proj.transform(archs)
    assert xy.shape == (len(archs), 2)
    assert time.perf_counter() - t < 5  # about 0.1 s measured


def test_analyze_round_writes_files(tmp_path):
    from nasnav.config import load_config
    from nasnav.workflow.runs import create_run

    cfg = load_config("configs/tiny.yaml", ["search.projection=pca"])
    run = create_run(cfg, tmp_path / "run")
    space = cfg.search_space()
    df = synthetic(space, n=60, effects={("s1", "skip"): -0.2})
    df.to_csv(run.round_dir(0) / "candidates.csv", index=False)
    res = analyze_round(run, cfg)
    for name in ("fitness", "importance", "projection"):
        assert (run.round_dir(0) / f"{name}.csv").exists()
    assert len(res["projection"]) == len(df) and set(res["projection"].columns) == {"arch", "x", "y"}
    assert res["fitness"].set_index(["stage", "component"]).loc[("s1", "skip"), "ci_high"] < 0


def test_supernet_with_a_harmful_component(tmp_path, single_thread):
    """A real (tiny) supernet whose s1:conv3x3 weights are replaced by large noise: the fitness
    interval of that component lies below zero."""
    import torch

    from nasnav.config import load_config
    from nasnav.workflow.runs import create_run
    from nasnav.workflow.search import score_candidates, supernet_evaluator
    from nasnav.workflow.supernet import train_supernet

    cfg = load_config("configs/tiny.yaml", ["search.budget=60"])
    run = create_run(cfg, tmp_path / "run")
    train_supernet(run, cfg, 0)
    ev = supernet_evaluator(run, cfg, 0)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in ev.net.stages[0].ops["conv3x3"].parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 3)
    df = score_candidates(run, cfg, 0, evaluator=ev)
    fit = fitness_table(df, cfg.search_space()).set_index(["stage", "component"])
    assert fit.loc[("s1", "conv3x3"), "ci_high"] < 0
    assert fit.loc[("s1", "conv3x3"), "fitness"] == fit.loc["s1", "fitness"].min()
