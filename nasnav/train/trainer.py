"""Lightning Trainer construction and the callbacks that report into a run directory."""

from __future__ import annotations

import io
import math
import re
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from nasnav.config import TrainerConfig
from nasnav.errors import InvalidInput
from nasnav.quiet import hide_srun_hint
from nasnav.store.io import atomic_write_bytes, read_csv, write_csv
from nasnav.store.run_dir import RunDir
from nasnav.train.devices import launch
from nasnav.train.tracking import Tracking, make_logger

METRIC_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "samples_per_s"]


class RunReporter(Callback):
    """Writes metrics.csv (one row per epoch) and status.json progress from rank 0 (no status without
    ``run``: a worker among several, whose parent reports the progress)."""

    def __init__(self, run: RunDir | None, metrics_path: Path, job: str, total_epochs: int, first_epoch_rows: list | None = None):
        self.run, self.metrics_path, self.job, self.total = run, Path(metrics_path), job, total_epochs
        self.rows = list(first_epoch_rows or [])
        self._last_write = 0.0

    def on_train_start(self, trainer, pl_module):
        self.t0 = time.time()
        self.start_epoch = trainer.current_epoch  # > 0 when resumed from a checkpoint
        self.epoch_t0 = time.time()
        self.samples = 0

    def on_train_epoch_start(self, trainer, pl_module):
        self.epoch_t0 = time.time()
        self.samples = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.samples += len(batch[0]) * trainer.world_size
        if not trainer.is_global_zero or time.time() - self._last_write < 1.0:
            return
        self._last_write = time.time()
        n = trainer.num_training_batches if math.isfinite(trainer.num_training_batches) else 1
        done = trainer.current_epoch + (batch_idx + 1) / max(1, n)
        self._status(trainer, done, f"epoch {trainer.current_epoch + 1}/{self.total}, batch {batch_idx + 1}/{n}")

    def on_train_epoch_end(self, trainer, pl_module):
        if not trainer.is_global_zero:
            return
        m = {k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v) and v.numel() == 1}
        seconds = time.time() - self.epoch_t0
        opt = trainer.optimizers[0] if trainer.optimizers else None
        row = {
            "epoch": trainer.current_epoch + 1,
            "train_loss": m.get("train_loss"),
            "train_acc": m.get("train_acc"),
            "val_loss": m.get("val_loss"),
            "val_acc": m.get("val_acc"),
            "lr": opt.param_groups[0]["lr"] if opt else None,
            "seconds": round(seconds, 3),
            "samples_per_s": round(self.samples / seconds, 1) if seconds > 0 else None,
        }
        self.rows = [r for r in self.rows if r["epoch"] < row["epoch"]] + [row]

        write_csv(self.metrics_path, pd.DataFrame(self.rows, columns=METRIC_COLUMNS))
        self._status(trainer, trainer.current_epoch + 1, f"epoch {row['epoch']}/{self.total} done, val_acc {row['val_acc']:.3f}" if row["val_acc"] is not None else f"epoch {row['epoch']}/{self.total} done")

    def _status(self, trainer, done_epochs: float, message: str):
        if self.run is None:
            return
        elapsed = time.time() - self.t0
        rate = (done_epochs - getattr(self, "start_epoch", 0)) / elapsed if elapsed > 0 else 0
        eta = (self.total - done_epochs) / rate if rate > 0 else None
        self.run.write_status(progress=min(1.0, done_epochs / max(1, self.total)), message=message,
                              eta_seconds=eta, extra={"epoch": int(done_epochs), "epochs": self.total,
                                                      "samples_per_s": self.samples / max(1e-9, time.time() - self.epoch_t0)})


class NonFiniteLossError(FloatingPointError, InvalidInput):
    """Training diverged (NaN, infinite or exploding loss or weights).

    A ValueError too: the cause is a setting the user can change (the learning rate), so the CLI
    reports it without a traceback (exit 2) and ``pipeline.job`` marks the job failed with it.
    """


EXPLODED_LOSS = 1e4  # cross-entropy this large means logit gaps of 1e4: the run has diverged


def _diverged(what: str, value: float, where: str, key: str) -> NonFiniteLossError:
    clip = " or set a gradient clip (supernet.grad_clip)" if key.startswith("supernet") else ""
    return NonFiniteLossError(
        f"{what} became {value:g} {where}: training diverged; lower the learning rate ({key}, e.g. 10 times "
        f"smaller){clip} and start the training again; no result of this training was saved"
    )


class NonFiniteLoss(Callback):
    """Stops training with a clear message when the loss becomes NaN, infinite or explodes
    (> ``EXPLODED_LOSS``), or when a weight is no longer finite at the end of an epoch (the last
    optimizer step can break the weights after the last loss was checked).

    ``lr_key``: the config key to suggest lowering; None: ``supernet.lr`` for supernet training,
    ``retrain.lr`` otherwise (told apart by the module's class).
    """

    def __init__(self, lr_key: str | None = None, max_loss: float = EXPLODED_LOSS):
        self.lr_key, self.max_loss = lr_key, max_loss

    def _key(self, pl_module) -> str:
        if self.lr_key:
            return self.lr_key
        return "supernet.lr" if type(pl_module).__name__.startswith("Supernet") else "retrain.lr"

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None or not torch.is_tensor(loss):
            return
        value = float(loss.detach().float().max()) if loss.numel() else 0.0
        if not math.isfinite(value) or value > self.max_loss:
            raise _diverged("training loss", value, f"at epoch {trainer.current_epoch + 1}, batch {batch_idx + 1}",
                            self._key(pl_module))

    def on_train_epoch_end(self, trainer, pl_module):
        for name, p in pl_module.named_parameters():
            if not torch.isfinite(p).all():
                raise _diverged(f"weight '{name}'", float("nan"), f"after epoch {trainer.current_epoch + 1}",
                                self._key(pl_module))


def describe_load_error(e: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in words for the user (torch's own
    message suggests ``weights_only=False``, which is exactly what must not be done with it)."""

    text = str(e)
    m = re.search(r"GLOBAL ([\w.]+)", text)
    if m:
        return f"it names Python code ({m.group(1)}), which is never loaded: it is not a plain weights file"
    if isinstance(e, (EOFError, RuntimeError)) or "zip archive" in text or "truncated" in text:
        return "it is damaged or cut short"
    first = text.strip().splitlines()[0] if text.strip() else ""
    if first.startswith("Weights only load failed"):
        return "it is not a plain weights file"
    # random bytes reach the unpickler, which fails in many ways (IndexError, KeyError, ValueError, ...)
    return f"it is damaged or not a checkpoint at all: {type(e).__name__}{': ' + first[:200] if first else ''}"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoints written atomically into the run directory and read back safely.

    Lightning's own writer stages the file in the system temp folder and moves it; across file
    systems that move is a copy, which a kill can cut short. Here the bytes go to a temporary file
    next to the target and are renamed over it (``runs.atomic_write_bytes``): a killed job or a full
    disk leaves the previous ``last.ckpt`` intact. Reading uses ``weights_only=True`` (no code is
    unpickled), and an unreadable file is a ValueError naming it.
    """

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        buf = io.BytesIO()
        torch.save(checkpoint, buf)
        atomic_write_bytes(path, buf.getvalue())

    def load_checkpoint(self, path, map_location=lambda storage, loc: storage, weights_only=None):
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except FileNotFoundError:
            raise InvalidInput(f"{path}: checkpoint not found") from None
        except Exception as e:
            raise InvalidInput(
                f"{path}: not a readable training checkpoint ({describe_load_error(e)}); "
                "delete it to start this training over"
            ) from None


def finished_epochs(last: Path, check=None) -> int | None:
    """Epochs finished in a Lightning ``last.ckpt`` (0 when there is none). ``check`` gets the
    checkpoint's hyper-parameters and says whether it belongs here; None when it does not.
    An unreadable file is a ValueError naming it."""
    if not Path(last).exists():
        return 0
    ckpt = AtomicCheckpointIO().load_checkpoint(last)
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if check is not None and not (isinstance(hp, dict) and check(hp)):
        return None
    return int(ckpt.get("epoch", -1)) + 1


def metric_rows_until(path: Path, done: int) -> list[dict]:
    """metrics.csv rows of the epochs a resumed training keeps (1..done), so none are lost."""
    if not done:
        return []


    df = read_csv(path, columns=METRIC_COLUMNS)
    df = df[pd.to_numeric(df["epoch"], errors="coerce") <= done].drop_duplicates("epoch", keep="last")
    return [{c: (None if v != v else v) for c, v in r.items()} for r in df[METRIC_COLUMNS].to_dict("records")]


def make_trainer(tc: TrainerConfig, max_epochs: int, root: Path, callbacks: list, grad_clip: float | None = None,
                 unused_parameters: bool = False, checkpoint_dir: Path | None = None,
                 lr_key: str | None = None, tracking: Tracking | None = None) -> pl.Trainer:
    """A Trainer from the ``trainer`` config section; saves ``last.ckpt`` each epoch for resume
    (atomically, see ``AtomicCheckpointIO``); stops on a diverged loss (``NonFiniteLoss``); logs metrics and
    hyperparameters to ``trainer.logger`` when ``tracking`` says which training of which run this is."""
    callbacks = [NonFiniteLoss(lr_key)] + list(callbacks)  # first: a diverged step is reported before anything is written
    if checkpoint_dir is not None:
        callbacks.append(ModelCheckpoint(dirpath=checkpoint_dir, filename="last", save_last=False, save_top_k=1,
                                         monitor=None, every_n_epochs=1, enable_version_counter=False))
    progress = tc.enable_progress_bar if tc.enable_progress_bar is not None else sys.stderr.isatty()
    hide_srun_hint()
    return pl.Trainer(
        accelerator=tc.accelerator,
        devices=tc.devices,
        num_nodes=tc.num_nodes,
        strategy=launch(tc, unused_parameters).strategy,  # find_unused_parameters for every DDP flavour
        precision=tc.precision,
        max_epochs=max_epochs,
        deterministic=tc.deterministic,
        logger=make_logger(tc, tracking),
        enable_checkpointing=checkpoint_dir is not None,
        enable_progress_bar=progress,
        enable_model_summary=False,
        callbacks=callbacks,
        gradient_clip_val=grad_clip,
        log_every_n_steps=tc.log_every_n_steps,
        default_root_dir=str(root),
        num_sanity_val_steps=0,
        plugins=[AtomicCheckpointIO()],
    )
