"""The whole pipeline without the app: rounds of supernet + search (+ auto-pilot), then retrain."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from nasnav.config import Config
from nasnav.jobs.context import job
from nasnav.jobs.control import run_subcommand
from nasnav.store import layout
from nasnav.store.records import read_candidates, read_finals
from nasnav.store.run_dir import RunDir
from nasnav.train.devices import is_multiprocess
from nasnav.workflow.autopilot import autopilot_round
from nasnav.workflow.export import export_final
from nasnav.workflow.predictions import round_recommendations, why
from nasnav.workflow.retrain import retrain_all
from nasnav.workflow.round import refuse_external_launch
from nasnav.workflow.runs import create_run, load_run, round_space
from nasnav.workflow.search import score_candidates
from nasnav.workflow.supernet import train_supernet

log = logging.getLogger(__name__)


def _stage(cfg: Config, run: RunDir, name: str, argv: list[str], fn: Callable[[], object]):
    """Run a training stage in-process, or as a subprocess when Lightning starts several processes."""

    if cfg.cluster.backend == "local" and is_multiprocess(cfg.trainer):  # under Slurm, the job's own tasks
        run_subcommand(argv)
        return None
    with job(run, name):
        return fn()


def run_pipeline(cfg: Config, run_dir: str | Path, resume: bool = False) -> int:
    """Create the run, then round after round: supernet, search, (auto-pilot decision); retrain the best."""

    refuse_external_launch(cfg, "run")
    if resume:
        run, cfg = load_run(run_dir)
    else:
        run = create_run(cfg, run_dir)
    log.info(f"run directory: {run.path}")
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
        log.info(f"round {k}: {len(df)} candidates, best one-shot {best['one_shot_acc']:.4f} {best['arch']}")
        if not cfg.steering.autopilot:
            break

        t = time.time()  # analysis + decision + the next round's fine-tuning and search
        advanced = autopilot_round(run, cfg)
        times["steering rounds"] = times.get("steering rounds", 0) + time.time() - t
        if not advanced:
            break
    k = run.current_round()
    df = read_candidates(run, k).sort_values("one_shot_acc", ascending=False, kind="mergesort")

    space = round_space(run, cfg, k)
    t = time.time()
    picks = round_recommendations(run, cfg, k, n=cfg.retrain.top_k)  # steering.pick: surrogate estimate or best score
    for _, row in picks.iterrows():
        log.info(f"retraining {row['arch']}: {why(row, cfg.steering)}")
    if cfg.cluster.backend == "local" and is_multiprocess(cfg.trainer):  # one DDP training at a time, each its own run
        for _, row in picks.iterrows():
            run_subcommand(["retrain", str(run.path), "--arch", str(row["arch"])])
    elif len(picks):
        with job(run, "retrain"):  # every pick at once: side by side on free slots, one Slurm array
            retrain_all(run, cfg, space, [(space.parse(a), float(s)) for a, s in zip(picks["arch"], picks["score"])])
    times["retrain"] = time.time() - t
    finals = read_finals(run)
    if len(finals):
        top = finals.sort_values("val_acc", ascending=False).iloc[0]
        t = time.time()

        with job(run, "export"):
            exported = export_final(run, cfg, top["arch"])
        times["export"] = time.time() - t
        log.info(f"best architecture: {top['arch']}")
        one_shot = df.set_index("arch")["one_shot_acc"].get(top["arch"], float("nan"))
        log.info(f"  one-shot accuracy {one_shot:.4f}, standalone test accuracy {top['test_acc']:.4f}, "
            f"{int(top['params']):,} params, {int(top['flops']):,} FLOPs")
        log.info(f"  exported to {run.final_dir(top['key'])}: {', '.join(exported['files'])}")
    log.info("time per stage: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()))
    run.write_status(state="done", stage="finished", progress=1.0, message="pipeline finished", pid=None)
    return 0
