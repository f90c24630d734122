"""The command line: exit codes (0 ok, 2 invalid input without a traceback), files of a run, determinism."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nasnav.cli import main
from nasnav.store.io import read_csv, read_json, write_yaml
from nasnav.store.run_dir import RunDir
from nasnav.workflow.runs import round_space

REPO = Path(__file__).resolve().parent.parent
TINY = str(REPO / "configs" / "tiny.yaml")
FAST = ["steering.autopilot=false", "supernet.epochs=3", "retrain.epochs=2"]  # the tiny preset, shorter


pytestmark = pytest.mark.usefixtures("single_thread")  # tiny networks: one thread (conftest)


def nasnav(*args, timeout=300):
    """``python -m nasnav ARGS`` in a fresh process, as a user types it."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}  # as one_thread above
    return subprocess.run(
        [sys.executable, "-m", "nasnav", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """`python -m nasnav run` on the tiny preset, end to end, in its own process."""
    path = tmp_path_factory.mktemp("cli") / "run"
    res = nasnav("run", TINY, "--run-dir", str(path), "--set", *FAST)
    return path, res


def test_run_on_tiny_writes_the_whole_run(tiny_run):
    path, res = tiny_run
    assert res.returncode == 0, res.stderr
    assert "best architecture" in res.stdout and "exported to" in res.stdout
    for f in (
        "config.yaml",
        "status.json",
        "rounds/000/space.yaml",
        "rounds/000/supernet.ckpt",
        "rounds/000/metrics.csv",
        "rounds/000/candidates.csv",
    ):
        assert (path / f).is_file(), f
    run = RunDir(path)
    (key,) = run.finals()
    m = read_json(run.final_dir(key) / "metrics.json")
    for k in ("arch", "test_acc", "val_acc", "params", "flops", "train_seconds"):
        assert m[k] is not None, k
    for f in ("model.py", "weights.pt", "model_card.md", "arch.yaml", "metrics.csv"):
        assert (run.final_dir(key) / f).is_file(), f
    assert read_json(path / "status.json")["state"] == "done"
    assert not (path / "job.lock").exists()


def test_same_config_and_seed_give_identical_candidates(tiny_run, tmp_path, capsys):
    """Determinism acceptance: a second run (here in another process than the first) of the same
    config and seed scores the same candidates with the same accuracies."""
    path, _ = tiny_run
    assert main(["run", TINY, "--run-dir", str(tmp_path / "again"), "--set", *FAST]) == 0
    first, second = (read_csv(p / "rounds" / "000" / "candidates.csv") for p in (path, tmp_path / "again"))
    assert len(first) == 24
    assert list(first["arch"]) == list(second["arch"])
    assert list(first["one_shot_acc"]) == list(second["one_shot_acc"])


def test_distilled_supernet_trains_and_scores_differently(tiny_run, tmp_path):
    """supernet.distill=true goes through Lightning end to end (a real run) and changes the
    supernet: the same candidates get other one-shot scores than without it."""
    path, _ = tiny_run
    assert main(["run", TINY, "--run-dir", str(tmp_path / "kd"), "--set", *FAST, "supernet.distill=true",
                 "search.budget=8"]) == 0
    plain, kd = (read_csv(p / "rounds" / "000" / "candidates.csv") for p in (path, tmp_path / "kd"))
    both = plain.merge(kd, on="arch", suffixes=("", "_kd"))
    assert len(both) >= 4 and kd["one_shot_acc"].notna().all()
    assert (both["one_shot_acc"] != both["one_shot_acc_kd"]).any()
    assert len(read_csv(tmp_path / "kd" / "rounds" / "000" / "metrics.csv")) == 3


def test_validate_good_and_bad_config(tmp_path, capsys):
    assert main(["validate", TINY]) == 0
    assert "valid" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    raw = yaml.safe_load(Path(TINY).read_text())
    raw["retrain"]["epoks"] = 3
    bad.write_text(yaml.safe_dump(raw))
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "retrain.epoks" in err and "Traceback" not in err


def test_bad_data_path_exits_2_and_leaves_no_run(tmp_path, capsys):
    path = tmp_path / "run"
    assert main(["run", TINY, "--run-dir", str(path), "--set", "data.source=folder", "data.path=/no/such/folder"]) == 2
    err = capsys.readouterr().err
    assert "data.path" in err and "/no/such/folder" in err and "Traceback" not in err
    assert not (path / "config.yaml").exists()  # nothing that looks like a valid run


def test_unknown_command_exits_2(capsys):
    assert main(["frobnicate"]) == 2
    res = nasnav("frobnicate")
    assert res.returncode == 2 and "frobnicate" in res.stderr and "Traceback" not in res.stderr


def test_bad_arch_exits_2_naming_the_problem(tiny_run, tmp_path, capsys):
    path, _ = tiny_run
    cases = {
        "conv3x3/skip/conv9x9": "no component 'conv9x9'",
        "conv3x3/skip": "2 stage(s) given, the space has 3",
        "conv3x3+skip/skip/conv3x3": "selects exactly one component",
    }
    for arch, message in cases.items():
        assert main(["retrain", str(path), "--arch", arch]) == 2, arch
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (arch, err)
    # a pruned component: round 1's space prunes maxpool3x3 from s1
    run = RunDir(path)
    from nasnav.workflow.runs import load_run

    _, cfg = load_run(path)
    write_yaml(run.ensure_round_dir(1) / "space.yaml", round_space(run, cfg, 0).prune("s1", "maxpool3x3").to_dict())
    try:
        assert main(["retrain", str(path), "--arch", "maxpool3x3/skip/conv3x3"]) == 2
        err = capsys.readouterr().err
        assert "pruned" in err and "maxpool3x3" in err
        assert main(["export", str(path), "--arch", "conv3x3/skip/conv9x9"]) == 2
        assert "conv9x9" in capsys.readouterr().err
        assert main(["export", str(path), "--arch", "skip/skip/skip"]) == 2  # valid, but never retrained
        assert "retrain" in capsys.readouterr().err
        assert main(["retrain", str(path), "--arch", "conv3x3/skip/conv3x3", "--seeds", "0"]) == 2
    finally:
        import shutil

        shutil.rmtree(run.round_dir(1))


def test_not_a_run_directory_exits_2(tmp_path, capsys):
    for cmd in (
        ["retrain", str(tmp_path), "--arch", "a/b/c"],
        ["spotcheck", str(tmp_path)],
        ["export", str(tmp_path), "--arch", "a/b/c"],
    ):
        assert main(cmd) == 2
        assert "not a nasnav run directory" in capsys.readouterr().err


def test_retrain_and_export_commands(tiny_run, capsys):
    path, _ = tiny_run
    run = RunDir(path)
    arch = read_csv(run.round_dir(0) / "candidates.csv")["arch"].iloc[-1]
    assert main(["retrain", str(path), "--arch", arch, "--seeds", "2"]) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and "over 2 seeds" in out and "model.py: ok" in out
    assert main(["export", str(path), "--arch", arch, "--no-onnx", "--no-pt2", "--force"]) == 0
    assert "exported" in capsys.readouterr().out
