"""Spot check of the supernet's ranking: does one-shot accuracy order candidates like training does?

N candidates of a round, spread over its one-shot ranking, are trained standalone (a short budget,
``retrain.spotcheck_epochs``) with at least two seeds each. Ground truth is the mean validation
accuracy over seeds (the same split one-shot accuracy is measured on; the test split stays unseen).
Reported: Kendall tau and Spearman rho between one-shot and standalone accuracy with p-values and N,
and the seed-to-seed tau as the CEILING: no ranking can agree with training better than training
agrees with itself. When the ceiling is low, the candidates are indistinguishable at this budget.

Files in ``rounds/NNN/``: ``spotcheck_runs.csv`` (one row per training, appended as each finishes:
a stopped job loses nothing and a resumed one skips finished pairs), ``spotcheck.csv`` (one row
per candidate: ``arch, one_shot_acc, standalone_acc, ...``) and ``spotcheck.json`` (the statistics
and the verdict).
"""

from __future__ import annotations

import logging
import time
from itertools import combinations

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, spearmanr

from nasnav.config import Config
from nasnav.errors import InvalidInput
from nasnav.stop import JobStopped
from nasnav.store import layout
from nasnav.store.io import append_csv_rows, read_csv, read_json, write_csv, write_json
from nasnav.store.records import read_candidates
from nasnav.store.run_dir import RunDir
from nasnav.workflow.model_card import write_model_card
from nasnav.workflow.runs import load_data, round_space
from nasnav.workflow.trainings import Training, run_trainings

log = logging.getLogger(__name__)

PAIR_COLUMNS = [
    "arch",
    "one_shot_acc",
    "standalone_acc",
    "standalone_std",
    "one_shot_rank",
    "seed_accs",
    "params",
    "flops",
    "epochs",
    "seeds",
    "seconds",
]
RUN_COLUMNS = ["arch", "seed", "epochs", "standalone_acc", "val_loss", "seconds"]

# Verdict thresholds (judgement, stated so the app can show them): a seed-to-seed tau below
# CEILING_MIN means training itself cannot order the candidates; a one-shot tau of at least
# RELIABLE_SHARE of the ceiling with p < ALPHA is as good as a ranking can be at this budget.
CEILING_MIN = 0.3
RELIABLE_SHARE = 0.6
ALPHA = 0.05
MIN_N = 4


def pick_candidates(df: pd.DataFrame, n: int, seed) -> list[str]:
    """``n`` architectures spread over the one-shot ranking: the ranked list is cut into ``n``
    consecutive bins, the top candidate stands for the first bin, a seeded random one for each other
    bin. (Only the top would compress the accuracy range and make tau meaningless.)"""
    df = df[pd.to_numeric(df["one_shot_acc"], errors="coerce").notna()].drop_duplicates("arch", keep="last")
    ranked = df.sort_values("one_shot_acc", ascending=False, kind="mergesort")["arch"].astype(str).tolist()
    if n >= len(ranked):
        return ranked
    rng = np.random.default_rng(seed)
    bins = np.array_split(np.arange(len(ranked)), n)
    picks = [int(bins[0][0])] + [int(rng.choice(b)) for b in bins[1:]]
    return [ranked[i] for i in picks]


def _tau(a, b) -> tuple[float | None, float | None]:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None, None  # undefined: a constant list has no order
    r = kendalltau(a, b)
    return _num(r.statistic), _num(r.pvalue)


def _rho(a, b) -> tuple[float | None, float | None]:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None, None
    r = spearmanr(a, b)
    return _num(r.statistic), _num(r.pvalue)


def _num(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def _fmt(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def summarize(pairs: pd.DataFrame, seed_accs: dict[str, list[float]], epochs: int, seeds: int) -> dict:
    """Rank statistics and a plain-words verdict for spot-check pairs.

    ``pairs``: one row per candidate with ``one_shot_acc`` and ``standalone_acc`` (mean over seeds);
    ``seed_accs``: per architecture, the standalone accuracy of each seed in seed order.
    """
    n = len(pairs)
    tau, tau_p = _tau(pairs["one_shot_acc"], pairs["standalone_acc"])
    rho, rho_p = _rho(pairs["one_shot_acc"], pairs["standalone_acc"])
    # Ceiling: agreement of standalone training with itself across seeds (mean over seed pairs).
    archs = list(pairs["arch"])
    k = min((len(seed_accs.get(a, [])) for a in archs), default=0)
    ceiling, ceiling_p, pair_taus = None, None, []
    if k >= 2 and n >= 2:
        cols = np.array([seed_accs[a][:k] for a in archs])  # (n, k)
        for i, j in combinations(range(k), 2):
            t, p = _tau(cols[:, i], cols[:, j])
            pair_taus.append(t if t is not None else 0.0)
            if (i, j) == (0, 1):
                ceiling_p = p
        ceiling = float(np.mean(pair_taus))
    seed_std = float(np.mean(pairs["standalone_std"])) if "standalone_std" in pairs and n else None
    spread = float(np.std(pairs["standalone_acc"], ddof=1)) if n > 1 else None
    out = {
        "n": n,
        "epochs": epochs,
        "seeds": seeds,
        "kendall_tau": tau,
        "kendall_p": tau_p,
        "spearman_rho": rho,
        "spearman_p": rho_p,
        "ceiling_tau": ceiling,
        "ceiling_p": ceiling_p,
        "seed_pair_taus": pair_taus,
        "seed_std": seed_std,
        "standalone_spread": spread,
        "thresholds": {"ceiling_min": CEILING_MIN, "reliable_share": RELIABLE_SHARE, "alpha": ALPHA, "min_n": MIN_N},
    }
    out["verdict"], out["verdict_text"] = _verdict(out)
    return out


def _verdict(s: dict) -> tuple[str, str]:
    n, tau, p, ceiling = s["n"], s["kendall_tau"], s["kendall_p"], s["ceiling_tau"]
    budget = f"{s['epochs']} epochs x {s['seeds']} seed(s)"
    head = f"one-shot vs standalone Kendall tau {_fmt(tau)} (p {_fmt(p, 3)}, N={n})"
    if n < MIN_N:
        return (
            "too_few",
            f"{head}: {n} candidates are too few to judge a ranking; spot-check at least {MIN_N}, better 10.",
        )
    if ceiling is None:
        return "no_ceiling", (
            f"{head}. With one seed per candidate there is no seed-to-seed ceiling, and single "
            "standalone runs are noisy enough to disagree with themselves: use 2 seeds or more."
        )
    head += f"; seed-to-seed tau {_fmt(ceiling)} (the ceiling)"
    if ceiling < CEILING_MIN:
        return "indistinguishable", (
            f"{head}. Standalone training does not agree with itself across seeds at this budget ({budget}): "
            "these candidates are indistinguishable, so the one-shot ranking among them can be neither confirmed "
            "nor refuted. For the analyst this is a finding too: the remaining choices matter less than training "
            "noise; decide by cost (params, FLOPs, latency), or spot-check with more epochs or seeds."
        )
    if tau is None:
        return (
            "unreliable",
            f"{head}. The one-shot accuracies of these candidates are all equal: they carry no ranking.",
        )
    if tau >= RELIABLE_SHARE * ceiling and p is not None and p < ALPHA:
        return "reliable", (
            f"{head}. The supernet ranks these candidates about as well as repeated training does: "
            "its ranking can be trusted for decisions at this budget."
        )
    if tau > 0 and p is not None and p < 0.2:
        return "partial", (
            f"{head}. The one-shot ranking agrees with training only partly: trust large gaps in "
            "one-shot accuracy, not the order among close candidates."
        )
    return "unreliable", (
        f"{head}. The one-shot ranking does not predict standalone accuracy here: do not prune "
        "or pick on one-shot accuracy alone; retrain the contenders instead."
    )


def read_spotcheck(run: RunDir, k: int | None = None) -> dict | None:
    """The spot-check summary of round k (current round by default), or None: the app's trust indicator."""
    k = run.current_round() if k is None else k
    data = read_json(run.round_dir(k) / layout.SPOTCHECK_SUMMARY, default=None)
    return data if isinstance(data, dict) else None


def spotcheck(
    run: RunDir,
    cfg: Config,
    n: int,
    k: int | None = None,
    seeds: int | None = None,
    epochs: int | None = None,
) -> dict:
    """Train ``n`` candidates of round k standalone (``seeds`` each) and compare with their one-shot
    accuracy; writes spotcheck.csv / spotcheck_runs.csv / spotcheck.json and returns the summary."""

    k = run.current_round() if k is None else k
    seeds = cfg.retrain.spotcheck_seeds if seeds is None else int(seeds)
    epochs = cfg.retrain.spotcheck_epochs if epochs is None else int(epochs)
    for name, v in (("--n", n), ("--seeds", seeds), ("--epochs", epochs)):
        if v < 1:
            raise InvalidInput(f"spotcheck {name}: {v} must be at least 1")
    cands = read_candidates(run, k)
    if not len(cands) or pd.to_numeric(cands["one_shot_acc"], errors="coerce").notna().sum() == 0:
        raise InvalidInput(
            f"{run.round_dir(k)}: round {k} has no scored candidates; run the search first "
            f"(`python -m nasnav evaluate {run.path} --n 50`)"
        )
    space = round_space(run, cfg, k)
    rdir = run.round_dir(k)
    prev = read_json(rdir / layout.SPOTCHECK_SUMMARY, default=None)
    if isinstance(prev, dict) and prev.get("state") != "done" and prev.get("plan_key") == [n, epochs, seeds]:
        planned = list(prev.get("planned") or [])  # resume the interrupted plan, even if the search went on
    else:
        planned = pick_candidates(cands, n, [cfg.seed, k, 23])
    if len(planned) < n:
        log.info(f"round {k} has only {len(planned)} scored candidates: spot-checking all of them")
    latest = cands.drop_duplicates("arch", keep="last")
    one_shot = latest.set_index(latest["arch"].astype(str))
    ranks = one_shot["one_shot_acc"].rank(ascending=False, method="min")
    seed_list = [cfg.seed + s for s in range(seeds)]

    runs = read_csv(rdir / layout.SPOTCHECK_RUNS, columns=RUN_COLUMNS)
    runs = runs[pd.to_numeric(runs["epochs"], errors="coerce") == epochs]
    done = {(str(r["arch"]), int(r["seed"])): float(r["standalone_acc"]) for _, r in runs.iterrows()}
    secs = {(str(r["arch"]), int(r["seed"])): float(r["seconds"]) for _, r in runs.iterrows()}
    splits = load_data(cfg)
    t0 = time.time()
    base = {"round": k, "planned": planned, "plan_key": [n, epochs, seeds], "started": t0}
    write_json(rdir / layout.SPOTCHECK_SUMMARY, {**base, "state": "running"})

    pair_rows: list[dict] = []

    def pair_row(a: str) -> dict:
        accs = [done[(a, s)] for s in seed_list]
        return {
            "arch": a,
            "one_shot_acc": float(one_shot.at[a, "one_shot_acc"]),
            "standalone_acc": float(np.mean(accs)),
            "standalone_std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
            "one_shot_rank": int(ranks.at[a]),
            "seed_accs": ";".join(f"{x:.6f}" for x in accs),
            "params": one_shot.at[a, "params"],
            "flops": one_shot.at[a, "flops"],
            "epochs": epochs,
            "seeds": seeds,
            "seconds": round(sum(secs.get((a, s), 0.0) for s in seed_list), 2),
        }

    # spotcheck.csv holds this plan's finished candidates; later ones are appended as they finish.
    for a in planned:
        if all((a, s) in done for s in seed_list):
            pair_rows.append(pair_row(a))
    write_csv(rdir / layout.SPOTCHECK_PAIRS, pd.DataFrame(pair_rows, columns=PAIR_COLUMNS))
    total = len(planned) * seeds
    todo = [Training(a, s, epochs) for a in planned for s in seed_list if (a, s) not in done]
    progress = {"done": total - len(todo), "trained": 0}

    def finished(t: Training, res: dict) -> None:
        """One training done (in the order trainings finish): its row now, its candidate's row once complete."""
        a, s = t.arch, t.seed
        done[(a, s)], secs[(a, s)] = res["val_acc"], res["seconds"]
        append_csv_rows(rdir / layout.SPOTCHECK_RUNS, [{"arch": a, "seed": s, "epochs": epochs,
                                                         "standalone_acc": res["val_acc"], "val_loss": res["val_loss"],
                                                         "seconds": round(secs[(a, s)], 3)}], RUN_COLUMNS)
        progress["done"] += 1
        progress["trained"] += 1
        n_done, rate = progress["done"], (time.time() - t0) / progress["trained"]
        msg = f"spot check: {n_done}/{total} trainings ({a}, seed {s}: val acc {res['val_acc']:.3f})"
        run.write_status(progress=n_done / total, message=msg, eta_seconds=rate * (total - n_done))
        log.info(msg)
        if all((a, x) in done for x in seed_list) and a not in {r["arch"] for r in pair_rows}:
            pair_rows.append(pair_row(a))
            append_csv_rows(rdir / layout.SPOTCHECK_PAIRS, [pair_rows[-1]], PAIR_COLUMNS)

    try:
        run_trainings(cfg, space, todo, splits, finished, single_process=True)
    except JobStopped:
        write_json(rdir / layout.SPOTCHECK_SUMMARY,
                   {**base, "state": "stopped", **_partial(pair_rows, done, seed_list, epochs, seeds)})
        raise
    trained = progress["trained"]
    pair_rows.sort(key=lambda r: planned.index(r["arch"]))  # workers finish in any order: the plan's order
    write_csv(rdir / layout.SPOTCHECK_PAIRS, pd.DataFrame(pair_rows, columns=PAIR_COLUMNS))
    pairs = pd.DataFrame(pair_rows, columns=PAIR_COLUMNS)
    summary = summarize(pairs, {a: [done[(a, s)] for s in seed_list] for a in planned}, epochs, seeds)
    summary.update(
        base,
        state="done",
        seconds=round(time.time() - t0, 2),
        trained_now=trained,
        pairs=pairs[["arch", "one_shot_acc", "standalone_acc", "standalone_std"]].to_dict("records"),
    )
    write_json(rdir / layout.SPOTCHECK_SUMMARY, summary)
    _refresh_cards(run, cfg)
    return summary


def _refresh_cards(run: RunDir, cfg: Config) -> None:
    """Model cards quote the latest spot check: rewrite the ones already written."""

    for key in run.finals():
        if (run.final_dir(key) / layout.CARD).exists():
            try:
                write_model_card(run, cfg, key)
            except (ValueError, OSError):
                pass  # a card that cannot be rewritten keeps its old text; the spot check itself succeeded


def _partial(pair_rows: list[dict], done: dict, seed_list: list[int], epochs: int, seeds: int) -> dict:
    """Statistics over the candidates finished so far (a stopped spot check still says something)."""
    if len(pair_rows) < 2:
        return {"n_finished": len(pair_rows)}
    pairs = pd.DataFrame(pair_rows, columns=PAIR_COLUMNS)
    s = summarize(pairs, {r["arch"]: [done[(r["arch"], x)] for x in seed_list] for r in pair_rows}, epochs, seeds)
    return {**s, "n_finished": len(pair_rows)}
