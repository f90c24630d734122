"""Ranking fidelity: does the supernet rank architectures as standalone training does?

    python bench/ranking.py --preset digits --archs 50 --seeds 3
    python bench/ranking.py --preset mnist1d --archs 50 --seeds 3 --epochs 20
    python bench/ranking.py --preset tiny --archs 6 --seeds 2 --epochs 2 --quick --no-write   # smoke test
    python bench/ranking.py --spotcheck --preset mnist1d --run-seeds 5   # the product's spot check vs truth

``--spotcheck``: the product's two-question spot check over several run seeds, judged against a
multi-seed ground truth (bench/ranking_spotcheck.py says how).

Samples architectures uniformly from the preset's space, trains each standalone with several
seeds (the product's standalone trainer, ``nasnav.train.standalone.train_standalone``, as retraining
and spot checks use it; the mean validation accuracy is the ground truth; trainings are cached, see
bench/standalone.py), then scores each with supernets trained under several **variants** and
reports, per variant, Kendall tau, Spearman rho, top-5 hit (does the estimator's top 5 hold an
architecture within 0.5 pp of the best ground truth?), with the spread of the ground truth and the
**ceiling**: the mean Kendall tau between two single-seed standalone trainings (no estimator ranks
better than training itself; the multi-seed mean is less noisy, so tau against it may exceed it).

Every supernet is the product's: ``nasnav.train.modules.SupernetModule`` (path sampler, in-place
distillation) fitted by the product's Lightning trainer (``nasnav.train.trainer.make_trainer``, the
preset's ``supernet`` optimiser, schedule and gradient clip, the ``trainer`` section on one process)
on ``nasnav.data.splits.NasDataModule``, built as ``nasnav.workflow.supernet.train_supernet`` builds
it; every score is the product's ``nasnav.score.evaluate.SupernetEvaluator`` (BatchNorm recalibration
on ``make_recal_batches``), as ``nasnav.workflow.search.supernet_evaluator`` builds it.

A variant is ``key=value,...`` (variants separated by ``;``), one table row each:

- ``sampler``: uniform | fair (the engine's path samplers; default the preset's)
- ``epochs``: supernet epochs, an integer or a multiple of the preset's (``3x``)
- ``recal``: BatchNorm recalibration batches per candidate (default the preset's search.recal_batches)
- ``kd``: 1 = in-place distillation (``supernet.distill``): each step also trains the largest path
  (most parameters) on the labels and the sampled path on its soft outputs (twice the step cost)
- ``score``: acc (one-shot accuracy, as the engine ranks) | loss (minus validation loss: continuous,
  no ties on small validation sets)
- ``ens``: average the scores of this many supernets trained with different seeds (each one the
  product's supernet training with that seed; the data split stays the preset's)
- ``seed``: added to the preset's seed for the supernet (another draw of the same variant)
- ``split``: few-shot NAS (Zhao et al. 2021): 1-based number of the stage to split on (0: off, one-shot).
  After the one-shot training, per operation of that stage the product's warm start of a next round
  whose space pins the stage to that operation (a SupernetModule over the pinned space, warm-started
  from the shared weights, half the learning rate, as rounds after the first train) runs for
  ``sub_epochs`` epochs; an architecture is scored by the copy of its own operation. Total supernet
  epochs: ``epochs`` + operations x ``sub_epochs`` (the table's "supernet epochs")
- ``sub_epochs``: epochs of each few-shot copy (default: the preset's supernet epochs / 4)
- ``engine``: 1 = train through the workflow itself (``nasnav.workflow.supernet.train_supernet`` in a
  scratch run directory, checkpoint round trip included) and score with
  ``nasnav.workflow.search.supernet_evaluator``: literally what a user of the preset gets; 0 = the same
  modules, trainer and evaluator called directly, which also allows ``seed``, ``ens`` and ``split``.
  For the same settings both give the same scores (tests/test_bench.py checks it)
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from itertools import combinations
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
from scipy.stats import kendalltau, spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import log, markdown_table, quiet_engine, report, set_threads  # noqa: E402
from bench.standalone import StandaloneTrainer  # noqa: E402
from nasnav.config import load_config, preset_path  # noqa: E402
from nasnav.data.splits import NasDataModule  # noqa: E402
from nasnav.model.supernet import Supernet, warm_start  # noqa: E402
from nasnav.score.evaluate import SupernetEvaluator, make_recal_batches  # noqa: E402
from nasnav.train.modules import SupernetModule  # noqa: E402
from nasnav.train.trainer import make_trainer  # noqa: E402
from nasnav.workflow.runs import create_run, load_data  # noqa: E402
from nasnav.workflow.search import supernet_evaluator  # noqa: E402
from nasnav.workflow.supernet import train_supernet as workflow_train_supernet  # noqa: E402

DEFAULT_VARIANTS = ("sampler=uniform; sampler=fair; sampler=fair,recal=16; sampler=fair,recal=16,score=loss; "
                    "sampler=fair,recal=16,epochs=3x; sampler=fair,recal=16,kd=1; sampler=fair,recal=16,ens=3; "
                    "sampler=fair,recal=16,epochs=3x,score=loss,ens=3")


def parse_variant(text: str, cfg) -> dict:
    v = {"sampler": cfg.supernet.sampler, "epochs": cfg.supernet.epochs, "recal": cfg.search.recal_batches,
         "kd": 0, "score": "acc", "ens": 1, "seed": 0, "engine": 0, "split": 0,
         "sub_epochs": max(1, cfg.supernet.epochs // 4)}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, val = part.partition("=")
        key, val = key.strip(), val.strip()
        if key not in v:
            raise ValueError(f"variant '{text}': unknown key '{key}' (keys: {', '.join(v)})")
        if key == "epochs" and val.endswith("x"):
            v[key] = int(round(float(val[:-1]) * cfg.supernet.epochs))
        elif key in ("sampler", "score"):
            v[key] = val
        else:
            v[key] = int(val)
    if v["engine"] and (v["seed"] or v["ens"] > 1):
        raise ValueError(f"variant '{text}': engine=1 trains with the preset's seed (it draws the data split too), "
                         "so it takes neither seed= nor ens= > 1")
    if v["engine"] and v["split"]:
        raise ValueError(f"variant '{text}': split (few-shot) is built from the engine's modules here, not with engine=1")
    if not 0 <= v["split"] <= len(cfg.space.stages):
        raise ValueError(f"variant '{text}': split is a stage number 1..{len(cfg.space.stages)} (0: off)")
    if v["split"] and cfg.space.stages[v["split"] - 1].select != "one":
        raise ValueError(f"variant '{text}': split needs a stage that selects one component")
    if v["score"] not in ("acc", "loss") or v["sampler"] not in ("uniform", "fair"):
        raise ValueError(f"variant '{text}': score is acc|loss, sampler uniform|fair")
    return v


def _fit(cfg, module: SupernetModule, splits, epochs: int, seed: int) -> Supernet:
    """``module`` fitted by the product's trainer as ``workflow.supernet.train_supernet`` fits it
    (``supernet.grad_clip``, the ``trainer`` section), on one process and without a run directory;
    the data order is seeded by ``seed`` (the preset's seed gives the product's)."""
    tc = dataclasses.replace(cfg.trainer, devices=1, num_nodes=1, strategy="auto", enable_progress_bar=False)
    with tempfile.TemporaryDirectory(prefix="nasnav-rank-") as tmp:
        trainer = make_trainer(tc, epochs, Path(tmp), [], grad_clip=cfg.supernet.grad_clip, unused_parameters=True,
                               lr_key="supernet.lr")
        trainer.fit(module, datamodule=NasDataModule(cfg.data, seed, splits))
    return module.net.eval()


def _module(cfg, space, splits, sampler: str, seed: int, kd: bool, lr_scale: float = 1.0) -> SupernetModule:
    """The product's SupernetModule over ``space`` with the preset's ``supernet`` settings; ``lr_scale``
    0.5 is the product's fine-tuning of a warm-started round."""
    sc, spec = cfg.supernet, splits.spec
    optim = {"optimizer": sc.optimizer, "lr": sc.lr * lr_scale, "momentum": sc.momentum,
             "weight_decay": sc.weight_decay, "schedule": sc.schedule}
    return SupernetModule(space.to_dict(), spec.kind, spec.shape[0], spec.num_classes, optim, sampler=sampler,
                          seed=seed, label_smoothing=sc.label_smoothing, distill=kd)


def train_supernet(cfg, space, splits, sampler: str, epochs: int, seed: int, kd: bool) -> Supernet:
    """One-shot training of round 0 as the product does it (``workflow.supernet.train_supernet`` with
    ``seed`` for the config's seed, the data split kept): ``seed`` seeds initialisation, path sampler
    and data order."""
    pl.seed_everything(seed, workers=True, verbose=False)
    return _fit(cfg, _module(cfg, space, splits, sampler, seed, kd), splits, epochs, seed)


def few_shot(net: Supernet, cfg, space, splits, v: dict, seed: int) -> dict[str, Supernet]:
    """Few-shot split of a trained supernet: per operation of stage ``v["split"]``, the product's warm
    start of a round whose space pins that stage to the operation (its other stages sampled as
    before), fine-tuned for ``v["sub_epochs"]`` epochs at half the learning rate. Returns operation -> copy."""
    stage = v["split"] - 1
    state = {k: t.detach().clone() for k, t in net.state_dict().items()}
    copies = {}
    for j, op in enumerate(space.stages[stage].active):
        pl.seed_everything(seed + j + 1, workers=True, verbose=False)
        module = _module(cfg, space.pin(stage, op), splits, v["sampler"], seed + 1000 * (j + 1), bool(v["kd"]),
                         lr_scale=0.5)
        missing = warm_start(module.net, state)
        assert not missing, missing  # the same template: every weight carries over
        copies[op] = _fit(cfg, module, splits, v["sub_epochs"], seed)  # every round's data order is the seed's
    return copies


def one_shot_evaluator(net: Supernet, cfg, splits, recal_batches: int) -> SupernetEvaluator:
    """The product's evaluator as ``workflow.search.supernet_evaluator`` builds it, with
    ``recal_batches`` for ``search.recal_batches``."""
    recal = make_recal_batches(splits.x_train, recal_batches, cfg.data.batch_size, cfg.seed)
    return SupernetEvaluator(net, recal, splits.x_val, splits.y_val, tuple(splits.spec.shape))


class FewShotEvaluator:
    """Scores an architecture with the few-shot copy that owns its operation in the split stage."""

    def __init__(self, copies: dict[str, Supernet], stage: int, make):
        self.stage = stage
        self.evaluators = {op: make(net) for op, net in copies.items()}

    def __call__(self, arch):
        return self.evaluators["+".join(arch.choices[self.stage])](arch)


def engine_evaluator(config_path, v: dict):
    """The variant's supernet trained by the workflow in a scratch run; the workflow's one-shot evaluator.
    The run keeps the preset's seed: it also draws the data split the ground truth was measured on."""
    over = [f"supernet.sampler={v['sampler']}", f"supernet.epochs={v['epochs']}", f"supernet.distill={bool(v['kd'])}",
            f"search.recal_batches={v['recal']}", "trainer.devices=1", "trainer.num_nodes=1", "trainer.strategy=auto",
            "trainer.enable_progress_bar=false"]
    run_cfg = load_config(config_path, over)
    with tempfile.TemporaryDirectory(prefix="nasnav-rank-") as tmp:
        run = create_run(run_cfg, Path(tmp) / "run")
        workflow_train_supernet(run, run_cfg, 0)
        return supernet_evaluator(run, run_cfg, 0)


def top5_hit(pred, truth, tol=0.005) -> bool:
    best = max(truth)
    top = np.argsort(pred)[::-1][:5]
    return any(truth[i] >= best - tol for i in top)


def sample_archs(space, n: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    archs, seen = [], set()
    while len(archs) < min(n, space.size()):
        a = space.sample(rng)
        if str(a) not in seen:
            seen.add(str(a))
            archs.append(a)
    return archs


def main(argv=None) -> None:
    if "--spotcheck" in (sys.argv[1:] if argv is None else argv):  # the two-question spot check mode
        from bench.ranking_spotcheck import main as spotcheck_main

        return spotcheck_main(argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="digits", help="a preset name or a config file (.yaml)")
    ap.add_argument("--archs", type=int, default=50)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=None, help="standalone epochs (default: retrain.epochs)")
    ap.add_argument("--variants", default=DEFAULT_VARIANTS, help="';'-separated supernet variants (see the docstring)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--cache", default="default", help="standalone cache file ('' = none)")
    ap.add_argument("--quick", action="store_true", help="smoke test: two variants, shortened supernet budget")
    ap.add_argument("--no-write", action="store_true", help="print only; record nothing (bench/results, BENCHMARKS.md)")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    quiet_engine()
    config_path = args.preset if args.preset.endswith((".yaml", ".yml")) else preset_path(args.preset)
    cfg = load_config(config_path)
    splits = load_data(cfg)
    space = cfg.search_space()
    archs = sample_archs(space, args.archs)
    trainer = StandaloneTrainer(cfg, splits, args.epochs, cache=args.cache)
    t0 = time.time()
    truth_runs = np.zeros((args.seeds, len(archs)))  # (seeds, archs)
    secs = 0.0
    for i, a in enumerate(archs):
        for s in range(args.seeds):
            r = trainer(a, 100 + s)
            truth_runs[s, i] = r["val_acc"]
            secs += r["seconds"]
        log(f"[ranking {args.preset}] ground truth {i + 1}/{len(archs)} {a}: {truth_runs[:, i].round(4)}")
    t_truth = time.time() - t0
    truth = truth_runs.mean(0)
    pairs = [kendalltau(truth_runs[i], truth_runs[j])[0] for i, j in combinations(range(args.seeds), 2)]
    ceiling = float(np.mean(pairs)) if pairs else float("nan")
    seed_std = float(truth_runs.std(0, ddof=1).mean()) if args.seeds >= 2 else float("nan")
    variants = [v.strip() for v in args.variants.split(";") if v.strip()]
    if args.quick:
        variants = variants[:2]
    scored: dict[tuple, tuple[np.ndarray, np.ndarray, float]] = {}
    rows = []
    for text in variants:
        v = parse_variant(text, cfg)
        if args.quick:
            v["epochs"], v["sub_epochs"] = min(v["epochs"], 2), min(v["sub_epochs"], 1)
        accs, losses, t_var = [], [], 0.0
        for e in range(v["ens"]):
            seed = cfg.seed + v["seed"] + e
            key = (v["sampler"], v["epochs"], v["kd"], v["recal"], seed, v["engine"], v["split"], v["sub_epochs"])
            if key not in scored:
                t = time.time()
                if v["engine"]:
                    ev = engine_evaluator(config_path, v)
                else:
                    net = train_supernet(cfg, space, splits, v["sampler"], v["epochs"], seed, bool(v["kd"]))

                    def make(n, recal=v["recal"]):
                        return one_shot_evaluator(n, cfg, splits, recal)

                    if v["split"]:
                        ev = FewShotEvaluator(few_shot(net, cfg, space, splits, v, seed), v["split"] - 1, make)
                    else:
                        ev = make(net)
                t_train = time.time() - t
                res = [ev(a) for a in archs]
                scored[key] = (np.array([r["one_shot_acc"] for r in res]), np.array([r["val_loss"] for r in res]),
                               time.time() - t)
                log(f"[ranking {args.preset}] supernet {key}: trained in {t_train:.1f} s")
            a_, l_, tt = scored[key]
            accs.append(a_)
            losses.append(l_)
            t_var += tt
        pred = np.mean(accs, 0) if v["score"] == "acc" else -np.mean(losses, 0)
        tau, p = kendalltau(pred, truth)
        rho = spearmanr(pred, truth)[0]
        ratio = tau / ceiling if ceiling > 0 else float("nan")
        epochs = v["epochs"] + (len(space.stages[v["split"] - 1].active) * v["sub_epochs"] if v["split"] else 0)
        rows.append({"variant": text, "supernet epochs": epochs, "N": len(archs), "tau": f"{tau:.3f}",
                     "p": f"{p:.1g}", "rho": f"{rho:.3f}",
                     "tau / ceiling": f"{ratio:.2f}" if ceiling > 0 else "-",
                     "top-5 hit": "yes" if top5_hit(pred, truth) else "no",
                     "target (tau >= 0.8 and >= 0.9 ceiling)": "met" if tau >= 0.8 and ratio >= 0.9 else "missed",
                     "supernet + scoring s": f"{t_var:.0f}"})
        log(f"[ranking {args.preset}] {text}: tau {tau:.3f} rho {rho:.3f}")
    body = (f"Preset `{args.preset}` ({space.size():,} architectures). Ground truth: {len(archs)} architectures "
            f"sampled uniformly x {args.seeds} seeds, {trainer.epochs} standalone epochs each (validation "
            f"accuracy, mean over seeds; {secs:.0f} s of training, {t_truth:.0f} s here with the cache). "
            f"Ground-truth spread {truth.min():.3f}..{truth.max():.3f} (std across archs {truth.std():.3f}; "
            f"mean seed-to-seed std per arch {seed_std:.3f}). **Ceiling** (mean tau between two single-seed "
            f"trainings, {len(pairs)} pairs): {ceiling:.3f} "
            f"[{', '.join(f'{x:.3f}' for x in pairs)}]. Validation set: {len(splits.y_val)} samples.\n\n"
            + markdown_table(rows))
    metrics = {"ceiling": ceiling, "ceiling_pairs": [float(x) for x in pairs], "truth_min": float(truth.min()),
               "truth_max": float(truth.max()), "truth_std": float(truth.std()), "seed_std": seed_std,
               "val_samples": len(splits.y_val), "space_size": space.size(), "standalone_epochs": trainer.epochs}
    report(f"Ranking fidelity ({args.preset})", body, write=not args.no_write, group=args.preset, params=vars(args),
           metrics=metrics)


if __name__ == "__main__":
    main()
