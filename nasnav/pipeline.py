"""The stages of a search on a run directory: create, train the supernet, score candidates.

Each stage reads what it needs from the run directory and writes its results back, so any
stage can run in a separate process (a job), be stopped, and be resumed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import traceback
from pathlib import Path

import torch

from nasnav.config import Config, config_from_dict, save_config
from nasnav.runs import JobLock, RunDir, read_yaml, write_yaml
from nasnav.space import SearchSpace

CKPT_NAME = "supernet.ckpt"


class JobStopped(Exception):
    """Raised inside a job when a stop (SIGTERM) was requested."""


_STOP = {"requested": False}


def stop_requested() -> bool:
    return _STOP["requested"]


def _on_sigterm(signum, frame):
    _STOP["requested"] = True  # loops check this between units of work; Lightning stops after the batch


@contextlib.contextmanager
def job(run: RunDir, name: str, stage: str | None = None):
    """Hold the run's lock and keep status.json truthful for the duration of a job."""
    if int(os.environ.get("LOCAL_RANK", "0")) > 0 or int(os.environ.get("NODE_RANK", "0")) > 0:
        yield  # DDP worker processes re-run the command: rank 0 owns the lock and the status
        return
    _STOP["requested"] = False
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    lock = JobLock(run, name)
    lock.acquire()
    run.write_status(state="running", job=name, stage=stage or name, pid=os.getpid(), progress=0.0,
                     message=f"{name} started", error=None, started=time.time(), eta_seconds=None)
    try:
        yield
        if stop_requested():
            raise JobStopped()
        run.write_status(state="done", progress=1.0, message=f"{name} finished", eta_seconds=None)
    except (JobStopped, KeyboardInterrupt):
        run.write_status(state="stopped", message=f"{name} stopped; resume continues from the last saved state")
        raise JobStopped() from None
    except SystemExit as e:  # Lightning exits this way after SIGTERM
        run.write_status(state="stopped" if stop_requested() else "failed",
                         message=f"{name} stopped" if stop_requested() else f"{name} exited ({e.code})")
        raise
    except ValueError as e:
        run.write_status(state="failed", error=str(e), message=f"{name} failed: {e}")
        raise
    except Exception as e:
        run.write_status(state="failed", error=f"{type(e).__name__}: {e}", message=f"{name} failed",
                         extra={"traceback": traceback.format_exc()[-4000:]})
        raise
    finally:
        lock.release()
        signal.signal(signal.SIGTERM, previous)


# ---- run directory contents -----------------------------------------------------------------
def create_run(cfg: Config, path: str | Path, exist_ok: bool = False) -> RunDir:
    """A new run directory with the resolved config and round 0's space."""
    run = RunDir.create(path, exist_ok=exist_ok)
    save_config(cfg, run.config_path)
    write_yaml(run.ensure_round_dir(0) / "space.yaml", cfg.search_space().to_dict())
    run.write_status(state="idle", stage="created", progress=0.0, message="run created", pid=None)
    return run


def load_run(path: str | Path) -> tuple[RunDir, Config]:
    run = RunDir(path)
    if not run.exists():
        raise ValueError(f"{path}: not a nasnav run directory (no config.yaml); create one with `python -m nasnav run CONFIG --run-dir {path}`")
    cfg = config_from_dict(read_yaml(run.config_path), str(run.config_path))
    return run, cfg


def round_space(run: RunDir, cfg: Config, k: int | None = None) -> SearchSpace:
    k = run.current_round() if k is None else k
    path = run.round_dir(k) / "space.yaml"
    if not path.exists():
        raise ValueError(f"{path}: round {k} has no space.yaml")
    space = SearchSpace.from_dict(read_yaml(path), cfg.kind)
    from nasnav.ops import list_ops

    return space.validate(list_ops(cfg.kind), where=str(path))


# ---- data --------------------------------------------------------------------------------------
_SPLITS: dict = {}


def load_data(cfg: Config):
    """The data splits of a config, cached per process (the same data for every stage)."""
    from nasnav.data import load_splits

    key = (repr(cfg.data), cfg.seed)
    if key not in _SPLITS:
        _SPLITS.clear()
        _SPLITS[key] = load_splits(cfg.data, cfg.seed)
    return _SPLITS[key]


# ---- supernet ------------------------------------------------------------------------------
def save_supernet(path: Path, module, space: SearchSpace, cfg: Config, spec, epochs: int) -> None:
    """Weights plus everything needed to rebuild them (space, input spec, config)."""
    import io

    from nasnav.runs import atomic_write_bytes

    payload = {
        "state_dict": {k: v.detach().cpu() for k, v in module.net.state_dict().items()},
        "space": space.to_dict(),
        "spec": spec.to_dict(),
        "config": cfg.to_dict(),
        "epochs": epochs,
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path) -> dict:
    """A nasnav checkpoint, loaded without unpickling code (weights_only=True)."""
    if not Path(path).exists():
        raise ValueError(f"{path}: no supernet checkpoint; train the supernet first (`python -m nasnav supernet RUN`)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path}: not a readable nasnav checkpoint ({type(e).__name__}: {e})") from None


def load_supernet(run: RunDir, cfg: Config, k: int | None = None):
    """The trained Supernet of round k (current round by default), in eval mode on the CPU."""
    from nasnav.supernet import Supernet

    k = run.current_round() if k is None else k
    ckpt = load_checkpoint(run.round_dir(k) / CKPT_NAME)
    from nasnav.data import InputSpec

    spec = InputSpec.from_dict(ckpt["spec"])
    space = SearchSpace.from_dict(ckpt["space"], spec.kind)
    net = Supernet(space, spec.kind, spec.shape[0], spec.num_classes)
    try:
        net.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise ValueError(f"{run.round_dir(k) / CKPT_NAME}: checkpoint does not match its space ({e})") from None
    return net.eval(), spec


def train_supernet(run: RunDir, cfg: Config, k: int | None = None, resume: bool = False) -> dict:
    """Train (round 0) or fine-tune (later rounds, warm start) the supernet of round k."""
    import lightning.pytorch as pl

    from nasnav.data import NasDataModule
    from nasnav.module import SupernetModule
    from nasnav.supernet import warm_start
    from nasnav.training import RunReporter, make_trainer

    k = run.current_round() if k is None else k
    space = round_space(run, cfg, k)
    rdir = run.ensure_round_dir(k)
    splits = load_data(cfg)
    spec = splits.spec
    sc = cfg.supernet
    epochs = sc.epochs if k == 0 else sc.warm_start_epochs
    pl.seed_everything(cfg.seed + k, workers=True, verbose=False)
    optim = {"optimizer": sc.optimizer, "lr": sc.lr if k == 0 else sc.lr * 0.5, "momentum": sc.momentum,
             "weight_decay": sc.weight_decay, "schedule": sc.schedule}
    module = SupernetModule(space.to_dict(), spec.kind, spec.shape[0], spec.num_classes, optim,
                            sampler=sc.sampler, seed=cfg.seed + 1000 * k, label_smoothing=sc.label_smoothing)
    if k > 0 and epochs > 0:
        prev = load_checkpoint(run.round_dir(k - 1) / CKPT_NAME)
        warm_start(module.net, prev["state_dict"])
    t0 = time.time()
    ckpt_dir = rdir / "lightning"
    last = ckpt_dir / "last.ckpt"
    if epochs > 0:
        reporter = RunReporter(run, rdir / "metrics.csv", "supernet", epochs)
        trainer = make_trainer(cfg.trainer, epochs, rdir, [reporter], grad_clip=sc.grad_clip,
                               unused_parameters=True, checkpoint_dir=ckpt_dir)
        dm = NasDataModule(cfg.data, cfg.seed, splits)
        trainer.fit(module, datamodule=dm, ckpt_path=str(last) if resume and last.exists() else None)
        if trainer.received_sigterm or stop_requested():
            raise JobStopped()
        if not trainer.is_global_zero:
            return {}
    elif k > 0:
        prev = load_checkpoint(run.round_dir(k - 1) / CKPT_NAME)
        warm_start(module.net, prev["state_dict"])
    save_supernet(rdir / CKPT_NAME, module, space, cfg, spec, epochs)
    return {"round": k, "epochs": epochs, "seconds": time.time() - t0}
