"""Evolution vs random search on the same trained supernet: best-so-far one-shot accuracy by budget.

    python bench/search_curve.py                        # mnist1d preset, 200 candidates, 10 seeds
    python bench/search_curve.py --preset tiny --budget 40 --seeds 3 --no-write   # smoke test

The supernet of the preset is trained once; every architecture of its space is then scored once
with shared weights (BN recalibrated), so both strategies see exactly the same scores (a table
lookup evaluator) and the comparison is not blurred by evaluation noise. Each strategy runs with
the preset's search settings over several seeds; the table gives the mean (and spread) of the best
one-shot accuracy found after n candidates, and the rank of the final best in the whole space.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import markdown_table, report, set_threads  # noqa: E402
from nasnav.config import load_config, preset_path  # noqa: E402
from nasnav.search.loop import run_search  # noqa: E402
from nasnav.store.io import write_yaml  # noqa: E402
from nasnav.store.run_dir import RunDir
from nasnav.workflow.runs import create_run  # noqa: E402
from nasnav.workflow.search import supernet_evaluator  # noqa: E402
from nasnav.workflow.supernet import train_supernet


class Table:
    """Scores looked up by architecture string (the later pluggable-evaluator issue's lookup evaluator)."""

    def __init__(self, scores: dict[str, float]):
        self.scores = scores

    def __call__(self, arch) -> dict:
        return {"one_shot_acc": self.scores[str(arch)]}


def curve(strategy: str, table: Table, space, cfg, budget: int, seed: int, root: Path) -> np.ndarray:
    run = RunDir.create(root / f"{strategy}-{seed}")
    write_yaml(run.ensure_round_dir(0) / "space.yaml", space.to_dict())
    sc = cfg.search
    df = run_search(run, space, 0, table, budget, np.random.default_rng([seed, 99]), strategy=strategy,
                    population=sc.population, sample_size=sc.sample_size, crossover_prob=sc.crossover_prob)
    return np.maximum.accumulate(df["one_shot_acc"].to_numpy())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="mnist1d")
    ap.add_argument("--budget", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--no-write", action="store_true", help="print only; record nothing (bench/results, BENCHMARKS.md)")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    cfg = load_config(preset_path(args.preset), args.set)
    space = cfg.search_space()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run = create_run(cfg, root / "run")
        t = time.time()
        train_supernet(run, cfg, 0)
        t_train = time.time() - t
        ev = supernet_evaluator(run, cfg, 0)
        t = time.time()
        table = Table({str(a): ev(a)["one_shot_acc"] for a in space})
        t_score = time.time() - t
        curves = {s: np.array([curve(s, table, space, cfg, args.budget, seed, root) for seed in range(args.seeds)])
                  for s in ("random", "evolution")}
    all_scores = np.sort(np.array(list(table.scores.values())))[::-1]
    marks = [n for n in (10, 25, 50, 100, 150, 200, 300, 500) if n <= args.budget]
    if args.budget not in marks:
        marks.append(args.budget)
    rows = []
    for n in marks:
        r, e = curves["random"][:, n - 1], curves["evolution"][:, n - 1]
        rows.append({"candidates": n, "random: best so far": f"{r.mean():.4f} ± {r.std():.4f}",
                     "evolution: best so far": f"{e.mean():.4f} ± {e.std():.4f}",
                     "evolution ahead in": f"{(e > r).sum()}/{args.seeds} (tie {(e == r).sum()})"})
    ranks = {s: [int((all_scores > c[-1]).sum()) + 1 for c in curves[s]] for s in curves}
    body = (f"Preset `{args.preset}`: {space.size():,} architectures; supernet trained in {t_train:.1f} s, whole "
            f"space scored once in {t_score:.1f} s (the lookup table both strategies use). Evolution: population "
            f"{cfg.search.population}, tournament {cfg.search.sample_size}, crossover {cfg.search.crossover_prob}; "
            f"{args.seeds} seeds each. Best one-shot accuracy in the space: {all_scores[0]:.4f}.\n\n"
            + markdown_table(rows)
            + f"\nRank of the final best in the whole space (1 = the best): random median "
              f"{int(np.median(ranks['random']))} {sorted(ranks['random'])}, evolution median "
              f"{int(np.median(ranks['evolution']))} {sorted(ranks['evolution'])}.\n")
    report(f"Search: evolution vs random ({args.preset}, {args.budget} candidates)", body, write=not args.no_write,
           group=args.preset, params=vars(args))


if __name__ == "__main__":
    main()
