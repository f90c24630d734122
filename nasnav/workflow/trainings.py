"""Standalone trainings side by side: one worker process per device (or several per device), each
training one architecture after another; the one place spot checks and retraining run trainings.

The caller decides WHAT to train (a list of ``Training``) and what to keep of each result (its
``on_done``, called in this process as each training finishes, in the order they finish: it appends
the result to its file at once, so a killed job keeps every finished training and resumes without
them). ``run_trainings`` decides WHERE: with one slot (``train.devices.training_slots``: one per
device of ``trainer.devices``, ``trainer.trainings_per_device`` on each) they run here, one after
another, exactly as a single training runs; with more, in worker processes.

This process trains on the first slot; worker processes take the others. Workers are spawned (a fresh
interpreter: nothing of this process's CUDA context or thread pools, which a fork would copy in a
broken state) and import torch and Lightning first, which takes seconds; this process trains
meanwhile, so short jobs lose nothing to it (the workers' results are handed to ``on_done`` between its
own trainings: a job killed during one of those retrains what was waiting). Each worker sees only its own GPU
(``CUDA_VISIBLE_DEVICES``) or its share of the CPU cores (``torch.set_num_threads``), gets the data
once (tensors travel as shared memory) and trains single-process under the ``retrain`` and ``trainer``
settings. A stop request (SIGTERM) ends the workers; what finished is kept.

With ``cluster.backend: slurm`` every training is a Slurm job instead (``workflow.remote``): same
``Training``, same ``on_done``, same results.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import queue
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from nasnav.config import Config, config_from_dict
from nasnav.errors import InvalidInput
from nasnav.space import SearchSpace
from nasnav.stop import JobStopped, stop_requested
from nasnav.store.run_dir import RunDir
from nasnav.train.devices import training_slots
from nasnav.train.standalone import train_standalone
from nasnav.train.tracking import Tracking

log = logging.getLogger(__name__)

POLL_S = 0.5  # how often the parent looks for a stop request while the workers train
PARENT_TRAINS = True  # this process trains on the first slot (False: workers on every slot; tests use it)


@dataclass(frozen=True)
class Training:
    """One standalone training from scratch, and what it writes besides its result."""

    arch: str
    seed: int
    epochs: int
    test: bool = False  # also score the test split
    metrics_path: str | None = None  # the per-epoch curve (metrics.csv)
    checkpoint_dir: str | None = None  # last.ckpt each epoch: a killed training resumes from it
    keep_weights: bool = False  # hand the trained weights back (``state_dict`` in the result)
    quiet: bool = True  # no progress bar (in a worker there never is one)
    tracking: Tracking | None = None  # which training of which run, for trainer.logger


RESULT_KEYS = ("val_acc", "val_loss", "test_acc", "test_loss", "train_seconds", "epochs_trained", "best_epoch",
               "is_global_zero", "rows")


def _train(cfg: Config, space: SearchSpace, splits, t: Training, single_process: bool, run: RunDir | None) -> dict:
    t0, c0 = time.time(), time.process_time()
    res = train_standalone(cfg, space, space.parse(t.arch, check_active=False), splits, t.seed, t.epochs,
                           metrics_path=Path(t.metrics_path) if t.metrics_path else None, run=run, test=t.test,
                           quiet=t.quiet or run is None, single_process=single_process,
                           checkpoint_dir=Path(t.checkpoint_dir) if t.checkpoint_dir else None, tracking=t.tracking)
    out = {k: res[k] for k in RESULT_KEYS if k in res}
    out |= {"seconds": time.time() - t0, "cpu_seconds": time.process_time() - c0}  # scoring included
    if t.keep_weights:
        out["state_dict"] = {k: v.detach().cpu() for k, v in res["module"].net.state_dict().items()}
    return out


def run_trainings(cfg: Config, space: SearchSpace, todo: list[Training], splits,
                  on_done: Callable[[Training, dict], None], run: RunDir | None = None,
                  single_process: bool = True, slots: list[dict] | None = None, remote: Path | None = None) -> int:
    """Train every item of ``todo``; ``on_done(item, result)`` as each finishes. Returns the number of
    workers used (1: here, in order). ``single_process``: here, train on one device even if the trainer
    asks for several (spot checks); False keeps the trainer's DDP for a lone training (a retrain seed).
    ``run``: where a training here reports its progress (workers leave that to ``on_done``).
    ``remote``: the folder of the Slurm jobs when ``cluster.backend`` is slurm (one job per training)."""
    if cfg.cluster.backend == "slurm" and todo:
        from nasnav.workflow import remote as cluster  # submitit is imported only where it is used

        if remote is None:
            raise InvalidInput("cluster.backend: slurm: these trainings have no folder for their Slurm jobs")
        return cluster.run_trainings(cfg, space, todo, on_done, remote, work=_train)
    slots = training_slots(cfg.trainer) if slots is None else slots
    workers = min(len(slots), len(todo))
    if workers <= 1:
        for t in todo:
            if stop_requested():
                raise JobStopped()
            on_done(t, _train(cfg, space, splits, t, single_process, run))
        return 1
    _in_workers(cfg, space, todo, splits, on_done, slots[:workers])
    return workers


def _in_workers(cfg: Config, space: SearchSpace, todo: list[Training], splits, on_done, slots: list[dict]) -> None:
    """This process trains on the first slot while worker processes start on the others (their start-up,
    an import of torch and Lightning, is hidden that way); every training comes from one shared queue."""
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no CUDA or thread pool of this one's
    tasks, results = ctx.Queue(), ctx.Queue()
    for i, t in enumerate(todo):
        tasks.put((i, t))
    payload = {"config": cfg.to_dict(), "space": space.to_dict(), "splits": splits}
    first = 1 if PARENT_TRAINS else 0
    procs = [ctx.Process(target=_worker, args=(slot, payload, tasks, results), daemon=True,
                         name=f"nasnav-training-{i}") for i, slot in enumerate(slots[first:], first)]
    log.info(f"{len(todo)} trainings on {len(slots)} processes ({', '.join(_where(s) for s in slots)})")
    here = _slot_config(cfg, slots[0])
    pending = set(range(len(todo)))

    def collect(timeout: float | None) -> None:
        """Hand finished trainings of the workers to ``on_done`` (wait up to ``timeout`` for the first)."""
        while pending:
            try:
                i, ok, out = results.get(timeout=timeout) if timeout else results.get_nowait()
            except queue.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"training worker {dead[0].name} died (exit code {dead[0].exitcode}) "
                                       "before finishing its trainings") from None
                return
            timeout = None
            pending.discard(i)
            if not ok:
                kind, text = out
                if kind == "stopped" or stop_requested():
                    raise JobStopped()
                if kind == "invalid":
                    raise InvalidInput(text)
                raise RuntimeError(f"a training failed in a worker process:\n{text}")
            on_done(todo[i], out)

    threads = torch.get_num_threads()
    try:
        for p in procs:
            p.start()
        torch.set_num_threads(max(1, int(slots[0]["threads"])))
        while pending:
            collect(None)
            if stop_requested():
                raise JobStopped()
            try:
                if not PARENT_TRAINS:
                    raise queue.Empty
                i, t = tasks.get(timeout=0.05)
            except queue.Empty:  # all handed out: wait for the workers
                collect(POLL_S)
                continue
            res = _train(here, space, splits, t, False, None)
            pending.discard(i)
            on_done(t, res)
    finally:
        torch.set_num_threads(threads)
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=10)
        tasks.close()
        results.close()


def _slot_config(cfg: Config, slot: dict) -> Config:
    """``cfg`` for a training in this process on ``slot``: one device, that slot's GPU if it has one."""
    devices = f"{slot['device']}," if slot["device"] is not None else 1  # "2,": Lightning's list of one GPU
    return dataclasses.replace(cfg, trainer=dataclasses.replace(cfg.trainer, devices=devices, num_nodes=1,
                                                                strategy="auto"))


def _where(slot: dict) -> str:
    return f"GPU {slot['device']}" if slot["device"] is not None else f"{slot['threads']} CPU thread(s)"


def _worker(slot: dict, payload: dict, tasks, results) -> None:
    """A worker process: its device or CPU share, the data once, then trainings until the end mark."""
    if slot["device"] is not None:  # before CUDA starts: this process sees its own GPU as cuda:0
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        ids = visible.split(",") if visible else None
        os.environ["CUDA_VISIBLE_DEVICES"] = ids[slot["device"]] if ids else str(slot["device"])
    torch.set_num_threads(max(1, int(slot["threads"])))
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)  # no device banner per training
    warnings.filterwarnings("ignore", message=".*(does not have many workers|number of training batches).*")
    cfg = config_from_dict(payload["config"], "worker config")
    space = SearchSpace.from_dict(payload["space"], cfg.kind)
    while (item := tasks.get()) is not None:  # the parent ends this process (tests end it with None)
        i, t = item
        try:
            results.put((i, True, _train(cfg, space, payload["splits"], t, True, None)))
        except JobStopped:
            results.put((i, False, ("stopped", "")))
        except InvalidInput as e:
            results.put((i, False, ("invalid", str(e))))
        except BaseException:  # reported to the parent, which ends the job with it
            results.put((i, False, ("error", traceback.format_exc())))
