"""Spot check of the one-shot score: the two samples, trainings shared and reused, both answers, files,
stop and resume, the CLI. (The statistics and words themselves: tests/test_trust.py.)"""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nasnav.analysis import trust
from nasnav.cli import main
from nasnav.config import load_config
from nasnav.stop import JobStopped, clear_stop, request_stop
from nasnav.store.io import read_csv, read_json, write_csv, write_json
from nasnav.store.records import read_candidates, read_spotcheck
from nasnav.workflow import spotcheck, trainings
from nasnav.workflow.runs import create_run, round_space
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


def _counting(monkeypatch, stop_after: int | None = None) -> list:
    calls, train = [], trainings.train_standalone

    def counting(*a, **k):
        calls.append((str(a[2]), a[4]))
        out = train(*a, **k)
        if stop_after is not None and len(calls) == stop_after:
            request_stop()  # as SIGTERM would
        return out

    monkeypatch.setattr(trainings, "train_standalone", counting)
    return calls


# ---- the plan ---------------------------------------------------------------------------------------------
def test_plan_samples_the_space_evenly_and_takes_the_best_candidates(tiny):
    run, cfg = tiny
    p = spotcheck.plan(run, cfg, 0, n=8, m=4)
    space = round_space(run, cfg, 0)
    archs = [space.parse(a) for a in p["space"]["archs"]]
    assert len(set(p["space"]["archs"])) == 8 and len(p["space"]["one_shot"]) == 8
    counts = [sum(a.uses(0, c) for a in archs) for c in space.stages[0].active]
    assert max(counts) - min(counts) <= 1  # stage 1's components equally often
    cands = read_candidates(run, 0).sort_values("one_shot_acc", ascending=False)
    assert p["top"]["archs"] == list(cands["arch"].head(4))
    assert p["top"]["one_shot"] == pytest.approx(list(cands["one_shot_acc"].head(4)))
    assert spotcheck.plan(run, cfg, 0, n=8, m=4) == p  # seeded by (seed, round)
    in_cands = dict(zip(cands["arch"], cands["one_shot_acc"]))
    for a, s in zip(p["space"]["archs"], p["space"]["one_shot"]):
        if a in in_cands:
            assert s == pytest.approx(in_cands[a])  # scored as the search scores


# ---- the job ----------------------------------------------------------------------------------------------
def test_spotcheck_trains_each_architecture_once_and_answers_both_questions(tiny, monkeypatch):
    run, cfg = tiny
    calls = _counting(monkeypatch)
    s = spotcheck.spotcheck(run, cfg, 5, m=4)
    rdir = run.round_dir(0)
    archs = set(s["plan"]["space"]["archs"]) | set(s["plan"]["top"]["archs"])
    assert sorted(calls) == sorted((a, x) for a in archs for x in (cfg.seed, cfg.seed + 1))  # once each
    pairs = read_csv(rdir / "spotcheck.csv")
    assert list(pairs["sample"].value_counts().sort_index()) == [5, 4]  # space, top
    assert {"arch", "one_shot_acc", "standalone_acc", "standalone_std", "seed_accs"} <= set(pairs.columns)
    saved = read_json(rdir / "spotcheck.json")
    assert saved["state"] == "done" and set(saved["answers"]) == {"prune", "pick"}
    assert saved["answers"]["prune"]["n"] == 5 and saved["answers"]["pick"]["n"] == 4
    for q in ("prune", "pick"):
        assert saved["answers"][q]["text"] == trust.answer_text(saved["answers"][q])  # the one wording
    assert read_spotcheck(run)["answers"] == saved["answers"]
    assert saved["progress"] == pytest.approx(1.0) and "spot check" in saved["message"]
    assert run.read_status().get("job") != "spotcheck"  # a side job: status.json is the main job's
    assert s["trained_now"] == len(calls) and s["reused"] == 0


def test_later_spot_checks_reuse_every_training(tiny, monkeypatch):
    run, cfg = tiny
    calls = _counting(monkeypatch)
    first = spotcheck.spotcheck(run, cfg, 5, m=4)
    again = spotcheck.spotcheck(run, cfg, 6, m=5)  # a bigger plan: only what is new is trained
    new = (set(again["plan"]["space"]["archs"]) | set(again["plan"]["top"]["archs"])) - (
        set(first["plan"]["space"]["archs"]) | set(first["plan"]["top"]["archs"]))
    assert again["trained_now"] == 2 * len(new) and again["reused"] > 0
    assert len(calls) == first["trained_now"] + again["trained_now"]


def test_retrained_seeds_count_when_trained_as_long(tiny):
    run, cfg = tiny
    arch = spotcheck.plan(run, cfg, 0, n=2, m=1)["top"]["archs"][0]
    d = run.final_dir("x")
    d.mkdir(parents=True)
    write_json(d / "metrics.json", {"arch": arch, "epochs": 7})
    space = round_space(run, cfg, 0)
    fp = spotcheck.training_fingerprint(cfg, space, arch, 7)
    write_csv(d / "seeds.csv", pd.DataFrame([{"seed": 0, "val_acc": 0.5, "val_loss": 1.0, "train_seconds": 2.0,
                                              "fingerprint": fp},
                                             {"seed": 1, "val_acc": 0.9, "val_loss": 1.0, "train_seconds": 2.0,
                                              "fingerprint": "other-settings"}]))
    done = spotcheck.finished_trainings(run, cfg, space, 7)
    assert done[(arch, 0)]["standalone_acc"] == 0.5
    assert (arch, 1) not in done  # trained with other settings (another lr, DDP, ...): not the same training
    assert (arch, 0) not in spotcheck.finished_trainings(run, cfg, space, 6)  # another budget
    import shutil

    shutil.rmtree(d)


def test_stopped_spotcheck_keeps_finished_trainings_and_resumes(tiny, monkeypatch):
    run, cfg = tiny
    calls = _counting(monkeypatch, stop_after=3)
    with pytest.raises(JobStopped):
        spotcheck.spotcheck(run, cfg, 5, m=3, epochs=2)
    rdir = run.round_dir(0)
    assert len(calls) == 3
    runs = read_csv(rdir / "spotcheck_runs.csv")
    assert (runs["epochs"] == 2).sum() == 3
    saved = read_json(rdir / "spotcheck.json")
    assert saved["state"] == "stopped" and saved["plan_key"][:4] == [5, 3, 2, 2]
    clear_stop()
    s = spotcheck.spotcheck(run, cfg, 5, m=3, epochs=2)
    archs = set(s["plan"]["space"]["archs"]) | set(s["plan"]["top"]["archs"])
    assert s["plan"] == saved["plan"]  # the interrupted plan, resumed
    assert len(calls) == 2 * len(archs) and s["trained_now"] == 2 * len(archs) - 3  # the three reused


def test_spotcheck_cli(tiny, capsys):
    run, cfg = tiny
    assert main(["spotcheck", str(run.path), "--n", "4", "--top", "3", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Prune by fitness" in out and "Pick the winner by one-shot score" in out
    assert main(["spotcheck", str(run.path), "--n", "0", "--top", "0"]) == 2  # nothing to check
    assert main(["spotcheck", str(run.path), "--n", "-1"]) == 2
    assert "at least 0" in capsys.readouterr().err
    assert main(["spotcheck", str(run.path), "--n", "0", "--top", "2", "--epochs", "1", "--quiet"]) == 0  # top only
    assert main(["spotcheck", str(run.path), "--n", "3", "--seeds", "0"]) == 2
    assert "--seeds" in capsys.readouterr().err


def test_spotcheck_without_candidates_is_a_value_error(tmp_path):
    cfg = load_config(REPO / "configs" / "tiny.yaml", ["steering.autopilot=false"])
    run = create_run(cfg, tmp_path / "run")
    with pytest.raises(ValueError, match="no scored candidates"):
        spotcheck.spotcheck(run, cfg, 4)


def test_answers_from_few_finished_trainings_are_not_claimed():
    """A stopped spot check with one finished architecture per sample answers nothing."""
    assert trust.answers({"answers": {}}) == {}
    a = trust.pick_answer([0.5, 0.6], np.array([[0.9, 0.91], [0.8, 0.81]]))
    assert a["verdict"] == "too_few"


def test_a_stopped_plan_of_a_replaced_round_is_not_resumed_and_a_failure_is_written(tiny, monkeypatch):
    run, cfg = tiny
    _counting(monkeypatch, stop_after=2)
    with pytest.raises(JobStopped):
        spotcheck.spotcheck(run, cfg, 4, m=2, epochs=2)
    clear_stop()
    rdir = run.round_dir(0)
    saved = read_json(rdir / "spotcheck.json")
    ckpt = rdir / "supernet.ckpt"
    os.utime(ckpt, ns=(ckpt.stat().st_atime_ns, ckpt.stat().st_mtime_ns + 10**9))  # as a round decided anew
    assert spotcheck._round_identity(run, cfg, 0) != saved["plan_key"][4]

    def broken(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(trainings, "train_standalone", broken)
    with pytest.raises(RuntimeError):
        spotcheck.spotcheck(run, cfg, 4, m=2, epochs=2)
    after = read_json(rdir / "spotcheck.json")
    assert after["state"] == "failed" and "disk full" in after["message"]  # never "running" with no job left
    assert after.get("plan") is None
