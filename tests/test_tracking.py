"""Experiment trackers (issue 25, item 3): supernet, spot-check and retrain trainings log metrics and
hyperparameters under one experiment per run, tagged with job, round and architecture; read back for real
with TensorBoard's event reader and an MLflow client on an SQLite store. The run's own metrics.csv (what the
app reads) stays as it was; a tracker whose package is missing is a clear error naming it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from nasnav.config import load_config, preset_path
from nasnav.errors import InvalidInput
from nasnav.store import layout
from nasnav.train import tracking
from nasnav.train.trainer import METRIC_COLUMNS
from nasnav.workflow.retrain import retrain
from nasnav.workflow.runs import create_run, round_space
from nasnav.workflow.search import score_candidates
from nasnav.workflow.spotcheck import spotcheck
from nasnav.workflow.supernet import train_supernet

REPO = Path(__file__).resolve().parents[1]
FAST = ["data.max_samples=200", "supernet.epochs=1", "retrain.epochs=2", "trainer.log_every_n_steps=1"]


def tiny_run(tmp_path, logger: str):
    cfg = load_config(preset_path("tiny"), overrides=[*FAST, f"trainer.logger={logger}"])
    run = create_run(cfg, tmp_path / f"lab-{logger}")
    return run, cfg


def supernet_and_retrain(run, cfg) -> str:
    train_supernet(run, cfg)
    space = round_space(run, cfg, 0)
    arch = space.parse("conv3x3/conv3x3/conv3x3")
    retrain(run, cfg, space, arch, seeds=1)
    return str(arch)


def test_csv_is_the_default_and_keeps_the_app_s_metrics(tmp_path):
    run, cfg = tiny_run(tmp_path, "csv")
    assert load_config(preset_path("tiny")).trainer.logger == "csv"
    arch = supernet_and_retrain(run, cfg)
    logged = run.path / layout.TRACKING / "csv"
    supernet = logged / "round0-supernet"
    assert pd.read_csv(supernet / "metrics.csv")["val_acc"].notna().any()
    hp = yaml.safe_load((supernet / "hparams.yaml").read_text())
    assert hp["nasnav.job"] == "supernet" and hp["nasnav.round"] == "0" and hp["nasnav.run"] == run.path.name
    assert hp["optim"]["lr"] == cfg.supernet.lr  # the module's hyperparameters
    (trained,) = [d for d in logged.iterdir() if "retrain" in d.name]
    assert yaml.safe_load((trained / "hparams.yaml").read_text())["nasnav.arch"] == arch
    # the run's own per-epoch files, which the app reads, are as before
    assert list(pd.read_csv(run.round_dir(0) / layout.TRAIN_METRICS).columns) == METRIC_COLUMNS


def test_tensorboard_events_read_back(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, cfg = tiny_run(tmp_path, "tensorboard")
    arch = supernet_and_retrain(run, cfg)
    logged = run.path / layout.TRACKING / "tensorboard"
    names = sorted(d.name for d in logged.iterdir())
    assert names == ["round0-retrain-" + arch.replace("/", "__") + "-seed0", "round0-supernet"], names
    for name in names:
        events = EventAccumulator(str(logged / name))
        events.Reload()
        scalars = events.Tags()["scalars"]
        assert {"val_acc", "val_loss", "train_loss"} <= set(scalars), scalars
        assert all(0 <= e.value <= 1 for e in events.Scalars("val_acc"))
        hp = yaml.safe_load((logged / name / "hparams.yaml").read_text())
        assert hp["nasnav.run"] == run.path.name and hp["nasnav.round"] == "0"


def test_mlflow_runs_of_every_training_read_back(tmp_path):
    from mlflow.tracking import MlflowClient

    run, cfg = tiny_run(tmp_path, "mlflow")
    arch = supernet_and_retrain(run, cfg)
    score_candidates(run, cfg, 0, budget=4)
    spotcheck(run, cfg, n=2, k=0, seeds=1, epochs=1, m=0)
    client = MlflowClient(tracking_uri=tracking.tracking_uri(cfg.trainer, run.path))
    assert client.get_experiment_by_name(run.path.name) is not None  # one experiment per run
    (experiment,) = [e for e in client.search_experiments() if e.name == run.path.name]
    runs = client.search_runs([experiment.experiment_id])
    jobs = sorted(r.data.tags["nasnav.job"] for r in runs)
    assert jobs == ["retrain", "spotcheck", "spotcheck", "supernet"], jobs
    for r in runs:
        assert r.data.tags["nasnav.round"] == "0" and r.info.status == "FINISHED"
        assert 0 <= r.data.metrics["val_acc"] <= 1
        history = client.get_metric_history(r.info.run_id, "train_loss")
        assert history, r.data.tags  # logged as training went (trainer.log_every_n_steps)
    (retrained,) = [r for r in runs if r.data.tags["nasnav.job"] == "retrain"]
    assert retrained.data.tags["nasnav.arch"] == arch and retrained.data.tags["nasnav.seed"] == str(cfg.seed)
    assert float(retrained.data.params["optim/lr"]) == cfg.retrain.lr  # hyperparameters


@pytest.mark.parametrize("logger,package", [("tensorboard", "tensorboard"), ("mlflow", "mlflow")])
def test_a_tracker_without_its_package_names_it(tmp_path, logger, package):
    """The product runs without the optional packages; choosing one that is missing says what to install,
    from the job (exit 2, no traceback) before any training."""
    run, _ = tiny_run(tmp_path, logger)
    blocked = f"import sys; sys.modules[{package!r}] = None; from nasnav.cli import main; sys.exit(main())"
    proc = subprocess.run([sys.executable, "-c", blocked, "supernet", str(run.path)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert f"trainer.logger: '{logger}' needs the package" in proc.stderr and package in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (run.round_dir(0) / layout.SUPERNET).exists()
    with pytest.raises(InvalidInput, match="set trainer.logger: csv"):
        _blocked_require(logger, package)


def _blocked_require(logger: str, package: str) -> None:
    saved = sys.modules.get(package)
    sys.modules[package] = None  # an import of it now fails as if it were not installed
    try:
        tracking.require(logger)
    finally:
        if saved is None:
            sys.modules.pop(package, None)
        else:
            sys.modules[package] = saved
