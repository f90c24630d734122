"""Spot check of the one-shot score: can the analyst prune by fitness, and pick the winner by it?

Two samples of round k, two answers (``nasnav.analysis.trust`` says why one is not enough):

- the **space** sample: ``n`` architectures drawn evenly over the round's space (every active
  component about equally often; ``trust.stratified_sample``), scored with the round's supernet:
  does one-shot accuracy separate weak architectures from strong ones (prune by fitness)?
- the **top** sample: the round's ``m`` best candidates by one-shot score: do they differ beyond
  seed noise, and does the one-shot top hold the best of them (pick the winner by one-shot score)?

Every architecture is trained standalone (``retrain.spotcheck_epochs``; seeds ``seed``, ``seed+1``,
... as ``retrain.spotcheck_seeds`` says) once, even if both samples hold it. A network is trained from
scratch, so a training of (architecture, seed, epochs) is the same whatever the round: every spot
check reuses the trainings of earlier ones in any round (their ``spotcheck_runs.csv``), and those of
retrained networks (``final/*/seeds.csv``) when their budget is the same. Standalone accuracy is
validation accuracy, the split one-shot accuracy is measured on; the test split stays unseen.

Files in ``rounds/NNN/``: ``spotcheck_runs.csv`` (one row per training, appended as each finishes: a
stopped job loses nothing and a resumed one skips what finished), ``spotcheck.csv`` (one row per
architecture and sample) and ``spotcheck.json`` (the plan, the state and both answers).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time

import numpy as np
import pandas as pd

from nasnav.analysis import trust
from nasnav.config import Config
from nasnav.errors import InvalidInput
from nasnav.jobs import slurm
from nasnav.progress import bar
from nasnav.stop import JobStopped
from nasnav.store import layout
from nasnav.store.io import append_csv_rows, read_csv, read_json, write_csv, write_json
from nasnav.store.records import final_seeds, read_candidates
from nasnav.store.run_dir import RunDir
from nasnav.train import tracking
from nasnav.train.tracking import Tracking
from nasnav.workflow.model_card import write_model_card
from nasnav.workflow.retrain import fingerprint, single_device
from nasnav.workflow.runs import load_data, round_space
from nasnav.workflow.search import supernet_evaluator
from nasnav.workflow.trainings import Training, run_trainings

log = logging.getLogger(__name__)

PAIR_COLUMNS = ["sample", "arch", "one_shot_acc", "standalone_acc", "standalone_std", "seed_accs", "params", "flops",
                "epochs", "seeds"]
RUN_COLUMNS = ["arch", "seed", "epochs", "standalone_acc", "val_loss", "seconds", "fingerprint"]


def plan(run: RunDir, cfg: Config, k: int, n: int = trust.SPACE_N, m: int = trust.TOP_M, evaluator=None) -> dict:
    """The two samples of a spot check of round k with their one-shot scores (and costs):
    ``{"space": {"archs", "one_shot", "params", "flops"}, "top": {...}}``. Seeded by (seed, round)."""
    cands = read_candidates(run, k)
    acc = pd.to_numeric(cands["one_shot_acc"], errors="coerce")
    if not acc.notna().any():
        raise InvalidInput(f"{run.round_dir(k)}: round {k} has no scored candidates; run the search first "
                           f"(`python -m nasnav evaluate {run.path} --n 50`)")
    space = round_space(run, cfg, k)
    archs = [str(a) for a in trust.stratified_sample(space, n, np.random.default_rng([cfg.seed, k, 29]))]
    ev = evaluator or supernet_evaluator(run, cfg, k)
    scored = [ev(space.parse(a, check_active=False)) for a in archs]
    valid = cands[acc.notna()].assign(one_shot_acc=acc[acc.notna()], arch=cands["arch"].astype(str))
    best = valid.sort_values("one_shot_acc", kind="mergesort").drop_duplicates("arch", keep="last").set_index("arch")
    top = trust.top_candidates(list(cands["arch"].astype(str)), list(acc), m)
    return {"space": {"archs": archs, "one_shot": [float(r["one_shot_acc"]) for r in scored],
                      "params": [int(r["params"]) for r in scored], "flops": [int(r["flops"]) for r in scored]},
            "top": {"archs": top, "one_shot": [float(best.at[a, "one_shot_acc"]) for a in top],
                    "params": [_int(best.at[a, "params"]) for a in top], "flops": [_int(best.at[a, "flops"]) for a in top]}}


def _int(x) -> int | None:
    x = pd.to_numeric(pd.Series([x]), errors="coerce").iloc[0]
    return None if x != x else int(x)


def training_fingerprint(cfg: Config, space, arch: str, epochs: int) -> str:
    """What decides a spot-check training's result (``retrain.fingerprint`` of a one-device training of
    ``epochs`` epochs): a training is reused only while it is unchanged (data, settings, channels)."""
    one = single_device(dataclasses.replace(cfg, retrain=dataclasses.replace(cfg.retrain, epochs=int(epochs))))
    return fingerprint(one, space, space.parse(arch, check_active=False))


def finished_trainings(run: RunDir, cfg: Config, space, epochs: int) -> dict[tuple[str, int], dict]:
    """Every standalone training of this run that a spot check of ``epochs`` epochs can reuse: (arch, seed) ->
    {standalone_acc, val_loss, seconds}. Spot checks of every round, and retrained networks' seeds, each
    only when trained as this config's spot check would train it now (``training_fingerprint``)."""
    fps: dict[str, str] = {}  # ``space``: the round's (its channels and strides are every round's)

    def same(arch: str, fp) -> bool:
        if arch not in fps:
            fps[arch] = training_fingerprint(cfg, space, arch, epochs)
        return str(fp) == fps[arch]

    out: dict[tuple[str, int], dict] = {}
    for k in run.rounds():
        runs = read_csv(run.round_dir(k) / layout.SPOTCHECK_RUNS, columns=RUN_COLUMNS)
        for r in runs[pd.to_numeric(runs["epochs"], errors="coerce") == epochs].itertuples():
            if same(str(r.arch), r.fingerprint):
                out[(str(r.arch), int(r.seed))] = {"standalone_acc": float(r.standalone_acc),
                                                   "val_loss": float(r.val_loss), "seconds": float(r.seconds)}
    for m, seeds in final_seeds(run):
        if m.get("epochs") != epochs or not m.get("arch"):
            continue
        if not {"seed", "val_acc", "fingerprint"} <= set(seeds.columns):
            continue
        for r in seeds.to_dict("records"):
            if same(str(m["arch"]), r["fingerprint"]):  # the latest row of a seed trained this way wins
                out[(str(m["arch"]), int(r["seed"]))] = {"standalone_acc": float(r["val_acc"]),
                                                         "val_loss": float(r.get("val_loss", np.nan)),
                                                         "seconds": float(r.get("train_seconds", 0.0))}
    return out


def spotcheck(run: RunDir, cfg: Config, n: int = trust.SPACE_N, k: int | None = None, seeds: int | None = None,
              epochs: int | None = None, m: int = trust.TOP_M) -> dict:
    """Train the two samples of round k standalone and answer both questions; writes spotcheck.csv,
    spotcheck_runs.csv and spotcheck.json and returns the summary (``answers``: prune, pick)."""
    k = run.current_round() if k is None else k
    seeds = cfg.retrain.spotcheck_seeds if seeds is None else int(seeds)
    epochs = cfg.retrain.spotcheck_epochs if epochs is None else int(epochs)
    for name, v, least in (("--n", n, 0), ("--top", m, 0), ("--seeds", seeds, 1), ("--epochs", epochs, 1)):
        if v < least:
            raise InvalidInput(f"spotcheck {name}: {v} must be at least {least}")
    if n + m == 0:
        raise InvalidInput("spotcheck --n 0 --top 0: nothing to check; sample the space (--n), take the best "
                           "candidates (--top), or both")
    rdir = run.round_dir(k)
    key = [n, m, epochs, seeds, _round_identity(run, cfg, k)]  # a replaced round (undo, new decision) plans anew
    prev = read_json(rdir / layout.SPOTCHECK_SUMMARY, default=None)
    if isinstance(prev, dict) and prev.get("state") != "done" and prev.get("plan_key") == key and prev.get("plan"):
        p = prev["plan"]  # resume the interrupted plan, even if the search went on meanwhile
    else:
        p = plan(run, cfg, k, n, m)
    seed_list = [cfg.seed + s for s in range(seeds)]
    space = round_space(run, cfg, k)
    done = finished_trainings(run, cfg, space, epochs)
    t0 = time.time()
    base = {"round": k, "plan_key": key, "plan": p, "epochs": epochs, "seeds": seeds, "n": len(p["space"]["archs"]),
            "m": len(p["top"]["archs"]), "started": t0}
    write_json(rdir / layout.SPOTCHECK_SUMMARY, {**base, "state": "running", "progress": reused_share(done, p, seed_list),
                                                 "message": "spot check: starting"})
    archs = list(dict.fromkeys(p["space"]["archs"] + p["top"]["archs"]))
    todo = [Training(a, s, epochs, tracking=Tracking(str(run.path), "spotcheck", k, a, s))
            for a in archs for s in seed_list if (a, s) not in done]
    total, reused = len(archs) * seeds, len(archs) * seeds - len(todo)
    progress = {"trained": 0}

    def finished(t: Training, res: dict) -> None:
        """One training done (in the order trainings finish): its row now, so a stopped job keeps it."""
        row = {"standalone_acc": float(res["val_acc"]), "val_loss": float(res["val_loss"]),
               "seconds": round(float(res["seconds"]), 3)}
        done[(t.arch, t.seed)] = row
        append_csv_rows(rdir / layout.SPOTCHECK_RUNS, [{"arch": t.arch, "seed": t.seed, "epochs": epochs, **row,
                                                        "fingerprint": training_fingerprint(cfg, space, t.arch, epochs)}],
                        RUN_COLUMNS)
        progress["trained"] += 1
        n_done = reused + progress["trained"]
        rate = (time.time() - t0) / progress["trained"]
        msg = f"spot check: {n_done}/{total} trainings ({t.arch}, seed {t.seed}: val acc {row['standalone_acc']:.3f})"
        # a side job: its progress lives in its own file (status.json belongs to the run's main job)
        write_json(rdir / layout.SPOTCHECK_SUMMARY, {**base, "state": "running", "progress": n_done / total,
                                                     "message": msg, "eta_seconds": rate * (total - n_done)})
        log.info(msg)
        shown.update(1)

    shown = bar(len(todo), f"spot check of round {k}", unit="training")  # drawn on a terminal only
    try:
        tracking.prepare(cfg.trainer, run.path)
        run_trainings(cfg, space, todo, load_data(cfg), finished, single_process=True,
                      remote=slurm.group_dir(run, f"spotcheck-r{k:03d}"))
        _same_round(run, cfg, k, space)
    except JobStopped:
        _same_round(run, cfg, k, space)
        write_json(rdir / layout.SPOTCHECK_SUMMARY, {**base, "state": "stopped", **_results(rdir, p, done, seed_list,
                                                                                             epochs, seeds)})
        raise
    except BaseException as e:  # never leave "running" behind: say what stopped it (its trainings are kept)
        replaced = isinstance(e, InvalidInput) and "was replaced" in str(e)
        write_json(rdir / layout.SPOTCHECK_SUMMARY, {"round": k, "state": "replaced" if replaced else "failed",
                                                     "message": f"spot check {'not kept' if replaced else 'failed'}: "
                                                                f"{e or type(e).__name__}"})
        raise
    finally:
        shown.close()
    summary = {**base, "state": "done", **_results(rdir, p, done, seed_list, epochs, seeds),
               "seconds": round(time.time() - t0, 2), "trained_now": progress["trained"], "reused": reused,
               "progress": 1.0, "message": f"spot check done: {progress['trained']} trainings now, {reused} reused"}
    write_json(rdir / layout.SPOTCHECK_SUMMARY, summary)
    _refresh_cards(run, cfg)
    return summary


def _results(rdir, p: dict, done: dict, seed_list: list[int], epochs: int, seeds: int) -> dict:
    """spotcheck.csv and both answers over the architectures whose every seed has finished."""
    rows, answers = [], {}
    for sample, answer in (("space", trust.prune_answer), ("top", trust.pick_answer)):
        s = p[sample]
        ready = [i for i, a in enumerate(s["archs"]) if all((a, x) in done for x in seed_list)]
        accs = np.array([[done[(s["archs"][i], x)]["standalone_acc"] for x in seed_list] for i in ready])
        for j, i in enumerate(ready):
            rows.append({"sample": sample, "arch": s["archs"][i], "one_shot_acc": s["one_shot"][i],
                         "standalone_acc": float(accs[j].mean()),
                         "standalone_std": float(accs[j].std(ddof=1)) if seeds > 1 else 0.0,
                         "seed_accs": ";".join(f"{x:.6f}" for x in accs[j]), "params": s["params"][i],
                         "flops": s["flops"][i], "epochs": epochs, "seeds": seeds})
        if len(ready) >= 2:
            q = trust.PRUNE if sample == "space" else trust.PICK
            answers[q] = answer([s["one_shot"][i] for i in ready], accs, epochs=epochs)
    write_csv(rdir / layout.SPOTCHECK_PAIRS, pd.DataFrame(rows, columns=PAIR_COLUMNS))
    return {"answers": answers, "pairs": rows, "n_finished": {"space": sum(r["sample"] == "space" for r in rows),
                                               "top": sum(r["sample"] == "top" for r in rows)}}


def reused_share(done: dict, p: dict, seed_list: list[int]) -> float:
    """Share of the plan's trainings already done before it starts."""
    archs = set(p["space"]["archs"]) | set(p["top"]["archs"])
    return sum((a, x) in done for a in archs for x in seed_list) / max(1, len(archs) * len(seed_list))


def _round_identity(run: RunDir, cfg: Config, k: int) -> str:
    """What a spot check's plan belongs to: round k's space and its supernet (a round undone and decided
    anew has another space or another supernet, so an interrupted plan of the old one is not resumed)."""
    ckpt = run.round_dir(k) / layout.SUPERNET
    ident = json.dumps([round_space(run, cfg, k).to_dict(), ckpt.stat().st_mtime_ns if ckpt.exists() else None],
                       sort_keys=True, default=str)
    return hashlib.sha1(ident.encode()).hexdigest()[:12]


def _same_round(run: RunDir, cfg: Config, k: int, space) -> None:
    """The spot check runs beside decisions: if round k was undone and replaced meanwhile, its answers
    belong to no round now (its trainings stay: they hold for any round)."""
    if round_space(run, cfg, k) != space:
        raise InvalidInput(f"round {k} was replaced (undone and decided anew) while its spot check ran: its answers "
                           "are not written; the trainings are kept and the next spot check reuses them")


def _refresh_cards(run: RunDir, cfg: Config) -> None:
    """Model cards quote the latest spot check: rewrite the ones already written."""
    for key in run.finals():
        if (run.final_dir(key) / layout.CARD).exists():
            try:
                write_model_card(run, cfg, key)
            except (ValueError, OSError):
                pass  # a card that cannot be rewritten keeps its old text; the spot check itself succeeded
