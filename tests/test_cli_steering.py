"""The steering commands: search (SIGTERM + --resume in a real subprocess), analyze, prune / undo /
redo, round, and `run` with the auto-pilot."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from nasnav.cli import main
from nasnav.store.run_dir import RunDir

REPO = Path(__file__).resolve().parent.parent
# tiny, with a bigger first stage (1890 architectures: a search of 400 runs long enough to be
# interrupted) and a short supernet training (its quality is not the point here)
OVERRIDES = ["space.stages[0].select=any", "space.stages[0].max_active=3",
             "space.stages[0].candidates=[conv3x3,sepconv3x3,maxpool3x3,skip,avgpool3x3,dilconv3x3,conv5x5]",
             "search.budget=30", "search.projection=pca", "supernet.epochs=3"]


pytestmark = pytest.mark.usefixtures("single_thread")  # tiny networks: one thread (conftest)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    from nasnav.config import load_config
    from nasnav.workflow.runs import create_run
    from nasnav.workflow.supernet import train_supernet

    cfg = load_config(REPO / "configs" / "tiny.yaml", OVERRIDES)
    run = create_run(cfg, tmp_path_factory.mktemp("cli") / "trained")
    train_supernet(run, cfg, 0)
    return run.path


@pytest.fixture
def run_dir(trained, tmp_path) -> Path:
    dest = tmp_path / "run"
    shutil.copytree(trained, dest)
    return dest


def nasnav(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "nasnav", *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_sigterm_loses_no_candidate_and_resume_continues(run_dir):
    cands = run_dir / "rounds" / "000" / "candidates.csv"
    proc = nasnav("search", str(run_dir), "--strategy", "evolution", "--budget", "400")
    deadline = time.time() + 120
    while time.time() < deadline and (not cands.exists() or len(rows(cands)) < 9):
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "stopped" in out and "--resume" in out
    table = rows(cands)
    header, body = table[0], table[1:]
    assert all(len(r) == len(header) for r in body)  # every row intact
    assert cands.read_text().endswith("\n")
    df = pd.read_csv(cands)
    state = json.loads((run_dir / "rounds" / "000" / "search.json").read_text())
    assert state["state"] == "stopped" and state["scored"] == len(df) and 8 <= len(df) < 400
    assert df["arch"].is_unique and df["one_shot_acc"].notna().all()
    assert RunDir(run_dir).read_status()["state"] == "stopped"

    before = cands.read_text()
    proc = nasnav("search", str(run_dir), "--resume")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    after = pd.read_csv(cands)
    assert len(after) == 400 and after["arch"].is_unique  # continued to the same target, no repeats
    assert cands.read_text().startswith(before)  # the first rows untouched
    assert (after["strategy"] == "evolution").all() and (after["generation"].iloc[len(df):] > 0).any()
    assert json.loads((run_dir / "rounds" / "000" / "search.json").read_text())["state"] == "done"


def test_bad_names_exit_2_with_the_valid_ones(run_dir, capsys):
    d = str(run_dir)
    cases = [
        (["prune", d, "--drop", "s9:skip"], "unknown stage 's9'; stages: s1, s2, s3"),
        (["prune", d, "--drop", "s2:conv9"], "stage 's2' has no component 'conv9'; candidates: conv3x3, conv1x1, avgpool3x3, skip"),
        (["prune", d, "--drop", "s2"], "expected STAGE:COMPONENT"),
        (["prune", d, "--drop", "s3:conv3x3", "s3:dilconv3x3", "s3:skip"], "last active component of stage 's3'"),
        (["prune", d, "--undo"], "nothing to undo"),
        (["prune", d, "--undo", "--drop", "s1:skip"], "cannot be combined"),
        (["search", d, "--budget", "0"], "--budget must be at least 1"),
        (["analyze", d, "--round", "7"], "round 7 does not exist"),
    ]
    for argv, msg in cases:
        assert main(argv) == 2, argv
        assert msg in capsys.readouterr().err, argv
    assert main(["search", d, "--strategy", "annealing"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert RunDir(run_dir).rounds() == [0]


def test_prune_round_undo_redo(run_dir, capsys):
    d = str(run_dir)
    assert main(["search", d, "--budget", "20"]) == 0
    for name in ("fitness.csv", "importance.csv", "projection.csv"):  # the search job leaves its analysis
        assert (run_dir / "rounds" / "000" / name).exists(), name
    assert main(["analyze", d]) == 0
    out = capsys.readouterr().out
    assert "fitness" in out and "auto-pilot suggests" in out
    assert (run_dir / "rounds" / "000" / "fitness.csv").exists()
    assert main(["prune", d, "--drop", "s1:skip", "1:skip", "--pin", "s3:conv3x3"]) == 0
    assert "round 1 created" in capsys.readouterr().out
    assert main(["round", d]) == 0  # warm-start fine-tuning, search to search.budget, analysis
    r1 = run_dir / "rounds" / "001"
    for name in ("supernet.ckpt", "candidates.csv", "fitness.csv", "importance.csv", "projection.csv"):
        assert (r1 / name).exists(), name
    df = pd.read_csv(r1 / "candidates.csv")
    assert len(df) == 30 and not df["arch"].str.contains("skip").any() and df["arch"].str.endswith("/conv3x3").all()
    rec = json.loads((run_dir / "rounds" / "000" / "decisions.json").read_text())[0]
    assert rec["evidence"] and [a["op"] for a in rec["actions"]] == ["prune", "prune", "pin"]
    assert rec["actions"] == [{"op": "prune", "stage": "s1", "component": "skip"},  # the JSON records of decisions.json
                              {"op": "prune", "stage": "s2", "component": "skip"},
                              {"op": "pin", "stage": "s3", "choice": "conv3x3"}]
    assert main(["prune", d, "--undo"]) == 0 and RunDir(d).current_round() == 0
    assert main(["prune", d, "--redo"]) == 0 and RunDir(d).current_round() == 1
    assert main(["prune", d]) == 0  # no action: prints the history
    assert "prune s1:skip; prune s2:skip; pin s3:conv3x3" in capsys.readouterr().out


def test_run_with_autopilot_does_rounds(tmp_path, capsys):
    d = tmp_path / "auto"
    code = main(["run", str(REPO / "configs" / "tiny.yaml"), "--run-dir", str(d), "--set", "search.budget=80",
                 "steering.rounds=3", "steering.min_frequency=3", "steering.protect_top=2", "supernet.epochs=15",
                 "retrain.epochs=1", "search.projection=pca"])
    assert code == 0
    out = capsys.readouterr().out
    run = RunDir(d)
    assert len(run.rounds()) >= 2, out
    for k in run.rounds():
        for name in ("candidates.csv", "fitness.csv", "decisions.json"):
            assert (run.round_dir(k) / name).exists(), (k, name)
    from nasnav.workflow.decisions import history

    h = history(run)
    assert h["space_size"].iloc[-1] < h["space_size"].iloc[0]
    assert "auto-pilot" in out
