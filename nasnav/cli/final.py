"""Final-network commands of the CLI (spotcheck, export); see nasnav.cli."""

from __future__ import annotations

import logging

from nasnav.analysis import trust
from nasnav.cli.output import say as _say
from nasnav.jobs.context import job, side_job
from nasnav.store import layout
from nasnav.workflow.export import export_final
from nasnav.workflow.model_card import export_summary
from nasnav.workflow.runs import load_run, round_space
from nasnav.workflow.spotcheck import spotcheck


def cmd_spotcheck(args) -> int:
    run, cfg = load_run(args.run_dir)
    k = run.current_round() if args.round is None else args.round
    with side_job(run, "spotcheck", layout.SPOTCHECK_LANE):  # beside the run's main job: searching and deciding go on
        if args.quiet:
            logging.getLogger("nasnav").setLevel(logging.WARNING)
        s = spotcheck(run, cfg, args.n, k=k, seeds=args.seeds, epochs=args.epochs, m=args.top)
    _say(
        f"spot check of round {k}: {s['n']} architectures sampled over the space and the {s['m']} best candidates, "
        f"{s['seeds']} seeds x {s['epochs']} epochs each, {s['seconds']:.1f} s ({s['trained_now']} trainings now, "
        f"{s['reused']} reused from earlier spot checks and retrainings)"
    )
    got = trust.answers(s)
    for q in (trust.PRUNE, trust.PICK):
        _say(f"  {got[q]['text']}" if q in got else f"  {trust.QUESTIONS[q]} not judged (too few trainings finished)")
    _say(f"  per architecture: {run.round_dir(k) / layout.SPOTCHECK_PAIRS}")
    return 0


def cmd_export(args) -> int:
    run, cfg = load_run(args.run_dir)
    if "/" in args.arch or not run.final_dir(args.arch).is_dir():
        round_space(run, cfg).parse(args.arch, check_active=False)  # names a bad stage or component: exit 2
    with job(run, "export"):  # the run's job lock: one export (or other job) writes its files at a time
        info = export_final(run, cfg, args.arch, onnx=not args.no_onnx, pt2=not args.no_pt2, force=args.force)
    d = run.final_dir(info["key"])
    _say(f"exported {info['arch']} to {d}: {', '.join(info['files'])}")
    for line in export_summary(info).splitlines():
        _say(f"  {line}")
    return 0


def register(sub) -> None:
    """Add this module's subcommands to the CLI's subparsers."""
    sp = sub.add_parser("spotcheck", help="train a sample of the space and the best candidates standalone: can you "
                        "prune by fitness, and pick the winner by one-shot score?")
    sp.add_argument("run_dir")
    sp.add_argument("--n", type=int, default=trust.SPACE_N, help="architectures sampled evenly over the round's space "
                    "(question 1: prune by fitness?)")
    sp.add_argument("--top", type=int, default=trust.TOP_M, help="the round's best candidates by one-shot score "
                    "(question 2: pick the winner by it?)")
    sp.add_argument("--round", type=int, default=None)
    sp.add_argument("--seeds", type=int, default=None, help="seeds per candidate (default retrain.spotcheck_seeds)")
    sp.add_argument("--epochs", type=int, default=None, help="epochs per training (default retrain.spotcheck_epochs)")
    sp.add_argument("--quiet", action="store_true", help="no line per finished training")
    sp.add_argument("--resume", action="store_true", help="accepted for symmetry: finished trainings are always reused")
    sp.set_defaults(n_least=0, fn=cmd_spotcheck)

    sp = sub.add_parser("export", help="write model.py, ONNX, torch.export and a model card for a retrained network")
    sp.add_argument("run_dir")
    sp.add_argument("--arch", required=True, help="a retrained architecture (or its final/ folder name)")
    sp.add_argument("--no-onnx", action="store_true")
    sp.add_argument("--no-pt2", action="store_true", help="skip torch.export")
    sp.add_argument("--force", action="store_true", help="export again even if the weights are unchanged")
    sp.set_defaults(fn=cmd_export)
