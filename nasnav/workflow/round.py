"""A whole round: its supernet if missing, a search to the round's budget, then its analysis."""

from __future__ import annotations

import logging
import os
import time

import pandas as pd

from nasnav.config import Config
from nasnav.errors import InvalidInput
from nasnav.jobs.context import job
from nasnav.jobs.control import run_subcommand
from nasnav.store import layout
from nasnav.store.run_dir import RunDir
from nasnav.train.devices import is_multiprocess, launch
from nasnav.workflow.analysis import analyze_round
from nasnav.workflow.search import score_candidates
from nasnav.workflow.supernet import train_supernet

log = logging.getLogger(__name__)


def refuse_external_launch(cfg: Config, command: str) -> None:
    """InvalidInput when torchrun or SLURM started this process as one of several: only the training
    commands (``supernet``, ``retrain``) run that way; every rank would run a whole round otherwise."""
    if cfg.cluster.backend == "slurm":  # the trainer section describes the Slurm jobs, not this process
        tasks = os.environ.get("SLURM_NTASKS", "1")
        processes = int(tasks) if tasks.isdigit() else 1
    else:
        plan = launch(cfg.trainer)
        processes = plan.processes if plan.external else 1
    if processes > 1:
        raise InvalidInput(
            f"trainer: this is one of {processes} processes started by torchrun or SLURM, but `nasnav {command}` "
            "searches and writes the run's files, which one process must do: start only the training commands "
            "that way (`torchrun ... -m nasnav supernet RUN`, `srun python -m nasnav supernet RUN`, the same for "
            "retrain) and the other commands (search, round, analyze, prune, spotcheck) as a plain "
            "`python -m nasnav ...`; README, Multi-node"
        )


def run_round(run: RunDir, cfg: Config, evaluator=None) -> pd.DataFrame:
    """All of the current round: train / fine-tune its supernet if the checkpoint is missing (resuming
    an interrupted training), score candidates up to search.budget, then fitness and projection.
    With ``evaluator`` (any ``arch -> metrics``, e.g. a lookup table) there is no supernet to train."""

    refuse_external_launch(cfg, "round")
    k = run.current_round()
    missing = evaluator is None and not (run.round_dir(k) / layout.SUPERNET).exists()
    if missing and cfg.cluster.backend == "local" and is_multiprocess(cfg.trainer):
        run_subcommand(["supernet", str(run.path), "--round", str(k), "--resume"])  # DDP needs its own process
        missing = False
    with job(run, "round", stage="supernet" if missing else "search"):
        if missing:
            t = time.time()
            train_supernet(run, cfg, k, resume=True)
            log.info(f"round {k}: supernet {'trained' if k == 0 else 'fine-tuned'} in {time.time() - t:.1f} s")
        run.write_status(stage="search", progress=0.0, message=f"searching round {k}", extra={})
        df = score_candidates(run, cfg, k, fill=True, evaluator=evaluator)
        run.write_status(stage="analysis", message=f"fitness and projection of round {k}")
        analyze_round(run, cfg, k)
    return df


def extend_round(run: RunDir, cfg: Config, evaluator=None) -> pd.DataFrame:
    """Score ``search.budget`` more candidates in the current round (its supernet, or ``evaluator``),
    then redo its fitness and projection: the auto-pilot gathering evidence before it decides."""

    k = run.current_round()
    with job(run, "round", stage="search"):
        run.write_status(stage="search", progress=0.0, message=f"searching round {k} further", extra={})
        df = score_candidates(run, cfg, k, budget=cfg.search.budget, evaluator=evaluator)
        run.write_status(stage="analysis", message=f"fitness and projection of round {k}")
        analyze_round(run, cfg, k)
    log.info(f"round {k}: {len(df)} candidates")
    return df
