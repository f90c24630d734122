"""Rounds and decisions: pruning, pinning and restoring components; undo / redo; the auto-pilot.

Everything lives in the run directory, so a restart loses nothing:

- ``rounds/k/decisions.json``: a list of records, appended, never rewritten away. A record holds
  the time, the source (analyst / autopilot / selection), the actions, the evidence shown when the
  decision was taken (fitness rows), the space size before and after, and a status: ``applied``
  (it made round k+1), ``abandoned`` (its round k+1 was later replaced: see below) or ``stop``
  (the auto-pilot stopped here, with the reason).
- ``rounds/k+1/space.yaml``: the space a decision made. Training and search of that round are the
  caller's job (``python -m nasnav round RUN``, or ``autopilot_round``).
- ``current_round.json``: the pointer that undo / redo move. Undo never deletes anything.
- A decision taken on an earlier round (after undo) replaces the later rounds: their folders are
  moved, whole, to ``rounds/abandoned/<time>/`` (never deleted), the replaced record is marked
  ``abandoned`` with that path, and ``history.json`` logs every decision, undo, redo and abandon.

No torch at import: the app imports this module.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from nasnav.config import SteeringConfig
from nasnav.space import PARALLEL_SEP, SearchSpace
from nasnav.store import layout
from nasnav.store.io import read_json, read_yaml, write_json, write_yaml
from nasnav.store.run_dir import RunDir

OPS = ("prune", "pin", "restore")
SELECTION_MODES = ("keep", "drop_outside")
SET_OPS = ("union", "intersection", "difference", "complement")


# ---- the run's rounds ----------------------------------------------------------------------------
def load_space(run: RunDir, k: int, kind: str | None = None) -> SearchSpace:
    path = run.round_dir(k) / layout.SPACE
    if not path.exists():
        raise ValueError(f"{path}: round {k} has no space.yaml")
    return SearchSpace.from_dict(read_yaml(path), kind).validate(where=str(path))


def read_decisions(run: RunDir, k: int) -> list[dict]:
    data = read_json(run.round_dir(k) / layout.DECISIONS, default=[])
    return data if isinstance(data, list) else []


def _log(run: RunDir, event: dict) -> None:
    path = run.path / layout.HISTORY
    events = read_json(path, default=[]) or []
    events.append({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "timestamp": time.time(), **event})
    write_json(path, events)


def _records(df: pd.DataFrame | None) -> list[dict]:
    """A frame as JSON-safe dicts (NaN -> None, numpy scalars -> Python)."""
    if df is None or not len(df):
        return []
    out = []
    for row in df.to_dict("records"):
        clean = {}
        for key, v in row.items():
            if hasattr(v, "item"):
                v = v.item()
            if isinstance(v, float) and not math.isfinite(v):
                v = None
            clean[str(key)] = v
        out.append(clean)
    return out


def _check_no_job(run: RunDir) -> None:
    from nasnav.jobs.control import JobRunning, running_job

    live = running_job(run)
    if live and int(live.get("pid") or 0) != os.getpid():
        raise JobRunning(f"run {run.path} has a running {live.get('job') or 'job'} job (pid {live['pid']}); "
                         "stop it before changing rounds")


# ---- actions ----------------------------------------------------------------------------------------
def _apply_one(space: SearchSpace, action: dict, n: int) -> tuple[SearchSpace, dict]:
    """Validate one action against ``space``; the new space and the action in canonical form."""
    where = f"action {n}"
    if not isinstance(action, dict):
        raise ValueError(f"{where}: expected a mapping with op, stage and component, got {action!r}")
    op = action.get("op")
    if op not in OPS:
        raise ValueError(f"{where}: op '{op}' is unknown; ops: {', '.join(OPS)}")
    if action.get("stage") is None:
        raise ValueError(f"{where}: missing stage; stages: {', '.join(s.name for s in space.stages)}")
    i = space.stage_index(action["stage"])
    stage = space.stages[i]
    out = {"op": op, "stage": stage.name}
    if op == "pin":
        choice = action.get("choice", action.get("component"))
        if not choice:
            raise ValueError(f"{where}: pin needs a choice, e.g. {stage.name}:{stage.active[0]}")
        names = choice.split(PARALLEL_SEP) if isinstance(choice, str) else list(choice)
        for c in names:
            space._check_component(i, c)
        space = space.pin(i, names)
        out["choice"] = PARALLEL_SEP.join(space.stages[i].pinned)
    else:
        c = action.get("component")
        if not c:
            raise ValueError(f"{where}: {op} needs a component; candidates of '{stage.name}': {', '.join(stage.candidates)}")
        space._check_component(i, c)
        if op == "prune":
            if c not in stage.active:
                raise ValueError(f"cannot prune '{c}' in stage '{stage.name}': it is not active; "
                                 f"active: {', '.join(stage.active)}")
            space = space.prune(i, c)
        else:
            if c in stage.active and stage.pinned is None:
                raise ValueError(f"cannot restore '{c}' in stage '{stage.name}': it is not pruned; "
                                 f"pruned: {', '.join(stage.pruned) or 'none'}")
            space = space.restore(i, c)
        out["component"] = c
    if action.get("reason"):
        out["reason"] = str(action["reason"])
    return space, out


def apply_actions(space: SearchSpace, actions: list[dict]) -> tuple[SearchSpace, list[dict]]:
    """All actions validated and applied in order (nothing is written); ValueError on the first bad one."""
    if not actions:
        raise ValueError("no actions given: prune, pin or restore at least one component")
    canon = []
    for n, a in enumerate(actions, 1):
        space, c = _apply_one(space, a, n)
        canon.append(c)
    return space, canon


def describe_actions(actions: list[dict]) -> str:
    return "; ".join(f"{a['op']} {a['stage']}:{a.get('component') or a.get('choice')}" for a in actions)


def apply_decision(run: RunDir, cfg, actions: list[dict], evidence: pd.DataFrame | None = None,
                   source: str = "analyst") -> int:
    """Validate ``actions`` on the current round k, record them in rounds/k/decisions.json, write
    rounds/k+1/space.yaml and make k+1 current; returns k+1. Later rounds left by an undo are moved
    to rounds/abandoned/<time>/. Does not train: run ``python -m nasnav round RUN`` next."""
    _check_no_job(run)
    k = run.current_round()
    space = load_space(run, k, cfg.kind)
    new_space, canon = apply_actions(space, actions)
    if evidence is None:
        evidence = _evidence(run, cfg, k, space)
    moved = _abandon_after(run, k)
    nxt = k + 1
    write_yaml(run.ensure_round_dir(nxt) / layout.SPACE, new_space.to_dict())
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "timestamp": time.time(), "source": source,
              "round": k, "next_round": nxt, "actions": canon, "space_size": space.size(),
              "next_space_size": new_space.size(), "status": "applied", "evidence": _records(evidence)}
    write_json(run.round_dir(k) / layout.DECISIONS, read_decisions(run, k) + [record])
    run.set_current_round(nxt)
    _log(run, {"event": "decision", "round": k, "next_round": nxt, "source": source,
               "actions": describe_actions(canon), "abandoned": moved})
    return nxt


def _evidence(run: RunDir, cfg, k: int, space: SearchSpace) -> pd.DataFrame | None:
    from nasnav.analysis.fitness import steering_candidates, steering_fitness

    df = steering_candidates(run, cfg, k)
    if not len(df):
        return None
    return steering_fitness(df, space, cfg.steering, cfg.seed)


def _abandon_after(run: RunDir, k: int) -> str | None:
    """Move rounds after k to rounds/abandoned/<time>/ and mark round k's applied record abandoned."""
    later = [j for j in run.rounds() if j > k]
    if not later:
        return None
    base = run.path / "rounds" / "abandoned" / time.strftime("%Y%m%d-%H%M%S")
    dest, n = base, 1
    while dest.exists():
        dest, n = base.with_name(f"{base.name}-{n}"), n + 1
    dest.mkdir(parents=True)
    for j in later:
        os.rename(run.round_dir(j), dest / run.round_dir(j).name)
    rel = str(dest.relative_to(run.path))
    recs = read_decisions(run, k)
    for r in recs:
        if r.get("status") == "applied":
            r["status"], r["abandoned_to"] = "abandoned", rel
    write_json(run.round_dir(k) / layout.DECISIONS, recs)
    _log(run, {"event": "abandon", "round": k, "moved": [int(j) for j in later], "to": rel})
    return rel


def undo(run: RunDir) -> int:
    """Make the previous round current (its later rounds stay on disk for redo)."""
    _check_no_job(run)
    k = run.current_round()
    if k <= 0:
        raise ValueError("nothing to undo: the run is at round 0, the first round")
    run.set_current_round(k - 1)
    _log(run, {"event": "undo", "from": k, "to": k - 1})
    return k - 1


def redo(run: RunDir) -> int:
    """Make the next round current again, if an undo left it."""
    _check_no_job(run)
    k = run.current_round()
    if not (run.round_dir(k + 1) / layout.SPACE).exists():
        raise ValueError(f"nothing to redo: round {k} is the latest round")
    run.set_current_round(k + 1)
    _log(run, {"event": "redo", "from": k, "to": k + 1})
    return k + 1


def history(run: RunDir) -> pd.DataFrame:
    """One row per round: round, space_size, candidates, best_one_shot, decisions, current, source, supernet."""
    from nasnav.search.loop import read_candidates

    cur = run.current_round()
    rows = []
    for k in run.rounds():
        path = run.round_dir(k) / layout.SPACE
        if not path.exists():
            continue
        try:
            size = SearchSpace.from_dict(read_yaml(path)).size()
        except ValueError:
            size = None
        df = read_candidates(run, k)
        acc = pd.to_numeric(df["one_shot_acc"], errors="coerce") if len(df) else pd.Series(dtype=float)
        recs = read_decisions(run, k)
        applied = [r for r in recs if r.get("status") == "applied"]
        rec = applied[-1] if applied else ([r for r in recs if r.get("status") == "stop"] or [None])[-1]
        if rec is None:
            text, source = "", ""
        elif rec.get("status") == "stop":
            text, source = f"stop: {rec.get('stop', '')}", rec.get("source", "")
        else:
            text, source = describe_actions(rec.get("actions", [])), rec.get("source", "")
        rows.append({"round": k, "space_size": size, "candidates": len(df),
                     "best_one_shot": float(acc.max()) if acc.notna().any() else math.nan,
                     "decisions": text, "current": k == cur, "source": source,
                     "supernet": (run.round_dir(k) / layout.SUPERNET).exists()})
    return pd.DataFrame(rows, columns=["round", "space_size", "candidates", "best_one_shot", "decisions", "current",
                                       "source", "supernet"])


# ---- the auto-pilot ------------------------------------------------------------------------------
def check_steering(sc) -> None:
    """ValueError naming the key for steering values config.py does not check itself."""
    from nasnav.analysis.fitness import FITNESS_METHODS

    if sc.fitness not in FITNESS_METHODS:
        raise ValueError(f"steering.fitness: '{sc.fitness}' is not one of {', '.join(FITNESS_METHODS)}")
    if not 0 < sc.quantile <= 1:
        raise ValueError(f"steering.quantile: {sc.quantile} must lie in (0, 1]")
    from nasnav.analysis.fitness import EVIDENCE

    if sc.evidence not in EVIDENCE:
        raise ValueError(f"steering.evidence: '{sc.evidence}' is not one of {', '.join(EVIDENCE)}")
    for key in ("margin", "tail_margin", "protect_top", "min_frequency", "narrow_to", "interaction_sd"):
        if getattr(sc, key) < 0:
            raise ValueError(f"steering.{key}: {getattr(sc, key)} must not be negative")
    if sc.narrow_elite < 1:
        raise ValueError(f"steering.narrow_elite: {sc.narrow_elite} must be at least 1")
    if sc.narrow_by not in NARROW_BY:
        raise ValueError(f"steering.narrow_by: '{sc.narrow_by}' is not one of {', '.join(NARROW_BY)}")


def propose_actions(fit: pd.DataFrame, space: SearchSpace, sc) -> tuple[list[dict], str]:
    """The auto-pilot's policy on a fitness table; returns (actions, why it proposes nothing).

    In each free stage, a component is pruned only if all of these hold (conservative on purpose:
    fitness is an average over the other stages and misses their interactions):
    its fitness interval lies wholly below the interval of the stage's best by ``margin``; its
    upper tail (``top_with``) trails the stage's best upper tail by ``tail_margin`` (a component that
    is bad on average but excellent in some cells survives); it is seen in at least
    ``min_frequency`` candidates; no candidate among the round's ``protect_top`` best uses it.
    Worst first, at most ``max_prune_per_round`` per stage, never emptying a stage, and never taking
    the space below ``min_space_size``. The same function decides for the app's proposals, the
    headless auto-pilot and ``bench/nb201_table.py``, where it is judged on a table of real accuracies.
    """
    check_steering(sc)
    size = space.size()
    if size <= sc.min_space_size:
        return [], f"the space has {size} architecture(s), at most steering.min_space_size={sc.min_space_size}"
    free = [s for s in space.stages if s.pinned is None and len(s.active) > 1]
    if not free:
        return [], "nothing left to prune: every stage is pinned or down to one component"
    largest = max(space.prune(s.name, s.active[0]).size() for s in free)  # the most one prune leaves
    if largest < sc.min_space_size:
        return [], (f"the space has {size} architecture(s): any prune would leave fewer than "
                    f"steering.min_space_size={sc.min_space_size}")
    proposals = []
    for s in space.stages:
        if s.pinned is not None or len(s.active) < 2:
            continue
        rows = fit[(fit["stage"] == s.name) & fit["component"].isin(s.active)]
        est = rows[rows["fitness"].notna() & rows["ci_low"].notna()]
        if len(est) < 2:
            continue
        best = est.loc[est["fitness"].idxmax()]
        tail = rows["top_with"].max()
        worse = []
        for _, r in est.iterrows():
            if r["component"] == best["component"] or r["frequency"] < sc.min_frequency or r["in_top"] > 0:
                continue
            gap = best["ci_low"] - r["ci_high"]
            if gap > sc.margin and r["top_with"] < tail - sc.tail_margin:
                worse.append((gap, r))
        worse.sort(key=lambda g: -g[0])
        for gap, r in worse[: sc.max_prune_per_round][: len(s.active) - 1]:
            q = f"{sc.quantile:.0%}" if sc.quantile < 1 else "best"
            reason = (f"{s.name}:{r['component']} fitness {r['fitness']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] "
                      f"lies below {best['component']} [{best['ci_low']:+.4f}, {best['ci_high']:+.4f}]; its {q} "
                      f"accuracy {r['top_with']:.4f} trails the stage's {tail:.4f}; seen in {int(r['frequency'])} "
                      f"candidates, none among the top {sc.protect_top}")
            proposals.append((gap, {"op": "prune", "stage": s.name, "component": r["component"], "reason": reason,
                                    "evidence": _records(pd.DataFrame([r]))[0]}))
    proposals.sort(key=lambda p: -p[0])  # strongest evidence first
    actions, cur = [], space
    for _, a in proposals:
        nxt = cur.prune(a["stage"], a["component"])
        if nxt.size() < sc.min_space_size:
            continue
        actions.append(a)
        cur = nxt
    if actions:
        return actions, ""
    if proposals:
        return [], (f"{len(proposals)} clearly worse component(s), but pruning any would leave fewer than "
                    f"steering.min_space_size={sc.min_space_size} architectures")
    return [], (f"nothing clearly worse: no component's {sc.confidence:.0%} interval lies below its stage's best by "
                f"more than {sc.margin} with an upper tail trailing by {sc.tail_margin}, {sc.min_frequency}+ candidates "
                f"and none of the top {sc.protect_top}")


NARROW_BY = ("model", "score")
RIDGE = 1.0  # ridge penalty of the additive model that ranks candidates for narrowing (accuracies in 0..1)
INTERACTION_SD = SteeringConfig.interaction_sd  # the config's default, for direct callers


def denoised(m: np.ndarray, y: np.ndarray, ridge: float = RIDGE, interaction_sd: float = INTERACTION_SD) -> np.ndarray:
    """The additive model's fit of the scores ``y`` of candidates with component masks ``m``: each
    candidate's accuracy as the sum of its components' effects (ridge-regularised least squares),
    so that one candidate's estimation error is shared out over every candidate using the same
    components instead of deciding its rank alone. A candidate whose score lies more than
    ``interaction_sd`` robust standard deviations (1.4826 x the median absolute deviation of the
    residuals) from the fit keeps its own score: noise that large is rare, so it is taken for an
    interaction the additive model cannot see (0: every candidate gets the fit)."""
    x = m.astype(float)
    mu = float(y.mean())
    beta = np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ (y - mu))
    fit = x @ beta + mu
    if interaction_sd <= 0:
        return fit
    resid = y - fit
    sd = 1.4826 * float(np.median(np.abs(resid - np.median(resid))))
    return np.where(np.abs(resid) > interaction_sd * sd, y, fit) if sd > 0 else fit


def narrow_actions(candidates: pd.DataFrame, space: SearchSpace, limit: int, elite: int = 20,
                   keep_top: int = 0, by: str = "model",
                   interaction_sd: float = INTERACTION_SD) -> tuple[list[dict], str]:
    """Keep, in each free stage, only components the best candidates use, so that at most ``limit``
    architectures remain; returns (prune actions, why nothing). The ``elite`` best scored candidates
    of the space (with ``by="model"`` by the additive model's fit of their scores, which averages
    out estimation noise, except for scores ``interaction_sd`` robust SDs off the fit, which stand;
    see ``denoised``; with ``by="score"`` by their raw one-shot accuracy) vote for the components
    they use with weight 1/rank; each stage starts with its most voted component
    and the space then widens, one component at a time, where that adds the largest share of the
    vote, while it stays within ``limit``. Unlike pruning by fitness this keeps what the best cells
    use even when it is poor on average (interactions), and it makes the space small without having
    scored its best architecture."""
    if space.size() <= limit:
        return [], f"the space has {space.size():,} architecture(s), within the narrowing limit of {limit}"
    from nasnav.analysis.fitness import design

    if by not in NARROW_BY:
        raise ValueError(f"steering.narrow_by: '{by}' is not one of {', '.join(NARROW_BY)}")
    m, y, names = design(candidates, space)
    if len(y) < 2:
        return [], "too few scored candidates in the space to narrow it"
    rank_by = denoised(m, y, interaction_sd=interaction_sd) if by == "model" else y
    order = np.argsort(-rank_by, kind="stable")[: max(2, int(elite))]
    archs = {j: space.parse(names[j]) for j in order}
    free = [i for i, st in enumerate(space.stages) if st.pinned is None and len(st.active) > 1]
    share: dict[int, dict[str, float]] = {}
    for i in free:
        votes = {c: 0.0 for c in space.stages[i].active}
        for rank, j in enumerate(order):
            for c in archs[j].choices[i]:
                votes[c] += 1.0 / (rank + 1)
        total = sum(votes.values()) or 1.0
        share[i] = {c: v / total for c, v in votes.items()}
    kept = {i: [max(share[i], key=share[i].get)] for i in free}
    for j in order[: max(0, int(keep_top))]:  # the very best candidates stay in, as far as the limit allows
        trial = {i: kept[i] + [c for c in archs[j].choices[i] if c not in kept[i]] for i in free}
        if _narrowed(space, trial).size() <= limit:
            kept = trial

    while True:
        best = None
        for i in free:
            mass = sum(share[i][c] for c in kept[i])
            for c, v in share[i].items():
                if c in kept[i] or v <= 0:
                    continue
                gain = (mass + v) / mass
                if best is None or gain > best[0]:
                    trial = {**kept, i: kept[i] + [c]}
                    if _narrowed(space, trial).size() <= limit:
                        best = (gain, i, c)
        if best is None:
            break
        kept[best[1]].append(best[2])
    actions = []
    for i in free:
        st = space.stages[i]
        used = ", ".join(f"{c} {share[i][c]:.0%}" for c in kept[i])
        for c in st.active:
            if c not in kept[i]:
                actions.append({"op": "prune", "stage": st.name, "component": c,
                                "reason": (f"narrowing to at most {limit} architectures: the {len(order)} best "
                                           f"candidates{' (by the additive model of their scores)' if by == 'model' else ''} "
                                           f"use {st.name}:{c} for {share[i][c]:.0%} of their vote; "
                                           f"kept: {used}"),
                                "evidence": {"stage": st.name, "component": c, "elite_share": round(share[i][c], 4)}})
    return actions, ""


def _narrowed(space: SearchSpace, kept: dict[int, list[str]]) -> SearchSpace:
    """``space`` with only the ``kept`` components active in the given stages."""
    for i, comps in kept.items():
        for c in space.stages[i].active:
            if c not in comps:
                space = space.prune(i, c)
    return space


def narrow_limit(sc, space: SearchSpace) -> int:
    """The most architectures narrowing keeps: ``steering.narrow_to`` itself when it is 1 or more, that
    share of ``space`` (at least ``min_space_size``) when below 1, 0 (no narrowing) when 0."""
    if sc.narrow_to >= 1:
        return int(sc.narrow_to)
    if sc.narrow_to <= 0:
        return 0
    return max(int(sc.min_space_size), int(space.size() * sc.narrow_to))


def decide(fit: pd.DataFrame, candidates: pd.DataFrame, space: SearchSpace, sc, passes: int) -> tuple[list[dict], str]:
    """The auto-pilot's proposal after ``passes`` search passes (the caller enforces the pass limit).
    While the space is larger than ``narrow_limit``, the pass before the last narrows it to the best
    candidates' components (``narrow_actions``), and so does any pass where nothing else is proposed
    and the auto-pilot would stop (``steering.extend`` off). Otherwise, with ``steering.prune`` on,
    it prunes by fitness (``propose_actions``)."""
    check_steering(sc)
    limit = narrow_limit(sc, space)
    narrow = bool(limit) and space.size() > limit

    def narrowed() -> list[dict]:
        return narrow_actions(candidates, space, limit, sc.narrow_elite, sc.protect_top, sc.narrow_by,
                              sc.interaction_sd)[0]

    if narrow and passes == sc.rounds - 1:
        actions = narrowed()
        if actions:
            return actions, ""
    if sc.prune:
        actions, why = propose_actions(fit, space, sc)
    else:
        actions, why = [], "nothing clearly worse: pruning by fitness is off (steering.prune: false), " + (
            "and so is narrowing (steering.narrow_to: 0)" if not limit else
            f"and the space is within the narrowing limit of {limit:,} architectures" if not narrow else
            "and narrowing comes on the pass before the last (steering.rounds)")
    if not actions and narrow and not sc.extend:  # it would stop here: narrow instead
        instead = narrowed()
        if instead:
            return instead, ""
    return actions, why


def proposal(run: RunDir, cfg, k: int | None = None, now: bool = False) -> tuple[list[dict], str]:
    """The auto-pilot's proposal for round k (current by default): (actions with "reason" and
    "evidence", why it proposes nothing). ``now``: as if this were its deciding pass (the pass
    before the last), whatever passes it has spent: what the app and ``analyze`` suggest, since the
    analyst, not the pass count, decides when to stop searching a round."""
    from nasnav.analysis.fitness import steering_candidates, steering_fitness

    k = run.current_round() if k is None else k
    space = load_space(run, k, cfg.kind)
    cands = steering_candidates(run, cfg, k)
    fit = steering_fitness(cands, space, cfg.steering, cfg.seed)
    passes = search_passes(run, k)
    return decide(fit, cands, space, cfg.steering, max(passes, cfg.steering.rounds - 1) if now else passes)


def propose(run: RunDir, cfg, k: int | None = None, now: bool = False) -> list[dict]:
    """Auto-pilot suggestions for round k (current by default): actions with "reason" and "evidence"."""
    return proposal(run, cfg, k, now)[0]


def record_stop(run: RunDir, k: int, reason: str, evidence: pd.DataFrame | None = None, source: str = "autopilot") -> None:
    """Append a ``stop`` record to rounds/k/decisions.json (the auto-pilot's last word on a run)."""
    rec = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "timestamp": time.time(), "source": source, "round": k,
           "actions": [], "status": "stop", "stop": reason, "evidence": _records(evidence)}
    write_json(run.round_dir(k) / layout.DECISIONS, read_decisions(run, k) + [rec])
    _log(run, {"event": "stop", "round": k, "reason": reason})


def search_passes(run: RunDir, k: int) -> int:
    """Search passes the auto-pilot has spent up to round k: one per round plus one per extension."""
    return k + 1 + sum(r.get("status") == "extend" for j in range(k + 1) for r in read_decisions(run, j))


def autopilot_round(run: RunDir, cfg, say: Callable[[str], None] = print, evaluator=None) -> bool:
    """Analyse the current round, take the auto-pilot's decision, then fine-tune and search the new
    round in-process (with ``evaluator`` instead of the supernet, if given). When nothing is clearly
    worse and ``steering.extend`` is on, score ``search.budget`` more candidates in the same round
    instead (an ``extend`` record; it counts against ``steering.rounds`` like a round). False (with a
    stop record) when the pass limit is reached, the space is small enough or nothing is clearly worse."""
    from nasnav.analysis.fitness import analyze_round, steering_candidates, steering_fitness
    from nasnav.workflow.pipeline import extend_round, run_round

    sc = cfg.steering
    k = run.current_round()
    space = load_space(run, k, cfg.kind)
    fit_file, cand_file = run.round_dir(k) / layout.FITNESS, run.round_dir(k) / layout.CANDIDATES
    if not fit_file.exists() or (cand_file.exists() and cand_file.stat().st_mtime > fit_file.stat().st_mtime):
        analyze_round(run, cfg, k)  # scored since its last analysis (an interrupted run): files for the app
    cands = steering_candidates(run, cfg, k)
    fit = steering_fitness(cands, space, sc, cfg.seed)  # what analyze_round wrote, without the projection
    if search_passes(run, k) >= sc.rounds:
        reason = f"round limit reached (steering.rounds={sc.rounds})"
        actions = []
    else:
        actions, reason = decide(fit, cands, space, sc, search_passes(run, k))
    if not actions and sc.extend and reason.startswith("nothing clearly worse"):
        rec = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "timestamp": time.time(), "source": "autopilot",
               "round": k, "actions": [], "status": "extend", "why": reason, "evidence": _records(fit)}
        write_json(run.round_dir(k) / layout.DECISIONS, read_decisions(run, k) + [rec])
        _log(run, {"event": "extend", "round": k, "reason": reason})
        say(f"auto-pilot, round {k}: {reason}; scoring {cfg.search.budget} more candidates")
        extend_round(run, cfg, say=say, evaluator=evaluator)
        return True
    if not actions:
        record_stop(run, k, reason, fit)
        say(f"auto-pilot stops at round {k}: {reason}")
        return False
    nxt = apply_decision(run, cfg, actions, evidence=fit, source="autopilot")
    new_size = load_space(run, nxt, cfg.kind).size()
    say(f"auto-pilot, round {k} -> {nxt}: {describe_actions(actions)}; space {space.size():,} -> {new_size:,}")
    run_round(run, cfg, say=say, evaluator=evaluator)
    return True


# ---- selections (brushed regions of the scatterplot) --------------------------------------------
def _used(space: SearchSpace, archs: list[str]) -> list[set[str]]:
    used: list[set[str]] = [set() for _ in space.stages]
    for text in archs:
        arch = space.parse(str(text), check_active=False)
        for i, ch in enumerate(arch.choices):
            used[i].update(ch)
    return used


def selection_actions(space: SearchSpace, selected: list[str], others: list[str] | None = None,
                      mode: str = "keep") -> list[dict]:
    """Prune actions from a selection. ``keep``: prune every active component no selected
    architecture uses; ``drop_outside``: prune the components used by ``others`` but never by
    ``selected``. Pinned stages are left alone; a stage is never emptied."""
    if mode not in SELECTION_MODES:
        raise ValueError(f"selection mode '{mode}' is unknown; modes: {', '.join(SELECTION_MODES)}")
    if not selected:
        raise ValueError("the selection is empty: select some architectures first")
    if mode == "drop_outside" and others is None:
        raise ValueError("mode 'drop_outside' needs the architectures outside the selection (others)")
    inside = _used(space, selected)
    outside = _used(space, others or [])
    actions = []
    for i, s in enumerate(space.stages):
        if s.pinned is not None:
            continue
        if not inside[i] & set(s.active):
            raise ValueError(f"no selected architecture uses an active component of stage '{s.name}'; "
                             "select architectures of the current round")
        for c in s.active:
            if c in inside[i]:
                continue
            if mode == "keep":
                why = f"used by none of the {len(selected)} selected architectures"
            elif c in outside[i]:
                why = f"used only outside the selection ({len(selected)} selected)"
            else:
                continue
            actions.append({"op": "prune", "stage": s.name, "component": c, "reason": why})
    return actions


def combine_selections(a: list[str], b: list[str], op: str, universe: list[str] | None = None) -> list[str]:
    """Set operations on selections, order kept (a's order first): union, intersection,
    difference (a without b), complement (``universe`` without a)."""
    if op not in SET_OPS:
        raise ValueError(f"selection operation '{op}' is unknown; operations: {', '.join(SET_OPS)}")
    a = list(dict.fromkeys(map(str, a)))
    bs = set(map(str, b or []))
    if op == "union":
        return list(dict.fromkeys(a + [str(x) for x in (b or [])]))
    if op == "intersection":
        return [x for x in a if x in bs]
    if op == "difference":
        return [x for x in a if x not in bs]
    if universe is None:
        raise ValueError("complement needs the universe: the architectures to complement within")
    sa = set(a)
    return [x for x in dict.fromkeys(map(str, universe)) if x not in sa]

