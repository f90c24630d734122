"""Training one architecture from scratch: the product's standalone trainer, used by retraining,
spot checks and the benchmarks' ground truth alike."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback, EarlyStopping

from nasnav.config import Config
from nasnav.data.augment import Augmentation
from nasnav.data.splits import NasDataModule
from nasnav.score.evaluate import exact_scores
from nasnav.space import Arch, SearchSpace
from nasnav.stop import JobStopped, stop_requested
from nasnav.store import layout
from nasnav.store.run_dir import RunDir
from nasnav.train.modules import StandaloneModule
from nasnav.train.tracking import Tracking
from nasnav.train.trainer import RunReporter, finished_epochs, make_trainer, metric_rows_until


class BestWeights(Callback):
    """Keeps the weights of the best validation epoch and puts them back at the end of fit.

    Used with early stopping: the last epoch is then by construction ``patience`` epochs past the
    best one. Its state is kept in last.ckpt, so a resumed training still knows its best epoch.
    """

    def __init__(self):
        self.best, self.state, self.epoch = -1.0, None, None

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking or "val_acc" not in trainer.callback_metrics:
            return
        acc = float(trainer.callback_metrics["val_acc"])
        if acc > self.best:
            self.best, self.epoch = acc, trainer.current_epoch + 1
            self.state = {k: v.detach().clone() for k, v in pl_module.net.state_dict().items()}

    def on_fit_end(self, trainer, pl_module):
        if self.state is not None:
            pl_module.net.load_state_dict(self.state)

    def state_dict(self):
        return {"best": self.best, "epoch": self.epoch, "state": self.state}

    def load_state_dict(self, state_dict):
        self.best, self.epoch, self.state = state_dict["best"], state_dict["epoch"], state_dict["state"]


def train_standalone(
    cfg: Config,
    space: SearchSpace,
    arch: Arch,
    splits,
    seed: int,
    epochs: int,
    metrics_path: Path | None = None,
    run: RunDir | None = None,
    augment: bool | None = None,
    test: bool = True,
    quiet: bool = False,
    single_process: bool = False,
    checkpoint_dir: Path | None = None,
    tracking: Tracking | None = None,
) -> dict:
    """Train one architecture from scratch under the ``retrain`` and ``trainer`` settings.

    Returns val (and, with ``test``, test) accuracy and loss, wall time, the epoch curve and the
    trained module. ``quiet`` turns off the progress bar; ``single_process`` forces one device
    (spot checks: many short trainings, where DDP start-up would dominate). With ``checkpoint_dir``,
    ``last.ckpt`` there is saved each epoch and a training killed midway resumes from it. With
    ``retrain.patience`` set, training stops early on validation accuracy and the best
    validation epoch's weights are kept. ``tracking``: the training's identity for ``trainer.logger``.
    """

    rc = cfg.retrain
    last = checkpoint_dir / layout.LAST_CKPT if checkpoint_dir is not None else None
    done = finished_epochs(last) if last is not None else 0
    spec = splits.spec
    pl.seed_everything(seed, workers=True, verbose=False)
    optim = {
        "optimizer": rc.optimizer,
        "lr": rc.lr,
        "momentum": rc.momentum,
        "weight_decay": rc.weight_decay,
        "schedule": rc.schedule,
    }
    module = StandaloneModule(
        space.unpruned().to_dict(),
        str(arch),
        spec.kind,
        spec.shape[0],
        spec.num_classes,
        optim,
        augment=Augmentation.for_data(cfg.data, spec.kind, spec.shape).to_dict()
        if (rc.augment if augment is None else augment) else False,
    )
    callbacks = []
    reporter = None
    if metrics_path is not None:  # without run: the curve only (a worker among several; no status.json)
        reporter = RunReporter(run, metrics_path, "retrain", epochs,
                               first_epoch_rows=metric_rows_until(metrics_path, done))
        callbacks.append(reporter)
    best = None
    if rc.patience:
        best = BestWeights()
        callbacks += [EarlyStopping(monitor="val_acc", mode="max", patience=rc.patience), best]
    tc = cfg.trainer
    if quiet:
        tc = dataclasses.replace(tc, enable_progress_bar=False)
    if single_process:
        tc = dataclasses.replace(tc, devices=1, num_nodes=1, strategy="auto")
    root = metrics_path.parent if metrics_path is not None else Path(".")
    trainer = make_trainer(tc, epochs, root, callbacks, grad_clip=5.0, checkpoint_dir=checkpoint_dir, lr_key="retrain.lr",
                           tracking=tracking)
    dm = NasDataModule(cfg.data, cfg.seed, splits)
    t0 = time.time()
    trainer.fit(module, datamodule=dm, ckpt_path=str(last) if done else None, weights_only=True)
    seconds = time.time() - t0
    if trainer.received_sigterm or stop_requested():
        raise JobStopped()
    if trainer.world_size > 1:  # one exact pass on each rank instead of Lightning's padded, split loop
        val_acc, val_loss = exact_scores(module.net, splits.x_val, splits.y_val)
    else:
        val = trainer.validate(module, datamodule=dm, verbose=False)[0]
        val_acc, val_loss = float(val["val_acc"]), float(val["val_loss"])
    out = {
        "val_acc": val_acc,
        "val_loss": val_loss,
        "train_seconds": seconds,
        "epochs_trained": trainer.current_epoch,
        "best_epoch": best.epoch if best else trainer.current_epoch,
        "module": module,
        "rows": reporter.rows if reporter else [],
        "is_global_zero": trainer.is_global_zero,
    }
    if test and trainer.world_size > 1:
        test_acc, test_loss = exact_scores(module.net, splits.x_test, splits.y_test)
        out.update(test_acc=test_acc, test_loss=test_loss)
    elif test:
        res = trainer.test(module, datamodule=dm, verbose=False)[0]
        out.update(test_acc=float(res["test_acc"]), test_loss=float(res["test_loss"]))
    return out
