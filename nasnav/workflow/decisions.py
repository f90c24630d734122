"""The analyst's and the auto-pilot's decisions on a run: apply, undo, redo, the rounds' history,
and the auto-pilot's proposal for a round.

Everything lives in the run directory, so a restart loses nothing:

- ``rounds/k/decisions.json``: a list of records, appended, never rewritten away. A record holds
  the time, the source (analyst / autopilot / selection), the actions, the evidence shown when the
  decision was taken (fitness rows), the space size before and after, and a status: ``applied``
  (it made round k+1), ``abandoned`` (its round k+1 was later replaced: see below), ``extend``
  (the auto-pilot searched the round further) or ``stop`` (the auto-pilot stopped here, with the reason).
- ``rounds/k+1/space.yaml``: the space a decision made. Training and search of that round are the
  caller's job (``python -m nasnav round RUN``, or ``workflow.autopilot.autopilot_round``).
- ``current_round.json``: the pointer that undo / redo move. Undo never deletes anything.
- A decision taken on an earlier round (after undo) replaces the later rounds: their folders are
  moved, whole, to ``rounds/abandoned/<time>/`` (never deleted), the replaced record is marked
  ``abandoned`` with that path, and ``history.json`` logs every decision, undo, redo and abandon.

Each change runs under the run's state lock (``nasnav.store.state_lock``) and reads the current round
inside it, so two decisions at once are taken one after the other, never one lost; a caller that decided
on what it saw passes ``at_round`` and is refused if another decision moved the run on meanwhile.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence

import pandas as pd

from nasnav.analysis.fitness import steering_fitness
from nasnav.errors import InvalidInput
from nasnav.jobs.control import JobRunning, running_job
from nasnav.space import SearchSpace
from nasnav.steering.actions import Action, apply_actions, describe_actions
from nasnav.steering.policy import Decision, decide
from nasnav.store import records
from nasnav.store.io import json_records
from nasnav.store.run_dir import RunDir
from nasnav.store.state_lock import state_lock
from nasnav.workflow.analysis import steering_candidates


def _check_no_job(run: RunDir) -> None:
    live = running_job(run)
    if live and int(live.get("pid") or 0) != os.getpid():
        raise JobRunning(f"run {run.path} has a running {live.get('job') or 'job'} job (pid {live['pid']}); "
                         "stop it before changing rounds")


def _check_round(run: RunDir, k: int, at_round: int | None) -> None:
    if at_round is not None and at_round != k:
        raise InvalidInput(f"run {run.path} is at round {k} now, not round {at_round} that this decision was "
                           "taken on (another session or job changed it meanwhile); look at round "
                           f"{k} and decide again")


def apply_decision(run: RunDir, cfg, actions: Sequence[Action], evidence: pd.DataFrame | None = None,
                   source: str = "analyst", at_round: int | None = None) -> int:
    """Validate ``actions`` on the current round k, record them in rounds/k/decisions.json, write
    rounds/k+1/space.yaml and make k+1 current; returns k+1. Later rounds left by an undo are moved
    to rounds/abandoned/<time>/. Does not train: run ``python -m nasnav round RUN`` next.
    ``at_round``: the round the actions were chosen on; InvalidInput if the run is on another one now."""
    with state_lock(run):
        _check_no_job(run)
        k = run.current_round()
        _check_round(run, k, at_round)
        return _apply(run, cfg, k, actions, evidence, source)


def _apply(run: RunDir, cfg, k: int, actions: Sequence[Action], evidence: pd.DataFrame | None, source: str) -> int:
    """``apply_decision``'s work on round k (the caller holds the state lock)."""
    space = records.read_space(run, k, cfg.kind)
    new_space, canon = apply_actions(space, actions)
    if evidence is None:
        evidence = _evidence(run, cfg, k, space)
    moved = _abandon_after(run, k)
    nxt = k + 1
    records.write_space(run, nxt, new_space)
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "timestamp": time.time(), "source": source,
              "round": k, "next_round": nxt, "actions": [a.to_dict() for a in canon], "space_size": space.size(),
              "next_space_size": new_space.size(), "status": "applied", "evidence": json_records(evidence)}
    records.append_decision(run, k, record)
    run.set_current_round(nxt)
    records.log_event(run, {"event": "decision", "round": k, "next_round": nxt, "source": source,
               "actions": describe_actions(canon), "abandoned": moved})
    return nxt


def _evidence(run: RunDir, cfg, k: int, space: SearchSpace) -> pd.DataFrame | None:
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
    recs = records.read_decisions(run, k)
    for r in recs:
        if r.get("status") == "applied":
            r["status"], r["abandoned_to"] = "abandoned", rel
    records.write_decisions(run, k, recs)
    records.log_event(run, {"event": "abandon", "round": k, "moved": [int(j) for j in later], "to": rel})
    return rel


def undo(run: RunDir, at_round: int | None = None) -> int:
    """Make the previous round current (its later rounds stay on disk for redo). ``at_round``: the round
    the caller saw; InvalidInput if the run is on another one now (two undos at once go back once)."""
    with state_lock(run):
        _check_no_job(run)
        k = run.current_round()
        _check_round(run, k, at_round)
        if k <= 0:
            raise InvalidInput("nothing to undo: the run is at round 0, the first round")
        run.set_current_round(k - 1)
        records.log_event(run, {"event": "undo", "from": k, "to": k - 1})
        return k - 1


def redo(run: RunDir, at_round: int | None = None) -> int:
    """Make the next round current again, if an undo left it (``at_round`` as for ``undo``)."""
    with state_lock(run):
        _check_no_job(run)
        k = run.current_round()
        _check_round(run, k, at_round)
        if not records.has_space(run, k + 1):
            raise InvalidInput(f"nothing to redo: round {k} is the latest round")
        run.set_current_round(k + 1)
        records.log_event(run, {"event": "redo", "from": k, "to": k + 1})
        return k + 1


def history(run: RunDir) -> pd.DataFrame:
    """One row per round: round, space_size, candidates, best_one_shot, decisions, current, source, supernet."""
    cur = run.current_round()
    rows = []
    for k in run.rounds():
        if not records.has_space(run, k):
            continue
        try:
            size = records.read_space(run, k).size()
        except ValueError:
            size = None
        df = records.read_candidates(run, k)
        acc = pd.to_numeric(df["one_shot_acc"], errors="coerce") if len(df) else pd.Series(dtype=float)
        recs = records.read_decisions(run, k)
        applied = [r for r in recs if r.get("status") == "applied"]
        rec = applied[-1] if applied else ([r for r in recs if r.get("status") == "stop"] or [None])[-1]
        if rec is None:
            text, source = "", ""
        elif rec.get("status") == "stop":
            text, source = f"stop: {rec.get('stop', '')}", rec.get("source", "")
        else:
            acts = [Action.from_dict(a, f"round {k}'s decision, action {n}")
                    for n, a in enumerate(rec.get("actions") or [], 1)]
            text, source = describe_actions(acts), rec.get("source", "")
        rows.append({"round": k, "space_size": size, "candidates": len(df),
                     "best_one_shot": float(acc.max()) if acc.notna().any() else math.nan,
                     "decisions": text, "current": k == cur, "source": source,
                     "supernet": records.has_supernet(run, k)})
    return pd.DataFrame(rows, columns=["round", "space_size", "candidates", "best_one_shot", "decisions", "current",
                                       "source", "supernet"])


def proposal(run: RunDir, cfg, k: int | None = None, now: bool = False) -> Decision:
    """The auto-pilot's proposal for round k (current by default): actions with their reason and
    evidence, or why it proposes nothing. ``now``: as if this were its deciding pass (the pass
    before the last), whatever passes it has spent: what the app and ``analyze`` suggest, since the
    analyst, not the pass count, decides when to stop searching a round."""

    k = run.current_round() if k is None else k
    space = records.read_space(run, k, cfg.kind)
    cands = steering_candidates(run, cfg, k)
    fit = steering_fitness(cands, space, cfg.steering, cfg.seed)
    passes = search_passes(run, k)
    return decide(fit, cands, space, cfg.steering, max(passes, cfg.steering.rounds - 1) if now else passes)


def propose(run: RunDir, cfg, k: int | None = None, now: bool = False) -> list[Action]:
    """Auto-pilot suggestions for round k (current by default): actions with their reason and evidence."""
    return list(proposal(run, cfg, k, now).actions)


def record_stop(run: RunDir, k: int, reason: str, evidence: pd.DataFrame | None = None, source: str = "autopilot") -> None:
    """Append a ``stop`` record to rounds/k/decisions.json (the auto-pilot's last word on a run)."""
    rec = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "timestamp": time.time(), "source": source, "round": k,
           "actions": [], "status": "stop", "stop": reason, "evidence": json_records(evidence)}
    with state_lock(run):
        records.append_decision(run, k, rec)
        records.log_event(run, {"event": "stop", "round": k, "reason": reason})


def search_passes(run: RunDir, k: int) -> int:
    """Search passes the auto-pilot has spent up to round k: one per round plus one per extension."""
    return k + 1 + sum(r.get("status") == "extend" for j in range(k + 1) for r in records.read_decisions(run, j))
