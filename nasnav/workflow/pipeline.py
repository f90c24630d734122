"""The whole pipeline without the app: rounds of supernet + search (+ auto-pilot), then retrain."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from nasnav.config import Config
from nasnav.store import layout
from nasnav.store.run_dir import RunDir


def supernet_evaluator(run: RunDir, cfg: Config, k: int):
    """The shared-weights evaluator of round k: its supernet, BN recalibration batches, validation split."""
    from nasnav.score.evaluate import SupernetEvaluator, make_recal_batches
    from nasnav.workflow.runs import load_data, load_supernet

    net, spec = load_supernet(run, cfg, k)
    splits = load_data(cfg)
    recal = make_recal_batches(splits.x_train, cfg.search.recal_batches, cfg.data.batch_size, cfg.seed)
    return SupernetEvaluator(net, recal, splits.x_val, splits.y_val, tuple(spec.shape))


def score_candidates(run: RunDir, cfg: Config, k: int | None = None, budget: int | None = None,
                     strategy: str | None = None, evaluator=None, seconds: float | None = None,
                     resume: bool = False, fill: bool = False, should_stop=None) -> pd.DataFrame:
    """Score candidates of round k with the supernet (or ``evaluator``); appends to candidates.csv.

    ``budget`` new candidates (default search.budget) within ``seconds`` (default search.seconds);
    ``fill``: only as many as the round lacks to hold ``budget`` (idempotent, for whole rounds);
    ``resume``: continue the round's last stopped search to its target. Strategy and evolution /
    constraint parameters come from ``cfg.search``.
    """
    from nasnav.search.loop import plan_budget, read_candidates, run_search
    from nasnav.workflow.runs import round_space, stop_requested

    k = run.current_round() if k is None else k
    space = round_space(run, cfg, k)
    sc = cfg.search
    if resume:
        from nasnav.search.loop import search_state

        strategy = strategy or search_state(run, k).get("strategy")
    budget, seconds = plan_budget(run, k, budget or sc.budget, seconds if seconds is not None else sc.seconds,
                                  resume=resume, fill=fill)
    if budget == 0 or (seconds is not None and seconds <= 0):
        return read_candidates(run, k)
    if evaluator is None:
        evaluator = supernet_evaluator(run, cfg, k)
    n0 = len(read_candidates(run, k))
    rng = np.random.default_rng([cfg.seed, k, 17, n0])  # a resumed search draws fresh, reproducible numbers
    prior = None
    if cfg.steering.evidence == "all" and k > 0:  # scores of earlier rounds still hold: never score them again
        from nasnav.analysis.fitness import evidence_frame

        prior = evidence_frame([read_candidates(run, j) for j in run.rounds() if j < k], "all")

    def progress(done: int, total: int) -> None:
        if total and (done % 5 == 0 or done == total):
            run.write_status(progress=done / total, message=f"scored {done}/{total} candidates")
        elif not total and done % 5 == 0:
            run.write_status(message=f"scored {done} candidates")

    return run_search(run, space, k, evaluator, budget, rng, strategy=strategy or sc.strategy, seconds=seconds,
                      should_stop=should_stop or stop_requested, progress=progress, population=sc.population,
                      sample_size=sc.sample_size, crossover_prob=sc.crossover_prob, max_params=sc.max_params,
                      max_flops=sc.max_flops, retries=sc.mutation_retries, prior=prior)


def run_round(run: RunDir, cfg: Config, say: Callable[[str], None] = print, evaluator=None) -> pd.DataFrame:
    """All of the current round: train / fine-tune its supernet if the checkpoint is missing (resuming
    an interrupted training), score candidates up to search.budget, then fitness and projection.
    With ``evaluator`` (any ``arch -> metrics``, e.g. a lookup table) there is no supernet to train."""
    from nasnav.analysis.fitness import analyze_round
    from nasnav.cli import run_subcommand
    from nasnav.train.trainer import is_multiprocess
    from nasnav.workflow.runs import job, train_supernet

    k = run.current_round()
    missing = evaluator is None and not (run.round_dir(k) / layout.SUPERNET).exists()
    if missing and is_multiprocess(cfg.trainer):
        run_subcommand(["supernet", str(run.path), "--round", str(k), "--resume"])  # DDP needs its own process
        missing = False
    with job(run, "round", stage="supernet" if missing else "search"):
        if missing:
            t = time.time()
            train_supernet(run, cfg, k, resume=True)
            say(f"round {k}: supernet {'trained' if k == 0 else 'fine-tuned'} in {time.time() - t:.1f} s")
        run.write_status(stage="search", progress=0.0, message=f"searching round {k}")
        df = score_candidates(run, cfg, k, fill=True, evaluator=evaluator)
        run.write_status(stage="analysis", message=f"fitness and projection of round {k}")
        analyze_round(run, cfg, k)
    return df


def extend_round(run: RunDir, cfg: Config, say: Callable[[str], None] = print, evaluator=None) -> pd.DataFrame:
    """Score ``search.budget`` more candidates in the current round (its supernet, or ``evaluator``),
    then redo its fitness and projection: the auto-pilot gathering evidence before it decides."""
    from nasnav.analysis.fitness import analyze_round
    from nasnav.workflow.runs import job

    k = run.current_round()
    with job(run, "round", stage="search"):
        run.write_status(stage="search", progress=0.0, message=f"searching round {k} further")
        df = score_candidates(run, cfg, k, budget=cfg.search.budget, evaluator=evaluator)
        run.write_status(stage="analysis", message=f"fitness and projection of round {k}")
        analyze_round(run, cfg, k)
    say(f"round {k}: {len(df)} candidates")
    return df


def _stage(cfg: Config, run: RunDir, name: str, argv: list[str], fn: Callable[[], object]):
    """Run a training stage in-process, or as a subprocess when Lightning starts several processes."""
    from nasnav.cli import run_subcommand
    from nasnav.train.trainer import is_multiprocess
    from nasnav.workflow.runs import job

    if is_multiprocess(cfg.trainer):
        run_subcommand(argv)
        return None
    with job(run, name):
        return fn()


def run_pipeline(cfg: Config, run_dir: str | Path, resume: bool = False, say: Callable[[str], None] = print) -> int:
    """Create the run, then round after round: supernet, search, (auto-pilot decision); retrain the best."""
    from nasnav.search.loop import read_candidates
    from nasnav.workflow.retrain import read_finals, retrain
    from nasnav.workflow.runs import create_run, job, load_run, train_supernet

    if resume:
        run, cfg = load_run(run_dir)
    else:
        run = create_run(cfg, run_dir)
    say(f"run directory: {run.path}")
    times: dict[str, float] = {}
    while True:
        k = run.current_round()
        t = time.time()
        if not (run.round_dir(k) / layout.SUPERNET).exists():
            _stage(cfg, run, "supernet", ["supernet", str(run.path), "--round", str(k)] + (["--resume"] if resume else []),
                   lambda: train_supernet(run, cfg, k, resume=resume))
        times["supernet"] = times.get("supernet", 0) + time.time() - t
        t = time.time()
        with job(run, "search"):
            df = score_candidates(run, cfg, k, fill=True)
        times["search"] = times.get("search", 0) + time.time() - t
        best = df.loc[df["one_shot_acc"].idxmax()]
        say(f"round {k}: {len(df)} candidates, best one-shot {best['one_shot_acc']:.4f} {best['arch']}")
        if not cfg.steering.autopilot:
            break
        from nasnav.steering.policy import autopilot_round

        t = time.time()  # analysis + decision + the next round's fine-tuning and search
        advanced = autopilot_round(run, cfg, say=say)
        times["steering rounds"] = times.get("steering rounds", 0) + time.time() - t
        if not advanced:
            break
    k = run.current_round()
    df = read_candidates(run, k).sort_values("one_shot_acc", ascending=False, kind="mergesort")
    from nasnav.workflow.runs import round_space

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
        t = time.time()
        from nasnav.workflow.export import export_final  # the best by validation (never test) accuracy

        with job(run, "export"):
            exported = export_final(run, cfg, top["arch"])
        times["export"] = time.time() - t
        say(f"best architecture: {top['arch']}")
        one_shot = df.set_index("arch")["one_shot_acc"].get(top["arch"], float("nan"))
        say(f"  one-shot accuracy {one_shot:.4f}, standalone test accuracy {top['test_acc']:.4f}, "
            f"{int(top['params']):,} params, {int(top['flops']):,} FLOPs")
        say(f"  exported to {run.final_dir(top['key'])}: {', '.join(exported['files'])}")
    say("time per stage: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()))
    run.write_status(state="done", stage="finished", progress=1.0, message="pipeline finished", pid=None)
    return 0
