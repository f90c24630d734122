"""Ranking fidelity: does the supernet rank architectures as standalone training does?

    python bench/ranking.py --preset digits --archs 50 --seeds 3
    python bench/ranking.py --preset tiny --archs 6 --seeds 2 --quick --no-write   # smoke test

For each supernet training scheme (sampler) and budget: sample architectures uniformly from the
preset's space, score each with the supernet (BN recalibrated), train each standalone with
several seeds (mean = ground truth), and report Kendall tau, Spearman rho, top-5 hit, the spread
of ground truth, and the ceiling: tau between two single-seed standalone trainings.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import kendalltau, spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import markdown_table, report  # noqa: E402
from nasnav.config import load_config, preset_path  # noqa: E402
from nasnav.evaluate import SupernetEvaluator, make_recal_batches  # noqa: E402
from nasnav.module import SupernetModule, augment_batch, make_optimizer, path_sampler  # noqa: E402
from nasnav.pipeline import load_data  # noqa: E402
from nasnav.supernet import build_network  # noqa: E402


def _accuracy(forward, x, y) -> float:
    with torch.no_grad():
        return float((torch.cat([forward(c).argmax(1) for c in x.split(1024)]) == y).float().mean())


def _fit(net_forward, params, splits, epochs, section, seed, batch_size, augment, before_step=None) -> None:
    """A plain training loop (the same optimiser and cosine schedule as the engine, less overhead)."""
    opt = make_optimizer(params, section)
    steps_per_epoch = max(1, len(splits.y_train) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
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
            F.cross_entropy(net_forward(x, step), y).backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            sched.step()
            step += 1


def standalone_acc(cfg, space, arch, splits, seed: int, epochs: int) -> float:
    torch.manual_seed(seed)
    spec = splits.spec
    net = build_network(space, arch, spec.kind, spec.shape[0], spec.num_classes).train()
    rc = cfg.retrain
    section = {"optimizer": rc.optimizer, "lr": rc.lr, "momentum": rc.momentum, "weight_decay": rc.weight_decay}
    _fit(lambda x, s: net(x), list(net.parameters()), splits, epochs, section, seed, cfg.data.batch_size,
         rc.augment and spec.kind != "tabular")
    net.eval()
    return _accuracy(net, splits.x_val, splits.y_val)


def supernet_scores(cfg, space, archs, splits, sampler: str, epochs: int, seed: int) -> list[float]:
    torch.manual_seed(seed)
    spec = splits.spec
    sc = cfg.supernet
    section = {"optimizer": sc.optimizer, "lr": sc.lr, "momentum": sc.momentum, "weight_decay": sc.weight_decay}
    module = SupernetModule(space.to_dict(), spec.kind, spec.shape[0], spec.num_classes, section, sampler=sampler, seed=seed)
    net = module.net.train()
    sample = path_sampler(space, sampler, seed)
    _fit(lambda x, s: net(x, sample(s)), list(net.parameters()), splits, epochs, section, seed, cfg.data.batch_size,
         False)
    recal = make_recal_batches(splits.x_train, cfg.search.recal_batches, cfg.data.batch_size, seed)
    ev = SupernetEvaluator(net, recal, splits.x_val, splits.y_val, tuple(spec.shape))
    return [ev(a)["one_shot_acc"] for a in archs]


def top5_hit(pred, truth, tol=0.005) -> bool:
    best = max(truth)
    top = np.argsort(pred)[::-1][:5]
    return any(truth[i] >= best - tol for i in top)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="digits")
    ap.add_argument("--archs", type=int, default=50)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=None, help="standalone epochs (default: retrain.epochs)")
    ap.add_argument("--budgets", default=None, help="comma-separated supernet epochs (default: supernet.epochs)")
    ap.add_argument("--samplers", default="uniform,fair")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    cfg = load_config(preset_path(args.preset))
    splits = load_data(cfg)
    space = cfg.search_space()
    rng = np.random.default_rng(0)
    archs = []
    seen = set()
    while len(archs) < min(args.archs, space.size()):
        a = space.sample(rng)
        if str(a) not in seen:
            seen.add(str(a))
            archs.append(a)
    epochs = args.epochs or cfg.retrain.epochs
    t0 = time.time()
    truth_runs = np.array([[standalone_acc(cfg, space, a, splits, 100 + s, epochs) for a in archs]
                           for s in range(args.seeds)])  # (seeds, archs)
    t_truth = time.time() - t0
    truth = truth_runs.mean(0)
    ceiling = kendalltau(truth_runs[0], truth_runs[1])[0] if args.seeds >= 2 else float("nan")
    budgets = [int(b) for b in args.budgets.split(",")] if args.budgets else [cfg.supernet.epochs]
    rows = []
    for sampler in args.samplers.split(","):
        for budget in budgets:
            t = time.time()
            pred = supernet_scores(cfg, space, archs, splits, sampler, budget, cfg.seed)
            tau, p = kendalltau(pred, truth)
            rho = spearmanr(pred, truth)[0]
            rows.append({"scheme": sampler, "supernet epochs": budget, "N": len(archs), "tau": f"{tau:.3f}",
                         "p": f"{p:.2g}", "rho": f"{rho:.3f}", "ceiling tau": f"{ceiling:.3f}",
                         "tau / ceiling": f"{tau / ceiling:.2f}" if ceiling > 0 else "-",
                         "top-5 hit": "yes" if top5_hit(pred, truth) else "no",
                         "seconds": f"{time.time() - t:.0f}"})
    body = (f"Ground truth: {args.seeds} seeds x {len(archs)} architectures, {epochs} epochs each "
            f"({t_truth:.0f} s); accuracy spread {truth.min():.3f}..{truth.max():.3f} "
            f"(std {truth.std():.3f}); seed-to-seed tau (ceiling) {ceiling:.3f}.\n\n" + markdown_table(rows))
    report(f"Ranking fidelity ({args.preset})", body, write=not args.no_write)


if __name__ == "__main__":
    main()
