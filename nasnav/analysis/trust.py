"""How far to trust the one-shot score, for the two decisions an analyst makes with it.

A spot check trains a few architectures standalone (several seeds each) and compares them with
their one-shot scores. One question is not enough: a supernet can separate weak architectures
from strong ones across a space (so pruning by fitness works) while the candidates a search
concentrates on differ by about one seed's noise (so their one-shot order means nothing, and it
need not: they are equivalent). So two samples, two answers, each judged against its own noise:

1. **Prune by fitness?** (``prune_answer``) A stratified sample of the round's space
   (``stratified_sample``: every active component about equally often). Kendall tau between
   one-shot and standalone accuracy (mean over seeds), against the **ceiling**: the tau of one more
   training against the others' mean (no score agrees with training better than training agrees
   with itself).
2. **Pick the winner by one-shot score?** (``pick_answer``) The round's top candidates by
   one-shot score. Do their standalone accuracies differ beyond seed noise at all (one-way
   ANOVA over seeds)? If not, they are equivalent within the range of their means: pick by
   cost. If they do, does the one-shot top k hold a network within one seed-to-seed standard
   deviation of the best of them?

The verdicts are words with their numbers (``answer_text``), made here and only here: the Explore
and Retrain pages, the model card and the CLI all show these sentences, so they cannot disagree.
Pure functions of arrays; no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
from scipy import stats

from nasnav.space import Arch, SearchSpace

# Judgement, stated so the pages can show it. A one-shot tau of at least RELIABLE_SHARE of the
# ceiling with p < ALPHA ranks as well as training at this budget can; p < PARTIAL_P with tau > 0
# is a trend worth trusting for large gaps only. Below MIN_N architectures no ranking is judged.
RELIABLE_SHARE = 0.6
ALPHA = 0.05
PARTIAL_P = 0.2
MIN_N = 4

SPACE_N, TOP_M = 20, 8  # default sample sizes: N >= 20 gives a tau worth its p-value; 8 contenders cost little
PRUNE, PICK = "prune", "pick"
QUESTIONS = {PRUNE: "Prune by fitness?", PICK: "Pick the winner by one-shot score?"}


# ---- the samples ----------------------------------------------------------------------------------------
def stratified_sample(space: SearchSpace, n: int, rng: np.random.Generator) -> list[Arch]:
    """``n`` distinct architectures of ``space`` in which every active component of a single-select
    stage appears about equally often (each stage's column is a shuffled, balanced list; a subset
    stage draws uniformly). The whole space, in a seeded order, when it holds no more than ``n``."""
    if space.size() <= n:
        archs = list(space)
        return [archs[i] for i in rng.permutation(len(archs))]
    columns = []
    for st in space.stages:
        if st.select == "one" and st.pinned is None:
            reps = -(-n // len(st.active))
            col = [(c,) for c in st.active] * reps
            columns.append([col[i] for i in rng.permutation(len(col))[:n]])
        else:
            columns.append([st.sample(rng) for _ in range(n)])
    rows = [list(r) for r in zip(*columns)]
    for _ in range(50 * n):  # a repeated row swaps one stage's choice with another row: the balance stays
        keys = [str(Arch(tuple(r))) for r in rows]
        dup = next((i for i, key in enumerate(keys) if keys.index(key) != i), None)
        if dup is None:
            break
        j, st = int(rng.integers(n)), int(rng.integers(len(columns)))
        rows[dup][st], rows[j][st] = rows[j][st], rows[dup][st]
    out, seen = [], set()
    for row in rows:
        arch = Arch(tuple(row))
        if str(arch) not in seen:
            seen.add(str(arch))
            out.append(arch)
    while len(out) < n:  # still repeated (a space barely larger than n): fill with uniform draws
        arch = space.sample(rng)
        if str(arch) not in seen:
            seen.add(str(arch))
            out.append(arch)
    return out


def top_candidates(archs: Sequence[str], scores: Sequence[float], m: int) -> list[str]:
    """The ``m`` best distinct architectures by score (ties: the earlier one), best first."""
    best: dict[str, float] = {}
    for a, s in zip(archs, scores):
        s = float(s)
        if np.isfinite(s) and (a not in best or s > best[a]):
            best[str(a)] = s
    ranked = sorted(best, key=lambda a: -best[a])  # stable: ties keep their order
    return ranked[:m]


# ---- statistics ------------------------------------------------------------------------------------------
def _num(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def _tau(a, b) -> tuple[float | None, float | None]:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None, None  # a constant list has no order
    r = stats.kendalltau(a, b)
    return _num(r.statistic), _num(r.pvalue)


def _rho(a, b) -> float | None:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return _num(stats.spearmanr(a, b).statistic)


def noise_stats(seed_accs: np.ndarray) -> dict:
    """Seed noise of a (architectures, seeds) matrix of standalone accuracies.

    ``seed_sd``: pooled within-architecture standard deviation (one training's noise);
    ``ceiling``: mean Kendall tau of one seed's ranking against the mean of the other seeds (two seeds:
    the tau between them); ``differ_p``: one-way ANOVA p-value
    of "the architectures' expected accuracies are all equal"; ``spread``: standard deviation of
    the means across architectures; ``range``: best mean minus worst mean."""
    acc = np.asarray(seed_accs, float)
    if acc.ndim == 2 and len(acc):  # an architecture with a non-finite accuracy is left out (missing, not equal)
        acc = acc[np.isfinite(acc).all(1)]
    n, s = acc.shape if acc.ndim == 2 else (len(acc), 1)
    means = acc.mean(1) if acc.ndim == 2 else acc
    out = {"seed_sd": None, "ceiling": None, "seed_pair_taus": [], "differ_p": None,
           "spread": _num(np.std(means, ddof=1)) if n > 1 else None,
           "range": _num(np.ptp(means)) if n else None}
    if acc.ndim != 2 or s < 2 or n < 2:
        return out
    out["seed_sd"] = _num(np.sqrt(acc.var(1, ddof=1).mean()))
    pairs = [_tau(acc[:, i], acc[:, j])[0] for i, j in combinations(range(s), 2)]
    out["seed_pair_taus"] = [t for t in pairs if t is not None]  # a constant seed column has no order
    # the ceiling: how well one more training predicts the mean of the others (one-shot is judged against a
    # mean too); with 2 seeds, the tau between them
    loo = [_tau(acc[:, i], np.delete(acc, i, axis=1).mean(1))[0] for i in range(s)]
    loo = [t for t in loo if t is not None]
    out["ceiling"] = float(np.mean(loo)) if loo else None
    within = acc.var(1, ddof=1).mean()
    if within > 0:
        f = s * means.var(ddof=1) / within  # between-architecture over within-architecture mean square
        out["differ_p"] = _num(stats.f.sf(f, n - 1, n * (s - 1)))
    else:
        out["differ_p"] = 0.0 if np.ptp(means) > 0 else 1.0
    return out


def _common(one_shot, seed_accs) -> tuple[np.ndarray, np.ndarray, dict]:
    x = np.asarray(one_shot, float)
    acc = np.asarray(seed_accs, float)
    if acc.ndim == 1:
        acc = acc[:, None]
    assert len(x) == len(acc), (len(x), acc.shape)
    keep = np.isfinite(x) & np.isfinite(acc).all(1) if len(acc) else np.zeros(0, bool)
    x, acc = x[keep], acc[keep]  # a non-finite score or accuracy is missing: that architecture is left out
    means = acc.mean(1) if len(acc) else np.zeros(0)
    tau, p = _tau(x, means)
    base = {"n": len(x), "seeds": int(acc.shape[1]) if len(acc) else 0, "kendall_tau": tau, "kendall_p": p,
            "spearman_rho": _rho(x, means), **noise_stats(acc)}
    return x, means, base


# ---- the two answers -------------------------------------------------------------------------------------
def prune_answer(one_shot: Sequence[float], seed_accs, epochs: int | None = None) -> dict:
    """Question 1 on a sample of the round's space: does one-shot accuracy order architectures as
    standalone training does? ``seed_accs``: (architectures, seeds) standalone accuracies."""
    _, _, s = _common(one_shot, seed_accs)
    s.update(question=PRUNE, epochs=epochs)
    tau, p, ceiling = s["kendall_tau"], s["kendall_p"], s["ceiling"]
    code = _not_comparable(s)
    if code is None and tau is not None and tau > 0 and p is not None and p < ALPHA \
            and tau >= RELIABLE_SHARE * (ceiling or 0):
        code = "yes"
    elif code is None and tau is not None and tau > 0 and p is not None and p < PARTIAL_P:
        code = "partly"
    return _judged(s, code or "no")


def pick_answer(one_shot: Sequence[float], seed_accs, k: int | None = None, epochs: int | None = None) -> dict:
    """Question 2 on the round's top candidates by one-shot score: do they differ beyond seed noise,
    and if so, does the one-shot top ``k`` (default a third, at least 1) hold a network within one
    seed-to-seed standard deviation of the best of them?"""
    x, means, s = _common(one_shot, seed_accs)
    n = s["n"]
    k = max(1, n // 3) if k is None else max(1, min(int(k), n - 1 if n > 1 else 1))
    order = np.argsort(-x, kind="stable")
    top, rest = order[:k], order[k:]
    s.update(question=PICK, epochs=epochs, k=k,
             gap=_num(means[top].mean() - means[rest].mean()) if len(rest) else None,
             regret=_num(means.max() - means[top].max()) if n else None,
             best_index=int(np.argmax(means)) if n else None, one_shot_best_index=int(order[0]) if n else None)
    code = _not_comparable(s)
    if code is None and s["regret"] is not None and s["seed_sd"] is not None and s["regret"] <= s["seed_sd"]:
        code = "yes"
    return _judged(s, code or "no")


def _not_comparable(s: dict) -> str | None:
    """The verdict both questions share before any ranking is judged: too few trained, seed noise unknown,
    or training cannot tell the architectures apart (nothing to prune for, any of them will do); else None."""
    if s["n"] < MIN_N:
        return "too_few"
    if s["seeds"] < 2:
        return "no_noise"
    if s["differ_p"] is not None and s["differ_p"] >= ALPHA:
        return "equivalent"
    return None


def _judged(s: dict, code: str) -> dict:
    s["verdict"] = code
    s["text"] = answer_text(s)
    return s


# ---- words -----------------------------------------------------------------------------------------------
def _f(x, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _pp(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} pp"


def _p(x) -> str:
    return "n/a" if x is None else ("< 0.001" if x < 0.001 else f"{x:.3f}")


SHORT = {
    PRUNE: {"yes": "yes", "partly": "only on large gaps", "no": "no", "equivalent": "nothing to gain",
            "too_few": "too few trained", "no_noise": "needs 2 seeds"},
    PICK: {"yes": "yes", "no": "no: retrain the contenders", "equivalent": "they are equivalent: pick by cost",
           "too_few": "too few trained", "no_noise": "needs 2 seeds"},
}


def answer_text(a: dict) -> str:
    """The verdict of one answer in plain words with its numbers (the only place they are worded)."""
    q, code, n = a["question"], a["verdict"], a["n"]
    seeds = f"{a['seeds']} seed{'s' if a['seeds'] != 1 else ''}"
    budget = f"{a['epochs']} epochs x {seeds}" if a.get("epochs") else seeds
    noise = f"seed-to-seed sd {_pp(a.get('seed_sd'))}"
    ranking = f"Kendall tau {_f(a.get('kendall_tau'))} (p {_p(a.get('kendall_p'))}, N={n})"
    if code == "too_few":
        return f"{QUESTIONS[q]} Not judged: {n} trained architectures are too few; train at least {MIN_N}, better 10."
    if code == "no_noise":
        return (f"{QUESTIONS[q]} Not judged: with one seed per architecture the seed noise is unknown, and single "
                "trainings disagree with themselves; use 2 seeds or more.")
    if q == PRUNE:
        where = f"Across this round's space ({n} architectures sampled evenly over its components, {budget})"
        if code == "equivalent":
            return (f"Prune by fitness: nothing to gain. {where} standalone accuracies differ by at most "
                    f"{_pp(a.get('range'))}, which training noise explains ({noise}, ANOVA p {_p(a.get('differ_p'))}): "
                    "at this budget the choices cannot be told apart; pick by cost (params, FLOPs, latency), or "
                    "spot-check with more seeds or epochs.")
        head = f"{where} one-shot and standalone accuracy agree at {ranking}; training agrees with itself at " \
               f"tau {_f(a.get('ceiling'))} across seeds."
        if code == "yes":
            return (f"Prune by fitness: yes. {head} The supernet separates weak architectures from strong ones: "
                    "fitness and the scatterplot's colours can be trusted for pruning.")
        if code == "partly":
            return (f"Prune by fitness: only on large gaps. {head} Prune components whose fitness interval lies "
                    "clearly below the rest; do not act on small differences.")
        return (f"Prune by fitness: no. {head} One-shot accuracy does not predict standalone accuracy here: do not "
                "prune on fitness alone; train the supernet longer or decide from retrained networks.")
    top = f"the {n} best candidates by one-shot score ({budget})"
    if code == "equivalent":
        return (f"Pick the winner by one-shot score: not needed: {top} are equivalent within {_pp(a.get('range'))} "
                f"standalone, which training noise explains ({noise}, ANOVA p {_p(a.get('differ_p'))}): as far as "
                "training can tell, any of them is as good. Pick by cost (params, FLOPs, latency).")
    head = (f"Standalone, {top} differ by up to {_pp(a.get('range'))} ({noise}, ANOVA p {_p(a.get('differ_p'))}); "
            f"one-shot order among them: {ranking}.")
    if code == "yes":
        return (f"Pick the winner by one-shot score: yes. {head} The one-shot top {a['k']} hold a network within "
                f"{_pp(a.get('regret'))} of the best of them: retrain those and choose by validation accuracy.")
    return (f"Pick the winner by one-shot score: no. {head} The one-shot top {a['k']} miss the best of them by "
            f"{_pp(a.get('regret'))}: retrain all {n} and choose by validation accuracy.")


def short_line(answers: dict) -> str:
    """Both answers in one line (captions): 'Prune by fitness: yes (tau 0.72) · Pick ...: equivalent ...'."""
    parts = []
    for q in (PRUNE, PICK):
        a = answers.get(q)
        if not a:
            parts.append(f"{QUESTIONS[q]} not checked")
            continue
        extra = ""
        if a["verdict"] in ("yes", "partly", "no") and q == PRUNE:
            extra = f" (tau {_f(a.get('kendall_tau'))}, ceiling {_f(a.get('ceiling'))}, N={a['n']})"
        elif a["verdict"] == "equivalent":
            extra = f" (within {_pp(a.get('range'))}, seed sd {_pp(a.get('seed_sd'))})"
        elif q == PICK and a["verdict"] in ("yes", "no"):
            extra = f" (top {a['k']} of {a['n']} miss the best by {_pp(a.get('regret'))})"
        parts.append(f"{QUESTIONS[q][:-1]}: {SHORT[q][a['verdict']]}{extra}")
    return " · ".join(parts)


def answers(summary: dict | None) -> dict:
    """The answers ({'prune': ..., 'pick': ...}) of a spot check's summary (spotcheck.json); {} when it has
    none (no spot check, or one of the older one-question kind, which judged neither question)."""
    got = (summary or {}).get("answers") if isinstance(summary, dict) else None
    return {q: a for q, a in got.items() if q in QUESTIONS and isinstance(a, dict) and "verdict" in a} \
        if isinstance(got, dict) else {}


def trust_line(summary: dict | None, running: bool = False) -> str:
    """What the one-shot score can be trusted for, in one line starting "Spot check": its short answers, or
    that nothing was measured (never more than a spot check said). ``running``: a spot-check job holds the
    run (from the click on, before its process has written a summary)."""
    state = summary.get("state") if isinstance(summary, dict) else None
    if (running or state == "running") and not answers(summary):
        return "Spot check running: how far the one-shot score can be trusted is not known yet."
    if state in ("failed", "replaced", "interrupted") and not answers(summary):
        return (f"Spot check {state} ({summary.get('message') or 'no answers'}); its finished trainings are kept and "
                "the next spot check reuses them. Until then, treat one-shot accuracy as an estimate.")
    if not answers(summary):
        return ("Spot check: Not measured: no spot check of the two questions (prune by fitness? pick the winner by one-shot "
                "score?) was run; treat one-shot accuracy as an estimate.")
    return f"Spot check: {short_line(answers(summary))}"


def advised_retrain(summary: dict | None) -> tuple[list[str], str] | None:
    """What to retrain, as the spot check's second answer advises, from its top sample (``summary["pairs"]``):
    equivalent -> the smallest of them (pick by cost); yes -> the one-shot top k; no -> all of them (then
    choose by validation accuracy). None without an answer to act on."""
    a = answers(summary).get(PICK)
    rows = [r for r in (summary or {}).get("pairs", []) if r.get("sample") == "top"]
    if not a or not rows or a["verdict"] not in ("equivalent", "yes", "no"):
        return None
    if a["verdict"] == "equivalent":
        sized = [r for r in rows if isinstance(r.get("params"), (int, float))]
        smallest = min(sized or rows, key=lambda r: r.get("params") or 0)
        size = f"{int(smallest['params']):,} params" if sized else "size unknown"
        return [smallest["arch"]], (f"the {len(rows)} best candidates are equivalent within {_pp(a.get('range'))}: "
                                    f"the smallest of them ({size})")
    ranked = sorted(rows, key=lambda r: -float(r["one_shot_acc"]))
    if a["verdict"] == "yes":
        return [r["arch"] for r in ranked[: a["k"]]], (f"the one-shot top {a['k']} hold a network within one seed "
                                                        f"sd of the best of the {len(rows)}: retrain them, choose by "
                                                        "validation accuracy")
    return [r["arch"] for r in ranked], (f"the one-shot score misses the best of the {len(rows)}: retrain all of "
                                         "them, choose by validation accuracy")
