"""Steering judged on published tables nobody tuned on: every table, every method, equal budgets.

Tables (``--tables``): NAS-Bench-201 CIFAR-10 (``nb201``: the table's accuracy observed with
Gaussian noise, ``--noise`` pp, each architecture keeping its error; ``nb201@0`` / ``nb201@2``: at
0 and 2 pp) and the NAS-Bench-Graph tables (observed: the published validation accuracy, real
selection noise). Truth: NB201's accuracy, the graph tables' test accuracy. Tuning tables (settings
were chosen on these only): nb201, cora, citeseer, arxiv, photo, cs. Test tables (reported, never
tuned on): pubmed, computers, physics, proteins.

Methods, each for ``--seeds`` seeds at each budget (``--budgets``, evaluations):

- ``random``, ``evolution``, ``local``: nasnav's proposers; the pick is the best score;
- ``auto-pilot``: the product's auto-pilot until the surrogate, as ``bench/nb201_table.py`` ran it
  (evolution in 9 passes of budget/9, narrowing before the last pass with the elite ranked by the
  additive model, ``evidence: all``), the pick the best score in the final space;
- ``surrogate``, the default policy now: the same passes with predictor-guided proposals
  (``nasnav.search.guided.Guided`` over ``nasnav.analysis.surrogate``), the narrowing elite ranked by
  the surrogate's posterior mean (``steering.narrow_by: surrogate``), and the pick by the posterior
  mean blended with the own score (``steering.pick: surrogate``, ``--blend``): the winner's curse
  corrected;
- ``--variants`` adds the ablations (guided search alone, the auto-pilot with the surrogate's pick).

Per table and budget: mean regret of the pick (truth of the best architecture minus truth of the
pick, pp) with its standard error, how often a near-best (the best 0.1% by truth) was scored and
kept in the final space (with the space >= 100x smaller), and the median evaluations until the
first near-best was scored; pooled rows average the tables of a group. The suite also writes the
track records of the auto-pilot's proposals (``nasnav/workflow/track_record.json``: how often
accepting one kept a near-best on the tuning tables), which the app shows beside each proposal.

    pip install -r requirements-bench.txt            # the tables: analog-nasbench, nas-bench-graph
    python bench/steering_suite.py                   # 100 seeds, budgets 100 315 1000, recorded
    python bench/steering_suite.py --quick --no-write
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import zlib
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one BLAS thread per worker
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import log, markdown_table, report  # noqa: E402
from bench.suite_ceiling import validation_ceiling  # noqa: E402
from bench.suite_methods import pick, pilot, search  # noqa: E402
from bench.suite_tables import TEST, TUNING, SuiteTable, load_table  # noqa: E402
from nasnav.config import SteeringConfig  # noqa: E402

PASSES = 9  # the auto-pilot's passes (steering.rounds), as tuned on NB201
PILOT = dict(rounds=PASSES, evidence="all")  # the product's auto-pilot on a table (bench/nb201_table.py's TUNED)
BLEND = 0.2  # weight of the own score in the surrogate pick (chosen on the tuning tables: 0 .. 0.6 within noise)
KAPPA = 0.5  # guided proposals: mean + KAPPA x sd
TRACK_RECORD = Path(__file__).resolve().parent.parent / "nasnav" / "workflow" / "track_record.json"
SPECS = {  # search: the proposer; pilot: in the auto-pilot's passes (or plain search); pick: how
    "random": dict(pilot=False, search="random", pick="score"),
    "evolution": dict(pilot=False, search="evolution", pick="score"),
    "local": dict(pilot=False, search="local", pick="score"),
    "auto-pilot": dict(pilot=True, search="evolution", pick="score", steering={"narrow_by": "model"}),  # until now
    "surrogate": dict(pilot=True, search="guided", pick="surrogate", steering={"narrow_by": "surrogate"}),
    "guided": dict(pilot=False, search="guided", pick="surrogate"),
    "auto-pilot + surrogate pick": dict(pilot=True, search="evolution", pick="surrogate", steering={"narrow_by": "model"}),
}
METHODS = ("random", "evolution", "local", "auto-pilot", "surrogate")
VARIANTS = ("guided", "auto-pilot + surrogate pick", "surrogate:prune=1")


def _rng(seed: int, table: str, method: str) -> np.random.Generator:
    """A method's randomness on a table and seed: the same for every variant of one base method
    (common random numbers: a setting's effect is not drowned by the draw)."""
    return np.random.default_rng([seed, zlib.crc32(table.encode()), zlib.crc32(method.partition(":")[0].encode())])


def _outcome(t: SuiteTable, scored, space, chosen: str, steps=()) -> dict:
    """The numbers of one run: regret of the pick, near-best scored / kept, evaluations to one."""
    truth = t.truth_of(scored["arch"].astype(str))
    hit = np.flatnonzero(truth >= t.near)
    return {"regret": t.best - t.truth_of([chosen])[0], "evals": len(scored), "size": space.size(),
            "scored_near": bool(len(hit)), "to_near": float(hit[0] + 1) if len(hit) else np.inf,
            "kept": t.holds_near(space), "kept01": t.holds_near(space, t.best - 0.1),
            "steps": [(kind, t.holds_near(a), t.holds_near(b), a.size(), b.size()) for kind, a, b in steps]}


def method_spec(label: str, opts: dict) -> dict:
    """A method's settings: its base (``SPECS``) with ``key=value`` overrides after a colon
    (``surrogate:kappa=1,blend=0.3,narrow_by=surrogate``), over the run's ``--blend`` / ``--kappa``;
    a key of the steering section (``SteeringConfig``) goes to the auto-pilot's settings."""
    base, _, extra = label.partition(":")
    if base not in SPECS:
        raise SystemExit(f"method '{base}' is unknown; methods: {', '.join(SPECS)}")
    spec = {"blend": opts["blend"], "kappa": opts["kappa"], **SPECS[base]}
    spec["steering"] = dict(spec.get("steering", {}))
    defaults = SteeringConfig()
    for item in filter(None, extra.split(",")):
        key, _, value = item.partition("=")
        if key in ("blend", "kappa", "theta", "noise"):
            spec[key] = float(value)
        elif key == "local_every":
            spec[key] = int(value)
        elif hasattr(defaults, key):
            kind = type(getattr(defaults, key))
            spec["steering"][key] = bool(int(value)) if kind is bool else kind(value)
        else:
            raise SystemExit(f"method '{label}': unknown setting '{key}'")
    return spec


def run_table_seed(job: tuple[str, int, list[int], list[str], dict]) -> list[dict]:
    """Every method at every budget on one table and seed."""
    name, seed, budgets, methods, opts = job
    t = load_table(name)
    out = []
    for label in methods:
        spec = method_spec(label, opts)
        gp = {k: spec[k] for k in ("theta", "noise") if k in spec}
        guided = {k: spec[k] for k in ("kappa", "local_every") if k in spec} | gp  # the guided proposer's settings
        if not spec["pilot"]:  # anytime: the budgets are prefixes of one run
            kind = spec["search"]
            extra = guided if kind == "guided" else {}
            df = search(t.space, t.evaluator(seed), max(budgets), _rng(seed, name, label), kind, **extra)
            for b in budgets:
                head = df.head(b)
                chosen = pick(head, t.space, spec["pick"], spec["blend"], **gp)
                out.append({"table": name, "seed": seed, "method": label, "budget": b,
                            **_outcome(t, head, t.space, chosen)})
            continue
        for b in budgets:
            sc = dataclasses.replace(SteeringConfig(), **{**PILOT, **spec["steering"]})
            per_pass = max(1, round(b / sc.rounds))
            extra = guided if spec["search"] == "guided" else {}
            res = pilot(t.space, t.evaluator(seed), sc, per_pass, _rng(seed, name, label), seed, spec["search"], **extra)
            chosen = pick(res.scored, res.space, spec["pick"], spec["blend"], **gp)
            row = _outcome(t, res.scored, res.space, chosen, res.steps)
            if spec["pick"] != "score":  # the same run picked by the best own score: the pick's own effect
                row["regret_score"] = t.best - t.truth_of([pick(res.scored, res.space, "score")])[0]
            out.append({"table": name, "seed": seed, "method": label, "budget": b, **row})
    return out


def _se(v) -> float:
    v = np.asarray(v, dtype=float)
    return float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")


def summary_rows(runs: list[dict], tables: list[str], methods: list[str], budget: int, full: dict[str, int]) -> list[dict]:
    """One row per method: regret per table (mean ± SE) and pooled over the tuning and test tables."""
    rows = []
    for m in methods:
        row = {"method": m}
        pooled = {"tuning": [], "test": []}
        for name in tables:
            rs = [r for r in runs if r["table"] == name and r["method"] == m and r["budget"] == budget]
            if not rs:
                continue
            reg = [r["regret"] for r in rs]
            row[name] = _pm(reg)
            group = "tuning" if name in TUNING else "test" if name in TEST else None
            if group:
                pooled[group].append(reg)
        for g, regs in pooled.items():
            if regs:  # pooled: the mean over tables, its SE from the tables' SEs
                row[g] = _pooled(regs)
        rows.append(row)
    return rows


def _pm(values) -> str:
    """'mean±SE' of runs, compactly."""
    return f"{np.mean(values):.2f}±{_se(values):.2f}"


def _pooled(per_table: list[list[float]]) -> str:
    """The mean over tables of their means, its SE from the tables' SEs."""
    return f"{np.mean([np.mean(r) for r in per_table]):.2f}±{np.sqrt(sum(_se(r) ** 2 for r in per_table)) / len(per_table):.2f}"


def pooled_rows(runs: list[dict], tables: list[str], methods: list[str], budgets: list[int]) -> list[dict]:
    """Per method, pooled over the tuning and over the test tables: regret at every budget, and at the
    middle budget how often a near-best was scored and kept (space >= 100x smaller) and evaluations to one."""
    mid = sorted(budgets)[len(budgets) // 2]
    rows = []
    for m in methods:
        row = {"method": m}
        for group, names in (("tune", TUNING), ("test", TEST)):
            names = [n for n in names if n in tables]
            for b in sorted(budgets):
                regs = [[r["regret"] for r in runs if r["table"] == n and r["method"] == m and r["budget"] == b]
                        for n in names]
                regs = [r for r in regs if r]
                row[f"{group} {b}"] = _pooled(regs) if regs else "-"
            rs = [r for r in runs if r["table"] in names and r["method"] == m and r["budget"] == mid]
            if rs:
                full = {n: load_table(n).space.size() for n in names}
                kept = [r["kept"] and r["size"] * 100 <= full[r["table"]] for r in rs]
                row[f"{group} near-best"] = (
                    f"{np.mean([r['scored_near'] for r in rs]):.0%} / "
                    + (f"{np.mean(kept):.0%}" if any(r["size"] * 100 <= full[r["table"]] for r in rs) else "-"))
                to = np.median([r["to_near"] for r in rs])
                row[f"{group} evals"] = f"{to:.0f}" if np.isfinite(to) else "never"
        rows.append(row)
    return rows


def regret_metrics(runs: list[dict]) -> dict:
    """{table: {method: {budget: [mean, SE]}}}: every number of the page, for machines."""
    out: dict = {}
    for r in runs:
        out.setdefault(r["table"], {}).setdefault(r["method"], {}).setdefault(str(r["budget"]), []).append(r["regret"])
    return {t: {m: {b: [round(float(np.mean(v)), 4), round(_se(v), 4)] for b, v in bs.items()} for m, bs in ms.items()}
            for t, ms in out.items()}


def page_tables(reg: dict, tables: list[str], methods: list[str], budgets: list[int]) -> str:
    """The page's table from ``regret_metrics``: regret (pp) per table (rows) and method at the middle
    budget, then the tuning / test pools (mean over tables) at every budget; the largest SEs in the heading."""
    mid = str(sorted(budgets)[len(budgets) // 2])
    groups = [("tuning", [t for t in TUNING if t in tables]), ("test", [t for t in TEST if t in tables])]

    def pool(names, m, b):
        vals = [reg[n][m][b] for n in names if m in reg.get(n, {}) and b in reg[n][m]]
        if not vals:
            return "-"
        pooled_se.append(np.sqrt(sum(v[1] ** 2 for v in vals)) / len(vals))
        return f"{np.mean([v[0] for v in vals]):.2f}"

    pooled_se: list[float] = []
    rows = [{"table": n, **{m: f"{reg[n][m][mid][0]:.2f}" for m in methods if m in reg.get(n, {})}} for n in tables]
    rows += [{"table": f"{g} {b}", **{m: pool(names, m, str(b)) for m in methods}}
             for g, names in groups if names for b in sorted(budgets)]
    top_se = max((reg[n][m][mid][1] for n in tables for m in methods if m in reg.get(n, {})), default=0.0)
    return (f"### Regret at {mid} (SE <= {top_se:.2f}), pools per budget (SE <= {max(pooled_se, default=0):.2f})\n\n"
            + markdown_table(rows))


def detail_rows(runs: list[dict], name: str, methods: list[str], budgets: list[int], full: int) -> list[dict]:
    rows = []
    for m in methods:
        for b in budgets:
            rs = [r for r in runs if r["table"] == name and r["method"] == m and r["budget"] == b]
            if not rs:
                continue
            small = np.array([r["size"] * 100 <= full for r in rs])
            to = np.array([r["to_near"] for r in rs])
            rows.append({"method": m, "budget": b, "evaluations": f"{np.mean([r['evals'] for r in rs]):.0f}",
                         "regret pp": f"{np.mean([r['regret'] for r in rs]):.2f} ± {_se([r['regret'] for r in rs]):.2f}",
                         "near-best scored": f"{np.mean([r['scored_near'] for r in rs]):.0%}",
                         "kept, >=100x": f"{np.mean([r['kept'] for r in rs] & small):.0%}" if small.any() else "-",
                         **({"within 0.1 pp kept, >=100x": f"{np.mean([r['kept01'] for r in rs] & small):.0%}"
                             if small.any() else "-"} if name.startswith("nb201") else {}),
                         "evals to near-best (median)": f"{np.median(to):.0f}" if np.isfinite(np.median(to)) else "never"})
    return rows


def track_records(runs: list[dict], budget: int, default: str = "surrogate") -> dict:
    """What the app shows beside the default policy's proposals: on the tuning tables at ``budget``,
    per kind of decision, how often the space after it still held a near-best (when the one before
    did) and the shrink; kinds the default never proposes come from its variants (``surrogate:prune=1``).
    Also the pick: mean regret with the surrogate's estimate vs the best own score, same runs."""
    kinds: dict[str, dict] = {}
    for exact in (True, False):
        found: dict[str, dict] = {}
        for r in runs:
            base = r["method"].partition(":")[0]
            if r["budget"] != budget or r["table"] not in TUNING or (r["method"] == default) != exact or base != default:
                continue
            for kind, before, after, n0, n1 in r["steps"]:
                if before and kind not in kinds:
                    rec = found.setdefault(kind, {"runs": 0, "kept": 0, "shrink": [], "tables": set()})
                    rec["runs"] += 1
                    rec["kept"] += bool(after)
                    rec["shrink"].append(n0 / max(1, n1))
                    rec["tables"].add(r["table"])
        kinds.update(found)
    out = {"records": {k: {"runs": v["runs"], "kept_near_best": round(v["kept"] / v["runs"], 3),
                           "shrink_median": round(float(np.median(v["shrink"])), 1), "tables": sorted(v["tables"])}
                       for k, v in kinds.items()}}
    mine = [r for r in runs if r["method"] == default and r["budget"] == budget and r["table"] in TUNING
            and "regret_score" in r]
    if mine:
        out["pick"] = {"runs": len(mine), "surrogate": round(float(np.mean([r["regret"] for r in mine])), 3),
                       "score": round(float(np.mean([r["regret_score"] for r in mine])), 3)}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=100, help="seeds per table, method and budget (default 100)")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--budgets", type=int, nargs="+", default=[100, 315, 1000], help="evaluations (default 100 315 1000)")
    p.add_argument("--tables", nargs="+", default=[*TUNING, *TEST, "nb201@0", "nb201@2"],
                   help="tables (default: the tuning and test tables, and nb201 at noise 0 and 2)")
    p.add_argument("--methods", nargs="+", default=list(METHODS),
                   help=f"methods (default {' '.join(METHODS)}); a setting after a colon changes one: "
                        "surrogate:kappa=1,blend=0.5,narrow_to=0.02")
    p.add_argument("--variants", action="store_true", help=f"also the ablations: {', '.join(VARIANTS)}")
    p.add_argument("--blend", type=float, default=BLEND, help=f"surrogate pick: weight of the own score (default {BLEND})")
    p.add_argument("--kappa", type=float, default=KAPPA, help=f"guided proposals: mean + kappa x sd (default {KAPPA})")
    p.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 seeds, budget 100, cora and nb201")
    p.add_argument("--no-write", action="store_true", help="print only; record nothing")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.budgets, args.tables = 2, [100], ["nb201", "cora"]
    methods = args.methods + (list(VARIANTS) if args.variants else [])
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    opts = {"blend": args.blend, "kappa": args.kappa}
    jobs = [(name, s, sorted(args.budgets), methods, opts) for name in args.tables for s in seeds]
    t0 = time.time()
    runs: list[dict] = []
    if args.workers > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(args.workers) as pool:
            for i, res in enumerate(pool.imap_unordered(run_table_seed, jobs, chunksize=1)):
                runs += res
                if (i + 1) % max(1, len(jobs) // 20) == 0:
                    log(f"{i + 1}/{len(jobs)} table-seeds done ({time.time() - t0:.0f} s)")
    else:
        for job in jobs:
            runs += run_table_seed(job)
    tables = [load_table(n) for n in args.tables]
    full = {t.name: t.space.size() for t in tables}
    metrics: dict = {"seconds": 0, "regret": regret_metrics(runs)}
    mid = sorted(args.budgets)[len(args.budgets) // 2]
    body = [page_tables(metrics["regret"], args.tables, methods, args.budgets)]
    detail = [f"### Pick regret at {b} evaluations\n\n{markdown_table(summary_rows(runs, args.tables, methods, b, full))}"
              for b in sorted(args.budgets)]
    detail.append(f"### Pooled, near-best at {mid}\n\n{markdown_table(pooled_rows(runs, args.tables, methods, args.budgets))}")
    detail += [f"### {name}\n\n{markdown_table(detail_rows(runs, name, methods, sorted(args.budgets), full[name]))}"
               for name in args.tables]
    print("\n".join(["# Steering suite: details (in the record's metrics, not on the page)", *detail]))
    lines: list[str] = []  # the verdict: printed, in the record's metrics and on the page's targets table
    metrics.update(verdict(runs, args.tables, lines))
    metrics["ceiling"] = {n: validation_ceiling(load_table(n)) for n in args.tables if not n.startswith("nb201")}
    body.append(ceiling_table(metrics["ceiling"], metrics["regret"], mid))
    track_budget = 315 if 315 in args.budgets else max(args.budgets)
    records = track_records(runs, track_budget)
    metrics["seconds"] = round(time.time() - t0)
    print("\n".join(lines + [f"({metrics['seconds']} s)"]))
    if not args.no_write and not args.quick and records["records"]:
        TRACK_RECORD.write_text(json.dumps({"source": "bench/steering_suite.py", "date": time.strftime("%Y-%m-%d"),
                                            "budget": track_budget, "seeds": len(seeds), **records}, indent=1) + "\n")
        log(f"wrote {TRACK_RECORD}")
    report("Steering suite: published tables, equal budgets", "\n\n".join(filter(None, body)), write=not args.no_write,
           group=f"seeds from {args.first_seed}", params=vars(args), metrics=metrics, benchmark="steering_suite")
    return 0


def ceiling_table(ceiling: dict, reg: dict, budget: int) -> str:
    """Per test table and pooled: the picks that know the whole table's validation
    (``bench/suite_ceiling.py``) beside evolution's and the default's at ``budget`` (every graph
    table's in the record's metrics)."""
    b = str(budget)
    test = [n for n in TEST if n in ceiling and "evolution" in reg.get(n, {}) and "surrogate" in reg[n]]
    if not test:
        return ""
    rows = [{"table": n, "evolution": f"{reg[n]['evolution'][b][0]:.2f}", "surrogate": f"{reg[n]['surrogate'][b][0]:.2f}",
             **{k: f"{v:.2f}" for k, v in ceiling[n].items()}} for n in test]
    rows.append({"table": "test pool", **{m: f"{np.mean([reg[n][m][b][0] for n in test]):.2f}"
                                          for m in ("evolution", "surrogate")},
                 **{k: f"{np.mean([ceiling[n][k] for n in test]):.2f}" for k in ceiling[test[0]]}})
    return (f"### Test tables: picks knowing every validation score (argmax; top10, smoothed10: mean of 10) vs "
            f"{budget} evaluations\n\n" + markdown_table(rows))


def verdict(runs: list[dict], tables: list[str], body: list[str]) -> dict:
    """The acceptance lines (at 315 evaluations), appended to ``body``; the numbers for the record."""
    def regrets(m, name):
        return [r["regret"] for r in runs if r["method"] == m and r["table"] == name and r["budget"] == 315]

    out: dict = {}
    test = [n for n in TEST if n in tables and regrets("surrogate", n) and regrets("evolution", n)]
    if test:
        ours = np.mean([np.mean(regrets("surrogate", n)) for n in test])
        evo = np.mean([np.mean(regrets("evolution", n)) for n in test])
        ratio = ours / evo if evo > 0 else float("inf") if ours > 0 else 1.0
        out.update(test_ratio=round(float(ratio), 3), test_surrogate=round(float(ours), 3),
                   test_evolution=round(float(evo), 3))
        body.append(f"At 315: test tables {ratio:.2f}x evolution (target 0.8x).")
    worse = []
    for n in tables:
        a, e = regrets("surrogate", n), regrets("evolution", n)
        if a and e and np.mean(a) - np.mean(e) > 2 * np.hypot(_se(a), _se(e)):
            worse.append(n)
    out["significantly_worse"] = worse
    body.append("Worse than evolution by > 2 SE: " + (", ".join(worse) if worse else "none") + ".")
    nb = [r for r in runs if r["method"] == "surrogate" and r["table"] == "nb201" and r["budget"] == 315]
    if nb:
        t = load_table("nb201")
        share = float(np.mean([r["kept01"] and r["size"] * 100 <= t.space.size() for r in nb]))
        out["nb201_kept_share"] = round(share, 3)
        body.append(f"NB201: a cell within 0.1 pp kept, >= 100x smaller, in {share:.0%} of seeds (target 90%).")
    return out


if __name__ == "__main__":
    raise SystemExit(main())
