"""Standalone training of chosen architectures from scratch; results in ``final/<arch-key>/``.

``final/<arch-key>/`` holds, per retrained architecture:

- ``metrics.json``: test accuracy (mean and spread over seeds, on the held-out test split that no
  stage of the search ever looks at), validation accuracy, the one-shot estimate, params, FLOPs,
  latency, wall time;
- ``metrics.csv``: the validation curve of the first seed (``metrics_seed<i>.csv`` for the others);
- ``seeds.csv``: one row per finished seed, so a stopped multi-seed retrain resumes where it stopped;
- ``weights.pt`` (the first seed's ``state_dict``) and ``arch.yaml`` (space, architecture, input spec,
  normalisation): everything ``nasnav.workflow.export`` needs to rebuild the network without the data.

torch and Lightning are imported inside the functions that train, so ``read_finals`` stays light
for the app.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nasnav.config import Config
from nasnav.data.sources import raw_input_description
from nasnav.errors import InvalidInput
from nasnav.jobs import slurm
from nasnav.model.supernet import build_network
from nasnav.score.evaluate import count_flops, latency_ms
from nasnav.space import Arch, SearchSpace
from nasnav.store import layout
from nasnav.store.io import append_csv_rows, atomic_write_bytes, read_csv, write_json, write_yaml
from nasnav.store.records import read_candidates
from nasnav.store.run_dir import RunDir, arch_key
from nasnav.train.devices import training_slots
from nasnav.train.tracking import Tracking, prepare
from nasnav.train.trainer import describe_load_error
from nasnav.workflow.runs import load_data
from nasnav.workflow.trainings import Training, run_trainings

SEED_COLUMNS = [
    "seed",
    "test_acc",
    "test_loss",
    "val_acc",
    "val_loss",
    "best_epoch",
    "epochs_trained",
    "train_seconds",
    "fingerprint",
]


def single_device(cfg: Config) -> Config:
    """``cfg`` as a training on one device sees it: a seed trained beside others, in its own worker."""
    return dataclasses.replace(cfg, trainer=dataclasses.replace(cfg.trainer, devices=1, num_nodes=1, strategy="auto"))


def fingerprint(cfg: Config, space: SearchSpace, arch: Arch) -> str:
    """What decides a retrain's result: a finished seed is reused only while this is unchanged."""
    rc = {
        k: v
        for k, v in dataclasses.asdict(cfg.retrain).items()
        if k not in ("seeds", "top_k") and not k.startswith("spotcheck")
    }
    stages = [(s.channels, s.stride) for s in space.stages]
    tc = cfg.trainer  # devices and strategy change the effective batch, precision the arithmetic
    trainer = [tc.accelerator, tc.devices, tc.num_nodes, tc.strategy, tc.precision, tc.deterministic]
    data = {k: v for k, v in dataclasses.asdict(cfg.data).items() if k not in ("root", "download")}  # where, not what
    blob = json.dumps(
        [rc, data, cfg.seed, trainer, space.stem_channels, stages, str(arch)],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def lookup_one_shot(run: RunDir, arch: Arch) -> float | None:
    """The arch's one-shot accuracy in the latest round that scored it, or None."""

    for k in reversed(run.rounds()):
        df = read_candidates(run, k)
        hit = df.loc[df["arch"].astype(str) == str(arch), "one_shot_acc"] if len(df) else []
        if len(hit) and pd.notna(hit.iloc[-1]):
            return float(hit.iloc[-1])
    return None


def _save_weights(path: Path, state_dict: dict) -> None:
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_weights(path: Path) -> dict:
    """A state_dict written by retrain (``weights_only``: no code is unpickled)."""

    if not Path(path).exists():
        raise InvalidInput(
            f"{path}: no weights; retrain the architecture first (`python -m nasnav retrain RUN --arch ...`)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:

        raise InvalidInput(f"{path}: not a readable weights file ({describe_load_error(e)}); "
                         "retrain the architecture to replace it") from None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise InvalidInput(f"{path}: not a weights file (expected a state_dict of tensors); "
                         "retrain the architecture to replace it")
    return state


def arch_record(cfg: Config, space: SearchSpace, arch: Arch, splits) -> dict:
    """The contents of arch.yaml: everything needed to rebuild and feed the network."""

    return {
        "arch": str(arch),
        "choices": {s.name: "+".join(c) for s, c in zip(space.stages, arch.choices)},
        "space": space.to_dict(),
        "kind": splits.spec.kind,
        "input": splits.spec.to_dict(),
        "normalisation": {
            "mean": splits.mean.flatten().tolist() if splits.mean is not None else None,
            "std": splits.std.flatten().tolist() if splits.std is not None else None,
            "shape": list(splits.mean.shape) if splits.mean is not None else None,
        },
        "raw_input": raw_input_description(cfg.data, splits.spec),
        "data_source": cfg.data.source,
    }


def retrain(
    run: RunDir,
    cfg: Config,
    space: SearchSpace,
    arch: Arch,
    seeds: int | None = None,
    one_shot_acc: float | None = None,
) -> dict:
    """Retrain an architecture from scratch with one or more seeds; writes final/<key>/.

    Seed i trains with ``cfg.seed + i``; the first seed's weights are saved (its validation curve
    is ``metrics.csv``). Finished seeds are kept in seeds.csv and reused while the settings that
    decide them are unchanged, so a stopped retrain resumes and ``--seeds 3`` after ``--seeds 1``
    trains only the two new seeds. Returns the metrics (empty on DDP ranks other than 0).
    """
    return retrain_all(run, cfg, space, [(arch, one_shot_acc)], seeds)[0]


@dataclasses.dataclass
class _Plan:
    """One architecture's retraining: its folder, fingerprint, finished seeds and the trainings left."""

    arch: Arch
    one_shot_acc: float | None
    out_dir: Path
    fp: str
    by_seed: dict[int, dict]
    todo: list[Training]


def retrain_all(run: RunDir, cfg: Config, space: SearchSpace, picks: list[tuple[Arch, float | None]],
                seeds: int | None = None) -> list[dict]:
    """``retrain`` for several architectures (``picks``: architecture and one-shot score, or None) at once:
    every seed of every one goes out together, side by side where the machine has several training slots,
    as one Slurm array with ``cluster.backend: slurm``. Returns each one's metrics, in order (empty on DDP
    ranks other than 0)."""
    seeds = cfg.retrain.seeds if seeds is None else int(seeds)
    if seeds < 1:
        raise InvalidInput(f"--seeds: {seeds} must be at least 1")
    if len({str(a) for a, _ in picks}) < len(picks):
        raise ValueError(f"retrain_all: an architecture twice among {[str(a) for a, _ in picks]}")
    splits = load_data(cfg)
    slots = training_slots(cfg.trainer)
    # seeds side by side, one device each (else: as the trainer says); a Slurm job trains on one device
    parallel = cfg.cluster.backend == "slurm" or (seeds * len(picks) >= 2 and len(slots) > 1)
    tcfg = single_device(cfg) if parallel else cfg
    plans = [_plan(run, cfg, tcfg, space, arch, seeds, acc) for arch, acc in picks]
    owner = {(str(p.arch), t.seed): p for p in plans for t in p.todo}
    total, rank0 = seeds * len(plans), [True]

    def finished(t: Training, res: dict) -> None:
        if not res["is_global_zero"]:
            rank0[0] = False
            return  # DDP: the other ranks train every seed with rank 0 but write nothing
        plan = owner[(t.arch, t.seed)]
        if t.keep_weights:
            _save_weights(plan.out_dir / layout.WEIGHTS, res["state_dict"])
        row = {k: res.get(k) for k in SEED_COLUMNS} | {"seed": t.seed, "fingerprint": plan.fp}
        append_csv_rows(plan.out_dir / layout.SEEDS, [row], SEED_COLUMNS)
        shutil.rmtree(t.checkpoint_dir, ignore_errors=True)  # the seed is recorded: its resume point is not needed
        plan.by_seed[t.seed] = row
        if (n := sum(len(p.by_seed) for p in plans)) < total:
            run.write_status(progress=n / total, message=f"retrain: {n}/{total} seeds done")

    prepare(tcfg.trainer, run.path)
    group = f"retrain-{arch_key(str(plans[0].arch))}" + (f"-and-{len(plans) - 1}" if len(plans) > 1 else "")
    run_trainings(tcfg, space, [t for p in plans for t in p.todo], splits, finished, run=run, single_process=False,
                  slots=slots if parallel else slots[:1], remote=slurm.group_dir(run, group))
    if not rank0[0]:
        return [{} for _ in plans]
    return [_summary(run, cfg, space, p, seeds, splits) for p in plans]


def _plan(run: RunDir, cfg: Config, tcfg: Config, space: SearchSpace, arch: Arch, seeds: int,
          one_shot_acc: float | None) -> _Plan:
    key = arch_key(str(arch))
    out_dir = run.final_dir(key)
    out_dir.mkdir(parents=True, exist_ok=True)
    fp = fingerprint(tcfg, space, arch)
    done = read_csv(out_dir / layout.SEEDS, columns=SEED_COLUMNS)
    done = done[done["fingerprint"].astype(str) == fp].drop_duplicates("seed", keep="last")
    by_seed = {int(r["seed"]): r.to_dict() for _, r in done.iterrows()}
    if cfg.seed in by_seed and not (out_dir / layout.WEIGHTS).exists():
        by_seed.pop(cfg.seed)  # the saved weights are gone: train the first seed again
    todo = []
    for i in range(seeds):
        seed = cfg.seed + i
        if seed in by_seed:
            continue
        ckpt_dir = out_dir / "lightning" / f"{fp}_seed{seed}"  # a killed seed resumes from its last epoch
        if i == 0 and not (ckpt_dir / layout.LAST_CKPT).exists():
            # new weights for this folder: results and exports of the old ones no longer apply
            for stale in (layout.FINAL_METRICS, layout.EXPORT):
                (out_dir / stale).unlink(missing_ok=True)
        todo.append(Training(str(arch), seed, cfg.retrain.epochs, test=True, keep_weights=i == 0, quiet=False,
                             metrics_path=str(out_dir / (layout.TRAIN_METRICS if i == 0 else f"metrics_seed{i}.csv")),
                             checkpoint_dir=str(ckpt_dir),
                             tracking=Tracking(str(run.path), "retrain", run.current_round(), str(arch), seed)))
    return _Plan(arch, one_shot_acc, out_dir, fp, by_seed, todo)


def _summary(run: RunDir, cfg: Config, space: SearchSpace, plan: _Plan, seeds: int, splits) -> dict:
    """The metrics of one retrained architecture (written to its folder, with arch.yaml)."""
    arch, out_dir, fp, by_seed, one_shot_acc = plan.arch, plan.out_dir, plan.fp, plan.by_seed, plan.one_shot_acc
    key = arch_key(str(arch))
    rows = [by_seed[cfg.seed + i] for i in range(seeds)]
    spec = splits.spec
    net = build_network(space, arch, spec.kind, spec.shape[0], spec.num_classes)
    net.load_state_dict(load_weights(out_dir / layout.WEIGHTS))
    net.eval()
    shape = tuple(spec.shape)
    test_accs = [float(r["test_acc"]) for r in rows]
    val_accs = [float(r["val_acc"]) for r in rows]
    if one_shot_acc is None:
        one_shot_acc = lookup_one_shot(run, arch)
    metrics = {
        "arch": str(arch),
        "key": key,
        "round": run.current_round(),
        "test_acc": float(np.mean(test_accs)),
        "test_acc_std": float(np.std(test_accs, ddof=1)) if len(test_accs) > 1 else 0.0,
        "test_accs": test_accs,
        "val_acc": float(np.mean(val_accs)),
        "val_acc_std": float(np.std(val_accs, ddof=1)) if len(val_accs) > 1 else 0.0,
        "val_accs": val_accs,
        "one_shot_acc": None if one_shot_acc is None or not np.isfinite(one_shot_acc) else float(one_shot_acc),
        "params": int(sum(p.numel() for p in net.parameters())),
        "flops": count_flops(net, shape),
        "latency_ms": latency_ms(net, shape),
        "train_seconds": float(sum(float(r["train_seconds"]) for r in rows)),
        "epochs": cfg.retrain.epochs,
        "epochs_trained": [int(r["epochs_trained"]) for r in rows],
        "best_epoch": int(rows[0]["best_epoch"]),
        "seeds": seeds,
        "seed_list": [cfg.seed + i for i in range(seeds)],
        "weights_seed": cfg.seed,
        "test_split": "held out before the search (data.test_fraction); never used for selection",
        "n_train": len(splits.y_train),
        "n_val": len(splits.y_val),
        "n_test": len(splits.y_test),
        "fingerprint": fp,
        "finished": time.time(),
    }
    write_yaml(out_dir / layout.ARCH, arch_record(cfg, space, arch, splits))
    write_json(out_dir / layout.FINAL_METRICS, metrics)
    return metrics

