"""The stages of a search on a run directory: create, train the supernet, score candidates.

Each stage reads what it needs from the run directory and writes its results back, so any
stage can run in a separate process (a job), be stopped, and be resumed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
import traceback
import warnings
from pathlib import Path

import torch

from nasnav.config import Config, config_from_dict, save_config
from nasnav.jobs.control import JobLock
from nasnav.space import SearchSpace
from nasnav.store import layout
from nasnav.store.io import read_yaml, sweep_temp_files, write_yaml
from nasnav.store.run_dir import RunDir


class JobStopped(Exception):
    """Raised inside a job when a stop (SIGTERM) was requested."""


class DiskFull(ValueError):
    """A job could not write because the disk (or quota) is full. A ValueError: the CLI prints the
    message without a traceback; nothing written before is damaged (writes are atomic)."""


_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _safe_status(run: RunDir, **fields) -> None:
    """Record a job's end without masking the error that ended it (a full disk fails this write too)."""
    with contextlib.suppress(OSError, ValueError):
        run.write_status(**fields)


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
    lock.acquire()  # JobRunning (a ValueError) when another job holds the run: its status is left alone
    with contextlib.suppress(OSError):
        sweep_temp_files(run.path)  # half-written files of killed writers (only those whose pid is gone)
    try:
        run.write_status(state="running", job=name, stage=stage or name, pid=os.getpid(), progress=0.0,
                         message=f"{name} started", error=None, started=time.time(), eta_seconds=None)
        yield
        if stop_requested():
            raise JobStopped()
        run.write_status(state="done", progress=1.0, message=f"{name} finished", eta_seconds=None)
    except (JobStopped, KeyboardInterrupt):
        _safe_status(run, state="stopped", message=f"{name} stopped; resume continues from the last saved state")
        raise JobStopped() from None
    except SystemExit as e:  # Lightning exits this way after SIGTERM
        _safe_status(run, state="stopped" if stop_requested() else "failed",
                     message=f"{name} stopped" if stop_requested() else f"{name} exited ({e.code})")
        raise
    except ValueError as e:
        _safe_status(run, state="failed", error=str(e), message=f"{name} failed: {e}")
        raise
    except OSError as e:
        if e.errno not in _DISK_FULL:
            _safe_status(run, state="failed", error=f"{type(e).__name__}: {e}", message=f"{name} failed",
                         extra={"traceback": traceback.format_exc()[-4000:]})
            raise
        msg = (f"disk full: the {name} job could not write {e.filename or 'its files'} ({e.strerror}); "
               "free some space and start it again: the files it wrote before are intact and it resumes from them")
        _safe_status(run, state="failed", error=msg, message=f"{name} failed: disk full")
        raise DiskFull(msg) from None
    except Exception as e:
        _safe_status(run, state="failed", error=f"{type(e).__name__}: {e}", message=f"{name} failed",
                     extra={"traceback": traceback.format_exc()[-4000:]})
        raise
    finally:
        with contextlib.suppress(OSError):  # a full disk must not hide the job's own error
            lock.release()
        signal.signal(signal.SIGTERM, previous)


# ---- run directory contents -----------------------------------------------------------------
def create_run(cfg: Config, path: str | Path, exist_ok: bool = False) -> RunDir:
    """A new run directory with the resolved config and round 0's space."""
    run = RunDir.create(path, exist_ok=exist_ok)
    save_config(cfg, run.config_path)
    write_yaml(run.ensure_round_dir(0) / layout.SPACE, cfg.search_space().to_dict())
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
    path = run.round_dir(k) / layout.SPACE
    if not path.exists():
        raise ValueError(f"{path}: round {k} has no space.yaml")
    try:
        space = SearchSpace.from_dict(read_yaml(path), cfg.kind)
    except ValueError as e:
        msg = str(e)
        raise ValueError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None
    from nasnav.model.ops import list_ops

    return space.validate(list_ops(cfg.kind), where=str(path))


# ---- data --------------------------------------------------------------------------------------
_SPLITS: dict = {}


def load_data(cfg: Config):
    """The data splits of a config, cached per process (the same data for every stage)."""
    from nasnav.data.splits import load_splits

    key = (repr(cfg.data), cfg.seed)
    if key not in _SPLITS:
        _SPLITS.clear()
        _SPLITS[key] = load_splits(cfg.data, cfg.seed)
    return _SPLITS[key]


# ---- supernet ------------------------------------------------------------------------------
def save_supernet(path: Path, module, space: SearchSpace, cfg: Config, spec, epochs: int) -> None:
    """Weights plus everything needed to rebuild them (space, input spec, config)."""
    import io

    from nasnav.store.io import atomic_write_bytes

    payload = {
        "state_dict": {k: v.detach().cpu() for k, v in module.net.state_dict().items()},
        "space": space.to_dict(),
        "spec": spec.to_dict(),
        "config": cfg.to_dict(),
        "epochs": epochs,
    }
    bad = _non_finite(payload["state_dict"])
    if bad:
        from nasnav.train.trainer import NonFiniteLossError

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
        raise ValueError(f"{path}: no supernet checkpoint; train the supernet first (`python -m nasnav supernet RUN`)")
    try:
        with warnings.catch_warnings():  # a damaged file also draws torch's pickle-protocol warning: the error says it all
            warnings.simplefilter("ignore", UserWarning)
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        from nasnav.train.trainer import describe_load_error

        raise ValueError(f"{path}: not a readable nasnav checkpoint ({describe_load_error(e)}); "
                         "train the supernet again to replace it") from None
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in CKPT_KEYS) or not isinstance(ckpt["state_dict"], dict):
        raise ValueError(f"{path}: not a nasnav supernet checkpoint (expected a mapping with {', '.join(CKPT_KEYS)}); "
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
        raise ValueError(f"{path}: its space is not readable ({e}); train the supernet again") from None
    ours = space.unpruned().to_dict()
    if theirs != ours:
        diff = [f"stage {i}" for i, (a, b) in enumerate(zip(theirs["stages"], ours["stages"])) if a != b]
        if len(theirs["stages"]) != len(ours["stages"]):
            diff.append(f"{len(theirs['stages'])} stages instead of {len(ours['stages'])}")
        if theirs.get("stem_channels") != ours.get("stem_channels"):
            diff.append("stem_channels")
        raise ValueError(f"{path}: this checkpoint was trained on another search space (differs in "
                         f"{', '.join(diff) or 'its stages'}); it does not belong to this run: train the "
                         "supernet of this round again (`python -m nasnav supernet RUN`)")
    data = (ckpt.get("config") or {}).get("data") if isinstance(ckpt.get("config"), dict) else None
    if isinstance(data, dict):
        for key in ("source", "path", "target", "image_size", "grayscale"):
            if key in data and data[key] != getattr(cfg.data, key):
                raise ValueError(f"{path}: this checkpoint was trained on other data (data.{key} {data[key]!r}, "
                                 f"this run has {getattr(cfg.data, key)!r}); train the supernet of this round again")
    bad = _non_finite(ckpt["state_dict"])
    if bad:
        raise ValueError(f"{path}: weight '{bad}' is NaN or infinite (training diverged); lower supernet.lr and "
                         "train the supernet again")


def load_supernet(run: RunDir, cfg: Config, k: int | None = None):
    """The trained Supernet of round k (current round by default), in eval mode on the CPU."""
    from nasnav.model.supernet import Supernet

    k = run.current_round() if k is None else k
    path = run.round_dir(k) / layout.SUPERNET
    ckpt = load_checkpoint(path)
    check_checkpoint(ckpt, path, round_space(run, cfg, k), cfg)
    from nasnav.data.splits import InputSpec

    try:
        spec = InputSpec.from_dict(ckpt["spec"])
        space = SearchSpace.from_dict(ckpt["space"], spec.kind)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: damaged checkpoint ({e}); train the supernet again") from None
    net = Supernet(space, spec.kind, spec.shape[0], spec.num_classes)
    try:
        net.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0][:300]
        raise ValueError(f"{path}: checkpoint does not match its space ({first}); train the supernet again") from None
    return net.eval(), spec


def train_supernet(run: RunDir, cfg: Config, k: int | None = None, resume: bool = False) -> dict:
    """Train (round 0) or fine-tune (later rounds, warm start) the supernet of round k."""
    import lightning.pytorch as pl

    from nasnav.data.splits import NasDataModule
    from nasnav.model.supernet import warm_start
    from nasnav.train.modules import SupernetModule
    from nasnav.train.trainer import RunReporter, make_trainer, metric_rows_until

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
                            sampler=sc.sampler, seed=cfg.seed + 1000 * k, label_smoothing=sc.label_smoothing,
                            distill=sc.distill)
    if k > 0 and epochs > 0:
        prev = load_checkpoint(run.round_dir(k - 1) / layout.SUPERNET)
        warm_start(module.net, prev["state_dict"])
    t0 = time.time()
    ckpt_dir = rdir / "lightning"
    last = ckpt_dir / layout.LAST_CKPT
    if epochs > 0:
        done = _resume_point(last, space) if resume else 0  # epochs finished in last.ckpt (0: start over)
        rows = metric_rows_until(rdir / layout.TRAIN_METRICS, done)
        reporter = RunReporter(run, rdir / layout.TRAIN_METRICS, "supernet", epochs, first_epoch_rows=rows)
        trainer = make_trainer(cfg.trainer, epochs, rdir, [reporter], grad_clip=sc.grad_clip,
                               unused_parameters=True, checkpoint_dir=ckpt_dir, lr_key="supernet.lr")
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
    from nasnav.train.trainer import finished_epochs

    ckpt_epochs = finished_epochs(last, check=lambda hp: isinstance(hp.get("space"), dict)
                                  and _template(hp["space"]) == space.unpruned().to_dict())
    if ckpt_epochs is None:
        raise ValueError(f"{last}: this checkpoint belongs to another search space; delete it (or drop --resume) "
                         "to train this round's supernet from the start")
    return ckpt_epochs
