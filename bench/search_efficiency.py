"""Search efficiency: nasnav's pipeline vs searches over standalone trainings, by wall time.

    python bench/search_efficiency.py --preset mnist1d_large --reps 3 --budget-x 3 --ranking 20 --threads 1
    python bench/search_efficiency.py --preset mnist1d --reps 3 --epochs 20 --max-evals 40 --threads 1
    python bench/search_efficiency.py --preset tiny --reps 1 --epochs 1 --max-evals 3 --quick --no-write  # smoke

Every method looks for the best architecture of the same space, side by side in one run, for several
repetitions (seeds):

- **nasnav**: the headless pipeline (``nasnav.workflow.pipeline.run_pipeline``: supernet, search rounds with
  the auto-pilot (narrowing, by default), fitness and projection, as ``python -m nasnav run`` does), then its
  picks trained standalone (the config's ``retrain.top_k``, as the headless run retrains them, or
  ``--nasnav-topk``), its incumbent the pick with the best validation accuracy;
- **random**, **optuna-tpe**, **evolution** (regularized evolution, Real et al. 2019), **local** (local
  search, White et al. 2020): searches over standalone trainings (bench/search_methods.py says how),
  each with the same budget of wall time: ``--budget-x`` times nasnav's median time (its pipeline and
  finalists), or ``--max-seconds``, and at most ``--max-evals`` trainings.

Every standalone training is the same function (``bench/standalone.py``: the product's standalone
trainer, ``nasnav.train.standalone.train_standalone``, with the same epochs and seed, so the same
architecture gets the same accuracy whichever method picked it). Trainings are cached on
disk: a cached one costs its recorded seconds, so times are *measured training times*, summed,
plus the method's own measured overhead (nasnav's whole pipeline runs for real each time). A
method's incumbent is its candidate with the best validation accuracy; the table reports the
incumbent's test accuracy against wall time (a table and a PNG plot, bench/search_plot.py), the time to
come within 0.5 pp of the best test accuracy any method's incumbent reached, and each method's incumbent
at nasnav's median end time and twice it. The space's difficulty comes from the run itself: the share of
random search's (uniform) draws that reach that level.

``--reseeds N``: every incumbent architecture is also trained on N fresh seeds and judged by its mean
test accuracy (bench/search_reseed.py: one training's luck is not the architecture's quality).

``--ranking N``: after each nasnav run, round 0's supernet and the final round's rank N architectures of
the final space and its ``--ranking-top`` best candidates against standalone training (bench/search_rounds.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import log, markdown_table, median_spread, report  # noqa: E402
from bench.search_jobs import run_tasks, setup  # noqa: E402
from bench.search_methods import BASELINES, TOL, TRAIN_SEED, Curve  # noqa: E402
from bench.search_verdicts import at_end, median_reach, time_ratios  # noqa: E402
from nasnav.config import preset_path  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="mnist1d", help="a preset name or a config file (.yaml)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=None, help="standalone epochs (default: retrain.epochs)")
    ap.add_argument("--methods", default=",".join(BASELINES), help="baselines, comma-separated: " + ", ".join(BASELINES))
    ap.add_argument("--max-evals", type=int, default=500, help="standalone trainings per baseline run, at most")
    ap.add_argument("--budget-x", type=float, default=3.0, help="baselines' wall time: this many times nasnav's median")
    ap.add_argument("--max-seconds", type=float, default=None, help="baselines' (simulated) seconds (instead of --budget-x)")
    ap.add_argument("--nasnav-topk", type=int, default=None, help="nasnav finalists trained standalone "
                    "(default: the config's retrain.top_k)")
    ap.add_argument("--ranking", type=int, default=0, help="rounds' ranking: architectures of the final space (0: off)")
    ap.add_argument("--ranking-top", type=int, default=8, help="rounds' ranking: the final round's best candidates")
    ap.add_argument("--reseeds", type=int, default=0, help="re-measure every incumbent on this many fresh seeds (0: off)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides (nasnav)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--cache", default="default", help="standalone cache file ('' = none)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="seconds: wall time, or each process's "
                    "CPU time (with --threads 1: a quiet machine's wall time, whatever else runs on it)")
    ap.add_argument("--progress", type=Path, default=None, help="JSON-lines file of finished runs: a rerun with the "
                    "same file and settings skips them (an interrupted benchmark goes on)")
    ap.add_argument("--jobs", type=int, default=1, help="runs side by side in this many processes (use with --clock cpu)")
    ap.add_argument("--quick", action="store_true", help="smoke test: tiny budgets")
    ap.add_argument("--no-write", action="store_true", help="print only; record nothing (bench/results, BENCHMARKS.md)")
    args = ap.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if unknown := [m for m in methods if m not in BASELINES]:
        ap.error(f"--methods: unknown {', '.join(unknown)}; known: {', '.join(BASELINES)}")
    config_path = args.preset if args.preset.endswith((".yaml", ".yml")) else preset_path(args.preset)
    init = (str(config_path), args.set, args.quick, args.epochs, args.cache, args.threads, args.clock)
    st = setup(*init)  # this process's (the report's space and epochs; the tasks when --jobs 1)
    if args.nasnav_topk is None:
        args.nasnav_topk = st["cfg"].retrain.top_k
    space, trainer = st["space"], st["trainer"]
    tag = f"[search {args.preset}]"
    trained = [0, 0]  # standalone trainings run by this invocation, runs (tasks) it ran

    def done(tasks):
        def say(i, res):
            (m, rep, _), (cur, meta) = tasks[i], res
            trained[0] += meta["trained"]
            trained[1] += 1
            log(f"{tag} rep {rep} {m}: {cur.t:.0f} s, {cur.evals} trainings, test {cur.best_test:.4f} {cur.best_arch}"
                + (f"; ranking {meta['ranking']}" if "ranking" in meta else "") + f" (trained {trained[0]} so far)")
        return say

    nas = [("nasnav", rep, {"topk": args.nasnav_topk, "ranking": (args.ranking, args.ranking_top)})
           for rep in range(args.reps)]

    def baselines(budget):
        return [(m, rep, {"max_evals": args.max_evals, "max_seconds": budget}) for m in methods for rep in range(args.reps)]

    if args.max_seconds is None:  # the budget follows nasnav's time: nasnav first, then the baselines
        res = run_tasks(nas, args.jobs, init, done(nas), args.progress)
        budget = args.budget_x * float(np.median([c.t for c, _ in res]))
        res += run_tasks(baselines(budget), args.jobs, init, done(baselines(budget)), args.progress)
    else:  # a fixed budget: every run at once, side by side
        budget = args.max_seconds
        res = run_tasks(nas + baselines(budget), args.jobs, init, done(nas + baselines(budget)),
                        args.progress)
    curves: dict[str, list[Curve]] = {}
    for (m, _, _), (cur, _) in zip(nas + baselines(budget), res):
        curves.setdefault(m, []).append(cur)
    info = [meta for _, meta in res[:len(nas)]]
    t_end = float(np.median([c.t for c in curves["nasnav"]]))
    best = max(c.best_test for cs in curves.values() for c in cs)
    level = best - 0.005
    reach = {m: [c.reach(level) for c in cs] for m, cs in curves.items()}
    horizon = max(c.t for cs in curves.values() for c in cs)
    rows = []
    for m, cs in curves.items():
        r = [x for x in reach[m] if x is not None]
        rows.append({
            "method": m,
            "seconds (run)": median_spread(c.t for c in cs),
            "standalone trainings": median_spread(c.evals for c in cs),
            f"incumbent test acc at {t_end:.0f} s (nasnav's end)": median_spread(c.at(t_end) for c in cs),
            f"at {2 * t_end:.0f} s": median_spread(c.at(2 * t_end) for c in cs),
            "final incumbent test acc": median_spread(c.best_test for c in cs),
            f"reached {level:.4f}": f"{len(r)}/{len(cs)}",
            "time to reach s": (median_spread(r) + ("" if len(r) == len(cs) else " (reached runs only)")) if r else
            f"not within {max(c.t for c in cs):.0f} s",
        })
    marks = [m for m in (15, 30, 60, 120, 240, 480, 960, 1920, 3840) if m < horizon]
    marks = sorted({*marks, round(t_end), round(2 * t_end), round(horizon)})
    trows = []
    for t in marks:
        row = {"seconds": f"{t:.0f}"}
        for m, cs in curves.items():
            v = np.array([c.at(t) for c in cs])
            row[m] = "-" if np.isnan(v).all() else (f"{np.nanmedian(v):.4f}" + (f" ({np.isnan(v).sum()} none yet)"
                                                                                  if np.isnan(v).any() else ""))
        trows.append(row)

    def share(tests: dict) -> str:
        v = np.array(list(tests.values()))
        return f"{np.mean(v >= level - TOL):.1%} of {len(v)}" if len(v) else "-"

    rand_tests = {a: x for c in curves.get("random", []) for a, x in c.tests.items()}
    all_tests = {a: x for cs in curves.values() for c in cs for a, x in c.tests.items()}
    rv = np.array(list(rand_tests.values()))
    spread = (f"Share of architectures trained standalone whose test accuracy reached the level: {share(rand_tests)} "
              f"drawn by random search (uniform: the space's share), {share(all_tests)} trained by any method; "
              f"random search's test accuracies {rv.min():.4f}..{rv.max():.4f} (median {np.median(rv):.4f}, std "
              f"{rv.std():.4f}).\n\n") if len(rv) else ""
    ratios, line = time_ratios(reach, methods, budget, "")
    verdicts = [line]
    # a second level, nasnav's own: how long each method takes to match what nasnav's median run ends with
    own = float(np.median([c.best_test for c in curves["nasnav"]]))
    own_reach = {m: median_reach([c.reach(own) for c in cs]) for m, cs in curves.items()}
    verdicts.append(f"Time to nasnav's median final incumbent ({own:.4f}), median over repetitions: " + ", ".join(
        f"{m} {v:.0f} s" if np.isfinite(v) else f"{m} not within {budget:.0f} s" for m, v in own_reach.items()))
    at, line = at_end(lambda m, t: float(np.nanmedian([c.at(t) for c in curves[m]])), list(curves), methods, t_end,
                      budget, "")
    verdicts.append(line)
    meta = (f"nasnav pipeline (preset settings{', overrides ' + ' '.join(args.set) if args.set else ''}): "
            f"{median_spread(i['pipeline_s'] for i in info)} s, rounds {[i['rounds'] for i in info]}, candidates "
            f"scored {[i['scored'] for i in info]}, then its top {args.nasnav_topk} picks trained standalone; "
            f"median end {t_end:.0f} s")
    body = (f"Preset `{args.preset}` ({space.size():,} architectures), {args.reps} repetitions (seeds 0..{args.reps - 1}; "
            f"the data split is the same for all). Standalone training: {trainer.epochs} epochs, seed {TRAIN_SEED}, "
            f"the same function for every method; {trained[0]} trainings run now"
            + (f" ({len(res) - trained[1]} of {len(res)} runs read back from --progress)" if trained[1] < len(res) else "")
            + ", the rest from the cache at "
            f"their measured cost. Baselines: {budget:.0f} s each"
            f"{f' ({args.budget_x:g}x nasnav' + chr(39) + 's median end)' if args.max_seconds is None else ''}, at most "
            f"{args.max_evals} trainings. {meta}. Best incumbent test accuracy any method reached: {best:.4f}; level = "
            f"best - 0.5 pp = {level:.4f}. Medians [min, max] over repetitions. Seconds: "
            + ("each process's CPU seconds (`--clock cpu`, one torch thread per process: a quiet machine's wall "
               "time, whatever else runs); only ratios of one run compare" if args.clock == "cpu" else
               "wall time") + ".\n\n" + spread + markdown_table(rows))
    group = Path(args.preset).stem if args.preset.endswith((".yaml", ".yml")) else args.preset
    try:
        from bench.search_plot import link_from_page, plot_curves, plot_path

        png = plot_curves(curves, level, [t_end, 2 * t_end], f"{group}: {space.size():,} architectures, "
                          f"{args.reps} repetitions (median, band: range)", plot_path(group + (" quick" if args.quick else "")),
                          "CPU seconds, one thread per process" if args.clock == "cpu" else "wall time, s")
        body += f"\n![incumbent test accuracy against wall time]({link_from_page(png)})\n"
    except ImportError as e:  # matplotlib is a bench requirement; say so instead of failing the measurement
        body += f"\n(no plot: {e})\n"
    body += ("\nIncumbent test accuracy (median over repetitions) by wall time:\n\n" + markdown_table(trows)
             + "\n" + ";\n".join(verdicts) + ".\n")
    if any("ranking" in i for i in info):
        from bench.search_rounds import fmt

        rrows = [{"rep": rep, "final round": i["ranking"]["round"],
                  "space": f"{i['ranking']['full']:,} -> {i['ranking']['size']:,}",
                  "final space: round 0's tau": fmt(i["ranking"]["space_r0"]),
                  "final round's tau": fmt(i["ranking"]["space_final"]),
                  "top: round 0's tau": fmt(i["ranking"]["top_r0"]),
                  "top: final round's tau": fmt(i["ranking"]["top_final"])} for rep, i in enumerate(info)]
        better = sum((i["ranking"]["space_final"]["tau"] or -2) > (i["ranking"]["space_r0"]["tau"] or -2) for i in info)
        body += ("\n### Do rounds pay? Round 0's supernet and the final round's on the final space\n\n"
                 f"Per nasnav run: {args.ranking} architectures drawn uniformly from the final round's space and its "
                 f"{args.ranking_top} best candidates by one-shot score, scored by both supernets, against standalone "
                 "validation accuracy (the same trainer).\n\n" + markdown_table(rrows)
                 + f"\nThe final round's supernet ranks the final space better than round 0's in **{better}/{len(info)}** "
                 "runs.\n")
    reseeded = None
    if args.reseeds > 0:
        from bench.search_reseed import incumbents, reseed_tasks, section

        tasks = reseed_tasks(incumbents(curves), args.reseeds, args.jobs)
        log(f"{tag} re-measuring {len(incumbents(curves))} incumbents on {args.reseeds} fresh seeds")
        tests: dict[str, dict[int, float]] = {}
        for _, meta_r in run_tasks(tasks, args.jobs, init):
            for a, s in meta_r["tests"].items():
                tests.setdefault(a, {}).update({int(k): v for k, v in s.items()})
        text, reseeded = section(curves, tests, args.reseeds, t_end, budget, methods)
        body += text
    metrics = {"ratio": ratios.get("optuna-tpe"), "ratios": ratios, "best": float(best), "level": float(level),
               "share_random": float(np.mean(rv >= level - TOL)) if len(rv) else None, "draws_random": len(rv), "end_s": t_end,
               "budget_s": budget, "at_end": at,
               "space_size": space.size(), "pipeline_s": float(np.median([i["pipeline_s"] for i in info])),
               "ranking": [i.get("ranking") for i in info], "nasnav_final": own,
               "to_nasnav_final_s": {m: (v if np.isfinite(v) else None) for m, v in own_reach.items()},
               "reach_s": {m: (v if np.isfinite(v := median_reach(r)) else None) for m, r in reach.items()},
               "reseeded": reseeded}
    report(f"Search efficiency ({args.preset}): nasnav vs searches over standalone trainings", body,
           write=not args.no_write, group=group, params=vars(args), metrics=metrics)


if __name__ == "__main__":
    main()
