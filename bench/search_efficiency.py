"""Search efficiency: nasnav's headless auto-pilot vs random search and Optuna TPE with standalone training.

    python bench/search_efficiency.py --preset mnist1d --reps 3 --epochs 20 --max-evals 50 --threads 1
    python bench/search_efficiency.py --preset tiny --reps 1 --epochs 1 --max-evals 3 --quick --no-write  # smoke

All three look for the best architecture of the same space, side by side in one run, for several
repetitions (seeds):

- **nasnav**: the headless pipeline (``nasnav.workflow.pipeline.run_pipeline``: supernet, search rounds with
  the auto-pilot (narrowing, by default), fitness and projection, as ``python -m nasnav run`` does), then its
  ``--nasnav-topk`` best candidates by one-shot accuracy trained standalone;
- **random**: architectures drawn uniformly without repetition, each trained standalone;
- **optuna-tpe**: Optuna's TPE sampler over one categorical parameter per stage (an architecture
  it suggests again is answered from memory at no cost), each new one trained standalone.

Every standalone training is the same function (``bench/standalone.py``: the product's standalone
trainer, ``nasnav.train.standalone.train_standalone``, with the same epochs and seed, so the same
architecture gets the same accuracy whichever method picked it). Trainings are cached on
disk: a cached one costs its recorded seconds, so times are *measured training times*, summed,
plus the method's own measured overhead (nasnav's whole pipeline runs for real each time). A
method's incumbent is its candidate with the best validation accuracy; the table reports the
incumbent's test accuracy against wall time, and the time to come within 0.5 pp of the best test
accuracy any method's incumbent reached.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import engine_progress, log, markdown_table, median_spread, quiet_engine, report, set_threads  # noqa: E402
from bench.standalone import StandaloneTrainer  # noqa: E402
from nasnav.config import load_config, preset_path  # noqa: E402

TRAIN_SEED = 100  # the seed of every standalone training (the ranking benchmark's first seed: shared cache)
TOL = 1e-6  # accuracies come from float32 means: 979/1000 against the level 984/1000 - 0.005 must count as reached


class Curve:
    """(time, incumbent validation accuracy, incumbent test accuracy, arch) after each evaluation."""

    def __init__(self, t0: float = 0.0):
        self.t = t0
        self.points: list[tuple[float, float, float, str]] = []
        self.best_val = -1.0
        self.best_test = float("nan")
        self.best_arch = ""
        self.evals = 0
        self.tests: dict[str, float] = {}  # test accuracy of every architecture trained

    def add(self, seconds: float, res: dict) -> None:
        self.t += seconds
        self.evals += 1
        self.tests[str(res["arch"])] = res["test_acc"]
        if res["val_acc"] > self.best_val:
            self.best_val, self.best_test, self.best_arch = res["val_acc"], res["test_acc"], res["arch"]
        self.points.append((self.t, self.best_val, self.best_test, self.best_arch))

    def at(self, t: float) -> float:
        """Incumbent test accuracy at time t (nan before the first result)."""
        done = [p[2] for p in self.points if p[0] <= t]
        return done[-1] if done else float("nan")

    def reach(self, level: float) -> float | None:
        for t, _, test, _ in self.points:
            if test >= level - TOL:
                return t
        return None


def run_random(space, trainer, rep: int, max_evals: int, max_seconds: float) -> Curve:
    rng = np.random.default_rng([rep, 5])
    c, seen = Curve(), set()
    while c.evals < min(max_evals, space.size()) and c.t < max_seconds:
        t = time.perf_counter()
        a = space.sample(rng)
        if str(a) in seen:
            continue
        seen.add(str(a))
        overhead = time.perf_counter() - t
        res = trainer(a, TRAIN_SEED)
        c.add(res["seconds"] + overhead, res)
    return c


def run_tpe(space, trainer, rep: int, max_evals: int, max_seconds: float) -> Curve:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=rep))
    choices = [["+".join(ch) for ch in s.choices()] for s in space.stages]
    c, memory, pending = Curve(), {}, 0.0
    trials = 0
    while c.evals < min(max_evals, space.size()) and c.t < max_seconds and trials < 5 * max_evals:
        trials += 1
        t = time.perf_counter()
        trial = study.ask()
        arch = "/".join(trial.suggest_categorical(s.name, ch) for s, ch in zip(space.stages, choices))
        pending += time.perf_counter() - t
        if arch in memory:  # asked again: answered from memory, no training
            t = time.perf_counter()
            study.tell(trial, memory[arch])
            pending += time.perf_counter() - t
            continue
        res = trainer(arch, TRAIN_SEED)
        memory[arch] = res["val_acc"]
        t = time.perf_counter()
        study.tell(trial, res["val_acc"])
        pending += time.perf_counter() - t
        c.add(res["seconds"] + pending, res)
        pending = 0.0
    return c


def run_nasnav(cfg, splits, trainer, rep: int, topk: int, root: Path) -> tuple[Curve, dict]:
    """The headless pipeline with seed ``rep`` (the data split stays the base config's), then the
    top-k candidates of its last round trained standalone."""
    import copy

    from nasnav.store.records import read_candidates
    from nasnav.store.run_dir import RunDir
    from nasnav.workflow import runs as pipeline
    from nasnav.workflow.pipeline import run_pipeline

    c = copy.deepcopy(cfg)
    c.seed = rep
    c.retrain.top_k = 0  # the bench trains the finalists itself (the same trainer as the baselines)
    pipeline._SPLITS.clear()
    pipeline._SPLITS[(repr(c.data), c.seed)] = splits  # same split for every rep and method
    t = time.perf_counter()
    with engine_progress(f"  nasnav rep {rep}: "):  # the pipeline's progress (logger "nasnav") on stderr
        run_pipeline(c, root / f"nasnav-{rep}")
    t_pipe = time.perf_counter() - t
    run = RunDir(root / f"nasnav-{rep}")
    k = run.current_round()
    df = read_candidates(run, k).sort_values("one_shot_acc", ascending=False, kind="mergesort")
    curve = Curve(t_pipe)
    for arch in df["arch"].head(topk):
        res = trainer(arch, TRAIN_SEED)
        curve.add(res["seconds"], res)
    scored = sum(len(read_candidates(run, j)) for j in run.rounds())
    return curve, {"pipeline_s": t_pipe, "rounds": k + 1, "scored": scored}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="mnist1d", help="a preset name or a config file (.yaml)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=None, help="standalone epochs (default: retrain.epochs)")
    ap.add_argument("--max-evals", type=int, default=50, help="standalone trainings per baseline run")
    ap.add_argument("--max-seconds", type=float, default=float("inf"), help="(simulated) seconds per baseline run")
    ap.add_argument("--nasnav-topk", type=int, default=3, help="nasnav finalists trained standalone")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides (nasnav)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--cache", default="default", help="standalone cache file ('' = none)")
    ap.add_argument("--quick", action="store_true", help="smoke test: tiny budgets")
    ap.add_argument("--no-write", action="store_true", help="print only; record nothing (bench/results, BENCHMARKS.md)")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    quiet_engine()
    from nasnav.workflow.runs import load_data

    config_path = args.preset if args.preset.endswith((".yaml", ".yml")) else preset_path(args.preset)
    cfg = load_config(config_path, args.set)
    if args.quick:
        cfg.supernet.epochs, cfg.supernet.warm_start_epochs, cfg.search.budget = 1, 1, 10
    splits = load_data(cfg)
    space = cfg.search_space()
    trainer = StandaloneTrainer(cfg, splits, args.epochs, cache=args.cache)
    curves: dict[str, list[Curve]] = {"nasnav": [], "random": [], "optuna-tpe": []}
    info = []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            cur, meta = run_nasnav(cfg, splits, trainer, rep, args.nasnav_topk, Path(tmp))
            curves["nasnav"].append(cur)
            info.append(meta)
            log(f"[search {args.preset}] rep {rep} nasnav: {cur.t:.0f} s, test {cur.best_test:.4f} {cur.best_arch}")
            cur = run_random(space, trainer, rep, args.max_evals, args.max_seconds)
            curves["random"].append(cur)
            log(f"[search {args.preset}] rep {rep} random: {cur.t:.0f} s, test {cur.best_test:.4f} {cur.best_arch}")
            cur = run_tpe(space, trainer, rep, args.max_evals, args.max_seconds)
            curves["optuna-tpe"].append(cur)
            log(f"[search {args.preset}] rep {rep} optuna-tpe: {cur.t:.0f} s, test {cur.best_test:.4f} "
                f"{cur.best_arch} (trained {trainer.trained} so far)")
    best = max(c.best_test for cs in curves.values() for c in cs)
    level = best - 0.005
    reach = {m: [c.reach(level) for c in cs] for m, cs in curves.items()}
    rows = []
    for m, cs in curves.items():
        r = [x for x in reach[m] if x is not None]
        rows.append({
            "method": m,
            "wall time s (run)": median_spread(c.t for c in cs),
            "standalone trainings": median_spread(c.evals for c in cs),
            "final incumbent test acc": median_spread(c.best_test for c in cs),
            f"reached {level:.4f}": f"{len(r)}/{len(cs)}",
            "time to reach s": (median_spread(r) + ("" if len(r) == len(cs) else " (reached runs only)")) if r else
            f"not within {max(c.t for c in cs):.0f} s",
        })
    horizon = max(c.t for cs in curves.values() for c in cs)
    marks = [m for m in (15, 30, 60, 120, 240, 480, 960, 1920, 3840) if m < horizon] + [horizon]
    trows = []
    for t in marks:
        row = {"wall time s": f"{t:.0f}"}
        for m, cs in curves.items():
            v = np.array([c.at(t) for c in cs])
            row[m] = "-" if np.isnan(v).all() else (f"{np.nanmedian(v):.4f}" + (f" ({np.isnan(v).sum()} none yet)"
                                                                                  if np.isnan(v).any() else ""))
        trows.append(row)

    def share(tests: dict) -> str:
        v = np.array(list(tests.values()))
        return f"{np.mean(v >= level - TOL):.1%} of {len(v)}" if len(v) else "-"

    rand_tests = {a: x for c in curves["random"] for a, x in c.tests.items()}
    all_tests = {a: x for cs in curves.values() for c in cs for a, x in c.tests.items()}
    rv = np.array(list(rand_tests.values()))
    spread = (f"Share of architectures trained standalone whose test accuracy reached the level: {share(rand_tests)} "
              f"drawn by random search (uniform: the space's share), {share(all_tests)} trained by any method; "
              f"random search's test accuracies {rv.min():.4f}..{rv.max():.4f} (median {np.median(rv):.4f}, std "
              f"{rv.std():.4f}).\n\n") if len(rv) else ""

    def med(m):
        r = [x if x is not None else np.inf for x in reach[m]]
        return float(np.median(r))

    ratio = med("nasnav") / med("optuna-tpe") if np.isfinite(med("optuna-tpe")) else float("nan")
    if np.isfinite(ratio):
        verdict = f"nasnav / Optuna median time to reach: **{ratio:.2f}** (target <= 0.20: {'met' if ratio <= 0.2 else 'missed'})"
    elif np.isfinite(med("nasnav")):
        verdict = (f"Optuna's median run did not reach the level within its budget (> {horizon:.0f} s), nasnav's did "
                   f"in {med('nasnav'):.0f} s: ratio < {med('nasnav') / horizon:.2f} (target <= 0.20)")
    else:
        verdict = "nasnav's median run did not reach the level: target missed"
    meta = (f"nasnav pipeline (preset settings{', overrides ' + ' '.join(args.set) if args.set else ''}): "
            f"{median_spread(i['pipeline_s'] for i in info)} s, rounds {[i['rounds'] for i in info]}, candidates "
            f"scored {[i['scored'] for i in info]}, then top {args.nasnav_topk} trained standalone")
    body = (f"Preset `{args.preset}` ({space.size():,} architectures), {args.reps} repetitions (seeds 0..{args.reps - 1}; "
            f"the data split is the same for all). Standalone training: {trainer.epochs} epochs, seed {TRAIN_SEED}, "
            f"the same function for every method; {trainer.trained} trainings run now, the rest from the cache at "
            f"their measured cost. Baselines: at most {args.max_evals} trainings per run. {meta}. Best incumbent test "
            f"accuracy any method reached: {best:.4f}; level = best - 0.5 pp = {level:.4f}. Medians [min, max] over "
            f"repetitions.\n\n" + spread + markdown_table(rows) + "\nIncumbent test accuracy (median over repetitions) by wall "
            "time:\n\n" + markdown_table(trows) + f"\n{verdict}.\n")
    metrics = {"ratio": ratio if np.isfinite(ratio) else None, "best": float(best), "level": float(level),
               "share_random": float(np.mean(rv >= level - TOL)) if len(rv) else None,
               "pipeline_s": float(np.median([i["pipeline_s"] for i in info]))}
    report(f"Search efficiency ({args.preset}): nasnav vs random vs Optuna TPE", body, write=not args.no_write,
           group=args.preset, params=vars(args), metrics=metrics)


if __name__ == "__main__":
    main()
