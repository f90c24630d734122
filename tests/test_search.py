"""Search strategies (random, regularized evolution): no repeats, cache, constraints, resume.

Synthetic evaluators (plain functions) throughout: the supernet is not the point here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nasnav.search.loop import Constraints, crossover, mutate, plan_budget, run_search
from nasnav.space import SearchSpace, Stage
from nasnav.store.io import write_yaml
from nasnav.store.records import read_candidates, search_state
from nasnav.store.run_dir import RunDir


def make_space(n_stages: int = 3, n_ops: int = 4, any_stage: bool = True) -> SearchSpace:
    ops = tuple(f"op{i}" for i in range(n_ops))
    stages = [Stage(f"s{i + 1}", ops) for i in range(n_stages)]
    if any_stage:
        stages[1] = Stage("s2", ops, select="any", max_active=2)
    return SearchSpace(tuple(stages))


class Additive:
    """acc = sum of per-(stage, component) weights: a smooth landscape evolution should exploit."""

    def __init__(self, space: SearchSpace, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.w = {(i, c): float(rng.normal()) for i, s in enumerate(space.stages) for c in s.candidates}
        self.calls: list[str] = []

    def __call__(self, arch) -> dict:
        self.calls.append(str(arch))
        acc = sum(self.w[(i, c)] for i, ch in enumerate(arch.choices) for c in ch)
        return {"one_shot_acc": acc, "val_loss": -acc, "params": 100 * sum(len(c) for c in arch.choices), "flops": 1}


def new_run(tmp_path, space: SearchSpace) -> RunDir:
    run = RunDir.create(tmp_path / "run")
    write_yaml(run.ensure_round_dir(0) / "space.yaml", space.to_dict())
    return run


@pytest.mark.parametrize("strategy", ["random", "evolution"])
def test_small_space_is_exhausted_without_repeats(tmp_path, strategy):
    space = make_space()  # 4 * 10 * 4 = 160
    run = new_run(tmp_path, space)
    ev = Additive(space)
    df = run_search(run, space, 0, ev, 1000, np.random.default_rng(0), strategy=strategy, population=10, sample_size=3)
    assert len(df) == space.size() == 160
    assert df["arch"].is_unique and len(ev.calls) == len(set(ev.calls)) == 160  # the cache: never twice
    assert search_state(run, 0)["state"] == "exhausted"
    for col in ["generation", "parent", "strategy", "choice_s1", "choice_s2", "choice_s3"]:
        assert col in df.columns
    assert (df["strategy"] == strategy).all()
    assert df["choice_s2"].astype(str).str.contains(r"\+").any()  # an "any" stage with two components


def test_evolution_rows_have_lineage_and_stay_in_the_pruned_space(tmp_path):
    space = make_space(4, 5).prune("s1", "op0").prune("s3", "op4").pin("s4", "op2")
    run = new_run(tmp_path, space)
    df = run_search(run, space, 0, Additive(space), 80, np.random.default_rng(1), strategy="evolution",
                    population=12, sample_size=4)
    assert len(df) == 80 and df["arch"].is_unique
    assert all(space.contains(space.parse(a)) for a in df["arch"])
    kids = df[df["generation"] > 0]
    assert len(kids) >= 80 - 12 - 5  # after the random population, (almost) all are children
    seen = set()
    for arch, parent in zip(df["arch"], df["parent"].fillna("")):
        if parent:
            assert all(p in seen for p in parent.split(";")), "a parent is always an earlier candidate"
        seen.add(arch)


def test_mutation_changes_one_stage_and_stays_valid():
    space = make_space(3, 5)
    rng = np.random.default_rng(0)
    for _ in range(300):
        a = space.sample(rng)
        b = mutate(space, a, rng)
        assert space.contains(b) and b != a
        diff = [i for i in range(3) if a.choices[i] != b.choices[i]]
        assert len(diff) == 1
        if diff == [1]:  # an "any" stage: one component flipped (or a swap when no flip is allowed)
            sa, sb = set(a.choices[1]), set(b.choices[1])
            assert len(sa ^ sb) in (1, 2)


def test_crossover_takes_each_stage_from_a_parent():
    space = make_space(5, 4, any_stage=False)
    rng = np.random.default_rng(0)
    for _ in range(100):
        a, b = space.sample(rng), space.sample(rng)
        c = crossover(a, b, rng)
        assert all(x in (y, z) for x, y, z in zip(c.choices, a.choices, b.choices))


def test_evolution_beats_random_on_a_smooth_landscape(tmp_path):
    space = make_space(6, 7, any_stage=False)  # 117,649 architectures
    finals = {"random": [], "evolution": []}
    for seed in range(4):
        ev = Additive(space, seed=100 + seed)
        for strategy in finals:
            run = new_run(tmp_path / f"{strategy}{seed}", space)
            df = run_search(run, space, 0, ev, 300, np.random.default_rng(seed), strategy=strategy,
                            population=30, sample_size=8)
            finals[strategy].append(df["one_shot_acc"].max())
    assert np.mean(finals["evolution"]) > np.mean(finals["random"])


class Cost:
    def params(self, arch):
        return 100 * sum(len(c) for c in arch.choices)

    def flops(self, arch):
        return 10 * len(arch.choices[1])


def test_constraints_filter_and_explain(tmp_path):
    space = make_space()
    run = new_run(tmp_path, space)
    ev = Additive(space)
    ev.cost = Cost()
    df = run_search(run, space, 0, ev, 1000, np.random.default_rng(0), strategy="evolution", population=8,
                    sample_size=3, max_params=300, max_flops=10)
    assert len(df) == 4 * 4 * 4  # only the single-component choices of the "any" stage fit
    assert (df["params"] <= 300).all()
    with pytest.raises(ValueError, match="search.max_params: no architecture .* at most 250"):
        run_search(run, space, 0, ev, 10, np.random.default_rng(0), max_params=250)
    with pytest.raises(ValueError, match="cost model"):
        Constraints(space, None, max_flops=5)


def test_stop_then_resume_continues_to_the_target(tmp_path):
    space = make_space(4, 6)
    run = new_run(tmp_path, space)
    ev = Additive(space)
    calls = {"n": 0}

    def stop_after_25():
        calls["n"] += 1
        return calls["n"] > 25

    df = run_search(run, space, 0, ev, 60, np.random.default_rng(0), strategy="evolution", population=10,
                    sample_size=3, should_stop=stop_after_25)
    st = search_state(run, 0)
    assert len(df) == 25 and st["state"] == "stopped" and st["scored"] == 25 and st["target"] == 60
    budget, _ = plan_budget(run, 0, None, None, resume=True)
    assert budget == 35
    df = run_search(run, space, 0, ev, budget, np.random.default_rng(5), strategy="evolution", population=10,
                    sample_size=3)
    assert len(df) == 60 and df["arch"].is_unique and len(ev.calls) == 60
    assert search_state(run, 0)["state"] == "done"
    assert plan_budget(run, 0, None, None, resume=True)[0] == 0  # nothing left to resume
    assert plan_budget(run, 0, 100, None, fill=True)[0] == 40


def test_seconds_budget_and_extra_metric_columns(tmp_path):
    space = make_space(6, 7, any_stage=False)
    run = new_run(tmp_path, space)
    base = Additive(space)

    def ev(arch):
        return {**base(arch), "standalone_acc": 0.5}

    df = run_search(run, space, 0, ev, None, np.random.default_rng(0), seconds=0.3)
    assert 0 < len(df) and search_state(run, 0)["state"] == "done"
    raw = pd.read_csv(run.round_dir(0) / "candidates.csv")
    assert "standalone_acc" in raw.columns
    with pytest.raises(ValueError, match="strategies: random, evolution"):
        run_search(run, space, 0, ev, 5, np.random.default_rng(0), strategy="annealing")
    with pytest.raises(ValueError, match="budget"):
        run_search(run, space, 0, ev, None, np.random.default_rng(0))


def test_score_candidates_uses_strategy_and_fill(tmp_path):
    from nasnav.config import load_config
    from nasnav.workflow.runs import create_run
    from nasnav.workflow.search import score_candidates

    cfg = load_config("configs/tiny.yaml", ["search.strategy=evolution", "search.budget=30"])
    run = create_run(cfg, tmp_path / "run")
    space = cfg.search_space()
    ev = Additive(space)
    df = score_candidates(run, cfg, 0, evaluator=ev, fill=True)
    assert len(df) == 30 and (df["strategy"] == "evolution").all()
    assert len(score_candidates(run, cfg, 0, evaluator=ev, fill=True)) == 30  # a full round: nothing more
    df = score_candidates(run, cfg, 0, budget=5, strategy="random", evaluator=ev)  # the old signature still works
    assert len(df) == 35 and len(read_candidates(run, 0)) == 35
