"""Killed jobs and full disks: real ``python -m nasnav`` jobs SIGKILLed at seeded random points.

After every kill the run directory must stay readable, ``status.json`` must tell the truth (a
job whose process is gone reads "interrupted", never "running"), and starting the job again
must continue from what was saved: the last epoch checkpoint of the supernet, the candidates
already in candidates.csv, the seeds already in seeds.csv. A full disk (ENOSPC on write) must
leave the previous files intact and the job resumable.

Kill points (>= 10 over this file): supernet training x4, search x3, retraining x3, plus the
strict-xfail mid-seed retrain kill.
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import signal
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from nasnav import cli
from nasnav.config import config_from_dict, preset_path
from nasnav.jobs.control import running_job, start_job
from nasnav.store import layout
from nasnav.store.io import read_csv, read_json, read_yaml
from nasnav.store.process import pid_alive
from nasnav.store.records import read_candidates
from nasnav.store.run_dir import RunDir, list_runs
from nasnav.train import trainer
from nasnav.workflow.runs import create_run
from nasnav.workflow.supernet import load_checkpoint, train_supernet

pytestmark = pytest.mark.usefixtures("single_thread")

SEED = 20240611
OVERRIDES = ["data.max_samples=300", "supernet.epochs=5", "search.budget=10", "retrain.epochs=3",
             "retrain.augment=false", "trainer.enable_progress_bar=false", "steering.autopilot=false"]
# CPU threads of each job process: 1 keeps a 2-core machine responsive (and the timing stable).
JOB_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def make_run(path: Path, *extra: str) -> RunDir:
    cfg = config_from_dict(read_yaml(preset_path("tiny")), "tiny", [*OVERRIDES, *extra])
    return create_run(cfg, path)


def wait_for(cond, seconds: float = 60.0, every: float = 0.05) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(every)
    return bool(cond())


def kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: not pid_alive(pid), 10), f"pid {pid} survived SIGKILL"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_readable(run: RunDir) -> dict:
    """Every file of the run parses, no job is reported running, and status tells the truth."""
    assert running_job(run) is None
    raw = read_json(run.status_path)
    status = run.read_status()
    assert status["state"] != "running", status
    if raw.get("state") == "running":  # the job had no chance to write its end: read as interrupted
        assert status["state"] == "interrupted" and "killed or crashed" in status["message"], status
    listed = {r["name"]: r for r in list_runs(run.path.parent)}
    assert listed[run.name]["state"] == status["state"]  # the run picker says the same
    parse_all(run)
    return status


def parse_all(run: RunDir) -> None:
    """Every file of the run parses with the reader the engine uses for it."""
    read_yaml(run.config_path)
    for f in run.path.rglob("*"):
        if f.name.endswith(".tmp") or not f.is_file():
            continue
        if f.suffix == ".json":
            read_json(f)
        elif f.suffix == ".yaml":
            read_yaml(f)
        elif f.suffix == ".csv":
            df = read_csv(f)
            assert not df.empty or f.stat().st_size < 200, f
        elif f.name == layout.SUPERNET:
            load_checkpoint(f)
        elif f.suffix in (".ckpt", ".pt"):
            torch.load(f, map_location="cpu", weights_only=True)


def ckpt_epochs(run: RunDir) -> int:
    last = run.round_dir(0) / "lightning" / "last.ckpt"
    return torch.load(last, map_location="cpu", weights_only=True)["epoch"] + 1 if last.exists() else 0


def metric_rows(run: RunDir) -> pd.DataFrame:
    return read_csv(run.round_dir(0) / "metrics.csv", columns=["epoch", "seconds"])


# ---- supernet ------------------------------------------------------------------------------------
def run_and_kill(run: RunDir, job: str, argv: list[str], trigger, delay: float) -> int:
    """Start the job as the app does, wait for ``trigger()`` (None: only ``delay``), sleep
    ``delay`` more, SIGKILL it; fails if the job ended on its own before the kill point."""
    pid = start_job(run, job, argv, env=JOB_ENV)
    if trigger is not None:
        assert wait_for(lambda: trigger() or not pid_alive(pid)), run.log_tail(job)
    time.sleep(delay)
    if not pid_alive(pid):
        pytest.fail(f"the {job} job ended before the kill point:\n{run.log_tail(job)}")
    kill(pid)
    return pid


def test_supernet_killed_at_random_points_resumes_from_last_epoch(tmp_path):
    rng = random.Random(SEED)
    epochs = 30  # tiny epochs (~0.05-0.3 s): room for kill points before, inside and between them
    run = make_run(tmp_path / "sn", f"supernet.epochs={epochs}")
    argv = ["supernet", str(run.path), "--resume"]
    history = []
    # kill points: during start-up (no lock yet), a random moment inside an epoch a few epochs
    # on, right after an epoch ended (its checkpoint being written), inside an epoch again
    plan = [("start-up", rng.uniform(0.3, 1.5)), ("mid-epoch", rng.uniform(0.0, 0.1)),
            ("epoch end", rng.uniform(0.0, 0.01)), ("mid-epoch", rng.uniform(0.0, 0.1))]
    for phase, delay in plan:
        before, rows_before = ckpt_epochs(run), len(metric_rows(run))
        target = rows_before + (rng.randint(1, 3) if phase == "mid-epoch" else 1)
        trigger = None if phase == "start-up" else (lambda t=target: len(metric_rows(run)) >= t)
        run_and_kill(run, "supernet", argv, trigger, delay)
        check_readable(run)
        done, rows = ckpt_epochs(run), metric_rows(run)
        assert done >= before, "a resumed training went back to an earlier epoch"
        # finished epochs keep their metrics row; at most the epoch in flight is lost
        assert list(rows["epoch"]) == list(range(1, len(rows) + 1)), rows
        assert done <= len(rows) <= done + 1, (done, rows)
        history.append((phase, round(delay, 3), done))
    assert 0 < history[-1][2] < epochs, f"the kills came too late to test resuming: {history}"
    kept = metric_rows(run).set_index("epoch")["seconds"].to_dict()
    done = ckpt_epochs(run)
    assert cli.main(argv) == 0
    rows = metric_rows(run)
    assert list(rows["epoch"]) == list(range(1, epochs + 1))
    for e in range(1, done + 1):  # epochs saved before the last kill were not trained again
        assert rows.set_index("epoch").loc[e, "seconds"] == kept[e], (e, history)
    assert run.read_status()["state"] == "done"
    assert load_checkpoint(run.round_dir(0) / layout.SUPERNET)["epochs"] == epochs
    assert not list(run.path.rglob("*.tmp")), "temporary files of killed writers were not swept"


# ---- search --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run with round 0's supernet trained in-process (1 epoch), to be copied by each test."""
    run = make_run(tmp_path_factory.mktemp("trained") / "base", "supernet.epochs=1")
    cfg = config_from_dict(read_yaml(run.config_path), "config")
    train_supernet(run, cfg, 0)
    run.write_status(state="done", stage="supernet", message="supernet finished")
    return run


def copy_run(src: RunDir, dst: Path) -> RunDir:
    import shutil

    shutil.copytree(src.path, dst)
    return RunDir(dst)


def test_search_killed_at_random_points_keeps_every_saved_candidate(trained, tmp_path):
    rng = random.Random(SEED + 1)
    run = copy_run(trained, tmp_path / "search")
    argv = ["evaluate", str(run.path), "--n", "60"]
    for phase, delay in [("start-up", rng.uniform(0.2, 1.0)), ("scoring", rng.uniform(0.0, 0.2)),
                         ("scoring", rng.uniform(0.0, 0.2))]:
        before = read_candidates(run, 0)
        target = len(before) + rng.randint(1, 4)
        trigger = None if phase == "start-up" else (lambda t=target: len(read_candidates(run, 0)) >= t)
        run_and_kill(run, "search", argv, trigger, delay)
        check_readable(run)
        df = read_candidates(run, 0)
        assert not df["arch"].duplicated().any()
        assert len(df) >= len(before) and df["arch"].head(len(before)).tolist() == before["arch"].tolist()
        assert df["one_shot_acc"].notna().all()
    assert len(read_candidates(run, 0)) > 0, "no kill landed after a candidate was saved"
    before = read_candidates(run, 0)
    assert cli.main(["evaluate", str(run.path), "--n", "5"]) == 0  # continues: 5 more, none repeated
    df = read_candidates(run, 0)
    assert len(df) == len(before) + 5 and not df["arch"].duplicated().any()
    assert df["arch"].head(len(before)).tolist() == before["arch"].tolist()
    assert run.read_status()["state"] == "done"


# ---- retrain -------------------------------------------------------------------------------------
ARCH = "conv3x3/conv1x1/skip"


def seeds_of(run: RunDir) -> pd.DataFrame:
    from nasnav.store.run_dir import arch_key

    return read_csv(run.final_dir(arch_key(ARCH)) / "seeds.csv", columns=["seed", "train_seconds"])


def test_retrain_killed_keeps_finished_seeds(tmp_path):
    from nasnav.store.run_dir import arch_key

    rng = random.Random(SEED + 2)
    run = make_run(tmp_path / "rt", "retrain.epochs=25")
    out = run.final_dir(arch_key(ARCH))
    argv = ["retrain", str(run.path), "--arch", ARCH, "--seeds", "2", "--no-export"]
    plan = [("start-up", None, rng.uniform(0.3, 1.5)),
            ("first seed", lambda: len(read_csv(out / "metrics.csv")) >= rng.randint(1, 5), rng.uniform(0, 0.05)),
            ("second seed", lambda: len(read_csv(out / "metrics_seed1.csv")) >= 1, rng.uniform(0, 0.05))]
    for _phase, trigger, delay in plan:
        run_and_kill(run, "retrain", argv, trigger, delay)
        check_readable(run)
        assert len(seeds_of(run)) <= 1
    first = seeds_of(run)
    assert len(first) == 1, "the last kill should come after the first seed was saved"
    assert cli.main(argv) == 0
    done = seeds_of(run)
    assert sorted(done["seed"]) == [0, 1]
    assert done.loc[done["seed"] == 0, "train_seconds"].iloc[0] == first["train_seconds"].iloc[0]  # not retrained
    m = read_json(out / "metrics.json")
    assert m["seeds"] == 2 and len(m["test_accs"]) == 2
    assert run.read_status()["state"] == "done"


def test_retrain_killed_mid_seed_loses_at_most_one_epoch(tmp_path):
    from nasnav.store.run_dir import arch_key

    run = make_run(tmp_path / "rt1", "retrain.epochs=25")
    metrics = run.final_dir(arch_key(ARCH)) / "metrics.csv"
    argv = ["retrain", str(run.path), "--arch", ARCH, "--no-export"]
    run_and_kill(run, "retrain", argv, lambda: len(read_csv(metrics)) >= 4, 0.0)
    before = read_csv(metrics, columns=["epoch", "seconds"]).set_index("epoch")["seconds"]
    assert cli.main(argv) == 0
    after = read_csv(metrics, columns=["epoch", "seconds"]).set_index("epoch")["seconds"]
    kept = [e for e in before.index if e < before.index.max()]  # all but the epoch in flight
    assert all(after[e] == before[e] for e in kept), (before, after)


# ---- full disk -----------------------------------------------------------------------------------
class FullDisk:
    """Fake ENOSPC for the run directory writers in nasnav.store.run_dir: after ``budget`` bytes, a write
    stores what still fits and raises OSError(ENOSPC), as a full file system does."""

    def __init__(self, budget: int):
        self.budget = budget

    def wrap(self, f):
        disk = self

        class Limited:
            def __init__(self, inner):
                self.inner = inner

            def write(self, data):
                if len(data) > disk.budget:
                    self.inner.write(data[: disk.budget])
                    disk.budget = 0
                    self.inner.flush()
                    raise OSError(errno.ENOSPC, "No space left on device")
                disk.budget -= len(data)
                return self.inner.write(data)

            def __getattr__(self, name):
                return getattr(self.inner, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.inner.close()

        return Limited(f)

    def install(self, monkeypatch):
        import builtins

        import nasnav.store.io as runs

        real_os = os

        class OsProxy:
            def __getattr__(self, name):
                return getattr(real_os, name)

            def fdopen(_self, fd, *a, **k):
                return self.wrap(real_os.fdopen(fd, *a, **k))

        def limited_open(file, mode="r", *a, **k):
            f = builtins.open(file, mode, *a, **k)
            return self.wrap(f) if ("a" in mode or "w" in mode) else f

        monkeypatch.setattr(runs, "os", OsProxy())
        monkeypatch.setattr(runs, "open", limited_open, raising=False)


def test_disk_full_during_search_keeps_saved_candidates(trained, tmp_path, monkeypatch, capsys):
    run = copy_run(trained, tmp_path / "full")
    assert cli.main(["evaluate", str(run.path), "--n", "3"]) == 0
    text = (run.round_dir(0) / "candidates.csv").read_bytes()
    ckpt = sha(run.round_dir(0) / layout.SUPERNET)
    capsys.readouterr()
    FullDisk(budget=2500).install(monkeypatch)  # room for the status writes and about one more row
    assert cli.main(["evaluate", str(run.path), "--n", "20"]) == 2
    err = capsys.readouterr().err
    assert "disk full" in err and "Traceback" not in err, err
    monkeypatch.undo()
    after = (run.round_dir(0) / "candidates.csv").read_bytes()
    assert after.startswith(text), "rows saved before the disk filled up were changed"
    df = read_candidates(run, 0)
    assert len(df) < 23 and df["one_shot_acc"].notna().all() and not df["arch"].duplicated().any()
    assert sha(run.round_dir(0) / layout.SUPERNET) == ckpt
    parse_all(run)
    status = run.read_status()
    # "failed" when the status could still be written; otherwise it names this (live) process,
    # and a CLI process exits right after: then it reads "interrupted"
    assert status["state"] == "failed" or status["pid"] == os.getpid(), status
    n = len(df)
    assert cli.main(["evaluate", str(run.path), "--n", "4"]) == 0  # space freed: continues
    df = read_candidates(run, 0)
    assert len(df) == n + 4 and not df["arch"].duplicated().any()


def test_disk_full_while_saving_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch, capsys):

    run = make_run(tmp_path / "ckfull", "supernet.epochs=3")
    real = trainer.atomic_write_bytes
    saved = []

    def flaky(path, data):
        if Path(path).name == "last.ckpt" and saved:  # the second epoch's checkpoint hits a full disk
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)
        if Path(path).name == "last.ckpt":
            saved.append(sha(Path(path)))

    monkeypatch.setattr(trainer, "atomic_write_bytes", flaky)  # what writes Lightning's checkpoints
    assert cli.main(["supernet", str(run.path)]) == 2
    err = capsys.readouterr().err
    assert "disk full" in err and "last.ckpt" in err and "Traceback" not in err, err
    monkeypatch.undo()
    last = run.round_dir(0) / "lightning" / "last.ckpt"
    assert sha(last) == saved[0] and ckpt_epochs(run) == 1  # the previous checkpoint, intact
    assert not (run.round_dir(0) / layout.SUPERNET).exists()
    status = run.read_status()
    assert status["state"] == "failed" and "disk full" in status["error"]
    assert cli.main(["supernet", str(run.path), "--resume"]) == 0  # resumes from epoch 1
    assert list(metric_rows(run)["epoch"]) == [1, 2, 3]
    assert load_checkpoint(run.round_dir(0) / layout.SUPERNET)["epochs"] == 3


def test_killed_app_started_job_reads_interrupted_in_every_view(tmp_path):
    """The app's path: start_job, the child dies; status, running_job and the run list agree."""
    run = make_run(tmp_path / "app")
    pid = start_job(run, "supernet", ["supernet", str(run.path)], env=JOB_ENV)
    assert run.read_status()["state"] == "running"
    kill(pid)
    status = check_readable(run)
    assert status["state"] == "interrupted" and f"pid {pid}" in status["message"]
