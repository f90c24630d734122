"""The two answers of a spot check (nasnav.analysis.trust): samples, statistics, verdicts, words."""

import numpy as np
import pytest

from nasnav.analysis import trust
from nasnav.space import SearchSpace, Stage


def _space():
    return SearchSpace((Stage("s1", ("a", "b", "c")), Stage("s2", ("x", "y", "z", "w")),
                        Stage("s3", ("p", "q", "r"), select="any", max_active=2)))


# ---- samples --------------------------------------------------------------------------------------------
def test_stratified_sample_balances_components_and_is_seeded():
    space = _space()
    archs = trust.stratified_sample(space, 12, np.random.default_rng(0))
    assert len({str(a) for a in archs}) == 12 and all(space.contains(a) for a in archs)
    for i, stage in enumerate(space.stages[:2]):  # single-select stages: each component equally often
        counts = [sum(a.uses(i, c) for a in archs) for c in stage.active]
        assert max(counts) - min(counts) <= 1, counts
    again = trust.stratified_sample(space, 12, np.random.default_rng(0))
    assert [str(a) for a in again] == [str(a) for a in archs]
    small = space.prune(0, "a").prune(0, "b").pin(1, "x").pin(2, "p")
    assert sorted(str(a) for a in trust.stratified_sample(small, 10, np.random.default_rng(1))) == ["c/x/p"]


def test_top_candidates_are_the_best_distinct_ones():
    assert trust.top_candidates(["a", "b", "a", "c", "d"], [0.5, 0.9, 0.95, float("nan"), 0.9], 3) == ["a", "b", "d"]


# ---- statistics -----------------------------------------------------------------------------------------
def test_noise_stats_pooled_sd_ceiling_and_anova():
    acc = np.array([[0.90, 0.92], [0.80, 0.82], [0.70, 0.72], [0.60, 0.62]])
    s = trust.noise_stats(acc)
    assert s["seed_sd"] == pytest.approx(np.sqrt(0.0002))
    assert s["ceiling"] == pytest.approx(1.0) and s["differ_p"] < 1e-3
    assert s["range"] == pytest.approx(0.30)
    flat = trust.noise_stats(np.array([[0.9, 0.91], [0.91, 0.9], [0.905, 0.905], [0.9, 0.91]]))
    assert flat["differ_p"] > 0.5


# ---- question 1: prune by fitness -----------------------------------------------------------------------
def test_prune_yes_when_one_shot_orders_a_spread_out_space():
    truth = np.linspace(0.5, 0.95, 20)
    rng = np.random.default_rng(0)
    acc = truth[:, None] + rng.normal(0, 0.003, (20, 2))
    a = trust.prune_answer(truth - 0.2 + rng.normal(0, 0.02, 20), acc, epochs=5)
    assert a["verdict"] == "yes" and a["kendall_tau"] > 0.8 and a["n"] == 20
    assert a["text"].startswith("Prune by fitness: yes") and "Kendall tau" in a["text"] and "5 epochs x 2" in a["text"]


def test_prune_no_and_partly():
    truth = np.linspace(0.5, 0.95, 20)
    acc = np.stack([truth, truth + 0.004], 1)
    assert trust.prune_answer(truth[::-1], acc)["verdict"] == "no"
    rng = np.random.default_rng(3)
    noisy = truth + rng.normal(0, 0.25, 20)  # a weak trend
    a = trust.prune_answer(noisy, acc)
    assert a["verdict"] in ("partly", "no", "yes")
    assert trust.answer_text(a) == a["text"]


def test_prune_equivalent_when_training_cannot_tell_them_apart():
    rng = np.random.default_rng(0)
    acc = 0.97 + rng.normal(0, 0.004, (12, 2))
    a = trust.prune_answer(np.linspace(0.5, 0.9, 12), acc)
    assert a["verdict"] == "equivalent" and "nothing to gain" in a["text"] and "pick by cost" in a["text"]


def test_too_few_and_single_seed_are_not_judged():
    assert trust.prune_answer([0.5, 0.6, 0.7], [[0.9, 0.9], [0.8, 0.8], [0.7, 0.7]])["verdict"] == "too_few"
    a = trust.pick_answer(np.linspace(0.5, 0.9, 6), np.linspace(0.5, 0.9, 6)[:, None])
    assert a["verdict"] == "no_noise" and "2 seeds" in a["text"]


# ---- question 2: pick the winner ------------------------------------------------------------------------
def test_pick_equivalent_says_within_how_much_and_pick_by_cost():
    rng = np.random.default_rng(1)
    acc = 0.985 + rng.normal(0, 0.0036, (8, 2))  # the case: a spread of about one seed's noise
    a = trust.pick_answer(np.linspace(0.99, 0.95, 8), acc, epochs=20)
    assert a["verdict"] == "equivalent"
    assert "equivalent within" in a["text"] and "pick by cost" in a["text"].lower()
    assert "unreliable" not in a["text"]


def test_pick_yes_when_the_one_shot_top_holds_the_best():
    truth = np.array([0.99, 0.98, 0.97, 0.93, 0.92, 0.90, 0.88, 0.85])
    acc = np.stack([truth, truth + 0.002], 1)
    a = trust.pick_answer(np.linspace(0.9, 0.8, 8), acc)
    assert a["verdict"] == "yes" and a["regret"] == pytest.approx(0.0) and a["k"] == 2
    assert a["gap"] > 0.05 and "yes" in trust.short_line({"pick": a})


def test_pick_no_when_the_one_shot_top_misses_the_best():
    truth = np.array([0.85, 0.86, 0.90, 0.93, 0.95, 0.97, 0.98, 0.99])  # one-shot order reversed
    acc = np.stack([truth, truth + 0.002], 1)
    a = trust.pick_answer(np.linspace(0.9, 0.8, 8), acc)
    assert a["verdict"] == "no" and a["regret"] > 0.05 and "retrain all 8" in a["text"]


def test_short_line_names_both_questions():
    line = trust.short_line({})
    assert "Prune by fitness" in line and "Pick the winner" in line and "not checked" in line


def test_advised_retrain_follows_the_pick_answer():
    acc = 0.985 + np.random.default_rng(1).normal(0, 0.0036, (4, 2))
    one_shot = [0.99, 0.98, 0.97, 0.96]
    rows = [{"sample": "top", "arch": f"a{i}", "one_shot_acc": one_shot[i], "params": p}
            for i, p in enumerate([500, 300, 900, 700])]
    equivalent = {"answers": {"pick": trust.pick_answer(one_shot, acc)}, "pairs": rows}
    assert equivalent["answers"]["pick"]["verdict"] == "equivalent"
    archs, why = trust.advised_retrain(equivalent)
    assert archs == ["a1"] and "smallest" in why and "300 params" in why  # pick by cost
    truth = np.array([0.99, 0.95, 0.90, 0.85])
    yes = {"answers": {"pick": trust.pick_answer(one_shot, np.stack([truth, truth + 0.002], 1))}, "pairs": rows}
    assert trust.advised_retrain(yes)[0] == ["a0"]  # the one-shot top k (k = 1 of 4)
    no = {"answers": {"pick": trust.pick_answer(one_shot, np.stack([truth[::-1], truth[::-1] + 0.002], 1))},
          "pairs": rows}
    assert trust.advised_retrain(no)[0] == ["a0", "a1", "a2", "a3"]  # all of them, then choose by validation
    assert trust.advised_retrain(None) is None and trust.advised_retrain({"answers": {}}) is None


# ---- edge cases a review found ----------------------------------------------------------------------------
def test_a_reversed_ranking_is_never_yes_even_against_a_negative_ceiling():
    truth = np.linspace(0.5, 0.95, 20)
    # seed 2 reverses seed 1 (a negative ceiling); one-shot reverses the mean
    acc = np.stack([truth, truth[::-1] + 0.0001 * np.arange(20)], 1)
    a = trust.prune_answer(-truth, acc)
    assert a["ceiling"] is not None and a["ceiling"] < 0
    assert a["verdict"] != "yes"


def test_non_finite_accuracies_are_missing_not_equal():
    truth = np.linspace(0.5, 0.95, 12)
    acc = np.stack([truth, truth + 0.003], 1)
    acc[3, 1] = np.nan
    a = trust.prune_answer(truth, acc)
    assert a["n"] == 11 and a["differ_p"] < 0.001 and a["verdict"] == "yes"
    scores = truth.copy()
    scores[5] = np.nan
    assert trust.prune_answer(scores, np.stack([truth, truth + 0.003], 1))["n"] == 11


def test_the_ceiling_ignores_seed_columns_without_an_order():
    acc = np.array([[0.9, 0.5, 0.91], [0.8, 0.5, 0.79], [0.7, 0.5, 0.71], [0.6, 0.5, 0.62]])
    s = trust.noise_stats(acc)
    assert s["seed_pair_taus"] == [pytest.approx(1.0)]  # only seeds 1 and 3 order the architectures
    assert s["ceiling"] == pytest.approx(1.0)
