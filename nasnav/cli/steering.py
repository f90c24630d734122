"""Steering commands of the CLI (search, analyze, prune, round); see nasnav.cli.

Invalid input raises ValueError, which ``nasnav.cli.main`` prints and turns into exit code 2.
"""

from __future__ import annotations

import pandas as pd

from nasnav.choices import STRATEGIES
from nasnav.cli.output import say as _say
from nasnav.errors import InvalidInput
from nasnav.jobs.context import job
from nasnav.steering.actions import Action, Op, describe_actions
from nasnav.store import layout
from nasnav.store.records import read_candidates, read_space, search_state
from nasnav.workflow.analysis import analyze_round
from nasnav.workflow.decisions import apply_decision, history, proposal, redo, undo
from nasnav.workflow.predictions import round_recommendations, why
from nasnav.workflow.round import run_round
from nasnav.workflow.runs import load_run
from nasnav.workflow.search import score_candidates
from nasnav.workflow.track_record import track_record


def _pair(text: str, flag: str) -> tuple[str, str]:
    stage, sep, comp = text.partition(":")
    if not sep or not stage or not comp:
        raise InvalidInput(f"{flag} '{text}': expected STAGE:COMPONENT, e.g. {flag} s1:skip (a stage name or index)")
    return stage, comp


def _best(df: pd.DataFrame) -> str:
    acc = pd.to_numeric(df["one_shot_acc"], errors="coerce")
    if not acc.notna().any():
        return "no scored candidates"
    row = df.loc[acc.idxmax()]
    return f"best one-shot {float(row['one_shot_acc']):.4f}: {row['arch']}"


def cmd_search(args) -> int:
    if args.budget is not None and args.budget < 1:
        raise InvalidInput("--budget must be at least 1")
    if args.seconds is not None and args.seconds <= 0:
        raise InvalidInput("--seconds must be greater than 0")
    run, cfg = load_run(args.run_dir)
    k = run.current_round()
    before = len(read_candidates(run, k))
    if args.resume and search_state(run, k).get("state") not in ("running", "stopped", "failed"):
        _say(f"round {k}: no stopped search to resume ({before} candidates); start one with `search {args.run_dir}`")
        return 0
    with job(run, "search"):
        df = score_candidates(run, cfg, k, budget=args.budget, strategy=args.strategy, seconds=args.seconds,
                              resume=args.resume)
        run.write_status(message="search finished; computing fitness and the projection")

        analyze_round(run, cfg, k)  # fitness.csv, importance.csv, projection.csv (and its cache) ready for the app
    _say(f"round {k}: {len(df) - before} candidates scored ({len(df)} in all); {_best(df)}")
    return 0


def cmd_analyze(args) -> int:
    run, cfg = load_run(args.run_dir)
    k = run.current_round() if args.round is None else args.round
    if k not in run.rounds():
        raise InvalidInput(f"round {k} does not exist; rounds: {', '.join(map(str, run.rounds())) or 'none'}")
    res = analyze_round(run, cfg, k)
    fit = res["fitness"]
    _say(f"round {k}: fitness of {len(fit)} components over the round's candidates "
         f"(written to {run.round_dir(k) / layout.FITNESS}, {layout.IMPORTANCE}, {layout.PROJECTION})")
    show = fit[fit["active"]][["stage", "component", "fitness", "ci_low", "ci_high", "frequency", "top_with", "in_top"]]
    with pd.option_context("display.width", 160, "display.max_rows", 500):
        _say(show.round(4).to_string(index=False))
        _say("stage importance (share of accuracy variance):")
        _say(res["importance"].round(3).to_string(index=False))
    if len(res["projection"]):
        decision = proposal(run, cfg, k, now=True)
        _say("auto-pilot suggests " + (f"nothing: {decision.why}" if decision.empty else
                                       "(python -m nasnav prune RUN --drop ...):"))
        for a in decision.actions:
            _say(f"  --drop {a.stage}:{a.component}   ({a.reason})")
        if not decision.empty and (record := track_record(decision.kind.value)):
            _say(record)
        best = round_recommendations(run, cfg, k, n=1)
        if len(best):
            _say(f"recommended to retrain: {best.iloc[0]['arch']}: {why(best.iloc[0], cfg.steering)}")
    return 0


def cmd_prune(args) -> int:
    run, cfg = load_run(args.run_dir)
    actions = [Action(Op.PRUNE, s, c) for s, c in (_pair(t, "--drop") for t in args.drop)]
    actions += [Action(Op.PIN, s, choice=c) for s, c in (_pair(t, "--pin") for t in args.pin)]
    actions += [Action(Op.RESTORE, s, c) for s, c in (_pair(t, "--restore") for t in args.restore)]
    moves = int(args.undo) + int(args.redo)
    if moves and actions:
        raise InvalidInput("--undo / --redo cannot be combined with --drop, --pin or --restore")
    if moves > 1:
        raise InvalidInput("give either --undo or --redo, not both")
    if args.undo:
        k = undo(run)
        _say(f"current round is now {k} (later rounds are kept; --redo returns to them)")
    elif args.redo:
        k = redo(run)
        _say(f"current round is now {k}")
    elif actions:
        before = read_space(run, run.current_round(), cfg.kind).size()
        k = apply_decision(run, cfg, actions, source="analyst")
        after = read_space(run, k, cfg.kind).size()
        _say(f"round {k} created: {describe_actions(actions)}; space {before:,} -> {after:,} architectures")
        _say(f"next: python -m nasnav round {args.run_dir}   (fine-tune the supernet, search, analyse)")
    else:
        with pd.option_context("display.width", 160):
            _say(history(run).to_string(index=False))
        _say("give --drop STAGE:COMPONENT, --pin STAGE:COMPONENT, --restore STAGE:COMPONENT, --undo or --redo")
    return 0


def cmd_round(args) -> int:
    run, cfg = load_run(args.run_dir)
    k = run.current_round()
    df = run_round(run, cfg)
    _say(f"round {k}: {len(df)} candidates; {_best(df)}")
    return 0


def register(sub) -> None:
    """Add this module's subcommands to the CLI's subparsers."""
    sp = sub.add_parser("search", help="score candidates of the current round (random or evolution)")
    sp.add_argument("run_dir")
    sp.add_argument("--strategy", choices=STRATEGIES, default=None, help="default: search.strategy of the config")
    sp.add_argument("--budget", type=int, default=None, help="new candidates to score (default: search.budget)")
    sp.add_argument("--seconds", type=float, default=None, help="wall-time budget (default: search.seconds)")
    sp.add_argument("--resume", action="store_true", help="continue the round's stopped search to its target")
    sp.set_defaults(fn=cmd_search)

    sp = sub.add_parser("analyze", help="fitness, stage importance and projection of the current round")
    sp.add_argument("run_dir")
    sp.add_argument("--round", type=int, default=None)
    sp.set_defaults(fn=cmd_analyze)

    sp = sub.add_parser("prune", help="decide: prune / pin / restore components (starts the next round), undo, redo")
    sp.add_argument("run_dir")
    sp.add_argument("--drop", nargs="+", action="extend", default=[], metavar="STAGE:COMPONENT")
    sp.add_argument("--pin", action="append", default=[], metavar="STAGE:COMPONENT",
                    help="fix a stage's choice (STAGE:a+b for an 'any' stage)")
    sp.add_argument("--restore", action="append", default=[], metavar="STAGE:COMPONENT")
    sp.add_argument("--undo", action="store_true", help="return to the previous round (nothing is deleted)")
    sp.add_argument("--redo", action="store_true", help="go forward again after --undo")
    sp.set_defaults(fn=cmd_prune)

    sp = sub.add_parser("round", help="the current round: fine-tune its supernet if needed, search, analyse")
    sp.add_argument("run_dir")
    sp.set_defaults(fn=cmd_round)

