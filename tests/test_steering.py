"""Rounds and decisions: validation, files, undo / redo, abandoned branches, the auto-pilot policy,
selections. Synthetic evaluators (plain functions) stand in for the supernet."""

from __future__ import annotations

import dataclasses
import json
import logging
import zlib

import numpy as np
import pandas as pd
import pytest

from nasnav.analysis.fitness import fitness_table
from nasnav.config import SteeringConfig, load_config
from nasnav.errors import InvalidInput
from nasnav.space import SearchSpace, Stage
from nasnav.steering.actions import Action, Op, apply_actions, combine_selections, selection_actions
from nasnav.steering.policy import Decision, Verdict, propose_actions, round_limit, searches_further
from nasnav.store.records import read_candidates, read_decisions, read_space
from nasnav.store.run_dir import RunDir
from nasnav.workflow.autopilot import autopilot_round
from nasnav.workflow.decisions import apply_decision, history, proposal, propose, redo, search_passes, undo
from nasnav.workflow.runs import create_run
from nasnav.workflow.search import score_candidates

HARM = {("s1", "skip"): -0.2, ("s1", "maxpool3x3"): -0.1, ("s3", "dilconv3x3"): -0.15, ("s2", "conv3x3"): 0.05}


class Synthetic:
    """acc = 0.8 + effects + a seeded noise per architecture (deterministic per arch string)."""

    def __init__(self, space: SearchSpace, effects: dict, noise: float = 0.01):
        self.space, self.effects, self.noise = space, effects, noise

    def __call__(self, arch) -> dict:
        rng = np.random.default_rng(zlib.crc32(str(arch).encode()))  # the same noise in every process
        acc = 0.8 + rng.normal(0, self.noise)
        for (s, c), e in self.effects.items():
            if arch.uses(self.space.stage_index(s), c):
                acc += e
        return {"one_shot_acc": acc}


@pytest.fixture
def tiny(tmp_path):
    cfg = load_config("configs/tiny.yaml", ["search.budget=60", "search.projection=pca", "steering.rounds=3",
                                            "steering.min_frequency=3", "steering.protect_top=3"])
    run = create_run(cfg, tmp_path / "run")
    ev = Synthetic(cfg.search_space(), HARM)
    score_candidates(run, cfg, 0, evaluator=ev, fill=True)
    return run, cfg, ev


def test_invalid_actions_name_the_valid_choices_and_write_nothing(tiny):
    run, cfg, _ = tiny
    with pytest.raises(ValueError, match="unknown stage 'nope'; stages: s1, s2, s3"):
        apply_decision(run, cfg, [Action(Op.PRUNE, "nope", "skip")])
    with pytest.raises(ValueError, match="no component 'conv9'; candidates: conv3x3, sepconv3x3, maxpool3x3, skip"):
        apply_decision(run, cfg, [Action(Op.PRUNE, "s1", "conv9")])
    with pytest.raises(ValueError, match="ops: prune, pin, restore"):
        apply_decision(run, cfg, [Action.from_dict({"op": "delete", "stage": "s1", "component": "skip"})])
    with pytest.raises(ValueError, match="last active component"):
        apply_decision(run, cfg, [Action(Op.PRUNE, 2, c) for c in ("conv3x3", "dilconv3x3", "skip")])
    with pytest.raises(ValueError, match="not pruned"):
        apply_decision(run, cfg, [Action(Op.RESTORE, "s1", "skip")])
    with pytest.raises(ValueError, match="pin needs a choice, e.g. s1:conv3x3"):
        apply_decision(run, cfg, [Action(Op.PIN, "s1")])
    with pytest.raises(ValueError, match="action 2: prune needs a component; candidates of 's3'"):
        apply_decision(run, cfg, [Action(Op.PRUNE, "s1", "skip"), Action(Op.PRUNE, "s3")])
    with pytest.raises(ValueError, match="action 1: missing stage; stages: s1, s2, s3"):
        apply_decision(run, cfg, [Action(Op.PRUNE, "", "skip")])
    with pytest.raises(ValueError, match="no actions"):
        apply_decision(run, cfg, [])
    assert run.rounds() == [0] and run.current_round() == 0 and read_decisions(run, 0) == []


def test_decision_writes_the_next_round_with_its_evidence(tiny):
    run, cfg, _ = tiny
    k = apply_decision(run, cfg, [Action(Op.PRUNE, "s1", "skip"), Action(Op.PIN, "1", choice="conv3x3+skip")])
    assert k == 1 and run.current_round() == 1
    space = read_space(run, 1)
    assert space.stages[0].pruned == ("skip",) and space.stages[1].pinned == ("conv3x3", "skip")
    (rec,) = read_decisions(run, 0)
    assert rec["status"] == "applied" and rec["source"] == "analyst" and rec["next_round"] == 1
    assert rec["actions"] == [{"op": "prune", "stage": "s1", "component": "skip"},  # the JSON record, as before
                              {"op": "pin", "stage": "s2", "choice": "conv3x3+skip"}]
    assert rec["space_size"] == 120 and rec["next_space_size"] == 9
    assert {"stage", "component", "fitness", "ci_low", "ci_high", "frequency"} <= set(rec["evidence"][0])
    h = history(run)
    assert list(h["round"]) == [0, 1] and list(h["current"]) == [False, True]
    assert h.loc[0, "decisions"] == "prune s1:skip; pin s2:conv3x3+skip" and h.loc[0, "candidates"] == 60
    k = apply_decision(run, cfg, [Action(Op.RESTORE, "s1", "skip")])
    assert read_space(run, k).stages[0].active == ("conv3x3", "sepconv3x3", "maxpool3x3", "skip")


def test_undo_redo_survive_a_restart_and_a_new_branch_keeps_the_old_files(tiny):
    run, cfg, ev = tiny
    apply_decision(run, cfg, [Action(Op.PRUNE, "s1", "skip")])
    score_candidates(run, cfg, 1, evaluator=ev, budget=10)
    apply_decision(run, cfg, [Action(Op.PRUNE, "s3", "skip")])
    assert run.current_round() == 2
    assert undo(run) == 1 and undo(run) == 0
    with pytest.raises(ValueError, match="nothing to undo"):
        undo(run)
    fresh = RunDir(run.path)  # a restart: the state comes from the files
    assert fresh.current_round() == 0 and redo(fresh) == 1
    assert RunDir(run.path).current_round() == 1
    assert undo(RunDir(run.path)) == 0
    # a different decision on round 0 replaces rounds 1-2, which move (whole) to rounds/abandoned/
    apply_decision(run, cfg, [Action(Op.PRUNE, "s1", "maxpool3x3")])
    assert run.rounds() == [0, 1] and read_space(run, 1).stages[0].pruned == ("maxpool3x3",)
    (moved,) = list((run.path / "rounds" / "abandoned").iterdir())
    assert len(pd.read_csv(moved / "001" / "candidates.csv")) == 10 and (moved / "002" / "space.yaml").exists()
    recs = read_decisions(run, 0)
    assert [r["status"] for r in recs] == ["abandoned", "applied"] and recs[0]["abandoned_to"].startswith("rounds/abandoned/")
    with pytest.raises(ValueError, match="nothing to redo"):
        redo(run)
    events = [e["event"] for e in json.loads((run.path / "history.json").read_text())]
    assert events == ["decision", "decision", "undo", "undo", "redo", "undo", "abandon", "decision"]


def sc(**kw) -> SteeringConfig:
    base = dict(max_prune_per_round=2, min_space_size=4, confidence=0.95, margin=0.0, protect_top=3, min_frequency=3)
    return dataclasses.replace(SteeringConfig(), **{**base, **kw})


def sample_df(space, effects, n=150, seed=0, interaction=None):
    rng = np.random.default_rng(seed)
    archs = list({str(space.sample(rng)): None for _ in range(n)})
    ev = Synthetic(space, effects)
    rows = []
    for a in archs:
        arch = space.parse(a)
        acc = ev(arch)["one_shot_acc"] + (interaction(arch) if interaction else 0.0)
        rows.append({"arch": a, "one_shot_acc": acc})
    return pd.DataFrame(rows)


def ops_space(n_ops=5):
    ops = tuple("abcdefg"[:n_ops])
    return SearchSpace((Stage("s1", ops), Stage("s2", ops), Stage("s3", ops)))


def test_policy_prunes_clearly_worse_components_within_limits():
    space = ops_space()
    df = sample_df(space, {("s1", "a"): -0.1, ("s1", "b"): -0.08, ("s1", "c"): -0.06, ("s2", "e"): -0.1})
    pol = sc()
    decision = propose_actions(fitness_table(df, space, top=pol.protect_top), space, pol)
    assert decision.kind is Verdict.PRUNE and not decision.why
    pruned = {(a.stage, a.component) for a in decision.actions}
    assert pruned == {("s1", "a"), ("s1", "b"), ("s2", "e")}  # at most 2 per stage, the worst first
    assert all(a.op is Op.PRUNE and "lies below" in a.reason and a.evidence["ci_high"] < 0 for a in decision.actions)
    assert all(type(v) in (str, int, float, bool, type(None)) for a in decision.actions for v in a.evidence.values())
    # the space must not go below min_space_size: 125 -> at most one prune with min_space_size 100
    assert len(propose_actions(fitness_table(df, space), space, sc(min_space_size=100)).actions) == 1
    decision = propose_actions(fitness_table(df, space), space, sc(min_space_size=125))
    assert decision.empty and decision.kind is Verdict.SMALL_ENOUGH and "min_space_size" in decision.why
    decision = propose_actions(fitness_table(df, space), space, sc(min_space_size=124))
    assert decision.kind is Verdict.TOO_SMALL_AFTER and "any prune would leave fewer" in decision.why
    decision = propose_actions(fitness_table(df, space), space, sc(min_frequency=1000))
    assert decision.empty and decision.kind is Verdict.NOTHING_CLEARLY_WORSE and "nothing clearly worse" in decision.why
    pinned = SearchSpace(tuple(Stage(s.name, s.candidates, pinned=("a",)) for s in space.stages))
    decision = propose_actions(fitness_table(df, space), pinned, sc(min_space_size=0))
    assert decision.kind is Verdict.NOTHING_LEFT and decision.why.startswith("nothing left to prune")


def test_policy_spares_a_component_that_is_bad_on_average_but_best_in_the_best_cell():
    """s1:a costs 0.05 on average, but s1:a with s3:a is the best cell (an interaction between
    stages that marginal fitness cannot see); s1:b is just bad. Only s1:b may go."""
    space = ops_space()

    def interaction(arch):
        return 0.2 if arch.choices[0] == ("a",) and arch.choices[2] == ("a",) else 0.0

    df = sample_df(space, {("s1", "a"): -0.08, ("s1", "b"): -0.1}, n=250, interaction=interaction)
    fit = fitness_table(df, space, top=3)
    row = fit.set_index(["stage", "component"]).loc[("s1", "a")]
    assert row["ci_high"] < fit.set_index(["stage", "component"]).loc[("s1", "c"), "ci_low"]  # bad on average
    actions = propose_actions(fit, space, sc(protect_top=3)).actions
    assert ("s1", "a") not in {(a.stage, a.component) for a in actions}
    assert ("s1", "b") in {(a.stage, a.component) for a in actions}
    actions = propose_actions(fitness_table(df, space, top=0), space, sc(protect_top=0)).actions  # the tail alone protects it
    assert ("s1", "a") not in {(a.stage, a.component) for a in actions}


def test_autopilot_with_the_defaults_extends_narrows_and_searches_the_narrowed_space(tiny, caplog):
    """The defaults: no pruning by fitness; the first pass is extended (more candidates from the same
    supernet), the pass before the last narrows the space to 1 % of it (at least
    steering.min_space_size) by what the best candidates use, ranked by the model, and the last
    pass searches the narrowed space."""
    run, cfg, ev = tiny
    first = proposal(run, cfg)  # the auto-pilot's first pass: it searches further first
    assert first.empty and "narrowing comes on the pass before the last" in first.why
    assert first.kind is Verdict.NOTHING_CLEARLY_WORSE and searches_further(first, cfg.steering)
    now = proposal(run, cfg, now=True)  # what the app suggests: the analyst decides when to stop searching
    assert now.kind is Verdict.NARROW and all("narrowing to at most 4 architectures" in a.reason for a in now.actions)
    caplog.set_level(logging.INFO, logger='nasnav')
    while autopilot_round(run, cfg, evaluator=ev):
        pass
    final = read_space(run, run.current_round(), cfg.kind)
    assert run.rounds() == [0, 1] and search_passes(run, 1) == 3 and final.size() <= 4
    decisions = read_decisions(run, 0)
    assert decisions[0]["status"] == "extend" and len(read_candidates(run, 0)) == 120  # 60 + 60 more
    assert all("narrowing to at most 4 architectures" in a["reason"] for a in decisions[-1]["actions"])
    assert not {"skip", "maxpool3x3"} & set(final.stages[0].active)  # the harmful ones are out
    assert "dilconv3x3" not in final.stages[2].active
    assert len(read_candidates(run, 1)) == final.size()  # the narrowed space is scored whole
    assert "round limit" in caplog.messages[-1]


def test_autopilot_pruning_by_fitness_rounds_until_the_limit(tiny, caplog):
    run, cfg, ev = tiny
    cfg = dataclasses.replace(cfg, steering=dataclasses.replace(cfg.steering, prune=True, narrow_to=0, extend=False))
    proposed = {(a.stage, a.component) for a in propose(run, cfg)}
    assert {("s1", "skip"), ("s3", "dilconv3x3")} <= proposed and ("s2", "conv3x3") not in proposed
    caplog.set_level(logging.INFO, logger='nasnav')
    while autopilot_round(run, cfg, evaluator=ev):  # the evaluator stands in for the supernet
        pass
    assert run.rounds() == [0, 1, 2] and run.current_round() == 2
    for k in run.rounds():
        for name in ("candidates.csv", "fitness.csv", "projection.csv", "decisions.json"):
            assert (run.round_dir(k) / name).exists(), (k, name)
    h = history(run)
    assert list(h["space_size"]) == sorted(h["space_size"], reverse=True) and h["space_size"].iloc[-1] < 120
    assert "prune s1:skip" in h["decisions"].iloc[0] and "prune s3:dilconv3x3" in h["decisions"].iloc[0]
    assert h["decisions"].iloc[-1].startswith("stop: round limit") and "auto-pilot stops" in caplog.messages[-1]
    assert read_decisions(run, 0)[0]["source"] == "autopilot"


def test_selection_actions_and_set_operations():
    space = ops_space(4)
    sel = ["a/b/c", "a/c/c"]
    keep = selection_actions(space, sel)
    assert all(a.op is Op.PRUNE and "used by none of the 2 selected" in a.reason for a in keep)
    assert {(a.stage, a.component) for a in keep} == {
        ("s1", "b"), ("s1", "c"), ("s1", "d"), ("s2", "a"), ("s2", "d"), ("s3", "a"), ("s3", "b"), ("s3", "d")}
    drop = selection_actions(space, sel, others=["b/b/c", "a/d/a"], mode="drop_outside")
    assert {(a.stage, a.component) for a in drop} == {("s1", "b"), ("s2", "d"), ("s3", "a")}
    with pytest.raises(ValueError, match="empty"):
        selection_actions(space, [])
    with pytest.raises(ValueError, match="modes: keep, drop_outside"):
        selection_actions(space, sel, mode="nope")
    a, b, u = ["x", "y", "z"], ["z", "w"], ["w", "x", "y", "z", "v"]
    assert combine_selections(a, b, "union") == ["x", "y", "z", "w"]
    assert combine_selections(a, b, "intersection") == ["z"]
    assert combine_selections(a, b, "difference") == ["x", "y"]
    assert combine_selections(a, [], "complement", universe=u) == ["w", "v"]
    with pytest.raises(ValueError, match="universe"):
        combine_selections(a, b, "complement")
    with pytest.raises(ValueError, match="union, intersection, difference, complement"):
        combine_selections(a, b, "xor")


# ---- typed actions and decisions --------------------------------------------------------------------
@pytest.mark.parametrize("action", [
    Action(Op.PRUNE, "s1", "skip", reason="worse", evidence={"stage": "s1", "component": "skip", "fitness": -0.1}),
    Action(Op.PIN, "s2", choice=("conv3x3", "skip"), reason="best in every cell"),
    Action(Op.RESTORE, "s3", "dilconv3x3"),
], ids=lambda a: str(a.op))
def test_an_action_round_trips_through_its_json_record(action):
    record = action.to_dict()
    assert Action.from_dict(json.loads(json.dumps(record))) == action
    assert record["op"] == str(action.op) and set(record) <= {"op", "stage", "component", "choice", "reason", "evidence"}


def test_action_records_are_today_s_json_and_bad_ones_say_what_is_valid():
    assert Action(Op.PIN, "s2", choice="conv3x3+skip").to_dict() == {"op": "pin", "stage": "s2", "choice": "conv3x3+skip"}
    assert Action(Op.PRUNE, "s1", "skip", reason="r").to_dict() == {"op": "prune", "stage": "s1", "component": "skip",
                                                                    "reason": "r"}
    assert Action.from_dict({"op": "pin", "stage": 1, "component": "skip"}) == Action(Op.PIN, "1", choice=("skip",))
    assert Action("restore", "s1", "skip").op is Op.RESTORE and str(Action(Op.PRUNE, "s1", "skip")) == "prune s1:skip"
    with pytest.raises(InvalidInput, match=r"^action 3: op 'delete' is unknown; ops: prune, pin, restore$"):
        Action.from_dict({"op": "delete", "stage": "s1", "component": "skip"}, "action 3")
    with pytest.raises(InvalidInput, match=r"^op 'delete' is unknown; ops: prune, pin, restore$"):
        Action("delete", "s1", "skip")
    with pytest.raises(InvalidInput, match=r"^action 1: missing stage$"):
        Action.from_dict({"op": "prune", "component": "skip"}, "action 1")
    with pytest.raises(InvalidInput, match="action: expected a mapping with op, stage and component, got 'prune'"):
        Action.from_dict("prune")
    # evidence is plain JSON-safe data whatever it was built from
    ev = Action(Op.PRUNE, "s1", "skip", evidence={"n": np.int64(3), "f": np.float64(0.5), "nan": np.nan,
                                                  "ok": np.bool_(True)}).evidence
    assert ev == {"n": 3, "f": 0.5, "nan": None, "ok": True} and type(ev["n"]) is int and type(ev["ok"]) is bool
    # applied, an action comes back canonical: the stage by name, a pin's choice as the stage holds it, no evidence
    space = SearchSpace((Stage("s1", ("a", "b", "c")), Stage("s2", ("a", "b", "c"), select="any")))
    new, canon = apply_actions(space, [Action(Op.PRUNE, "0", "a", reason="r", evidence={"x": 1}),
                                       Action(Op.PIN, "s2", choice="c+b")])
    assert canon == [Action(Op.PRUNE, "s1", "a", reason="r"), Action(Op.PIN, "s2", choice=("b", "c"))]
    assert new.stages[0].pruned == ("a",)
    with pytest.raises(TypeError, match="Action.from_dict"):
        apply_actions(space, [{"op": "prune", "stage": "s1", "component": "a"}])


def test_decision_kind_when_every_clearly_worse_prune_would_leave_too_few():
    """s2 has two components, so pruning its bad one halves the space, while one prune in s1
    would leave more: the evidence is there, the size limit stops it."""
    five = tuple("abcde")
    space = SearchSpace((Stage("s1", five), Stage("s2", ("a", "b")), Stage("s3", five)))
    df = sample_df(space, {("s2", "a"): -0.1}, n=400)
    decision = propose_actions(fitness_table(df, space, top=3), space, sc(min_space_size=30))
    assert decision.empty and decision.kind is Verdict.TOO_SMALL_AFTER
    assert decision.why == ("1 clearly worse component(s), but pruning any would leave fewer than "
                            "steering.min_space_size=30 architectures")
    assert propose_actions(fitness_table(df, space, top=3), space, sc(min_space_size=25)).kind is Verdict.PRUNE


def test_the_auto_pilot_extends_exactly_when_nothing_is_clearly_worse_and_extend_is_on(tiny, monkeypatch):
    """The auto-pilot reads the decision's kind, never its words: every kind without actions, with
    steering.extend on and off; only NOTHING_CLEARLY_WORSE with extend on searches the round further."""
    from nasnav.workflow import autopilot

    run, cfg, ev = tiny
    extended = []
    monkeypatch.setattr(autopilot, "extend_round", lambda run, cfg, evaluator=None: extended.append(run.current_round()))
    empty = [v for v in Verdict if v not in (Verdict.PRUNE, Verdict.NARROW)]
    for extend in (True, False):
        steer = dataclasses.replace(cfg.steering, extend=extend, rounds=100)
        c = dataclasses.replace(cfg, steering=steer)
        for kind in empty:
            monkeypatch.setattr(autopilot, "decide", lambda *a, kind=kind: Decision.nothing(kind, f"told: {kind}"))
            before = len(extended)
            searched = autopilot_round(run, c, evaluator=ev)
            last = read_decisions(run, 0)[-1]
            expected = kind is Verdict.NOTHING_CLEARLY_WORSE and extend
            assert searched == expected == (len(extended) > before) == searches_further(Decision.nothing(kind, ""), steer)
            assert last["status"] == ("extend" if expected else "stop")
            assert last.get("why" if expected else "stop") == f"told: {kind}"
    # the pass limit is the caller's: once steering.rounds passes are spent, decide is not asked
    spent = dataclasses.replace(cfg, steering=dataclasses.replace(cfg.steering, extend=True, rounds=1))
    assert round_limit(spent.steering).kind is Verdict.ROUND_LIMIT
    assert not autopilot_round(run, spent, evaluator=ev)
    assert read_decisions(run, 0)[-1]["stop"] == "round limit reached (steering.rounds=1)" == round_limit(spent.steering).why
