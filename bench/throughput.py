"""Engine throughput: supernet step overhead, candidates scored per second, projection time.

    python bench/throughput.py                 # digits preset, recorded in bench/results
    python bench/throughput.py --preset tiny --quick --no-write   # smoke test

Targets (issue 6): supernet step <= 1.10x the sampled architecture trained alone; 1,000
candidates on digits scored (with BN recalibration) in under 15 s on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import markdown_table, median_spread, report, set_threads  # noqa: E402
from nasnav.config import load_config, preset_path  # noqa: E402
from nasnav.model.supernet import Supernet  # noqa: E402
from nasnav.score.evaluate import SupernetEvaluator, make_recal_batches  # noqa: E402
from nasnav.train.modules import make_optimizer  # noqa: E402
from nasnav.workflow.runs import load_data  # noqa: E402


def _steps(forward, params, batches, section) -> float:
    """Seconds per optimisation step (forward, backward, SGD step) over the batches."""
    opt = make_optimizer(params, section)
    t = time.perf_counter()
    for x, y in batches:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(forward(x), y).backward()
        opt.step()
    return (time.perf_counter() - t) / len(batches)


def step_overhead(cfg, splits, n_archs: int, n_steps: int, rng) -> list[float]:
    """Per sampled architecture: supernet step time / standalone step time, same batches."""
    space = cfg.search_space()
    spec = splits.spec
    net = Supernet(space, spec.kind, spec.shape[0], spec.num_classes).train()
    section = {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4}
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(len(splits.x_train), (n_steps, cfg.data.batch_size), generator=g)
    batches = [(splits.x_train[i], splits.y_train[i]) for i in idx]
    ratios = []
    for _ in range(n_archs):
        arch = space.sample(rng)
        alone = net.extract(arch).train()
        _steps(lambda x: alone(x), list(alone.parameters()), batches[:2], section)  # warm-up
        t_alone = min(_steps(lambda x: alone(x), list(alone.parameters()), batches, section) for _ in range(3))
        t_super = min(_steps(lambda x, a=arch: net(x, a), list(net.parameters()), batches, section) for _ in range(3))
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
