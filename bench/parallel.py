"""Past one CPU process: supernet training under DDP, and spot-check trainings side by side.

    python bench/parallel.py                         # digits preset, 2 processes, recorded in bench/results
    python bench/parallel.py --preset tiny --quick --no-write   # smoke test (the suite runs it)

Supernet: ``python -m nasnav supernet RUN`` (the product's command, process start-up included) with
``trainer.devices=1`` and with ``trainer.devices=2`` (DDP with two CPU processes, the default strategy),
the same epochs over the same data; wall seconds and the training samples/s of metrics.csv.

Spot check: the product's ``workflow.spotcheck.spotcheck`` of one round at its default size (20 architectures of the space
and the 8 best candidates, 2 seeds each), with
``trainer.devices=1`` (one training after another, in this process, one thread: what the CLI does)
and with ``trainer.devices=2`` (this process and a worker process, one thread each; start-up
included), ``--reps`` pairs in alternating order; the median ratio of the wall times (target <= 0.65),
and whether both gave the same accuracies. The machine's load when each started is shown: on a
shared machine other jobs take cores, which no number of processes can win back.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, log, markdown_table, median_spread, quiet_engine, report  # noqa: E402
from nasnav.analysis import trust  # noqa: E402
from nasnav.config import load_config, preset_path  # noqa: E402
from nasnav.store.io import read_csv  # noqa: E402
from nasnav.workflow import spotcheck  # noqa: E402
from nasnav.workflow.runs import create_run  # noqa: E402
from nasnav.workflow.search import score_candidates  # noqa: E402
from nasnav.workflow.supernet import train_supernet  # noqa: E402

SPOTCHECK_TARGET = 0.65


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (the workers, once joined)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _load() -> str:
    """The machine's 1-minute load average when a measurement starts (2 cores: above 2 means queueing)."""
    return f"{os.getloadavg()[0]:.1f}"


def _supernet_seconds(run_path: Path, devices: int) -> dict:
    """One fresh ``python -m nasnav supernet`` of round 0 with ``devices`` CPU processes."""
    for stale in ("supernet.ckpt", "metrics.csv", "lightning"):
        p = run_path / "rounds" / "000" / stale
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    load, c = _load(), _cpu()
    t = time.time()
    proc = subprocess.run([sys.executable, "-m", "nasnav", "supernet", str(run_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    seconds, cpu = time.time() - t, _cpu() - c
    if proc.returncode != 0:
        raise SystemExit(f"supernet with {devices} process(es) failed:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    m = read_csv(run_path / "rounds" / "000" / "metrics.csv")
    rate = pd.to_numeric(m["samples_per_s"], errors="coerce").iloc[1:] if len(m) > 1 else m["samples_per_s"]
    return {"seconds": seconds, "samples_per_s": float(rate.median()), "val_acc": float(m["val_acc"].iloc[-1]),
            "load": load, "cpu": cpu}


def _spotcheck_seconds(run, cfg, n: int, m: int, seeds: int, epochs: int) -> tuple[float, pd.DataFrame, str, float]:
    rdir = run.round_dir(0)
    for f in ("spotcheck.csv", "spotcheck_runs.csv", "spotcheck.json"):
        (rdir / f).unlink(missing_ok=True)
    load, c = _load(), _cpu()
    t = time.time()
    spotcheck.spotcheck(run, cfg, n, seeds=seeds, epochs=epochs, m=m)
    wall = time.time() - t
    return wall, read_csv(rdir / "spotcheck.csv"), load, _cpu() - c


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="digits")
    p.add_argument("--processes", type=int, default=2, help="processes (DDP ranks, spot-check workers)")
    p.add_argument("--supernet-epochs", type=int, default=20)
    p.add_argument("--n", type=int, default=trust.SPACE_N, help="space sample of the spot check (the product's default)")
    p.add_argument("--top", type=int, default=trust.TOP_M, help="top candidates of the spot check (the product's default)")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--epochs", type=int, default=None, help="epochs per spot-check training (preset's default)")
    p.add_argument("--reps", type=int, default=3, help="spot-check pairs (1 process, N processes), order alternating")
    p.add_argument("--quick", action="store_true", help="a smoke run: tiny budgets")
    p.add_argument("--no-write", action="store_true", help="print only; record nothing")
    args = p.parse_args(argv)
    if args.quick:
        args.supernet_epochs, args.n, args.top, args.seeds, args.epochs, args.reps = 1, 2, 1, 2, 1, 1
    quiet_engine()
    torch.set_num_threads(1)  # as the CLI runs a job: one thread per process
    base = ["steering.autopilot=false", f"supernet.epochs={args.supernet_epochs}", "search.budget=40"]
    cfg1 = load_config(preset_path(args.preset), [*base, "trainer.devices=1"])
    cfgn = load_config(preset_path(args.preset), [*base, f"trainer.devices={args.processes}"])
    epochs = args.epochs or cfg1.retrain.spotcheck_epochs
    rows, metrics = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        sup = {}
        for devices, cfg in ((1, cfg1), (args.processes, cfgn)):
            run = create_run(cfg, Path(tmp) / f"supernet{devices}")
            log(f"supernet, {devices} process(es), {args.supernet_epochs} epochs")
            sup[devices] = _supernet_seconds(run.path, devices)
        for devices, r in sup.items():
            rows.append({"work": f"supernet training, {args.supernet_epochs} epochs", "processes": devices,
                         "seconds": f"{r['seconds']:.1f}", "samples/s (median epoch)": f"{r['samples_per_s']:.0f}",
                         "val acc (last epoch)": f"{r['val_acc']:.3f}", "load at start": r["load"],
                         "CPU s": f"{r['cpu']:.1f}", "cores obtained": f"{r['cpu'] / r['seconds']:.2f}"})
        metrics["supernet_seconds_1"] = round(sup[1]["seconds"], 2)
        metrics[f"supernet_seconds_{args.processes}"] = round(sup[args.processes]["seconds"], 2)

        run = create_run(cfg1, Path(tmp) / "spot")
        log("supernet and candidates for the spot check")
        train_supernet(run, cfg1, 0)
        score_candidates(run, cfg1, 0)
        times: dict[int, list[float]] = {1: [], args.processes: []}
        loads: dict[int, list[str]] = {1: [], args.processes: []}
        cpu: dict[int, list[float]] = {1: [], args.processes: []}
        ratios, same = [], True
        for rep in range(args.reps):  # alternating order: a change in the machine's load hits both alike
            order = ((1, cfg1), (args.processes, cfgn)) if rep % 2 == 0 else ((args.processes, cfgn), (1, cfg1))
            pairs = {}
            for devices, cfg in order:
                log(f"spot check {rep + 1}/{args.reps}, {devices} process(es): {args.n} + {args.top} architectures x {args.seeds} "
                    f"seeds x {epochs} epochs")
                sec, pairs[devices], load, cpu_s = _spotcheck_seconds(run, cfg, args.n, args.top, args.seeds, epochs)
                times[devices].append(sec)
                cpu[devices].append(cpu_s)
                loads[devices].append(load)
            ratios.append(times[args.processes][-1] / times[1][-1])
            same = same and pairs[1]["seed_accs"].tolist() == pairs[args.processes]["seed_accs"].tolist()
    t1, tn = float(np.median(times[1])), float(np.median(times[args.processes]))
    ratio = float(np.median(ratios))
    for devices in (1, args.processes):
        rows.append({"work": f"spot check, {args.n} + {args.top} archs x {args.seeds} seeds x {epochs} epochs", "processes": devices,
                     "seconds": median_spread(times[devices]), "samples/s (median epoch)": "",
                     "val acc (last epoch)": "", "load at start": ", ".join(loads[devices]),
                     "CPU s": median_spread(cpu[devices]),
                     "cores obtained": f"{np.median(np.array(cpu[devices]) / np.array(times[devices])):.2f}"})
    metrics.update(spotcheck_seconds_1=round(t1, 2), spotcheck_seconds_n=round(tn, 2),
                   spotcheck_ratio=round(ratio, 3), spotcheck_ratios=[round(r, 3) for r in ratios],
                   spotcheck_same_results=same)
    verdict = "met" if ratio <= SPOTCHECK_TARGET else "missed"
    body = (
        f"{markdown_table(rows)}\n"
        f"Spot check with {args.processes} worker processes: {ratio:.2f}x the time of one process (median of "
        f"{args.reps} alternating pairs: {', '.join(f'{r:.2f}' for r in ratios)}) "
        f"(target <= {SPOTCHECK_TARGET}: {verdict}); the same accuracies per candidate and seed: "
        f"{'yes' if same else 'NO'}. Cores obtained = CPU seconds / wall seconds: where {args.processes} processes "
        f"obtain no more than one, the machine's scheduler gave this job no more (Linux's autogroup scheduling "
        f"shares the cores between sessions, not processes, so other sessions' work caps it). Supernet with "
        f"{args.processes} DDP processes: "
        f"{sup[args.processes]['seconds'] / sup[1]['seconds']:.2f}x the time of one process.\n"
    )
    report("Past one process: DDP supernet training and parallel spot checks (CPU)", body, not args.no_write,
           group=args.preset, params=vars(args), metrics=metrics, benchmark="parallel")


if __name__ == "__main__":
    main()
