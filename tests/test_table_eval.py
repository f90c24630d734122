"""A lookup table as the evaluator: scores and noise, and the auto-pilot's run-directory path with
``steering.evidence: all`` (earlier scores reused, never repeated) and ``steering.extend``."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from nasnav.analysis.fitness import evidence_frame, fitness_table
from nasnav.config import load_config
from nasnav.score.table import TableEvaluator
from nasnav.search.loop import run_search
from nasnav.space import SearchSpace, Stage
from nasnav.store.records import read_candidates, read_decisions, read_space
from nasnav.store.run_dir import RunDir
from nasnav.workflow.autopilot import autopilot_round
from nasnav.workflow.decisions import search_passes
from nasnav.workflow.round import run_round
from nasnav.workflow.runs import create_run

TINY = ["search.projection=pca", "search.budget=30", "steering.min_frequency=3", "steering.protect_top=3",
        "steering.margin=0", "steering.tail_margin=0", "steering.prune=true", "steering.narrow_to=0"]  # pruning by fitness


def additive_table(space: SearchSpace, effects: dict, seed: int = 0) -> dict[str, float]:
    """Accuracy in percent: 80 + effects of used components + a small fixed spread."""
    rng = np.random.default_rng(seed)
    out = {}
    for arch in space:
        acc = 80 + rng.normal(0, 0.2)
        for (s, c), e in effects.items():
            if arch.uses(space.stage_index(s), c):
                acc += e
        out[str(arch)] = acc
    return out


def test_scores_in_fractions_keep_their_noise_and_name_what_is_missing():
    table = {"a/b": 90.0, "b/a": 80.0}
    ev = TableEvaluator(table, noise_pp=1.0, rng=np.random.default_rng(0))
    first = ev("a/b")
    assert first["table_acc"] == pytest.approx(0.9) and first["one_shot_acc"] != pytest.approx(0.9)
    assert ev("a/b") == first and ev.calls == 2  # the same error every time (a fixed supernet's bias)
    assert TableEvaluator(table)("b/a") == {"one_shot_acc": pytest.approx(0.8), "table_acc": pytest.approx(0.8)}
    assert TableEvaluator(table).best() == ("a/b", pytest.approx(0.9))
    with pytest.raises(ValueError, match="'c/c' is not in the table"):
        ev("c/c")
    with pytest.raises(ValueError, match="needs rng"):
        TableEvaluator(table, noise_pp=1.0)
    with pytest.raises(ValueError, match="noise_pp"):
        TableEvaluator(table, noise_pp=-1.0, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="empty"):
        TableEvaluator({})


def test_a_table_from_csv_is_checked_against_the_space(tmp_path):
    space = SearchSpace((Stage("s1", ("a", "b")), Stage("s2", ("a", "b"))))
    good = tmp_path / "t.csv"
    pd.DataFrame({"arch": ["a/b", "b/a"], "accuracy": [0.9, 0.8]}).to_csv(good, index=False)
    ev = TableEvaluator.from_csv(good, space, percent=False)
    assert ev("a/b")["one_shot_acc"] == pytest.approx(0.9)
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"arch": ["a/b", "a/z"], "accuracy": [0.9, 0.8]}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match="row 3.*no component 'z'"):
        TableEvaluator.from_csv(bad, space)
    with pytest.raises(ValueError, match="no column 'acc'"):
        TableEvaluator.from_csv(good, space, acc_column="acc")


def test_prior_candidates_are_not_scored_again_and_seed_evolution(tmp_path):
    space = SearchSpace((Stage("s1", ("a", "b", "c")), Stage("s2", ("a", "b", "c"))))
    ev = TableEvaluator(additive_table(space, {("s1", "a"): 5.0}))
    prior = pd.DataFrame({"arch": ["a/a", "a/b", "b/b"], "one_shot_acc": [0.9, 0.85, 0.8]})
    run = RunDir.create(tmp_path / "run")
    df = run_search(run, space, 1, ev, 100, np.random.default_rng(0), strategy="evolution", population=3,
                    sample_size=2, prior=prior)
    assert len(df) == 6 and not set(df["arch"]) & set(prior["arch"]) and ev.calls == 6  # the 9 - 3 others
    assert (pd.to_numeric(df["generation"]) > 0).any()  # children of the prior population from the start


def test_fitness_protects_only_the_latest_rounds_top():
    """With pooled evidence, in_top looks at the latest round: an old lucky score stops protecting."""
    space = SearchSpace((Stage("s1", ("a", "b")), Stage("s2", ("a", "b"))))
    old = pd.DataFrame({"round": 0, "arch": ["b/a", "a/a"], "one_shot_acc": [0.99, 0.5]})
    new = pd.DataFrame({"round": 1, "arch": ["a/b", "b/b"], "one_shot_acc": [0.7, 0.6]})
    pooled = evidence_frame([old, new], "all")
    assert len(pooled) == 4 and evidence_frame([old, new], "round") is new
    fit = fitness_table(pooled, space, top=1).set_index(["stage", "component"])
    assert fit.loc[("s1", "a"), "in_top"] == 1 and fit.loc[("s1", "b"), "in_top"] == 0
    assert fit.loc[("s1", "b"), "best_with"] == pytest.approx(0.99)  # the evidence itself is pooled
    with pytest.raises(ValueError, match="steering.evidence"):
        evidence_frame([old], "everything")


def test_autopilot_extends_a_round_when_nothing_is_clearly_worse(tmp_path, caplog):
    cfg = load_config("configs/tiny.yaml", TINY + ["steering.rounds=3", "steering.extend=true",
                                                   "steering.evidence=all"])
    space = cfg.search_space()
    ev = TableEvaluator({str(a): 80.0 for a in space})  # flat: nothing is ever clearly worse
    run = create_run(cfg, tmp_path / "run")
    run_round(run, cfg, evaluator=ev)
    caplog.set_level(logging.INFO, logger='nasnav')
    while autopilot_round(run, cfg, evaluator=ev):
        pass
    assert run.rounds() == [0] and search_passes(run, 0) == 3
    assert [r["status"] for r in read_decisions(run, 0)] == ["extend", "extend", "stop"]
    df = read_candidates(run, 0)
    assert len(df) == 90 == ev.calls and df["arch"].is_unique
    assert "scoring 30 more" in caplog.messages[0] and "round limit" in caplog.messages[-1]


def test_autopilot_on_a_table_reuses_earlier_scores(tmp_path):
    cfg = load_config("configs/tiny.yaml", TINY + ["steering.rounds=3", "steering.evidence=all",
                                                   "steering.max_prune_per_round=2"])
    space = cfg.search_space()
    ev = TableEvaluator(additive_table(space, {("s1", "skip"): -8.0, ("s1", "maxpool3x3"): -6.0,
                                               ("s3", "dilconv3x3"): -5.0}))
    run = create_run(cfg, tmp_path / "run")
    run_round(run, cfg, evaluator=ev)
    while autopilot_round(run, cfg, evaluator=ev):
        pass
    rounds = run.rounds()
    assert len(rounds) >= 2
    scored = pd.concat([read_candidates(run, k) for k in rounds])
    assert scored["arch"].is_unique and len(scored) == ev.calls  # nothing scored twice
    fit = pd.read_csv(run.round_dir(1) / "fitness.csv")
    s3 = fit[fit["stage"] == "s3"]
    assert s3["frequency"].sum() > len(read_candidates(run, 1))  # round 0's in-space candidates count too


def test_autopilot_narrows_before_its_last_pass_and_searches_the_narrowed_space(tmp_path, caplog):
    cfg = load_config("configs/tiny.yaml", TINY + ["steering.rounds=3", "steering.evidence=all",
                                                   "steering.narrow_to=6", "steering.narrow_elite=10"])
    space = cfg.search_space()
    ev = TableEvaluator(additive_table(space, {("s1", "skip"): -8.0, ("s3", "dilconv3x3"): -5.0}))
    run = create_run(cfg, tmp_path / "run")
    run_round(run, cfg, evaluator=ev)
    caplog.set_level(logging.INFO, logger='nasnav')
    while autopilot_round(run, cfg, evaluator=ev):
        pass
    last = run.current_round()
    final = read_space(run, last, cfg.kind)
    assert final.size() <= 6 < space.size()
    narrowing = [a for a in read_decisions(run, last - 1)[-1]["actions"] if "narrowing" in a.get("reason", "")]
    assert narrowing and search_passes(run, last) == 3
    assert len(read_candidates(run, last)) > 0  # the narrowed space was searched: retrain has a candidate
    assert "round limit" in caplog.messages[-1]


def test_autopilot_reuses_a_fresh_analysis_and_redoes_a_missing_one(tmp_path):
    """The auto-pilot decides on fitness computed from the candidates; it rewrites the round's
    analysis files (the projection is the slow part) only when they are missing or older."""
    import os

    cfg = load_config("configs/tiny.yaml", TINY + ["steering.rounds=3", "steering.extend=true",
                                                   "steering.evidence=all"])
    space = cfg.search_space()
    ev = TableEvaluator({str(a): 80.0 for a in space})
    run = create_run(cfg, tmp_path / "run")
    run_round(run, cfg, evaluator=ev)
    rdir = run.round_dir(0)
    stamp = (rdir / "candidates.csv").stat().st_mtime - 100  # analysis files newer than the candidates ...
    for name in ("fitness.csv", "projection.csv"):
        os.utime(rdir / name, (stamp + 200, stamp + 200))
    os.utime(rdir / "candidates.csv", (stamp, stamp))
    cfg1 = load_config("configs/tiny.yaml", TINY + ["steering.rounds=1"])  # ... a stop, no new search
    assert not autopilot_round(run, cfg1, evaluator=ev)
    assert (rdir / "projection.csv").stat().st_mtime == stamp + 200  # not recomputed
    (rdir / "fitness.csv").unlink()  # an interrupted analysis
    assert not autopilot_round(run, cfg1, evaluator=ev)
    assert (rdir / "fitness.csv").exists() and (rdir / "projection.csv").stat().st_mtime != stamp + 200
