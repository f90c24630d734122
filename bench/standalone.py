"""Standalone training of one architecture for the benchmarks, with an on-disk cache.

The ranking benchmark (ground truth) and the search-efficiency benchmark (random search and
Optuna with standalone training) train many architectures from scratch, often the same ones. Each
training is deterministic in (data split, space, retrain settings, architecture, seed, epochs), so
its result (validation and test accuracy) and its measured wall time are cached in a JSON-lines
file and reused: a cached entry costs its recorded seconds in simulated wall time, not real time.

Cache file: ``$NASNAV_BENCH_CACHE`` or ``~/.cache/nasnav-bench/standalone.jsonl``; ``None`` or the
empty string turns caching off.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from nasnav.model.supernet import build_network
from nasnav.train.modules import augment_batch, make_optimizer


def default_cache() -> Path | None:
    env = os.environ.get("NASNAV_BENCH_CACHE")
    if env is not None:
        return Path(env) if env else None
    return Path.home() / ".cache" / "nasnav-bench" / "standalone.jsonl"


def accuracy(forward, x, y) -> float:
    with torch.no_grad():
        return float((torch.cat([forward(c).argmax(1) for c in x.split(1024)]) == y).float().mean())


def fit(net_forward, params, splits, epochs, section, seed, batch_size, augment, extra_loss=None) -> None:
    """A plain training loop: the engine's optimiser, a per-step cosine schedule, gradient clipping.

    ``net_forward(x, step) -> logits``; ``extra_loss(x, y, step) -> loss`` replaces plain
    cross-entropy of ``net_forward`` when given (the supernet variants use it for distillation).
    """
    opt = make_optimizer(params, section)
    steps_per_epoch = max(1, len(splits.y_train) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs * steps_per_epoch))
    g = torch.Generator().manual_seed(seed)
    step = 0
    for _ in range(epochs):
        perm = torch.randperm(len(splits.y_train), generator=g)
        for i in range(steps_per_epoch):
            idx = perm[i * batch_size:(i + 1) * batch_size]
            x, y = splits.x_train[idx], splits.y_train[idx]
            if augment:
                x = augment_batch(x, max(1, min(x.shape[2:]) // 16))
            opt.zero_grad(set_to_none=True)
            if extra_loss is None:
                loss = F.cross_entropy(net_forward(x, step), y)
            else:
                loss = extra_loss(x, y, step)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            sched.step()
            step += 1


class StandaloneTrainer:
    """``trainer(arch, seed) -> {"val_acc", "test_acc", "seconds", "cached"}`` for one config."""

    def __init__(self, cfg, splits, epochs: int | None = None, cache: Path | None | str = "default"):
        self.cfg, self.splits = cfg, splits
        self.space = cfg.search_space()
        self.epochs = int(epochs or cfg.retrain.epochs)
        self.cache_path = default_cache() if cache == "default" else (Path(cache) if cache else None)
        rc = cfg.retrain
        self.section = {"optimizer": rc.optimizer, "lr": rc.lr, "momentum": rc.momentum,
                        "weight_decay": rc.weight_decay}
        self.augment = rc.augment and splits.spec.kind != "tabular"
        ident = json.dumps({"data": repr(cfg.data), "seed": cfg.seed, "space": self.space.to_dict(),
                            "section": self.section, "augment": self.augment, "epochs": self.epochs,
                            "n": [len(splits.y_train), len(splits.y_val), len(splits.y_test)], "v": 1},
                           sort_keys=True, default=str)
        self.key = hashlib.sha1(ident.encode()).hexdigest()[:16]
        self.entries: dict[str, dict] = {}
        if self.cache_path is not None and self.cache_path.exists():
            for line in self.cache_path.read_text().splitlines():
                try:
                    e = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn last line of an interrupted run
                if e.get("key") == self.key:
                    self.entries[f"{e['arch']}|{e['seed']}"] = e
        self.trained = 0  # trainings actually run (not cached)

    def __call__(self, arch, seed: int) -> dict:
        name = f"{arch}|{seed}"
        if name in self.entries:
            return {**self.entries[name], "cached": True}
        a = self.space.parse(str(arch), check_active=False)
        torch.manual_seed(seed)
        spec = self.splits.spec
        t = time.perf_counter()
        net = build_network(self.space, a, spec.kind, spec.shape[0], spec.num_classes).train()
        fit(lambda x, s: net(x), list(net.parameters()), self.splits, self.epochs, self.section, seed,
            self.cfg.data.batch_size, self.augment)
        net.eval()
        val = accuracy(net, self.splits.x_val, self.splits.y_val)
        test = accuracy(net, self.splits.x_test, self.splits.y_test)
        e = {"key": self.key, "arch": str(arch), "seed": int(seed), "val_acc": val, "test_acc": test,
             "seconds": time.perf_counter() - t}
        self.entries[name] = e
        self.trained += 1
        if self.cache_path is not None:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.cache_path, "a") as f:
                f.write(json.dumps(e) + "\n")
        return {**e, "cached": False}
