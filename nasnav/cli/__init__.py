"""Command line: ``python -m nasnav COMMAND ...``.

Exit codes: 0 success (or a job stopped on request), 2 invalid input (one message per problem
on stderr, no traceback), 1 internal error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback

from nasnav.cli import final as cli_final
from nasnav.cli import output
from nasnav.cli import steering as cli_steering
from nasnav.cli.output import say as _say
from nasnav.config import ConfigError, load_config
from nasnav.errors import EXIT_INTERNAL, EXIT_INVALID, EXIT_OK, InvalidInput
from nasnav.jobs.context import job
from nasnav.stop import JobStopped
from nasnav.workflow.export import export_final
from nasnav.workflow.model_card import export_summary
from nasnav.workflow.pipeline import run_pipeline
from nasnav.workflow.predictions import score_archs
from nasnav.workflow.retrain import retrain
from nasnav.workflow.runs import load_data, load_run, round_space
from nasnav.workflow.search import score_candidates
from nasnav.workflow.supernet import train_supernet


# ---- commands ---------------------------------------------------------------------------
def cmd_validate(args) -> int:
    try:
        cfg = load_config(args.config, args.set)
    except ConfigError as e:
        for p in e.problems:
            print(f"error: {p}", file=sys.stderr)
        return EXIT_INVALID
    splits = load_data(cfg)  # a data problem raises ValueError: reported by main()
    space = cfg.search_space()
    _say(f"{args.config}: valid. {space.size():,} architectures in {len(space.stages)} stages; "
         f"data {splits.spec.kind} {tuple(splits.spec.shape)}, {splits.spec.num_classes} classes, "
         f"train/val/test {len(splits.y_train)}/{len(splits.y_val)}/{len(splits.y_test)}")
    return EXIT_OK


def cmd_run(args) -> int:
    cfg = load_config(args.config, args.set)
    load_data(cfg)  # check the data before anything is written
    return run_pipeline(cfg, args.run_dir, resume=args.resume)


def cmd_supernet(args) -> int:
    run, cfg = load_run(args.run_dir)
    with job(run, "supernet"):
        res = train_supernet(run, cfg, args.round, resume=args.resume)
    if res:
        _say(f"supernet of round {res['round']}: {res['epochs']} epochs in {res['seconds']:.1f} s")
    return EXIT_OK


def cmd_evaluate(args) -> int:
    run, cfg = load_run(args.run_dir)
    if not args.arch and args.n is None:
        raise InvalidInput("evaluate: give --n (how many candidates to score) or --arch (which ones)")
    with job(run, "search"):
        if args.arch:  # exactly these (the surrogate's predicted best, or the analyst's list)
            df = score_archs(run, cfg, args.arch, args.round)
        else:
            df = score_candidates(run, cfg, args.round, budget=args.n, strategy=args.strategy or cfg.search.strategy)
    if len(df):
        best = df.loc[df["one_shot_acc"].idxmax()]
        _say(f"{len(df)} candidates scored; best one-shot {best['one_shot_acc']:.4f}: {best['arch']}")
    return EXIT_OK


def cmd_retrain(args) -> int:
    run, cfg = load_run(args.run_dir)
    space = round_space(run, cfg)
    arch = space.parse(args.arch)  # ValueError (exit 2) names the bad part
    if args.seeds is not None and args.seeds < 1:
        raise InvalidInput(f"--seeds: {args.seeds} must be at least 1")
    with job(run, "retrain"):
        m = retrain(run, cfg, space, arch, seeds=args.seeds)
        if m and not args.no_export:

            run.write_status(message="exporting model.py, ONNX, torch.export, model card")
            info = export_final(run, cfg, m["arch"])
    if m:
        per_seed = ", ".join(f"{a:.4f}" for a in m["test_accs"])
        spread = f" ± {m['test_acc_std']:.4f} over {m['seeds']} seeds ({per_seed})" if m["seeds"] > 1 else ""
        one_shot = f", one-shot {m['one_shot_acc']:.4f}" if m.get("one_shot_acc") is not None else ""
        _say(f"{m['arch']}: test accuracy {m['test_acc']:.4f}{spread} (val {m['val_acc']:.4f}{one_shot}), "
             f"{m['params']:,} params, {m['flops']:,} FLOPs, {m['latency_ms']:.2f} ms, {m['train_seconds']:.1f} s")
        _say(f"  results in {run.final_dir(m['key'])}")
        if not args.no_export:
            for line in export_summary(info).splitlines():
                _say(f"  {line}")
    return EXIT_OK


# ---- parser -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nasnav", description="Human-in-the-loop one-shot NAS.",
                                epilog="nasnav app [--components FILE ...] [streamlit run options]: start the app")
    sub = p.add_subparsers(dest="command", required=True)

    def overrides(sp):
        sp.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override config keys, e.g. trainer.devices=2 supernet.epochs=5")

    sp = sub.add_parser("run", help="the whole pipeline headless: supernet, search, rounds, retrain")
    sp.add_argument("config")
    sp.add_argument("--run-dir", required=True)
    sp.add_argument("--resume", action="store_true", help="continue an interrupted run in --run-dir")
    overrides(sp)
    sp.set_defaults(fn=cmd_run)

    sp = sub.add_parser("validate", help="check a config and its data; list every problem")
    sp.add_argument("config")
    overrides(sp)
    sp.set_defaults(fn=cmd_validate)

    sp = sub.add_parser("supernet", help="train (or fine-tune) the supernet of the current round")
    sp.add_argument("run_dir")
    sp.add_argument("--round", type=int, default=None)
    sp.add_argument("--resume", action="store_true", help="continue from the last epoch checkpoint")
    sp.set_defaults(fn=cmd_supernet)

    sp = sub.add_parser("evaluate", help="score N candidates (or the --arch ones) of the current round with the supernet")
    sp.add_argument("run_dir")
    sp.add_argument("--n", type=int, default=None)
    sp.add_argument("--arch", action="append", default=[], help="score this architecture (repeatable)")
    sp.add_argument("--round", type=int, default=None)
    sp.add_argument("--strategy", default=None)
    sp.set_defaults(fn=cmd_evaluate)

    sp = sub.add_parser("retrain", help="train an architecture standalone from scratch")
    sp.add_argument("run_dir")
    sp.add_argument("--arch", required=True, help="e.g. conv3x3/maxpool3x3+skip/sepconv5x5")
    sp.add_argument("--seeds", type=int, default=None, help="train with this many seeds (default retrain.seeds)")
    sp.add_argument("--no-export", action="store_true", help="skip model.py / ONNX / torch.export / model card")
    sp.add_argument("--resume", action="store_true", help="accepted for symmetry: finished seeds are always reused")
    sp.set_defaults(fn=cmd_retrain)


    cli_steering.register(sub)
    cli_final.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse: 2 for usage errors, 0 for --help
        return int(e.code or 0)
    least = getattr(args, "n_least", 1)  # spotcheck takes --n 0 (only the top candidates)
    if getattr(args, "n", 1) is not None and getattr(args, "n", 1) < least:
        print(f"error: --n must be at least {least}", file=sys.stderr)
        return EXIT_INVALID
    # Small networks on a CPU run fastest on one thread per process, and several processes (DDP
    # workers, the app's jobs) then do not fight over cores. NASNAV_THREADS overrides.
    os.environ.setdefault("OMP_NUM_THREADS", os.environ.get("NASNAV_THREADS", "1"))
    output.setup()

    t0 = time.time()
    try:
        return args.fn(args)
    except JobStopped:
        _say(f"stopped after {time.time() - t0:.1f} s; run the same command with --resume to continue")
        return EXIT_OK
    except InvalidInput as e:
        for line in str(e).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return EXIT_INVALID
    except Exception:
        traceback.print_exc()
        print("internal error: this is a bug in nasnav; the traceback above says where", file=sys.stderr)
        return EXIT_INTERNAL
