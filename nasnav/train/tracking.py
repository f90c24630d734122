"""Experiment trackers (``trainer.logger``): where supernet, spot-check and retrain trainings log their
metrics and hyperparameters. One experiment per run (the run folder's name), one tracked run per training,
tagged with its job, round, architecture and seed.

- ``csv`` (default): Lightning's CSVLogger under ``<run>/tracking/csv/<training>/`` (metrics.csv and
  hparams.yaml). The run's own per-epoch ``metrics.csv`` files, which the app reads, are written as before.
- ``tensorboard``: TensorBoard event files under ``<run>/tracking/tensorboard/<training>/`` (package
  ``tensorboard``); the tags are logged as hyperparameters.
- ``mlflow``: an MLflow run per training in the experiment named after the run (package ``mlflow``, or
  ``mlflow-skinny`` with ``sqlalchemy`` and ``alembic``); ``trainer.tracking_uri`` names the server or store,
  by default an SQLite file, ``<run>/tracking/mlflow.db``.

The packages are optional: choosing a tracker whose package is missing is an InvalidInput naming it.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path

from nasnav.config import TrainerConfig
from nasnav.errors import InvalidInput
from nasnav.store import layout

PACKAGES = {"tensorboard": ("tensorboard",), "mlflow": ("mlflow",)}  # what each tracker imports
SQLITE_PACKAGES = ("sqlalchemy", "alembic")  # MLflow's SQLite store (in mlflow, not in mlflow-skinny)
INSTALL = {"tensorboard": "pip install tensorboard",
           "mlflow": "pip install mlflow (or mlflow-skinny sqlalchemy alembic)"}


@dataclass(frozen=True)
class Tracking:
    """Which training this is, for the tracker (plain values: it travels to worker processes)."""

    run_dir: str  # the run folder
    job: str  # supernet | spotcheck | retrain
    round: int | None = None
    arch: str = "supernet"
    seed: int | None = None

    @property
    def experiment(self) -> str:
        return Path(self.run_dir).resolve().name

    def tags(self) -> dict[str, str]:
        tags = {"nasnav.run": self.experiment, "nasnav.job": self.job, "nasnav.arch": self.arch}
        if self.round is not None:
            tags["nasnav.round"] = str(self.round)
        if self.seed is not None:
            tags["nasnav.seed"] = str(self.seed)
        return tags

    def name(self) -> str:
        """A folder-safe name of the training: 'round1-retrain-conv3x3__skip-seed0'."""
        arch = self.arch.replace("/", "__").replace("+", "_")
        bits = ([f"round{self.round}"] if self.round is not None else []) + [self.job]
        bits += [arch] if self.job != "supernet" else []
        bits += [f"seed{self.seed}"] if self.seed is not None else []
        return "-".join(bits)


def require(tracker: str, uri: str | None = None) -> None:
    """InvalidInput naming the package when ``trainer.logger: <tracker>`` cannot be used here."""
    needed = PACKAGES.get(tracker, ())
    if tracker == "mlflow" and (uri is None or uri.startswith("sqlite:")):
        needed = needed + SQLITE_PACKAGES
    missing = [p for p in needed if not _importable(p)]
    if missing:
        raise InvalidInput(f"trainer.logger: {tracker!r} needs the package{'s' if len(missing) > 1 else ''} "
                           f"{', '.join(missing)}, which {'are' if len(missing) > 1 else 'is'} not installed here; "
                           f"install it ({INSTALL[tracker]}) or set trainer.logger: csv")


def _importable(package: str) -> bool:
    try:
        importlib.import_module(package)
    except ImportError:
        return False
    return True


def tracking_uri(tc: TrainerConfig, run_dir: str | Path) -> str:
    """MLflow's tracking URI: ``trainer.tracking_uri``, else an SQLite file in the run's tracking folder."""
    return tc.tracking_uri or f"sqlite:///{(Path(run_dir) / layout.TRACKING / 'mlflow.db').resolve()}"


def prepare(tc: TrainerConfig, run_dir: str | Path) -> None:
    """Check the tracker can be used and create what several processes would otherwise race to create (MLflow's
    store and the run's experiment); called by the job before its trainings start."""
    require(tc.logger, tc.tracking_uri)
    (Path(run_dir) / layout.TRACKING).mkdir(parents=True, exist_ok=True)
    rank_zero = all(os.environ.get(v, "0") == "0" for v in ("RANK", "LOCAL_RANK", "NODE_RANK"))  # DDP: once
    if tc.logger == "mlflow" and rank_zero:
        _experiment_id(tracking_uri(tc, run_dir), Path(run_dir).resolve().name)


def _experiment_id(uri: str, name: str) -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except Exception:  # another process created it first
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def make_logger(tc: TrainerConfig, tracking: Tracking | None):
    """The Lightning logger of one training (False without ``tracking``: a training outside any run)."""
    if tracking is None:
        return False
    require(tc.logger, tc.tracking_uri)
    root = Path(tracking.run_dir) / layout.TRACKING
    if tc.logger == "mlflow":
        from lightning.pytorch.loggers import MLFlowLogger

        return MLFlowLogger(experiment_name=tracking.experiment, run_name=tracking.name(),
                            tracking_uri=tracking_uri(tc, tracking.run_dir), tags=tracking.tags())
    if tc.logger == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        logger = TensorBoardLogger(save_dir=str(root), name="tensorboard", version=tracking.name(),
                                   default_hp_metric=False)
    else:
        from lightning.pytorch.loggers import CSVLogger

        # a training run again (resumed, or retrained with new settings) gets a folder of its own: CSVLogger
        # would empty the old one
        version, i = tracking.name(), 2
        while (root / "csv" / version).exists():
            version, i = f"{tracking.name()}-{i}", i + 1
        logger = CSVLogger(save_dir=str(root), name="csv", version=version)
    logger.log_hyperparams(tracking.tags())  # these two keep tags as hyperparameters
    return logger
