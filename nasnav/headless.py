"""The whole pipeline without the app: rounds of supernet + search (+ auto-pilot), then retrain."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from nasnav.config import Config
from nasnav.runs import RunDir


def score_candidates(run: RunDir, cfg: Config, k: int | None = None, budget: int | None = None,
                     strategy: str | None = None, evaluator=None) -> pd.DataFrame:
    """Score candidates of round k with the supernet (or ``evaluator``); appends to candidates.csv."""
    from nasnav.evaluate import SupernetEvaluator, make_recal_batches
    from nasnav.pipeline import load_data, load_supernet, round_space, stop_requested
    from nasnav.search import run_search

    k = run.current_round() if k is None else k
    space = round_space(run, cfg, k)
    budget = budget or cfg.search.budget
    if evaluator is None:
        net, spec = load_supernet(run, cfg, k)
        splits = load_data(cfg)
        recal = make_recal_batches(splits.x_train, cfg.search.recal_batches, cfg.data.batch_size, cfg.seed)
        evaluator = SupernetEvaluator(net, recal, splits.x_val, splits.y_val, tuple(spec.shape))
    rng = np.random.default_rng([cfg.seed, k, 17])

    def progress(done: int, total: int) -> None:
        if done % 5 == 0 or done == total:
            run.write_status(progress=done / total, message=f"scored {done}/{total} candidates")

    return run_search(run, space, k, evaluator, budget, rng, strategy=strategy or cfg.search.strategy,
                      seconds=cfg.search.seconds, should_stop=stop_requested, progress=progress)


def _stage(cfg: Config, run: RunDir, name: str, argv: list[str], fn: Callable[[], object]):
    """Run a training stage in-process, or as a subprocess when Lightning starts several processes."""
    from nasnav.cli import run_subcommand
    from nasnav.pipeline import job
    from nasnav.training import is_multiprocess

    if is_multiprocess(cfg.trainer):
        run_subcommand(argv)
        return None
    with job(run, name):
        return fn()


def run_pipeline(cfg: Config, run_dir: str | Path, resume: bool = False, say: Callable[[str], None] = print) -> int:
    """Create the run, then round after round: supernet, search, (auto-pilot decision); retrain the best."""
    from nasnav.pipeline import create_run, job, load_run, train_supernet
    from nasnav.retrain import read_finals, retrain
    from nasnav.search import read_candidates

    if resume:
        run, cfg = load_run(run_dir)
    else:
        run = create_run(cfg, run_dir)
    say(f"run directory: {run.path}")
    times: dict[str, float] = {}
    rounds = cfg.steering.rounds if cfg.steering.autopilot else 1
    while True:
        k = run.current_round()
        t = time.time()
        if not (run.round_dir(k) / "supernet.ckpt").exists():
            _stage(cfg, run, "supernet", ["supernet", str(run.path), "--round", str(k)] + (["--resume"] if resume else []),
                   lambda: train_supernet(run, cfg, k, resume=resume))
        times["supernet"] = times.get("supernet", 0) + time.time() - t
        t = time.time()
        with job(run, "search"):
            df = score_candidates(run, cfg, k)
        times["search"] = times.get("search", 0) + time.time() - t
        best = df.loc[df["one_shot_acc"].idxmax()]
        say(f"round {k}: {len(df)} candidates, best one-shot {best['one_shot_acc']:.4f} {best['arch']}")
        if not cfg.steering.autopilot or k + 1 >= rounds:
            break
        from nasnav.steering import autopilot_round

        t = time.time()
        advanced = autopilot_round(run, cfg, say=say)
        times["steering"] = times.get("steering", 0) + time.time() - t
        if not advanced:
            break
    k = run.current_round()
    df = read_candidates(run, k).sort_values("one_shot_acc", ascending=False)
    from nasnav.pipeline import round_space

    space = round_space(run, cfg, k)
    t = time.time()
    for _, row in df.head(cfg.retrain.top_k).iterrows():
        arch = space.parse(row["arch"])
        _stage(cfg, run, "retrain", ["retrain", str(run.path), "--arch", str(arch)],
               lambda arch=arch, acc=row["one_shot_acc"]: retrain(run, cfg, space, arch, one_shot_acc=float(acc)))
    times["retrain"] = time.time() - t
    finals = read_finals(run)
    if len(finals):
        top = finals.sort_values("val_acc", ascending=False).iloc[0]
        say(f"best architecture: {top['arch']}")
        one_shot = df.set_index("arch")["one_shot_acc"].get(top["arch"], float("nan"))
        say(f"  one-shot accuracy {one_shot:.4f}, standalone test accuracy {top['test_acc']:.4f}, "
            f"{int(top['params']):,} params, {int(top['flops']):,} FLOPs")
    say("time per stage: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()))
    run.write_status(state="done", stage="finished", progress=1.0, message="pipeline finished", pid=None)
    return 0
