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
    """``trainer(arch, seed) -> {"val_acc", "test_acc", "seconds", "cached"}`` for one config.

    ``clock``: what ``seconds`` is: ``wall`` (the call's wall time) or ``cpu`` (the process's CPU time
    during the call: on a machine shared with other jobs, it stays what the training costs where wall
    time swells with the load; with one torch thread it is the wall time of a quiet machine). Every
    entry records both; an entry without CPU time (an older one) is trained again when ``cpu`` is asked.
    """

    def __init__(self, cfg, splits, epochs: int | None = None, cache: Path | None | str = "default",
                 clock: str = "wall"):
        if clock not in ("wall", "cpu"):
            raise ValueError(f"clock '{clock}': wall or cpu")
        self.cfg, self.splits, self.clock = cfg, splits, clock
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
        self._read = 0  # bytes of the cache file read so far
        self._load_new()
        self.trained = 0  # trainings actually run (not cached)

    def _load_new(self) -> None:
        """Entries appended to the cache file since the last read (by this process or another one
        training side by side with it: each entry is one append of one line)."""
        if self.cache_path is None or not self.cache_path.exists():
            return
        with open(self.cache_path, "rb") as f:
            f.seek(self._read)
            data = f.read()
        end = data.rfind(b"\n") + 1  # a line still being written is read next time
        self._read += end
        for line in data[:end].decode(errors="replace").splitlines():
            try:
                e = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn line of an interrupted run
            if e.get("key") == self.key:
                self.entries[f"{e['arch']}|{e['seed']}"] = e

    def _hit(self, name: str) -> dict | None:
        e = self.entries.get(name)
        return e if e is not None and (self.clock == "wall" or "cpu_seconds" in e) else None

    def __call__(self, arch, seed: int) -> dict:
        name = f"{arch}|{seed}"
        if self._hit(name) is None:
            self._load_new()
        if (e := self._hit(name)) is not None:
            return self._result(e, True)
        a = self.space.parse(str(arch), check_active=False)
        t, cpu = time.perf_counter(), time.process_time()
        res = train_standalone(self.cfg, self.space, a, self.splits, int(seed), self.epochs, quiet=True,
                               single_process=True, test=True)
        # the whole call (training and its validation and test passes), as a user waits for it
        e = {"key": self.key, "arch": str(arch), "seed": int(seed), "val_acc": float(res["val_acc"]),
             "test_acc": float(res["test_acc"]), "seconds": time.perf_counter() - t,
             "cpu_seconds": time.process_time() - cpu, "epochs_trained": int(res["epochs_trained"])}
        self.entries[name] = e
        self.trained += 1
        if self.cache_path is not None:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.cache_path, "a") as f:
                f.write(json.dumps(e) + "\n")
        return self._result(e, False)

    def _result(self, e: dict, cached: bool) -> dict:
        return {**e, "seconds": e["cpu_seconds"] if self.clock == "cpu" else e["seconds"], "cached": cached}
