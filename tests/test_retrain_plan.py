"""What a press of "Retrain & export" retrains, and the walkthrough's words about it (issue 27): one source
for both, with the count of networks and the time the run's own timings give."""

from __future__ import annotations

import re

import numpy as np
import pytest

from nasnav.analysis import trust
from nasnav.config import load_config, preset_path
from nasnav.store import records
from nasnav.store.io import write_json
from nasnav.ui import guide, retrain_plan
from nasnav.workflow.runs import create_run


@pytest.fixture
def run(tmp_path):
    """A tiny run at the retrain step: round 1 (the round-0 space again) trained and searched."""
    cfg = load_config(preset_path("tiny"))
    run = create_run(cfg, tmp_path / "r")
    records.write_space(run, 1, records.read_space(run, 0, kind=cfg.kind))
    run.set_current_round(1)
    (run.round_dir(1) / "supernet.ckpt").write_bytes(b"x")
    (run.round_dir(1) / "candidates.csv").write_text("arch,one_shot_acc\na,0.5\n")
    return run


def spot_check(run, verdict: str, n: int = 6) -> list[str]:
    """A spot-check summary of round 0 as the spot check writes it, whose pick answer is ``verdict``;
    returns its top sample (best one-shot first)."""
    space = records.read_space(run, 0, kind="image")
    archs = list(dict.fromkeys(str(a) for a in space))[:n]
    one_shot = list(np.linspace(0.99, 0.90, n))
    truth = np.linspace(0.99, 0.80, n)
    acc = {"yes": truth, "no": truth[::-1]}[verdict]
    answer = trust.pick_answer(one_shot, np.stack([acc, acc + 0.002], 1), epochs=2)
    assert answer["verdict"] == verdict
    pairs = [{"sample": "top", "arch": a, "one_shot_acc": o, "params": 100} for a, o in zip(archs, one_shot)]
    write_json(run.round_dir(0) / "spotcheck.json", {"state": "done", "epochs": 2, "seeds": 2,
                                                      "answers": {"pick": answer}, "pairs": pairs})
    return archs


def networks(words: str) -> int:
    return int(re.search(r"retrain (\d+) networks? from scratch", words).group(1))


def test_without_a_spot_check_a_press_retrains_one_network(run):
    cfg = load_config(run.config_path)
    plan = retrain_plan.default_plan(run, cfg)
    assert (plan.n, plan.seeds, plan.epochs, plan.source) == (1, cfg.retrain.seeds, cfg.retrain.epochs,
                                                              "the recommended candidate")
    step = guide.next_step(run)
    assert step.action == guide.RETRAIN_EXPORT and networks(step.why) == 1
    assert "no timing in this run yet" in step.why  # nothing trained yet: no made-up time


def test_a_spot_check_that_says_no_makes_the_walkthrough_name_all_it_advises(run):
    archs = spot_check(run, "no")
    cfg = load_config(run.config_path)
    advised = retrain_plan.advice_in_space(run, cfg)[0]
    assert advised == archs  # all of them (the old words said "the best candidate": one)
    step = guide.next_step(run)
    assert networks(step.why) == len(archs) == 6 and "as the spot check advises" in step.why
    assert retrain_plan.default_mode(run, cfg) == retrain_plan.ADVISED  # the picker opens on the same
    spot_check(run, "yes")
    assert networks(guide.next_step(run).why) == 2  # the one-shot top third of 6


def test_the_page_s_own_selection_wins_over_the_default(run):
    spot_check(run, "no")
    cfg = load_config(run.config_path)
    chosen = retrain_plan.plan(run, cfg, 3, seeds=2, mode=retrain_plan.CHOOSE)
    words = guide.next_step(run, chosen).why
    assert networks(words) == 3 and "3 x 2 seeds x 8 epochs" in words and "the candidates you chose" in words
    assert "choose at least one" in retrain_plan.plan(run, cfg, 0).words()


def test_the_time_comes_from_the_run_s_own_timings(run):
    cfg = load_config(run.config_path)
    assert retrain_plan.seconds_per_epoch(run) is None
    # the supernet's epochs, when nothing was trained standalone
    (run.round_dir(0) / "metrics.csv").write_text("epoch,seconds\n0,2.0\n1,4.0\n2,3.0\n")
    assert retrain_plan.seconds_per_epoch(run) == pytest.approx(3.0)
    # standalone trainings (a spot check's) win: 10 s over 2 epochs, 6 s over 2 epochs -> median 4 s/epoch
    (run.round_dir(0) / "spotcheck_runs.csv").write_text(
        "arch,seed,epochs,standalone_acc,val_loss,seconds,fingerprint\na,0,2,0.9,0.1,10,f\nb,0,2,0.8,0.2,6,f\n"
        "c,0,2,0.8,0.2,,f\n")
    assert retrain_plan.seconds_per_epoch(run) == pytest.approx(4.0)
    plan = retrain_plan.plan(run, cfg, 5, seeds=2)
    assert plan.seconds == pytest.approx(5 * 2 * cfg.retrain.epochs * 4.0)
    assert f"about {retrain_plan.duration(plan.seconds)} by this run's own timings" in plan.words()
    assert [retrain_plan.duration(s) for s in (45, 200, 3900)] == ["45s", "3m 20s", "1h 05m"]
