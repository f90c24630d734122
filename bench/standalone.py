"""Standalone training of one architecture for the benchmarks, with an on-disk cache.

The ranking benchmark (ground truth) and the search-efficiency benchmark (random search and
Optuna with standalone training) train many architectures from scratch, often the same ones. Each
training is the product's own (``nasnav.train.standalone.train_standalone``: the Lightning trainer,
the ``retrain`` settings, early stopping with ``retrain.patience``, validation and test accuracy
from the product's evaluation loop), on one process, deterministic in (data split, space, retrain
and trainer settings, architecture, seed, epochs). So its result (validation and test accuracy)
and its measured wall time are cached in a JSON-lines file and reused: a cached entry costs its
recorded seconds in simulated wall time, not real time.

Cache file: ``$NASNAV_BENCH_CACHE`` or ``~/.cache/nasnav-bench/standalone.jsonl``; ``None`` or the
empty string turns caching off.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from nasnav.data.augment import Augmentation
from nasnav.train.standalone import train_standalone

# 2: trained by the product's train_standalone (Lightning, per-epoch schedule, early stopping);
# 1 was the benchmark's own plain loop: its entries are not reused.
CACHE_VERSION = 2


def default_cache() -> Path | None:
    env = os.environ.get("NASNAV_BENCH_CACHE")
    if env is not None:
        return Path(env) if env else None
    return Path.home() / ".cache" / "nasnav-bench" / "standalone.jsonl"


# The data keys a training's result depends on (not where files are kept, or how many loader workers):
# named one by one, so that a new config key elsewhere in the data section does not void the cache.
DATA_KEYS = ("source", "path", "target", "val_fraction", "test_fraction", "batch_size", "image_size", "grayscale",
             "max_samples")


def data_identity(data) -> dict:
    return {k: getattr(data, k, None) for k in DATA_KEYS}


class StandaloneTrainer:
    """``trainer(arch, seed) -> {"val_acc", "test_acc", "seconds", "cached"}`` for one config."""

    def __init__(self, cfg, splits, epochs: int | None = None, cache: Path | None | str = "default"):
        self.cfg, self.splits = cfg, splits
        self.space = cfg.search_space()
        self.epochs = int(epochs or cfg.retrain.epochs)
        self.cache_path = default_cache() if cache == "default" else (Path(cache) if cache else None)
        rc, tc = cfg.retrain, cfg.trainer
        # everything train_standalone's result depends on (retrain.seeds / top_k / spotcheck_* do not)
        augment = rc.augment and splits.spec.kind != "tabular"
        recipe = Augmentation.for_data(cfg.data, splits.spec.kind, splits.spec.shape)
        if augment and recipe != Augmentation(max(1, min(splits.spec.shape[1:]) // 16)):
            augment = recipe.to_dict()  # not the small crop of before (a standard set, or data.crop_padding / flip)
        retrain = {"optimizer": rc.optimizer, "lr": rc.lr, "momentum": rc.momentum, "weight_decay": rc.weight_decay,
                   "schedule": rc.schedule, "augment": augment, "patience": rc.patience}
        trainer = {"accelerator": tc.accelerator, "precision": tc.precision, "deterministic": tc.deterministic}
        ident = json.dumps({"data": data_identity(cfg.data), "seed": cfg.seed, "space": self.space.to_dict(),
                            "retrain": retrain, "trainer": trainer, "epochs": self.epochs,
                            "n": [len(splits.y_train), len(splits.y_val), len(splits.y_test)], "v": CACHE_VERSION},
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
        t = time.perf_counter()
        res = train_standalone(self.cfg, self.space, a, self.splits, int(seed), self.epochs, quiet=True,
                               single_process=True, test=True)
        # the whole call (training and its validation and test passes), as a user waits for it
        e = {"key": self.key, "arch": str(arch), "seed": int(seed), "val_acc": float(res["val_acc"]),
             "test_acc": float(res["test_acc"]), "seconds": time.perf_counter() - t,
             "epochs_trained": int(res["epochs_trained"])}
        self.entries[name] = e
        self.trained += 1
        if self.cache_path is not None:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.cache_path, "a") as f:
                f.write(json.dumps(e) + "\n")
        return {**e, "cached": False}
