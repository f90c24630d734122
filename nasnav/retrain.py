"""Standalone training of chosen architectures from scratch; results in ``final/<arch-key>/``."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nasnav.config import Config
from nasnav.runs import RunDir, arch_key, atomic_write_bytes, write_json, write_yaml
from nasnav.space import Arch, SearchSpace

METRICS_FILE = "metrics.json"
WEIGHTS_FILE = "weights.pt"


def train_standalone(cfg: Config, space: SearchSpace, arch: Arch, splits, seed: int, epochs: int,
                     metrics_path: Path | None = None, run: RunDir | None = None, augment: bool | None = None,
                     test: bool = True) -> dict:
    """Train one architecture from scratch; returns accuracies, curve rows and the trained module."""
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import EarlyStopping

    from nasnav.data import NasDataModule
    from nasnav.module import StandaloneModule
    from nasnav.training import RunReporter, make_trainer

    rc = cfg.retrain
    spec = splits.spec
    pl.seed_everything(seed, workers=True, verbose=False)
    optim = {"optimizer": rc.optimizer, "lr": rc.lr, "momentum": rc.momentum, "weight_decay": rc.weight_decay,
             "schedule": rc.schedule}
    module = StandaloneModule(space.unpruned().to_dict(), str(arch), spec.kind, spec.shape[0], spec.num_classes,
                              optim, augment=rc.augment if augment is None else augment)
    callbacks = []
    reporter = None
    if run is not None and metrics_path is not None:
        reporter = RunReporter(run, metrics_path, "retrain", epochs)
        callbacks.append(reporter)
    if rc.patience:
        callbacks.append(EarlyStopping(monitor="val_acc", mode="max", patience=rc.patience))
    root = metrics_path.parent if metrics_path is not None else Path(".")
    trainer = make_trainer(cfg.trainer, epochs, root, callbacks, grad_clip=5.0)
    dm = NasDataModule(cfg.data, cfg.seed, splits)
    t0 = time.time()
    trainer.fit(module, datamodule=dm)
    seconds = time.time() - t0
    val = trainer.validate(module, datamodule=dm, verbose=False)[0]
    out = {"val_acc": float(val["val_acc"]), "val_loss": float(val["val_loss"]), "train_seconds": seconds,
           "epochs_trained": trainer.current_epoch, "module": module, "rows": reporter.rows if reporter else [],
           "is_global_zero": trainer.is_global_zero}
    if test:
        res = trainer.test(module, datamodule=dm, verbose=False)[0]
        out.update(test_acc=float(res["test_acc"]), test_loss=float(res["test_loss"]))
    return out


def retrain(run: RunDir, cfg: Config, space: SearchSpace, arch: Arch, seeds: int | None = None,
            one_shot_acc: float | None = None) -> dict:
    """Retrain an architecture with one or more seeds; writes final/<key>/ and returns metrics."""
    from nasnav.evaluate import count_flops, latency_ms
    from nasnav.pipeline import load_data

    seeds = seeds or cfg.retrain.seeds
    splits = load_data(cfg)
    key = arch_key(str(arch))
    out_dir = run.final_dir(key)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for i in range(seeds):
        res = train_standalone(cfg, space, arch, splits, cfg.seed + i, cfg.retrain.epochs,
                               metrics_path=out_dir / ("metrics.csv" if i == 0 else f"metrics_seed{i}.csv"), run=run)
        if not res["is_global_zero"]:
            return {}
        results.append(res)
    net = results[0]["module"].net.cpu().eval()
    shape = tuple(splits.spec.shape)
    test_accs = [r["test_acc"] for r in results]
    metrics = {
        "arch": str(arch),
        "key": key,
        "round": run.current_round(),
        "test_acc": float(np.mean(test_accs)),
        "test_acc_std": float(np.std(test_accs)) if len(test_accs) > 1 else 0.0,
        "test_accs": test_accs,
        "val_acc": float(np.mean([r["val_acc"] for r in results])),
        "one_shot_acc": one_shot_acc,
        "params": int(sum(p.numel() for p in net.parameters())),
        "flops": count_flops(net, shape),
        "latency_ms": latency_ms(net, shape),
        "train_seconds": float(sum(r["train_seconds"] for r in results)),
        "epochs": cfg.retrain.epochs,
        "seeds": seeds,
    }
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    atomic_write_bytes(out_dir / WEIGHTS_FILE, buf.getvalue())
    write_yaml(out_dir / "arch.yaml", {"arch": str(arch), "space": space.unpruned().to_dict(),
                                       "input": splits.spec.to_dict()})
    write_json(out_dir / METRICS_FILE, metrics)
    return metrics


def read_finals(run: RunDir) -> pd.DataFrame:
    """One row per retrained architecture."""
    from nasnav.runs import read_json

    rows = [read_json(run.final_dir(k) / METRICS_FILE) for k in run.finals()]
    return pd.DataFrame([r for r in rows if r])
