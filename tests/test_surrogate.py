"""The surrogate of accuracy (nasnav.analysis.surrogate) and the proposers that use it or walk
neighbourhoods (nasnav.search.guided): on small synthetic spaces, in seconds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nasnav.analysis.surrogate import Surrogate, decode, encode, enumerate_codes, fit_frame, make_fit, pick
from nasnav.search.guided import Guided, Local, neighbours
from nasnav.space import SearchSpace, Stage
from tests.conftest import image_space


def _space() -> SearchSpace:
    return SearchSpace(tuple(Stage(f"s{i}", ("a", "b", "c", "d")) for i in range(4)))


def _truth(space: SearchSpace) -> dict[str, float]:
    """An interaction: "c" on s2 is poor on average, best with "a" everywhere else."""
    out = {}
    for arch in space:
        ch = [c[0] for c in arch.choices]
        acc = 0.8 + 0.01 * ch.count("a") - 0.03 * ch.count("d")
        if ch[2] == "c":
            acc += 0.02 * sum(c == "a" for i, c in enumerate(ch) if i != 2) - 0.04
        out[str(arch)] = acc
    return out


def test_encoding_round_trips_for_one_and_any_stages():
    space = image_space()  # s2 is an "any" stage
    archs = list(space)
    codes = encode(space, archs)
    assert codes.shape == (len(archs), 3)
    assert decode(space, codes) == [str(a) for a in archs]
    assert (enumerate_codes(space) == codes).all()  # same order as iterating the space
    assert (encode(space, [str(a) for a in archs]) == codes).all()
    pruned = space.prune("s1", "skip")
    assert len(enumerate_codes(pruned)) == pruned.size()
    assert set(decode(space, enumerate_codes(pruned))) == {str(a) for a in pruned}


def test_the_surrogate_learns_an_interaction_and_knows_where_it_is_unsure():
    space = _space()
    truth = _truth(space)
    rng = np.random.default_rng(0)
    keys = list(truth)
    seen = [keys[i] for i in rng.choice(len(keys), 120, replace=False)]
    y = np.array([truth[k] for k in seen]) + rng.normal(0, 0.003, len(seen))
    s = Surrogate.fit(encode(space, seen), y)
    rest = [k for k in keys if k not in set(seen)]
    mean, sd = s.predict(encode(space, rest))
    assert np.corrcoef(mean, [truth[k] for k in rest])[0, 1] > 0.9
    assert s.predict(encode(space, ["a/a/c/a"]))[0][0] > s.predict(encode(space, ["a/a/b/a"]))[0][0] - 0.005
    # uncertainty: small at scored candidates, larger far from everything scored
    _, sd_seen = s.predict(encode(space, seen[:10]))
    assert sd_seen.max() < sd.mean()
    few = Surrogate.fit(encode(space, ["a/a/a/a", "a/a/a/b", "a/a/b/a"]), np.array([0.8, 0.79, 0.78]), theta=1.0, noise=0.1)
    near, far = few.predict(encode(space, ["a/a/a/c", "d/d/d/d"]))[1]
    assert near < far
    mu, _ = few.predict(encode(space, ["d/d/d/d"]), sd=False)
    assert mu[0] == pytest.approx(few.mean, abs=0.01)  # far from the data: the prior mean
    loo_mean, loo_sd = s.loo()
    assert loo_mean.shape == loo_sd.shape == (len(seen),) and (loo_sd > 0).all()


def test_the_surrogate_pick_discounts_a_lucky_score():
    """Every "d" costs 3 points; one "d" cell scores best by a lucky 2.5 points: the best own score
    picks it, the posterior mean (blend 0) a clean cell."""
    space = _space()
    truth = _truth(space)
    rng = np.random.default_rng(1)
    keys = [k for k in truth if k.split("/")[2] != "c"]
    seen = list(rng.choice(keys, 150, replace=False))
    y = np.array([truth[k] for k in seen]) + rng.normal(0, 0.002, len(seen))
    lucky = next(i for i, k in enumerate(seen) if k.count("d") == 1 and k.count("a") >= 2)
    y[lucky] = y.max() + 0.025
    s = Surrogate.fit(encode(space, seen), y)
    assert int(np.argmax(y)) == lucky == pick(s, blend=1.0)
    assert pick(s, blend=0.0) != lucky and "d" not in seen[pick(s, blend=0.0)]
    assert s.smoothed()[lucky] < y[lucky] - 0.01


def test_fit_frame_takes_the_candidates_of_the_space_and_refuses_too_few():
    space = _space()
    df = pd.DataFrame({"arch": ["a/a/a/a", "a/a/a/b", "b/b/b/b", "a/a/a/a", "zz"], "one_shot_acc": [0.9, 0.8, 0.7, 0.9, 1.0]})
    s, archs = fit_frame(df, space.prune("s0", "b"))  # a pruned component's candidates still count as evidence
    assert archs == ["a/a/a/b", "b/b/b/b", "a/a/a/a"] and s is not None and len(s.y) == 3  # a repeat: its latest
    assert fit_frame(df.head(2), space) == (None, ["a/a/a/a", "a/a/a/b"])
    with pytest.raises(ValueError, match="surrogate"):
        Surrogate.fit(np.zeros((2, 4)), np.zeros(3))


def _run(proposer, evaluate, budget: int) -> list[str]:
    out = []
    while len(out) < budget:
        nxt = proposer.propose()
        if nxt is None:
            break
        arch, meta = nxt
        proposer.seen.add(str(arch))
        proposer.tell(arch, {"one_shot_acc": evaluate(str(arch))}, meta)
        out.append(str(arch))
    return out


def test_guided_proposals_never_repeat_exhaust_the_space_and_find_the_best_sooner():
    space = _space()
    truth = _truth(space)
    fit = make_fit(space)
    g = Guided(space, np.random.default_rng(0), set(), fit, warmup=10)
    every = _run(g, truth.get, 1000)
    assert len(every) == len(set(every)) == space.size()  # no repeats, and the whole space in the end
    best = max(truth, key=truth.get)
    assert best == "a/a/c/a"
    found = {"guided": [], "random": []}
    for seed in range(4):
        g = Guided(space, np.random.default_rng(seed), set(), make_fit(space), warmup=10)
        found["guided"].append(_run(g, truth.get, 256).index(best))
        found["random"].append(int(np.random.default_rng(seed).permutation(256).tolist().index(0)))
    assert np.mean(found["guided"]) < 60 < np.mean(found["random"])


def test_every_second_guided_proposal_is_a_neighbour_of_the_best_own_score():
    space = _space()
    truth = _truth(space)
    g = Guided(space, np.random.default_rng(1), set(), make_fit(space), warmup=10)
    _run(g, truth.get, 10)  # the warm-up: uniform draws
    for step in range(1, 21):
        incumbent = max(g.inside, key=lambda a: g.scored[str(a)][1])
        arch, _ = g.propose()
        g.seen.add(str(arch))
        g.tell(arch, {"one_shot_acc": truth[str(arch)]}, {})
        if step % 2 == 0:  # one stage changed from the best scored so far
            assert sum(x != y for x, y in zip(arch.choices, incumbent.choices)) == 1
    plain = Guided(space, np.random.default_rng(1), set(), make_fit(space), warmup=10, local_every=0)
    _run(plain, truth.get, 10)
    moves = []
    for _ in range(20):
        incumbent = max(plain.inside, key=lambda a: plain.scored[str(a)][1])
        arch, _ = plain.propose()
        plain.seen.add(str(arch))
        plain.tell(arch, {"one_shot_acc": truth[str(arch)]}, {})
        moves.append(sum(x != y for x, y in zip(arch.choices, incumbent.choices)))
    assert any(m != 1 for m in moves[1::2])  # without the local moves, the model alone decides


def test_guided_proposals_stay_in_a_pruned_space_and_use_the_history():
    from nasnav.search.loop import Member

    space = _space().prune("s0", "d").prune("s1", "d")
    history = [Member(space.parse("a/a/a/a"), 0.9, 0), Member(space.parse("b/b/b/b"), 0.7, 0)]
    g = Guided(space, np.random.default_rng(0), {"a/a/a/a", "b/b/b/b"}, make_fit(space), history=history, warmup=2)
    assert len(g.scored) == 2
    got = _run(g, _truth(_space()).get, 40)
    assert all(space.contains(space.parse(a)) for a in got) and "a/a/a/a" not in got


def test_local_search_walks_the_neighbourhood_of_the_best_then_restarts():
    space = _space()
    truth = _truth(space)
    assert len(neighbours(space, space.parse("a/a/a/a"))) == 12
    loc = Local(space, np.random.default_rng(0), set())
    best, walked, restarts = None, 0, 0
    for _ in range(120):
        arch, _ = loc.propose()
        if best is not None:
            differ = sum(x != y for x, y in zip(arch.choices, space.parse(best).choices))
            walked += differ == 1  # a neighbour of the best so far ...
            restarts += differ > 1  # ... or a restart once its neighbourhood is used up
        loc.seen.add(str(arch))
        loc.tell(arch, {"one_shot_acc": truth[str(arch)]}, {})
        best = str(loc.best[0]) if loc.best else None
    assert walked > 100 and restarts >= 1
    every = _run(Local(space, np.random.default_rng(1), set()), truth.get, 1000)
    assert len(every) == len(set(every)) == space.size()


def test_beyond_max_fit_it_fits_the_best_and_a_spread_yet_recommends_every_candidate(monkeypatch):
    from nasnav.analysis import surrogate

    monkeypatch.setattr(surrogate, "MAX_FIT", 60)
    space = SearchSpace(tuple(Stage(f"s{i}", ("a", "b", "c", "d", "e")) for i in range(4)))  # 625 architectures
    rng = np.random.default_rng(3)
    archs = [str(a) for a in list(space)[::3]][:200]
    y = rng.uniform(0.5, 0.9, len(archs))
    rows = surrogate.fitted_rows(y, 60)
    assert len(rows) == 60 and list(rows) == sorted(set(rows))
    assert set(np.argsort(-y)[:30]) <= set(rows)  # the best half of the cap
    assert y[rows].min() == y.min()  # the spread reaches the worst
    assert list(surrogate.fitted_rows(y[:40], 60)) == list(range(40))  # below the cap: all
    df = pd.DataFrame({"arch": archs, "one_shot_acc": y})
    model, fitted = fit_frame(df, space)
    assert len(model.y) == 60 and len(fitted) == 200
    rec = surrogate.recommend(df, space, blend=0.2)
    assert len(rec) == 200 and rec["predicted"].notna().all()  # candidates left out of the fit are predicted
    own = dict(zip(archs, y))
    assert all(own[a] == s for a, s in zip(rec["arch"], rec["score"]))


def test_predicted_best_leaves_out_candidates_that_were_tried_and_failed():
    from nasnav.analysis.surrogate import predicted_best

    space = _space()
    truth = _truth(space)
    archs = [str(a) for a in list(space)[::7]]
    df = pd.DataFrame({"arch": archs, "one_shot_acc": [truth[a] for a in archs]})
    first = predicted_best(df, space, n=3)
    failed = pd.DataFrame({"arch": [first["arch"].iloc[0]], "one_shot_acc": [np.nan]})  # scored, but NaN
    again = predicted_best(pd.concat([df, failed]), space, n=3)
    assert first["arch"].iloc[0] not in set(again["arch"])
