"""The product's two-question spot check against a multi-seed ground truth, over several run seeds.

    python bench/ranking.py --spotcheck --preset mnist1d --run-seeds 5
    python bench/ranking.py --spotcheck --preset digits --run-seeds 5 --loop     # also times the whole loop
    python bench/ranking.py --spotcheck --preset tiny --run-seeds 1 --n 6 --m 4 --quick --no-write

Per run seed s (the config's ``seed``: data split, supernet, search, all of it), round 0 as the
product runs it: ``workflow.supernet.train_supernet`` and ``workflow.search.score_candidates`` in a
scratch run directory (with ``--loop``, the whole headless pipeline ``workflow.pipeline.run_pipeline``,
timed: what ``python -m nasnav run`` does). Then the spot check's two samples, chosen by the product's
own plan (``workflow.spotcheck.plan``): N architectures sampled evenly over round 0's space, scored
with round 0's supernet, and the round's M best candidates by one-shot score. Every architecture is
trained standalone (``retrain.spotcheck_epochs``, the product's trainer, cached: bench/standalone.py)
with the spot check's own seeds (``seed + i``, ``retrain.spotcheck_seeds`` of them) and with
``--truth-seeds`` independent seeds (100, 101, ...): the ground truth.

Reported per run seed: Kendall tau of round 0's one-shot scores against the ground-truth mean on the
space sample (the "check across the space" of the default-demo target), the space sample's
standalone spread (sd of the means) over the seed-to-seed sd, and for each question the product's
verdict (from its own seeds) beside the verdict the same function gives on the ground truth: does
the product's spot check say what more training would say?
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import engine_progress, log, markdown_table, quiet_engine, report, set_threads  # noqa: E402
from bench.standalone import StandaloneTrainer  # noqa: E402
from nasnav.analysis import trust  # noqa: E402
from nasnav.config import load_config, preset_path  # noqa: E402
from nasnav.store.run_dir import RunDir  # noqa: E402
from nasnav.workflow.pipeline import run_pipeline  # noqa: E402
from nasnav.workflow.runs import create_run, load_data  # noqa: E402
from nasnav.workflow.search import score_candidates  # noqa: E402
from nasnav.workflow.spotcheck import plan  # noqa: E402
from nasnav.workflow.supernet import train_supernet  # noqa: E402

TRUTH_SEED0 = 100  # ground-truth seeds 100, 101, ...: never the spot check's own (seed + i)


def _seed_list(text: str) -> list[int]:
    """'5' -> 0..4; '0,3,7' -> those; '2-4' -> 2, 3, 4 ('3-3': seed 3 alone)."""
    if "," in text:
        return [int(x) for x in text.split(",") if x.strip()]
    if "-" in text:
        a, b = (int(x) for x in text.split("-"))
        return list(range(a, b + 1))
    return list(range(int(text)))


def one_seed(config_path, s: int, args, tmp: Path) -> dict:
    """Round 0 of run seed ``s``, the spot check's plan, trainings and both answers (product and truth)."""
    over = [f"seed={s}", "trainer.devices=1", "trainer.num_nodes=1", "trainer.strategy=auto",
            "trainer.enable_progress_bar=false", *args.set]
    if args.quick:
        over += ["supernet.epochs=2", "supernet.warm_start_epochs=1", "search.budget=12", "steering.rounds=2"]
    cfg = load_config(config_path, over)
    path = tmp / f"run-{s}"
    t = time.time()
    if args.loop:
        with engine_progress(f"[seed {s}] "):
            run_pipeline(cfg, path)
        run = RunDir(path)
    else:
        run = create_run(cfg, path)
        train_supernet(run, cfg, 0)
        score_candidates(run, cfg, 0, fill=True)
    loop_s = time.time() - t
    p = plan(run, cfg, 0, n=args.n, m=args.m)
    epochs = args.epochs or cfg.retrain.spotcheck_epochs
    trainer = StandaloneTrainer(cfg, load_data(cfg), epochs, cache=args.cache)
    own = [cfg.seed + i for i in range(cfg.retrain.spotcheck_seeds)]
    truth = [TRUTH_SEED0 + i for i in range(args.truth_seeds)]
    archs = list(dict.fromkeys(p["space"]["archs"] + p["top"]["archs"]))
    accs: dict[tuple[str, int], float] = {}
    for i, a in enumerate(archs):
        for seed in own + truth:
            accs[(a, seed)] = trainer(a, seed)["val_acc"]
        log(f"[spot {args.preset} seed {s}] {i + 1}/{len(archs)} {a}: "
            f"{np.round([accs[(a, x)] for x in own + truth], 4)}")

    def matrix(which: str, seeds: list[int]) -> np.ndarray:
        return np.array([[accs[(a, x)] for x in seeds] for a in p[which]["archs"]])

    out = {"seed": s, "loop_s": loop_s, "trained": trainer.trained, "epochs": epochs}
    for q, which, fn in ((trust.PRUNE, "space", trust.prune_answer), (trust.PICK, "top", trust.pick_answer)):
        scores = p[which]["one_shot"]
        out[q] = {"product": fn(scores, matrix(which, own), epochs=epochs),
                  "truth": fn(scores, matrix(which, truth), epochs=epochs)}
    return out


def _pp(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spotcheck", action="store_true", help="(this mode of bench/ranking.py)")
    ap.add_argument("--preset", default="mnist1d", help="a preset name or a config file (.yaml)")
    ap.add_argument("--run-seeds", default="5", help="run seeds: a count (0..n-1), a list '0,3' or a range '2-4' "
                    "('3-3': seed 3 alone)")
    ap.add_argument("--n", type=int, default=20, help="space sample (question 1)")
    ap.add_argument("--m", type=int, default=8, help="top candidates (question 2)")
    ap.add_argument("--truth-seeds", type=int, default=3, help="independent seeds of the ground truth")
    ap.add_argument("--epochs", type=int, default=None, help="standalone epochs (default retrain.spotcheck_epochs)")
    ap.add_argument("--set", nargs="*", default=[], help="config overrides key=value, as the CLI's --set")
    ap.add_argument("--loop", action="store_true", help="run (and time) the whole headless pipeline per seed")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--cache", default="default", help="standalone cache file ('' = none)")
    ap.add_argument("--quick", action="store_true", help="smoke test: shortened supernet and search")
    ap.add_argument("--no-write", action="store_true", help="print only; record nothing")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    quiet_engine()
    config_path = args.preset if args.preset.endswith((".yaml", ".yml")) else preset_path(args.preset)
    seeds = _seed_list(args.run_seeds)
    results = []
    with tempfile.TemporaryDirectory(prefix="nasnav-spot-") as tmp:
        for s in seeds:
            results.append(one_seed(config_path, s, args, Path(tmp)))
            r = results[-1]
            t1 = r["prune"]["truth"]
            log(f"[spot {args.preset} seed {s}] across the space: tau {t1['kendall_tau']} (p {t1['kendall_p']}) vs "
                f"{args.truth_seeds}-seed truth, spread {t1['spread']} seed sd {t1['seed_sd']}")
            log(f"[spot {args.preset} seed {s}] prune: {r['prune']['product']['verdict']} "
                f"(truth {r['prune']['truth']['verdict']}); pick: {r['pick']['product']['verdict']} "
                f"(truth {r['pick']['truth']['verdict']})")
    rows, met, agree, ratios = [], 0, {trust.PRUNE: 0, trust.PICK: 0}, []
    for r in results:
        q1, q2 = r["prune"], r["pick"]
        t1 = q1["truth"]
        ratio = t1["spread"] / t1["seed_sd"] if t1.get("spread") and t1.get("seed_sd") else None
        ratios.append(ratio if ratio is not None else 0.0)
        ok = (t1["kendall_tau"] or 0) >= 0.6 and (t1["kendall_p"] or 1) < 0.01 and t1["n"] >= 20
        met += ok
        for q in agree:
            agree[q] += r[q]["product"]["verdict"] == r[q]["truth"]["verdict"]
        rows.append({
            "seed": r["seed"], "loop s" if args.loop else "round 0 s": f"{r['loop_s']:.0f}",
            "space: tau vs truth (p, N)": f"{t1['kendall_tau']:.2f} ({t1['kendall_p']:.0e}, {t1['n']})"
            if t1["kendall_tau"] is not None else "-",
            "spread / seed sd": f"{ratio:.1f}" if ratio else "-",
            "prune: check / truth": f"{q1['product']['verdict']} / {t1['verdict']}",
            "top: range pp / seed sd pp": f"{_pp(q2['truth']['range'])} / {_pp(q2['truth']['seed_sd'])}",
            "pick: check / truth": f"{q2['product']['verdict']} / {q2['truth']['verdict']}",
        })
    n = len(results)
    epochs = results[0]["epochs"] if results else None
    body = (f"Run seeds {seeds}; standalone {epochs} epochs; truth {args.truth_seeds} seeds.\n\n" + markdown_table(rows)
            + f"\nAcross the space, tau >= 0.6 with p < 0.01 on N >= 20 in **{met}/{n}** seeds; verdicts agree with "
            f"the truth in {agree[trust.PRUNE]}/{n} (prune) and {agree[trust.PICK]}/{n} (pick).")
    metrics = {"seeds": seeds, "tau_met": met, "spread_ratio_min": min(ratios) if ratios else None, "agree_prune": agree[trust.PRUNE], "agree_pick": agree[trust.PICK],
               "loop_s": [r["loop_s"] for r in results], "loop": args.loop,
               "per_seed": [{"seed": r["seed"], **{q: {w: {k: r[q][w].get(k) for k in
                             ("verdict", "kendall_tau", "kendall_p", "n", "spread", "seed_sd", "range", "differ_p",
                              "ceiling", "regret")} for w in ("product", "truth")} for q in agree}}
                            for r in results]}
    report(f"Ranking fidelity: two-question spot check ({args.preset})", body, write=not args.no_write,
           group=f"{args.preset}, spot check", params=vars(args), metrics=metrics, benchmark="ranking")


if __name__ == "__main__":
    main()
