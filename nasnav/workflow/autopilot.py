"""The auto-pilot's round: analyse, decide, then search further, start the next round or stop."""

from __future__ import annotations

import logging
import time

from nasnav.analysis.fitness import steering_fitness
from nasnav.steering.actions import describe_actions
from nasnav.steering.policy import decide, round_limit, searches_further
from nasnav.store import layout, records
from nasnav.store.io import json_records
from nasnav.store.run_dir import RunDir
from nasnav.workflow.analysis import analyze_round, steering_candidates
from nasnav.workflow.decisions import apply_decision, record_stop, search_passes
from nasnav.workflow.round import extend_round, run_round

log = logging.getLogger(__name__)


def autopilot_round(run: RunDir, cfg, evaluator=None) -> bool:
    """Analyse the current round, take the auto-pilot's decision, then fine-tune and search the new
    round in-process (with ``evaluator`` instead of the supernet, if given). When nothing is clearly
    worse and ``steering.extend`` is on, score ``search.budget`` more candidates in the same round
    instead (an ``extend`` record; it counts against ``steering.rounds`` like a round). False (with a
    stop record) when the pass limit is reached, the space is small enough or nothing is clearly worse."""

    sc = cfg.steering
    k = run.current_round()
    space = records.read_space(run, k, cfg.kind)
    fit_file, cand_file = run.round_dir(k) / layout.FITNESS, run.round_dir(k) / layout.CANDIDATES
    if not fit_file.exists() or (cand_file.exists() and cand_file.stat().st_mtime > fit_file.stat().st_mtime):
        analyze_round(run, cfg, k)  # scored since its last analysis (an interrupted run): files for the app
    cands = steering_candidates(run, cfg, k)
    fit = steering_fitness(cands, space, sc, cfg.seed)  # what analyze_round wrote, without the projection
    passes = search_passes(run, k)
    decision = round_limit(sc) if passes >= sc.rounds else decide(fit, cands, space, sc, passes)
    reason = decision.why
    if searches_further(decision, sc):
        rec = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "timestamp": time.time(), "source": "autopilot",
               "round": k, "actions": [], "status": "extend", "why": reason, "evidence": json_records(fit)}
        records.append_decision(run, k, rec)
        records.log_event(run, {"event": "extend", "round": k, "reason": reason})
        log.info(f"auto-pilot, round {k}: {reason}; scoring {cfg.search.budget} more candidates")
        extend_round(run, cfg, evaluator=evaluator)
        return True
    if decision.empty:
        record_stop(run, k, reason, fit)
        log.info(f"auto-pilot stops at round {k}: {reason}")
        return False
    nxt = apply_decision(run, cfg, decision.actions, evidence=fit, source="autopilot")
    new_size = records.read_space(run, nxt, cfg.kind).size()
    log.info(f"auto-pilot, round {k} -> {nxt}: {describe_actions(decision.actions)}; "
             f"space {space.size():,} -> {new_size:,}")
    run_round(run, cfg, evaluator=evaluator)
    return True
