"""A spot check through Slurm against the same spot check in local parallel trainings, side by side.

    python bench/slurm_spotcheck.py                                  # digits preset, recorded in bench/results
    python bench/slurm_spotcheck.py --preset tiny --quick --no-write # smoke test (tests/test_slurm.py runs it)

Needs a Slurm this machine can submit to (``.ci/slurm-up`` starts a single-machine one as root). One run
(supernet and scored candidates) is built once; each repetition copies it twice and runs the product's
``workflow.spotcheck.spotcheck`` on each copy, in alternating order:

- **local**: ``trainer.devices=2``: this process and a worker process train side by side, one thread each;
- **Slurm**: ``cluster.backend: slurm``, ``cluster.cpus_per_task: 1``: one Slurm job per training (one job
  array), as many at once as the node has CPUs; each job is a fresh interpreter that imports torch and
  Lightning and loads the data before it trains.

It reports the wall times, whether both gave the same accuracy for every architecture and seed, and what
one job start costs (a job that only imports the engine), which is also what submitit's local executor
would add per training if it replaced the local worker pool (one interpreter per training instead of one
per worker). On a machine shared with other work the times are under load: the load average at each
start is shown.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, log, markdown_table, median_spread, quiet_engine, report  # noqa: E402
from nasnav.config import load_config, preset_path  # noqa: E402
from nasnav.jobs import slurm  # noqa: E402
from nasnav.store import layout  # noqa: E402
from nasnav.store.io import read_csv  # noqa: E402
from nasnav.store.run_dir import RunDir  # noqa: E402
from nasnav.workflow import spotcheck  # noqa: E402
from nasnav.workflow.runs import create_run  # noqa: E402
from nasnav.workflow.search import score_candidates  # noqa: E402
from nasnav.workflow.supernet import train_supernet  # noqa: E402


def _import_engine() -> float:
    """What a fresh job does before it trains: import the standalone trainer (torch, Lightning)."""
    t = time.time()
    import nasnav.train.standalone  # noqa: F401

    return time.time() - t


def _job_start_seconds(folder: Path, cluster: str) -> float:
    """Wall time from submitting a job that only imports the engine to having its result."""
    import submitit

    ex = submitit.AutoExecutor(folder=folder, cluster=cluster)
    ex.update_parameters(timeout_min=10, cpus_per_task=1)
    t = time.time()
    job = ex.submit(_import_engine)
    if cluster == "slurm":  # our own watch (squeue and the result file), as the product waits
        while not job.paths.result_pickle.exists():
            time.sleep(0.2)
    job.result()
    return time.time() - t


def _spotcheck(base: RunDir, to: Path, cfg, args) -> tuple[float, list, str]:
    shutil.rmtree(to, ignore_errors=True)
    shutil.copytree(base.path, to)
    run = RunDir(to)
    load = f"{os.getloadavg()[0]:.1f}"
    t = time.time()
    spotcheck.spotcheck(run, cfg, args.n, seeds=args.seeds, epochs=args.epochs, m=args.top)
    wall = time.time() - t
    runs = read_csv(run.round_dir(0) / layout.SPOTCHECK_RUNS).sort_values(["arch", "seed"])
    return wall, list(zip(runs["arch"], runs["seed"], runs["standalone_acc"])), load


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="digits")
    p.add_argument("--n", type=int, default=6, help="space sample of the spot check")
    p.add_argument("--top", type=int, default=2, help="top candidates of the spot check")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--epochs", type=int, default=None, help="epochs per training (preset's spotcheck_epochs)")
    p.add_argument("--supernet-epochs", type=int, default=5)
    p.add_argument("--reps", type=int, default=2, help="pairs (local, Slurm), order alternating")
    p.add_argument("--quick", action="store_true", help="a smoke run: tiny budgets")
    p.add_argument("--no-write", action="store_true", help="print only; record nothing")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.top, args.seeds, args.epochs, args.supernet_epochs, args.reps = 1, 1, 1, 1, 1, 1
    slurm.require()
    # the job-start probes import nasnav in a fresh interpreter (sbatch and the local executor pass the environment on)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    quiet_engine()
    torch.set_num_threads(1)  # as the CLI runs a job: one thread per process (and per Slurm job: cpus_per_task 1)
    cfg = load_config(preset_path(args.preset), ["steering.autopilot=false", f"supernet.epochs={args.supernet_epochs}",
                                                 "search.budget=40"])
    args.epochs = args.epochs or cfg.retrain.spotcheck_epochs
    local = dataclasses.replace(cfg, trainer=dataclasses.replace(cfg.trainer, devices=2))
    remote = dataclasses.replace(cfg, cluster=dataclasses.replace(cfg.cluster, backend="slurm", cpus_per_task=1))
    times: dict[str, list[float]] = {"local": [], "slurm": []}
    loads: dict[str, list[str]] = {"local": [], "slurm": []}
    same = True
    with tempfile.TemporaryDirectory(dir=Path.home()) as tmp:  # a folder Slurm's jobs can write (shared FS)
        base = create_run(cfg, Path(tmp) / "base")
        log(f"supernet ({args.supernet_epochs} epochs) and candidates")
        train_supernet(base, cfg, 0)
        score_candidates(base, cfg, 0)
        starts = {c: _job_start_seconds(Path(tmp) / f"start-{c}", c) for c in ("local", "slurm")}
        for rep in range(args.reps):
            order = (("local", local), ("slurm", remote)) if rep % 2 == 0 else (("slurm", remote), ("local", local))
            accs = {}
            for name, c in order:
                log(f"spot check {rep + 1}/{args.reps}, {name}: {args.n} + {args.top} archs x {args.seeds} seeds x "
                    f"{args.epochs} epochs")
                sec, accs[name], load = _spotcheck(base, Path(tmp) / name, c, args)
                times[name].append(sec)
                loads[name].append(load)
            same = same and accs["local"] == accs["slurm"]
            trainings = len(accs["local"])
    work = f"{trainings} trainings x {args.epochs} epochs"  # (n + top) archs x seeds: the command line says
    rows = [{"work": work, "where": "local, 2 processes", "seconds": median_spread(times["local"]),
             "load at start": ", ".join(loads["local"])},
            {"work": work, "where": "Slurm, a job per training", "seconds": median_spread(times["slurm"]),
             "load at start": ", ".join(loads["slurm"])},
            {"work": "job start (imports only)", "where": "Slurm", "seconds": f"{starts['slurm']:.1f}", "load at start": ""},
            {"work": "job start (imports only)", "where": "submitit local executor", "seconds": f"{starts['local']:.1f}",
             "load at start": ""}]
    ratio = float(np.median(times["slurm"])) / float(np.median(times["local"]))
    metrics = {"local_seconds": round(float(np.median(times["local"])), 2),
               "slurm_seconds": round(float(np.median(times["slurm"])), 2), "slurm_ratio": round(ratio, 3),
               "same_results": same, "trainings": trainings, "slurm_job_start_seconds": round(starts["slurm"], 2),
               "local_executor_job_start_seconds": round(starts["local"], 2)}
    body = (
        f"{markdown_table(rows)}\n"
        f"Through Slurm: {ratio:.2f}x the local time (median of {args.reps} alternating pairs); same accuracy for "
        f"every architecture and seed: {'yes' if same else 'NO'}. A one-node Slurm runs no more at once than the "
        f"local workers, and starts an interpreter per job (also why the local pool is not submitit's local "
        f"executor). Under load.\n"
    )
    report("Spot check through Slurm against local parallel trainings (CPU)", body, not args.no_write,
           group=args.preset, params=vars(args), metrics=metrics, benchmark="slurm_spotcheck")


if __name__ == "__main__":
    main()
