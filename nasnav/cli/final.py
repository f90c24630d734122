"""Final-network commands of the CLI (spotcheck, export); see nasnav.cli."""

from __future__ import annotations

import logging

from nasnav.cli.output import say as _say
from nasnav.jobs.context import job
from nasnav.store import layout
from nasnav.workflow.export import export_final
from nasnav.workflow.model_card import export_summary
from nasnav.workflow.runs import load_run, round_space
from nasnav.workflow.spotcheck import spotcheck


def cmd_spotcheck(args) -> int:
    run, cfg = load_run(args.run_dir)
    k = run.current_round() if args.round is None else args.round
    with job(run, "spotcheck"):
        if args.quiet:
            logging.getLogger("nasnav").setLevel(logging.WARNING)
        s = spotcheck(run, cfg, args.n, k=k, seeds=args.seeds, epochs=args.epochs)
    _say(
        f"spot check of round {k}: N={s['n']} candidates x {s['seeds']} seeds, {s['epochs']} epochs each, "
        f"{s['seconds']:.1f} s ({s['trained_now']} trainings now, the rest reused from {layout.SPOTCHECK_RUNS})"
    )
    _say(
        f"  Kendall tau {_f(s['kendall_tau'])} (p {_f(s['kendall_p'], 3)}), Spearman rho {_f(s['spearman_rho'])} "
        f"(p {_f(s['spearman_p'], 3)}); seed-to-seed tau (ceiling) {_f(s['ceiling_tau'])}"
    )
    _say(f"  verdict: {s['verdict']}: {s['verdict_text']}")
    _say(f"  pairs: {run.round_dir(k) / layout.SPOTCHECK_PAIRS}")
    return 0


def _f(x, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def cmd_export(args) -> int:
    run, cfg = load_run(args.run_dir)
    if "/" in args.arch or not run.final_dir(args.arch).is_dir():
        round_space(run, cfg).parse(args.arch, check_active=False)  # names a bad stage or component: exit 2
    info = export_final(run, cfg, args.arch, onnx=not args.no_onnx, pt2=not args.no_pt2, force=args.force)
    d = run.final_dir(info["key"])
    _say(f"exported {info['arch']} to {d}: {', '.join(info['files'])}")
    for line in export_summary(info).splitlines():
        _say(f"  {line}")
    return 0


def register(sub) -> None:
    """Add this module's subcommands to the CLI's subparsers."""
    sp = sub.add_parser("spotcheck", help="train N candidates standalone and measure how well the supernet ranks them")
    sp.add_argument("run_dir")
    sp.add_argument("--n", type=int, default=10, help="candidates to train (spread over the one-shot ranking)")
    sp.add_argument("--round", type=int, default=None)
    sp.add_argument("--seeds", type=int, default=None, help="seeds per candidate (default retrain.spotcheck_seeds)")
    sp.add_argument("--epochs", type=int, default=None, help="epochs per training (default retrain.spotcheck_epochs)")
    sp.add_argument("--quiet", action="store_true", help="no line per finished training")
    sp.add_argument("--resume", action="store_true", help="accepted for symmetry: finished trainings are always reused")
    sp.set_defaults(fn=cmd_spotcheck)

    sp = sub.add_parser("export", help="write model.py, ONNX, torch.export and a model card for a retrained network")
    sp.add_argument("run_dir")
    sp.add_argument("--arch", required=True, help="a retrained architecture (or its final/ folder name)")
    sp.add_argument("--no-onnx", action="store_true")
    sp.add_argument("--no-pt2", action="store_true", help="skip torch.export")
    sp.add_argument("--force", action="store_true", help="export again even if the weights are unchanged")
    sp.set_defaults(fn=cmd_export)
