"""Engine throughput: supernet step overhead, candidates scored per second, projection time.

    python bench/throughput.py                 # digits preset, recorded in bench/results
    python bench/throughput.py --preset tiny --quick --no-write   # smoke test

Targets (issue 6): supernet step <= 1.10x the sampled architecture trained alone; 1,000
candidates on digits scored (with BN recalibration) in under 15 s on 2 cores.

Steps are the product's: ``SupernetModule`` (its space pinned to the sampled architecture, so its
path sampler returns that path) and ``StandaloneModule`` of the same architecture, each fitted by
the product's Lightning trainer (``nasnav.train.trainer.make_trainer``, gradient clip as in
supernet and standalone training) on the same fixed batches; a step is the time between Lightning's
batch-start and batch-end hooks (forward, backward, clipping, optimiser step; no data loading).
Standalone training runs without augmentation here, as supernet training does, so that both
steps do the same work on the same input. Scoring is the product's ``SupernetEvaluator``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import markdown_table, median_spread, quiet_engine, report, set_threads  # noqa: E402
from nasnav.config import load_config, preset_path  # noqa: E402
from nasnav.model.supernet import Supernet  # noqa: E402
from nasnav.score.evaluate import SupernetEvaluator, make_recal_batches  # noqa: E402
from nasnav.train.modules import StandaloneModule, SupernetModule  # noqa: E402
from nasnav.train.trainer import make_trainer  # noqa: E402
from nasnav.workflow.runs import load_data  # noqa: E402


class StepTimer(Callback):
    """Seconds of each training step: from Lightning's batch-start hook to its batch-end hook."""

    def __init__(self):
        self.seconds: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.t = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.seconds.append(time.perf_counter() - self.t)


def _step_seconds(cfg, make_module, batches: DataLoader, grad_clip: float | None, unused: bool) -> float:
    """Mean seconds per step of one epoch over ``batches``, a fresh module fitted by the product's trainer
    (the ``trainer`` section on one process); the first step (allocation, warm-up) is not counted."""
    tc = dataclasses.replace(cfg.trainer, devices=1, num_nodes=1, strategy="auto", enable_progress_bar=False)
    timer = StepTimer()
    with tempfile.TemporaryDirectory(prefix="nasnav-throughput-") as tmp:
        trainer = make_trainer(tc, 1, Path(tmp), [timer], grad_clip=grad_clip, unused_parameters=unused)
        trainer.fit(make_module(), train_dataloaders=batches)
    steps = timer.seconds[1:] or timer.seconds
    return sum(steps) / len(steps)


def step_overhead(cfg, splits, n_archs: int, n_steps: int, rng) -> list[float]:
    """Per sampled architecture: supernet step time / standalone step time, same batches."""
    space = cfg.search_space()
    spec = splits.spec
    optim = {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4, "schedule": "constant"}
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(splits.y_train), generator=g)[: (n_steps + 1) * cfg.data.batch_size]
    # n_steps + 1 batches of the same size, in a fixed order (the first one is the warm-up)
    batches = DataLoader(TensorDataset(splits.x_train[idx], splits.y_train[idx]), batch_size=cfg.data.batch_size,
                         shuffle=False, drop_last=True)
    ratios = []
    for _ in range(n_archs):
        arch = space.sample(rng)
        pinned = space
        for i, choice in enumerate(arch.choices):
            pinned = pinned.pin(i, choice)  # the module's path sampler then always returns arch

        def supernet():
            return SupernetModule(pinned.to_dict(), spec.kind, spec.shape[0], spec.num_classes, optim, seed=0)

        def alone():
            return StandaloneModule(space.to_dict(), str(arch), spec.kind, spec.shape[0], spec.num_classes, optim,
                                    augment=False)

        t_alone = min(_step_seconds(cfg, alone, batches, 5.0, False) for _ in range(3))
        t_super = min(_step_seconds(cfg, supernet, batches, cfg.supernet.grad_clip, True) for _ in range(3))
        ratios.append(t_super / t_alone)
    return ratios


def scoring_speed(cfg, splits, n: int, rng) -> float:
    """Seconds to score n random candidates with BN recalibration (untrained weights: speed only)."""
    space = cfg.search_space()
    spec = splits.spec
    net = Supernet(space, spec.kind, spec.shape[0], spec.num_classes)
    recal = make_recal_batches(splits.x_train, cfg.search.recal_batches, cfg.data.batch_size, cfg.seed)
    ev = SupernetEvaluator(net, recal, splits.x_val, splits.y_val, tuple(spec.shape))
    archs = [space.sample(rng) for _ in range(n)]
    t = time.perf_counter()
    for a in archs:
        ev(a)
    return time.perf_counter() - t


def projection_speed(cfg, n: int, method: str, rng, reference: int = 1000) -> tuple[float, int]:
    """Seconds to fit a fresh projector (reference layout) and place n distinct candidates."""
    from nasnav.analysis.projection import Projector

    space = cfg.search_space()
    n = min(n, space.size())
    seen: dict[str, None] = {}
    while len(seen) < n:
        seen.setdefault(str(space.sample(rng)), None)
    archs = list(seen)
    t = time.perf_counter()
    Projector(space.unpruned(), method, seed=0, reference_size=reference).transform(archs)
    return time.perf_counter() - t, n


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="digits")
    ap.add_argument("--projection-preset", default="cifar10",
                    help="preset whose space is projected (needs >= 5,000 architectures; digits has 3,675)")
    ap.add_argument("--methods", default="mds,tsne,umap,pca", help="projection methods to time")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--no-write", action="store_true", help="print only; record nothing (bench/results, BENCHMARKS.md)")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    quiet_engine()
    cfg = load_config(preset_path(args.preset))
    splits = load_data(cfg)
    rng = np.random.default_rng(0)
    n_archs, n_steps, n_cand, n_proj, reps = (2, 3, 20, 50, 1) if args.quick else (10, 20, 1000, 5000, 3)
    ratios = step_overhead(cfg, splits, n_archs, n_steps, rng)
    scoring = [scoring_speed(cfg, splits, n_cand, rng) for _ in range(reps)]
    pcfg = load_config(preset_path(args.projection_preset if not args.quick else args.preset))
    proj = {m: [projection_speed(pcfg, n_proj, m, rng, 100 if args.quick else 1000) for _ in range(reps)]
            for m in args.methods.split(",")}
    rows = [
        {"measure": f"supernet step / standalone step ({n_archs} archs)", "result": median_spread(ratios),
         "target": "<= 1.10", "met": "yes" if np.median(ratios) <= 1.10 else "no"},
        {"measure": f"seconds to score {n_cand} candidates (BN recalibration incl.)", "result": median_spread(scoring),
         "target": "< 15 s for 1000" if n_cand == 1000 else "-",
         "met": ("yes" if np.median(scoring) < 15 else "no") if n_cand == 1000 else "-"},
    ]
    for m, res in proj.items():
        rows.append({"measure": f"seconds to project {res[0][1]} candidates, {m} (fit on 1,000 reference + place; "
                                f"{pcfg.name or args.projection_preset} space)",
                     "result": median_spread([r[0] for r in res]), "target": "-", "met": "-"})
    report(f"Engine throughput ({args.preset})", markdown_table(rows), write=not args.no_write, group=args.preset,
           params=vars(args), metrics={"step_ratio": float(np.median(ratios)), "score_s": float(np.median(scoring))})


if __name__ == "__main__":
    main()
