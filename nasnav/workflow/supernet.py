"""The supernet of a round: train or fine-tune it (resumable), save and load its checkpoint."""

from __future__ import annotations

import io
import time
import warnings
from pathlib import Path

import lightning.pytorch as pl
import torch

from nasnav import limits
from nasnav.config import Config
from nasnav.data.splits import InputSpec, NasDataModule
from nasnav.errors import InvalidInput
from nasnav.model.supernet import Supernet, warm_start
from nasnav.space import SearchSpace
from nasnav.stop import JobStopped, stop_requested
from nasnav.store import layout
from nasnav.store.io import atomic_write_bytes
from nasnav.store.run_dir import RunDir
from nasnav.train.modules import SupernetModule
from nasnav.train.tracking import Tracking, prepare
from nasnav.train.trainer import (
    NonFiniteLossError,
    RunReporter,
    describe_load_error,
    finished_epochs,
    make_trainer,
    metric_rows_until,
)
from nasnav.workflow.runs import load_data, round_space


def save_supernet(path: Path, module, space: SearchSpace, cfg: Config, spec, epochs: int) -> None:
    """Weights plus everything needed to rebuild them (space, input spec, config)."""

    payload = {
        "state_dict": {k: v.detach().cpu() for k, v in module.net.state_dict().items()},
        "space": space.to_dict(),
        "spec": spec.to_dict(),
        "config": cfg.to_dict(),
        "epochs": epochs,
    }
    bad = _non_finite(payload["state_dict"])
    if bad:

        raise NonFiniteLossError(
            f"{path}: not saved: weight '{bad}' is NaN or infinite, training diverged; lower the learning rate "
            "(supernet.lr, e.g. 10 times smaller) and train the supernet again"
        )
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())


def _non_finite(state_dict: dict) -> str | None:
    """The name of the first floating-point tensor holding NaN or inf, or None."""
    for name, v in state_dict.items():
        if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all():
            return name
    return None


CKPT_KEYS = ("state_dict", "space", "spec")


def load_checkpoint(path: Path) -> dict:
    """A nasnav checkpoint, loaded without unpickling code (weights_only=True); anything else
    (a truncated file, a pickle that names code, another program's checkpoint) is a ValueError."""
    if not Path(path).exists():
        raise InvalidInput(f"{path}: no supernet checkpoint; train the supernet first (`python -m nasnav supernet RUN`)")
    try:
        with warnings.catch_warnings():  # a damaged file also draws torch's pickle-protocol warning: the error says it all
            warnings.simplefilter("ignore", UserWarning)
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:

        raise InvalidInput(f"{path}: not a readable nasnav checkpoint ({describe_load_error(e)}); "
                         "train the supernet again to replace it") from None
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in CKPT_KEYS) or not isinstance(ckpt["state_dict"], dict):
        raise InvalidInput(f"{path}: not a nasnav supernet checkpoint (expected a mapping with {', '.join(CKPT_KEYS)}); "
                         "train the supernet again to replace it")
    return ckpt


def _template(space_dict: dict) -> dict:
    """What fixes a supernet's weights: the unpruned stages, widths and strides."""
    return SearchSpace.from_dict(space_dict).unpruned().to_dict()


def check_checkpoint(ckpt: dict, path: Path, space: SearchSpace, cfg: Config) -> None:
    """ValueError unless ``ckpt`` was trained on this space's template and this data source,
    and holds finite weights (a checkpoint copied in from another run is refused, not misread)."""
    try:
        theirs = _template(ckpt["space"])
    except ValueError as e:
        raise InvalidInput(f"{path}: its space is not readable ({e}); train the supernet again") from None
    ours = space.unpruned().to_dict()
    if theirs != ours:
        diff = [f"stage {i}" for i, (a, b) in enumerate(zip(theirs["stages"], ours["stages"])) if a != b]
        if len(theirs["stages"]) != len(ours["stages"]):
            diff.append(f"{len(theirs['stages'])} stages instead of {len(ours['stages'])}")
        if theirs.get("stem_channels") != ours.get("stem_channels"):
            diff.append("stem_channels")
        raise InvalidInput(f"{path}: this checkpoint was trained on another search space (differs in "
                         f"{', '.join(diff) or 'its stages'}); it does not belong to this run: train the "
                         "supernet of this round again (`python -m nasnav supernet RUN`)")
    data = (ckpt.get("config") or {}).get("data") if isinstance(ckpt.get("config"), dict) else None
    if isinstance(data, dict):
        for key in ("source", "path", "target", "image_size", "grayscale"):
            if key in data and data[key] != getattr(cfg.data, key):
                raise InvalidInput(f"{path}: this checkpoint was trained on other data (data.{key} {data[key]!r}, "
                                 f"this run has {getattr(cfg.data, key)!r}); train the supernet of this round again")
    bad = _non_finite(ckpt["state_dict"])
    if bad:
        raise InvalidInput(f"{path}: weight '{bad}' is NaN or infinite (training diverged); lower supernet.lr and "
                         "train the supernet again")


def load_supernet(run: RunDir, cfg: Config, k: int | None = None):
    """The trained Supernet of round k (current round by default), in eval mode on the CPU (the evaluator
    moves it to the accelerator)."""

    k = run.current_round() if k is None else k
    path = run.round_dir(k) / layout.SUPERNET
    ckpt = load_checkpoint(path)
    check_checkpoint(ckpt, path, round_space(run, cfg, k), cfg)

    try:
        spec = InputSpec.from_dict(ckpt["spec"])
        space = SearchSpace.from_dict(ckpt["space"], spec.kind)
    except (ValueError, TypeError) as e:
        raise InvalidInput(f"{path}: damaged checkpoint ({e}); train the supernet again") from None
    net = Supernet(space, spec.kind, spec.shape[0], spec.num_classes)
    try:
        net.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0][:300]
        raise InvalidInput(f"{path}: checkpoint does not match its space ({first}); train the supernet again") from None
    return net.eval(), spec


def check_supernet_size(space: SearchSpace, kind: str, in_channels: int, num_classes: int) -> int:
    """The supernet's parameter count, refused above the cap (``limits.check_params``); counted on the meta
    device, so a space of billions of parameters is refused without allocating them."""
    with torch.device("meta"):
        n = sum(p.numel() for p in Supernet(space, kind, in_channels, num_classes).parameters())
    limits.check_params(n)
    return n


def train_supernet(run: RunDir, cfg: Config, k: int | None = None, resume: bool = False) -> dict:
    """Train (round 0) or fine-tune (later rounds, warm start) the supernet of round k: here, or as one
    Slurm job of ``trainer.num_nodes`` x ``trainer.devices`` tasks with ``cluster.backend: slurm``."""
    k = run.current_round() if k is None else k
    if cfg.cluster.backend == "slurm":
        from nasnav.workflow import remote  # submitit is imported only where it is used

        return remote.train_supernet(run, cfg, k, resume, work=train_supernet_here)
    return train_supernet_here(run, cfg, k, resume)


def train_supernet_here(run: RunDir, cfg: Config, k: int, resume: bool = False) -> dict:
    """Train the supernet of round k in this process (and the ranks Lightning starts or SLURM started)."""
    space = round_space(run, cfg, k)
    rdir = run.ensure_round_dir(k)
    splits = load_data(cfg)
    spec = splits.spec
    sc = cfg.supernet
    epochs = sc.epochs if k == 0 else sc.warm_start_epochs
    pl.seed_everything(cfg.seed + k, workers=True, verbose=False)
    optim = {"optimizer": sc.optimizer, "lr": sc.lr if k == 0 else sc.lr * 0.5, "momentum": sc.momentum,
             "weight_decay": sc.weight_decay, "schedule": sc.schedule}
    check_supernet_size(space, spec.kind, spec.shape[0], spec.num_classes)  # before allocating it
    module = SupernetModule(space.to_dict(), spec.kind, spec.shape[0], spec.num_classes, optim,
                            sampler=sc.sampler, seed=cfg.seed + 1000 * k, label_smoothing=sc.label_smoothing,
                            distill=sc.distill)
    if k > 0 and epochs > 0:
        prev = load_checkpoint(run.round_dir(k - 1) / layout.SUPERNET)
        warm_start(module.net, prev["state_dict"])
    t0 = time.time()
    ckpt_dir = rdir / layout.TRAINING_DIR
    last = ckpt_dir / layout.LAST_CKPT
    if epochs > 0:
        done = _resume_point(last, space) if resume else 0  # epochs finished in last.ckpt (0: start over)
        rows = metric_rows_until(rdir / layout.TRAIN_METRICS, done)
        reporter = RunReporter(run, rdir / layout.TRAIN_METRICS, "supernet", epochs, first_epoch_rows=rows)
        prepare(cfg.trainer, run.path)
        trainer = make_trainer(cfg.trainer, epochs, rdir, [reporter], grad_clip=sc.grad_clip,
                               unused_parameters=True, checkpoint_dir=ckpt_dir, lr_key="supernet.lr",
                               tracking=Tracking(str(run.path), "supernet", k))
        dm = NasDataModule(cfg.data, cfg.seed, splits)
        trainer.fit(module, datamodule=dm, ckpt_path=str(last) if done else None, weights_only=True)
        if trainer.received_sigterm or stop_requested():
            raise JobStopped()
        if not trainer.is_global_zero:
            return {}
    elif k > 0:
        prev = load_checkpoint(run.round_dir(k - 1) / layout.SUPERNET)
        warm_start(module.net, prev["state_dict"])
    save_supernet(rdir / layout.SUPERNET, module, space, cfg, spec, epochs)
    return {"round": k, "epochs": epochs, "seconds": time.time() - t0}


def _resume_point(last: Path, space: SearchSpace) -> int:
    """Epochs finished in a Lightning ``last.ckpt`` of this space (0: none, or not resumable)."""

    ckpt_epochs = finished_epochs(last, check=lambda hp: isinstance(hp.get("space"), dict)
                                  and _template(hp["space"]) == space.unpruned().to_dict())
    if ckpt_epochs is None:
        raise InvalidInput(f"{last}: this checkpoint belongs to another search space; delete it (or drop --resume) "
                         "to train this round's supernet from the start")
    return ckpt_epochs
