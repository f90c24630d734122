"""The NAS-Bench-201 benchmark's pieces: the restricted reader of the table, the policy on the
interaction the table is known for, and the bench script end to end on a small synthetic table.

The real table comes from the ``analog-nasbench`` wheel (requirements-bench.txt); the test that
reads it is skipped when the wheel is not installed and ``NASNAV_NB201_TABLE`` does not name it.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.nb201_data import ALLOWED, EDGES, OPS, installed_table, load_anb, nb201_space, space_table
from bench.table_pickle import TableUnpickler
from nasnav.analysis.fitness import fitness_table
from nasnav.config import SteeringConfig
from nasnav.space import SearchSpace, Stage
from nasnav.steering.actions import apply_actions
from nasnav.steering.policy import Verdict, decide, narrow_actions, narrow_limit, propose_actions

ANB_SHA256 = "85f3435b877aa2d36268d55ce07f6ff6d73643d17a840f1941745da5eb80db32"  # analog-nasbench 0.1.3's data.anb


class _Remove:
    """Unpickling this would delete a file: what a hostile table could do."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return os.remove, (self.path,)


def write_anb(path: Path, table: dict[tuple[int, ...], float], monkeypatch) -> None:
    """A pickle in the wheel's format: {op tuple: analognasbench.data.Architecture} with drift records."""
    mod = types.ModuleType("analognasbench.data")

    class Architecture:
        pass

    class DriftMeasurement:
        pass

    for cls in (Architecture, DriftMeasurement):
        cls.__module__, cls.__qualname__ = "analognasbench.data", cls.__name__
        setattr(mod, cls.__name__, cls)
    monkeypatch.setitem(sys.modules, "analognasbench", types.ModuleType("analognasbench"))
    monkeypatch.setitem(sys.modules, "analognasbench.data", mod)
    data = {}
    for key, acc in table.items():
        rec, drift = Architecture(), DriftMeasurement()
        drift.__dict__.update(value=1.0, uncertainty=0.5)
        rec.__dict__.update(architecture=key, baseline_accuracy=acc, ptq_accuracy=acc - 1, baseline_drift_60=drift)
        data[key] = rec
    path.write_bytes(pickle.dumps(data, protocol=4))


def synthetic_table(n_ops: int = 3, seed: int = 0) -> dict[tuple[int, ...], float]:
    """NAS-Bench-201-like: op 1 ("none") hurts, op 2 ("conv3x3") helps, and skip on edge 2 is bad on
    average but best together with conv3x3 on every other edge (the interaction the real table has)."""
    rng = np.random.default_rng(seed)
    out = {}
    for key in itertools.product(range(n_ops), repeat=len(EDGES)):
        acc = 85 + sum(-4.0 * (o == 1) + 1.5 * (o == 2) for o in key) + rng.normal(0, 0.3)
        if key[2] == 0:
            acc += 2.0 if all(o == 2 for i, o in enumerate(key) if i != 2) else -2.0
        out[key] = float(acc)
    return out


def test_restricted_unpickler_refuses_other_code_and_runs_nothing(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("still here")
    bad = tmp_path / "bad.anb"
    bad.write_bytes(pickle.dumps({(0,) * 6: _Remove(str(victim))}))
    with pytest.raises(ValueError, match=r"bad\.anb: table pickle refers to (posix|os|nt)\.remove, which is not allowed"):
        load_anb(bad)
    assert victim.read_text() == "still here"
    with pytest.raises(ValueError, match=r"builtins\.eval"):
        TableUnpickler(pickle.dumps(eval), ALLOWED, "records").load()


def test_reads_the_table_format_and_rejects_malformed_files(tmp_path, monkeypatch):
    table = synthetic_table(2)
    path = tmp_path / "data.anb"
    write_anb(path, table, monkeypatch)
    assert load_anb(path) == pytest.approx(table)
    wrong = tmp_path / "wrong.anb"
    write_anb(wrong, {(0, 1, 9, 0, 0, 0): 50.0}, monkeypatch)
    with pytest.raises(ValueError, match=r"key \(0, 1, 9, 0, 0, 0\) is not a 6-tuple"):
        load_anb(wrong)
    (tmp_path / "junk.anb").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="not a readable table pickle"):
        load_anb(tmp_path / "junk.anb")
    with pytest.raises(ValueError, match="table file not found"):
        load_anb(tmp_path / "missing.anb")
    with pytest.raises(ValueError, match="has no entry for"):
        space_table(table, nb201_space(3))  # the table covers 2 operations per edge, the space 3


def _interaction_space_and_rows():
    """Skip on s2 costs points on average (it needs "c" on the other stages, and mostly gets other
    company), but with "c" everywhere else it makes the best cell, as skip on edge (1,4) does in
    NAS-Bench-201. "x" is bad everywhere. Every architecture with its accuracy."""
    space = SearchSpace(tuple(Stage(f"s{i}", ("skip", "c", "d", "x")) for i in range(4)))
    rng = np.random.default_rng(1)
    rows = []
    for arch in space:
        ch = [c[0] for c in arch.choices]
        acc = 0.80 + 0.01 * ch.count("c") - 0.05 * ch.count("x") + rng.normal(0, 0.003)
        if ch[2] == "skip":
            acc += 0.03 * sum(c == "c" for i, c in enumerate(ch) if i != 2) - 0.045
        rows.append({"arch": str(arch), "one_shot_acc": acc})
    return space, pd.DataFrame(rows)


def test_pruning_policy_spares_a_component_bad_on_average_but_best_in_combination():
    """The interaction case (see _interaction_space_and_rows): the bench's pruning settings (the
    ladder's, before the tuned policy turned pruning off) prune x, never skip."""
    space, rows = _interaction_space_and_rows()
    df = rows.sample(160, random_state=0)
    best = rows.loc[rows["one_shot_acc"].idxmax(), "arch"]
    assert best == "c/c/skip/c"
    sc = SteeringConfig(margin=0.0, tail_margin=0.0, confidence=0.9, min_space_size=4)
    fit = fitness_table(df, space, confidence=sc.confidence, top=sc.protect_top)
    row = fit.set_index(["stage", "component"])
    assert row.loc[("s2", "skip"), "ci_high"] < row.loc[("s2", "c"), "ci_low"]  # bad on average, clearly
    assert row.loc[("s2", "skip"), "in_top"] > 0  # ... but among the best candidates
    pruned = {(a.stage, a.component) for a in propose_actions(fit, space, sc).actions}
    assert ("s2", "x") in pruned and ("s2", "skip") not in pruned


def test_narrowing_keeps_what_the_best_cells_use_within_the_limit():
    """Narrowing (steering.narrow_to) keeps skip on s2, poor on average but in the best cell, drops
    x everywhere, leaves at most `limit` architectures and explains every prune."""
    space, rows = _interaction_space_and_rows()
    df = rows.sample(120, random_state=0)
    decision = narrow_actions(df, space, limit=12, elite=20)
    assert decision.kind is Verdict.NARROW and not decision.why
    actions = decision.actions
    new, _ = apply_actions(space, actions)
    assert 1 < new.size() <= 12
    assert new.contains(space.parse("c/c/skip/c"))  # the best cell survives
    assert all("x" not in st.active for st in new.stages)
    assert all("narrowing to at most 12" in a.reason and a.evidence["elite_share"] < 0.5 for a in actions)
    # nothing to do when the space is already small enough, and too little evidence is said plainly
    within = narrow_actions(df, space, limit=space.size())
    assert within.empty and within.kind is Verdict.WITHIN_LIMIT and "within the narrowing limit" in within.why
    few = narrow_actions(df.head(1), space, limit=12)
    assert few.empty and few.kind is Verdict.TOO_FEW_CANDIDATES and "too few" in few.why


def test_narrowing_keeps_the_very_best_candidates_when_the_limit_allows():
    """The third best score uses d on s0, which the rest of the elite never votes for: the vote
    alone drops it, keep_top=3 keeps it (as protect_top does for pruning by fitness)."""
    space = SearchSpace(tuple(Stage(f"s{i}", ("skip", "c", "d", "x")) for i in range(3)))
    rows = [{"arch": "c/c/c", "one_shot_acc": 0.96}, {"arch": "c/skip/skip", "one_shot_acc": 0.955},
            {"arch": "d/c/c", "one_shot_acc": 0.95}]
    rows += [{"arch": f"{a}/{b}/{c}", "one_shot_acc": 0.90 - 0.001 * n}
             for n, (a, b, c) in enumerate([("skip", "skip", "skip"), ("c", "c", "skip"), ("skip", "skip", "c")] * 5)]
    rows += [{"arch": "x/x/x", "one_shot_acc": 0.5}]
    df = pd.DataFrame(rows)
    by_vote = narrow_actions(df, space, limit=8, elite=20, by="score").actions
    assert not apply_actions(space, by_vote)[0].contains(space.parse("d/c/c"))
    kept = narrow_actions(df, space, limit=8, elite=20, keep_top=3, by="score").actions
    narrowed = apply_actions(space, kept)[0]
    assert narrowed.contains(space.parse("d/c/c")) and narrowed.size() <= 8


def test_decide_narrows_only_on_the_pass_before_the_last():
    space, rows = _interaction_space_and_rows()
    df = rows.sample(120, random_state=0)
    sc = SteeringConfig(rounds=4, narrow_to=12, min_space_size=4, prune=True, extend=False)
    fit = fitness_table(df, space, confidence=sc.confidence, top=sc.protect_top)
    narrowed = decide(fit, df, space, sc, passes=3)
    assert narrowed.kind is Verdict.NARROW and all("narrowing" in a.reason for a in narrowed.actions)
    assert apply_actions(space, narrowed.actions)[0].size() <= 12
    earlier = decide(fit, df, space, sc, passes=2)
    assert earlier.kind is Verdict.PRUNE and earlier == propose_actions(fit, space, sc)  # before that: pruning by fitness
    off = SteeringConfig(rounds=4, min_space_size=4, prune=True, narrow_to=0, extend=False)
    assert decide(fit, df, space, off, passes=3) == propose_actions(fit, space, off)
    # where pruning by fitness finds nothing and the auto-pilot would stop, it narrows instead
    flat = df.assign(one_shot_acc=0.8 + np.random.default_rng(0).normal(0, 1e-4, len(df)))
    flat_fit = fitness_table(flat, space, confidence=sc.confidence, top=sc.protect_top)
    assert propose_actions(flat_fit, space, sc).kind is Verdict.NOTHING_CLEARLY_WORSE
    assert decide(flat_fit, flat, space, sc, passes=1).kind is Verdict.NARROW
    extending = decide(flat_fit, flat, space, SteeringConfig(rounds=4, narrow_to=12, extend=True, prune=True), passes=1)
    assert extending.empty and extending.kind is Verdict.NOTHING_CLEARLY_WORSE
    # a share of the space: 1 % of 256 is 2, raised to min_space_size
    share = SteeringConfig(rounds=4, narrow_to=0.01, min_space_size=6, extend=False)
    assert narrow_limit(share, space) == 6 and narrow_limit(SteeringConfig(narrow_to=0), space) == 0
    assert apply_actions(space, decide(fit, df, space, share, passes=1).actions)[0].size() <= 6


def test_bench_script_runs_on_a_small_synthetic_table(tmp_path, monkeypatch, capsys):
    from bench import nb201_table

    path = tmp_path / "data.anb"
    write_anb(path, synthetic_table(3), monkeypatch)
    assert nb201_table.main(["--table", str(path), "--subset", "3", "--quick", "--no-write"]) == 0
    out = capsys.readouterr().out
    assert "729 architectures (6 edges x 3 operations)" in out and "auto-pilot (tuned)" in out
    assert "evolution search" in out and "What each change buys" in out and "Target at noise 1 pp" in out
    assert "2 seeds (0..1)" in out
    assert nb201_table.main(["--table", str(path), "--subset", "3", "--quick", "--no-write", "--first-seed", "7"]) == 0
    assert "2 seeds (7..8)" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="--first-seed must not be negative"):
        nb201_table.main(["--table", str(path), "--quick", "--no-write", "--first-seed", "-1"])


def _real_table() -> Path | None:
    env = os.environ.get("NASNAV_NB201_TABLE")
    return Path(env) if env else installed_table()


@pytest.mark.skipif(_real_table() is None, reason="the analog-nasbench wheel is not installed "
                    "(pip install -r requirements-bench.txt) and NASNAV_NB201_TABLE is not set")
def test_the_real_table():
    path = _real_table()
    if path.suffix == ".anb":  # the file the wheel's RECORD lists
        assert hashlib.sha256(path.read_bytes()).hexdigest() == ANB_SHA256
    table = load_anb(path)
    assert len(table) == 15625 and len(OPS) ** len(EDGES) == 15625
    best = max(table, key=table.get)
    assert round(table[best], 2) == 94.07 and np.mean(list(table.values())) == pytest.approx(86.8, abs=0.05)
    assert best == (2, 2, 0, 2, 3, 2)  # conv3x3 everywhere but skip on edge (1,4), conv1x1 on (2,4)


def test_narrowing_by_the_model_ignores_a_lucky_score_and_keeps_interactions():
    """Additive truth, noisy scores: the best score belongs to a cell with the bad component "x",
    lucky by about 2 noise SDs. Ranked by score it leads the elite and keeps x; ranked by the
    additive model's fit (``by="model"``) it does not. A score the model cannot explain by far
    more than the noise (the interaction case: skip on s2 is poor on average, best with "c"
    elsewhere) stands as it is, so the model keeps the best cell; the pure fit
    (``interaction_sd=0``) ranks it low and loses it."""
    space = SearchSpace(tuple(Stage(f"s{i}", ("a", "b", "x")) for i in range(4)))
    rng = np.random.default_rng(4)
    rows = []
    for arch in space:
        ch = [c[0] for c in arch.choices]
        rows.append({"arch": str(arch), "one_shot_acc": 0.9 + 0.01 * ch.count("a") - 0.01 * ch.count("x")
                     + rng.normal(0, 0.01)})
    df = pd.DataFrame(rows)
    assert df.loc[df["one_shot_acc"].idxmax(), "arch"] == "a/a/a/x"  # the lucky one
    kept = {by: apply_actions(space, narrow_actions(df, space, limit=4, elite=3, by=by).actions)[0]
            for by in ("score", "model")}
    assert "x" in kept["score"].stages[3].active
    assert not any("x" in st.active for st in kept["model"].stages) and kept["model"].contains(space.parse("a/a/a/a"))
    with pytest.raises(ValueError, match="narrow_by: 'mean' is not one of model, score"):
        narrow_actions(df, space, limit=2, by="mean")

    space, rows = _interaction_space_and_rows()
    df = rows.sample(120, random_state=0)
    best = space.parse("c/c/skip/c")
    for by in ("score", "model"):
        assert apply_actions(space, narrow_actions(df, space, limit=12, elite=20, by=by).actions)[0].contains(best)
    pure = narrow_actions(df, space, limit=12, elite=20, by="model", interaction_sd=0).actions
    assert not apply_actions(space, pure)[0].contains(best)


def test_the_tuned_auto_pilot_keeps_a_component_bad_on_average_but_best_in_combination():
    """The bench's tuned policy (nasnav's defaults: no pruning by fitness, narrowing by the model)
    run round after round on the interaction case, scaled to its 256 architectures: it keeps the best cell
    (skip on s2 with "c" elsewhere) in every seed; with the pure additive fit
    (``interaction_sd: 0``) it loses it in most."""
    from bench.nb201_methods import autopilot
    from bench.nb201_table import TUNED
    from nasnav.score.table import TableEvaluator

    space, rows = _interaction_space_and_rows()
    table = dict(zip(rows["arch"], rows["one_shot_acc"]))
    best = space.parse("c/c/skip/c")
    kept = {}
    default = SteeringConfig().interaction_sd
    for sd in (default, 0.0):
        sc = SteeringConfig(**{**TUNED, "rounds": 4, "narrow_to": 12, "narrow_elite": 20, "min_space_size": 4,
                               "interaction_sd": sd, "narrow_by": "model"})
        runs = [autopilot(space, TableEvaluator(table, percent=False), sc, 30, np.random.default_rng(s), seed=s,
                          strategy="evolution") for s in range(10)]
        assert all(r.space.size() <= 12 for r in runs)
        kept[sd] = sum(r.space.contains(best) for r in runs)
    assert kept[default] == 10 and kept[0.0] <= 5


def test_without_pruning_by_fitness_the_auto_pilot_extends_then_narrows():
    space, rows = _interaction_space_and_rows()
    df = rows.sample(120, random_state=0)
    sc = SteeringConfig(rounds=4, narrow_to=12, prune=False, extend=True)
    fit = fitness_table(df, space, confidence=sc.confidence, top=sc.protect_top)
    assert propose_actions(fit, space, sc).actions  # pruning by fitness would prune ...
    off = decide(fit, df, space, sc, passes=1)  # ... it is off
    assert off.empty and off.kind is Verdict.NOTHING_CLEARLY_WORSE
    assert off.why.startswith("nothing clearly worse") and "steering.prune: false" in off.why
    narrowed = decide(fit, df, space, sc, passes=3)
    assert narrowed.kind is Verdict.NARROW and all("narrowing" in a.reason for a in narrowed.actions)
    # without extension it would stop: it narrows at once
    at_once = decide(fit, df, space, SteeringConfig(rounds=4, narrow_to=12, prune=False, extend=False), passes=1)
    assert at_once.kind is Verdict.NARROW and at_once.actions
    # within the narrowing limit, or with narrowing off, nothing is clearly worse either (the auto-pilot extends)
    for limit, words in ((1000, "within the narrowing limit of 1,000"), (0, "and so is narrowing (steering.narrow_to: 0)")):
        nothing = decide(fit, df, space, SteeringConfig(rounds=4, narrow_to=limit, prune=False), passes=3)
        assert nothing.empty and nothing.kind is Verdict.NOTHING_CLEARLY_WORSE and words in nothing.why
    with pytest.raises(ValueError, match="steering.narrow_by"):
        decide(fit, df, space, SteeringConfig(narrow_by="best"), passes=1)
