"""Spot check of the supernet's ranking: candidate choice, statistics, verdicts, files, stop and resume."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nasnav.cli import main
from nasnav.config import load_config
from nasnav.stop import JobStopped, clear_stop, request_stop
from nasnav.store.io import read_csv, read_json
from nasnav.store.records import read_spotcheck
from nasnav.workflow import spotcheck, trainings
from nasnav.workflow.runs import create_run
from nasnav.workflow.search import score_candidates
from nasnav.workflow.supernet import train_supernet

REPO = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("single_thread")  # tiny networks: one thread (conftest)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cfg = load_config(
        REPO / "configs" / "tiny.yaml",
        ["steering.autopilot=false", "supernet.epochs=2", "search.budget=12", "retrain.spotcheck_epochs=1"],
    )
    run = create_run(cfg, tmp_path_factory.mktemp("spot") / "run")
    train_supernet(run, cfg, 0)
    score_candidates(run, cfg, 0)
    return run, cfg


# ---- choosing candidates ------------------------------------------------------------------
def _ranked(n):
    return pd.DataFrame({"arch": [f"a{i}" for i in range(n)], "one_shot_acc": np.linspace(0.9, 0.1, n)})


def test_candidates_spread_over_the_ranking_and_include_the_top():
    df = _ranked(40)
    picks = spotcheck.pick_candidates(df, 5, seed=[0, 0, 23])
    idx = sorted(int(a[1:]) for a in picks)
    assert idx[0] == 0 and len(set(idx)) == 5
    assert [i // 8 for i in idx] == [0, 1, 2, 3, 4]  # one per fifth of the ranking, not only the top
    assert spotcheck.pick_candidates(df, 5, seed=[0, 0, 23]) == picks  # seeded
    assert spotcheck.pick_candidates(df, 5, seed=[1, 0, 23]) != picks
    assert sorted(spotcheck.pick_candidates(df, 99, seed=0)) == sorted(df["arch"])  # fewer than asked: all


def test_unscored_and_duplicate_candidates_are_skipped():
    df = pd.DataFrame({"arch": ["a", "b", "b", "c"], "one_shot_acc": [0.5, 0.4, 0.6, None]})
    assert sorted(spotcheck.pick_candidates(df, 10, seed=0)) == ["a", "b"]


# ---- statistics and verdicts ----------------------------------------------------------------
def _pairs(one_shot, seeds_acc):
    accs = np.asarray(seeds_acc, float)
    pairs = pd.DataFrame(
        {
            "arch": [f"a{i}" for i in range(len(one_shot))],
            "one_shot_acc": one_shot,
            "standalone_acc": accs.mean(1),
            "standalone_std": accs.std(1, ddof=1) if accs.shape[1] > 1 else 0,
        }
    )
    return pairs, {a: list(r) for a, r in zip(pairs["arch"], accs)}


def test_agreeing_ranking_is_reliable():
    one_shot = np.linspace(0.5, 0.9, 10)
    pairs, seeds = _pairs(one_shot, np.stack([one_shot + 0.05, one_shot + 0.06], 1))
    s = spotcheck.summarize(pairs, seeds, epochs=5, seeds=2)
    assert s["kendall_tau"] == pytest.approx(1.0) and s["spearman_rho"] == pytest.approx(1.0)
    assert s["ceiling_tau"] == pytest.approx(1.0) and s["kendall_p"] < 0.001
    assert s["verdict"] == "reliable" and s["n"] == 10


def test_low_seed_to_seed_agreement_says_indistinguishable():
    rng = np.random.default_rng(0)
    one_shot = np.linspace(0.5, 0.9, 10)
    seed_accs = 0.97 + rng.normal(0, 0.01, (10, 2))  # all alike: only noise orders them
    seed_accs[:, 1] = seed_accs[::-1, 0]  # the second seed orders them the other way round
    pairs, seeds = _pairs(one_shot, seed_accs)
    s = spotcheck.summarize(pairs, seeds, epochs=5, seeds=2)
    assert s["ceiling_tau"] < spotcheck.CEILING_MIN
    assert s["verdict"] == "indistinguishable" and "indistinguishable" in s["verdict_text"]
    assert "5 epochs" in s["verdict_text"]


def test_opposite_ranking_is_unreliable_and_edge_cases():
    one_shot = np.linspace(0.5, 0.9, 8)
    pairs, seeds = _pairs(one_shot, np.stack([1 - one_shot, 1.01 - one_shot], 1))
    s = spotcheck.summarize(pairs, seeds, epochs=5, seeds=2)
    assert s["kendall_tau"] == pytest.approx(-1.0) and s["verdict"] == "unreliable"
    pairs, seeds = _pairs(one_shot[:3], np.stack([one_shot[:3]] * 2, 1))
    assert spotcheck.summarize(pairs, seeds, 5, 2)["verdict"] == "too_few"
    pairs, seeds = _pairs(one_shot, one_shot[:, None])
    s = spotcheck.summarize(pairs, seeds, 5, 1)
    assert s["verdict"] == "no_ceiling" and s["ceiling_tau"] is None
    pairs, seeds = _pairs(np.full(8, 0.5), np.stack([one_shot, one_shot], 1))
    s = spotcheck.summarize(pairs, seeds, 5, 2)
    assert s["kendall_tau"] is None and s["verdict"] == "unreliable"  # constant one-shot: no order at all


# ---- the job ------------------------------------------------------------------------------
def test_spotcheck_writes_pairs_statistics_and_progress(tiny):
    run, cfg = tiny
    s = spotcheck.spotcheck(run, cfg, 4)
    rdir = run.round_dir(0)
    pairs = read_csv(rdir / "spotcheck.csv")
    for c in ("arch", "one_shot_acc", "standalone_acc", "standalone_std", "seed_accs"):
        assert c in pairs.columns
    assert len(pairs) == 4 and s["n"] == 4 and s["seeds"] == 2 and s["epochs"] == 1
    assert len(read_csv(rdir / "spotcheck_runs.csv")) == 8  # 4 candidates x 2 seeds
    saved = read_json(rdir / "spotcheck.json")
    for k in (
        "kendall_tau",
        "kendall_p",
        "spearman_rho",
        "spearman_p",
        "ceiling_tau",
        "verdict",
        "verdict_text",
        "pairs",
    ):
        assert k in saved
    assert saved["state"] == "done" and read_spotcheck(run)["verdict"] == s["verdict"]
    status = run.read_status()
    assert status["progress"] == pytest.approx(1.0) and "spot check" in status["message"]
    again = spotcheck.spotcheck(run, cfg, 4)  # everything reused
    assert again["trained_now"] == 0 and again["kendall_tau"] == s["kendall_tau"]


def test_stopped_spotcheck_keeps_finished_pairs_and_resumes(tiny, monkeypatch):
    run, cfg = tiny
    calls = []
    train = trainings.train_standalone

    def counting(*a, **k):
        calls.append(a[4])
        out = train(*a, **k)
        if len(calls) == 3:
            request_stop()  # as SIGTERM would
        return out

    monkeypatch.setattr(trainings, "train_standalone", counting)
    with pytest.raises(JobStopped):
        spotcheck.spotcheck(run, cfg, 5, epochs=2)
    rdir = run.round_dir(0)
    assert len(calls) == 3
    assert len(read_csv(rdir / "spotcheck.csv")) == 1  # the first candidate (2 seeds) is complete
    runs = read_csv(rdir / "spotcheck_runs.csv")
    assert (runs["epochs"] == 2).sum() == 3
    assert read_json(rdir / "spotcheck.json")["state"] == "stopped"
    clear_stop()
    s = spotcheck.spotcheck(run, cfg, 5, epochs=2)
    assert len(calls) == 10 and s["trained_now"] == 7 and s["n"] == 5  # the three finished trainings reused
    assert len(read_csv(rdir / "spotcheck.csv")) == 5


def test_spotcheck_cli(tiny, capsys):
    run, cfg = tiny
    assert main(["spotcheck", str(run.path), "--n", "4", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Kendall tau" in out and "ceiling" in out and "verdict" in out
    assert main(["spotcheck", str(run.path), "--n", "0"]) == 2
    assert main(["spotcheck", str(run.path), "--n", "3", "--seeds", "0"]) == 2
    assert "--seeds" in capsys.readouterr().err


def test_spotcheck_without_candidates_is_a_value_error(tmp_path):
    cfg = load_config(REPO / "configs" / "tiny.yaml", ["steering.autopilot=false"])
    run = create_run(cfg, tmp_path / "run")
    with pytest.raises(ValueError, match="no scored candidates"):
        spotcheck.spotcheck(run, cfg, 4)
