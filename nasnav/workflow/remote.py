"""Standalone trainings and the supernet as Slurm jobs, through submitit (``cluster.backend: slurm``).

Nothing here schedules: Slurm does. This module submits, watches and collects.

- **Trainings** (spot checks, retrain seeds, top-k finalists): one job per training, submitted as one job
  array (``map_array``; at most ``cluster.max_parallel`` run at once). Each job loads the data from the
  config, as the local workers do, trains on its one task (``cluster.gpus_per_task`` GPUs,
  ``cluster.cpus_per_task`` threads) and returns its result, which is handed to the caller's ``on_done``
  here as it arrives: the caller records it in the run folder at once, as for a local training.
- **The supernet**: one job of ``trainer.num_nodes`` nodes x ``trainer.devices`` tasks, started by
  submitit with ``srun``; Lightning's SLURM environment wires the tasks into one DDP training.

Files: ``RUN/cluster/<group>/`` is submitit's folder (job scripts, pickled calls and results, logs) and
holds ``jobs.json``, the jobs as this process last saw them (the app reads it). A shared file system
holds the run folder: the jobs write into it where they run.

A job that ends without a result (scancel from outside, pre-emption, node failure, time limit) is
submitted again, up to ``cluster.retries`` times, and resumes from its last epoch checkpoint; a job
cancelled from the app (``jobs.slurm.cancel``) stops the whole work instead, keeping what finished.
Finished trainings are never trained again: their results are already recorded by ``on_done``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shlex
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import submitit
import torch
from submitit.core.utils import UncompletedJobError

from nasnav.config import Config, config_from_dict
from nasnav.errors import InvalidInput
from nasnav.jobs import slurm
from nasnav.jobs.control import REPO_ROOT
from nasnav.space import SearchSpace
from nasnav.stop import JobStopped, stop_requested
from nasnav.store import layout
from nasnav.store.io import write_json
from nasnav.store.run_dir import RunDir, arch_key

log = logging.getLogger(__name__)

POLL_S = 2.0  # how often the queue is asked (one squeue call for all jobs)
GONE_GRACE_S = 10.0  # a job out of the queue without a result file: wait this long for the file (shared FS lag)


# ---- what runs in a job ------------------------------------------------------------------------------------
class TrainingTask(submitit.helpers.Checkpointable):
    """One standalone training in a Slurm job: ``work`` (``trainings._train``, handed in by the caller so that
    this module imports neither trainings nor the supernet job: they import it). On pre-emption or the time
    limit submitit requeues the same call, which resumes from the training's checkpoint."""

    def __init__(self, work: Callable):
        self.work = work  # pickled by reference (module and name) into the job

    def __call__(self, config: dict, space: dict, training) -> dict:
        from nasnav.workflow.runs import load_data

        cfg = config_from_dict(config, "cluster job config")
        torch.set_num_threads(cfg.cluster.cpus_per_task)
        one = "0," if cfg.cluster.gpus_per_task and cfg.trainer.accelerator in ("gpu", "cuda", "auto") else 1
        here = dataclasses.replace(cfg, trainer=dataclasses.replace(cfg.trainer, devices=one, num_nodes=1,
                                                                    strategy="auto"))
        return _outcome(lambda: self.work(here, SearchSpace.from_dict(space, cfg.kind), load_data(cfg), training,
                                       True, None))


class SupernetTask(submitit.helpers.Checkpointable):
    """One task of the supernet job (one per device of every node); Lightning joins them into one training.
    ``work``: ``supernet.train_supernet_here``, handed in by the caller (as for ``TrainingTask``)."""

    def __init__(self, work: Callable):
        self.work = work

    def __call__(self, run_path: str, config: dict, k: int, resume: bool) -> dict:
        cfg = config_from_dict(config, "cluster job config")
        return _outcome(lambda: self.work(RunDir(run_path), cfg, k, resume=resume))

    def checkpoint(self, run_path: str, config: dict, k: int, resume: bool):
        return submitit.helpers.DelayedSubmission(self, run_path, config, k, True)  # requeued: resume


def _outcome(work: Callable[[], dict]) -> dict:
    """A job's answer: its result, or why it has none (a user error is the user's, not a crash)."""
    try:
        return {"ok": work()}
    except JobStopped:  # SIGTERM (scancel, pre-emption): the submitting process resubmits it
        return {"stopped": True}
    except InvalidInput as e:
        return {"invalid": str(e)}


# ---- submitting and watching -------------------------------------------------------------------------------
def executor(cfg: Config, folder: Path, name: str, nodes: int = 1, tasks_per_node: int = 1) -> submitit.AutoExecutor:
    """A Slurm executor under the ``cluster`` settings: every task gets ``gpus_per_task`` GPUs and
    ``cpus_per_task`` cores."""
    c = cfg.cluster
    ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
    extra = {"partition": c.partition} if c.partition else {}
    # the jobs import this nasnav, wherever the command was started (sbatch passes the environment on)
    path = f"export PYTHONPATH={shlex.quote(str(REPO_ROOT))}${{PYTHONPATH:+:$PYTHONPATH}}"
    ex.update_parameters(name=name, nodes=nodes, tasks_per_node=tasks_per_node, cpus_per_task=c.cpus_per_task,
                         slurm_setup=[path],
                         timeout_min=c.time_min, slurm_array_parallelism=c.max_parallel,
                         slurm_additional_parameters={**extra, **c.sbatch},
                         **({"gpus_per_node": c.gpus_per_task * tasks_per_node} if c.gpus_per_task else {}))
    return ex


@dataclass
class _Item:
    name: str  # what the app shows (the architecture and seed, or the supernet's round)
    task: Callable
    args: tuple
    retry_args: tuple  # the call of a resubmission (the supernet's resumes)
    job: submitit.Job | None = None
    attempt: int = 1
    state: str = "pending"
    slurm_state: str = ""
    gone_since: float | None = None
    history: list[str] = field(default_factory=list)  # ids of earlier attempts


class JobGroup:
    """Jobs submitted together (one spot check, one retrain, one supernet), watched until each has a result."""

    def __init__(self, cfg: Config, folder: Path, ex: submitit.AutoExecutor):
        slurm.require()
        self.cfg, self.folder, self.ex, self.items = cfg, Path(folder), ex, []
        self.folder.mkdir(parents=True, exist_ok=True)

    def submit(self, items: list[_Item]) -> None:
        """Submit ``items``: one array when there are several of the same call."""
        if not items:
            return
        if len(items) > 1:
            jobs = self.ex.map_array(items[0].task, *zip(*(it.args for it in items)))
        else:
            jobs = [self.ex.submit(items[0].task, *items[0].args)]
        for it, job in zip(items, jobs):
            it.job = job
        self.items += items
        self.save()
        log.info(f"submitted {len(items)} Slurm job(s): {', '.join(str(j.job_id) for j in jobs)}")

    def results(self) -> Iterator[tuple[_Item, dict]]:
        """Each item's result as it arrives; resubmits killed jobs; JobStopped on a stop request or a cancel
        from the app (the other jobs are cancelled then, and on any error)."""
        try:
            while live := [it for it in self.items if it.state in slurm.LIVE_STATES]:
                if stop_requested():
                    raise JobStopped()
                queued = slurm.queue_states([str(it.job.job_id) for it in live])
                changed = False
                for it in live:
                    res = self._check(it, queued.get(str(it.job.job_id)))
                    changed = changed or res is not None or it.state not in slurm.LIVE_STATES
                    if res is not None:
                        self.save()
                        yield it, res
                self.save()
                if not changed:
                    time.sleep(POLL_S)
        finally:
            self.cancel_live()

    def _check(self, it: _Item, queued: str | None) -> dict | None:
        """Look at one live job: its result when it has one (None otherwise; state updated, or resubmitted)."""
        job_id = str(it.job.job_id)
        if all(it.job.task(i).paths.result_pickle.exists() for i in range(it.job.num_tasks)):
            out = self._read(it)
            if "ok" in out:
                it.state = "done"
                return out["ok"]
            if "invalid" in out:
                it.state = "failed"
                raise InvalidInput(out["invalid"])
            # {"stopped"}: SIGTERM reached the training (scancel, pre-emption). Slurm may requeue the same job
            # (then it is queued again and writes a new result): forget this one and watch the queue
            for i in range(it.job.num_tasks):
                it.job.task(i).paths.result_pickle.unlink(missing_ok=True)
        if queued is not None:
            it.state, it.slurm_state, it.gone_since = slurm.short_state(queued), queued, None
            return None
        it.gone_since = it.gone_since or time.time()
        if time.time() - it.gone_since < GONE_GRACE_S:
            return None
        ended = slurm.ended_state(job_id) or "GONE"
        it.slurm_state = ended
        return self._lost(it, f"ended {ended} without a result")

    def _read(self, it: _Item) -> dict:
        try:
            outs = it.job.results()  # one per task; the supernet's rank 0 holds the result
        except UncompletedJobError:
            return {"stopped": True}
        except Exception as e:  # the task raised: a bug, reported with the job's traceback
            it.state = "failed"
            raise RuntimeError(f"Slurm job {it.job.job_id} ({it.name}) failed:\n{e}") from None
        first = outs[0] if isinstance(outs, list) else outs
        return first if isinstance(first, dict) else {"stopped": True}

    def _lost(self, it: _Item, why: str) -> None:
        """A job that ended without a result: cancelled from the app (stop), or resubmitted (resuming)."""
        job_id = str(it.job.job_id)
        if slurm.cancelled(self.folder.parent, job_id):
            it.state = "cancelled"
            raise JobStopped()
        if it.attempt > self.cfg.cluster.retries:
            it.state = "failed"
            raise RuntimeError(f"Slurm job {job_id} ({it.name}) {why}, after {it.attempt} attempts "
                               f"(cluster.retries: {self.cfg.cluster.retries}); its log: "
                               f"{self.folder / it.job.paths.stdout.name}")
        log.warning(f"Slurm job {job_id} ({it.name}) {why}: submitting it again (attempt {it.attempt + 1}), "
                    "resuming from its checkpoint")
        it.history.append(job_id)
        it.job = self.ex.submit(it.task, *it.retry_args)
        it.attempt, it.state, it.gone_since = it.attempt + 1, "pending", None
        return None

    def cancel_live(self) -> None:
        live = [str(it.job.job_id) for it in self.items if it.state in slurm.LIVE_STATES]
        slurm.scancel(live)
        for it in self.items:
            if it.state in slurm.LIVE_STATES:
                it.state = "cancelled"
        self.save()

    def save(self) -> None:
        write_json(self.folder / layout.CLUSTER_JOBS, [
            {"name": it.name, "job_id": str(it.job.job_id), "state": it.state, "slurm_state": it.slurm_state,
             "attempt": it.attempt, "earlier": it.history, "log_out": it.job.paths.stdout.name,
             "log_err": it.job.paths.stderr.name, "updated": time.time()} for it in self.items])


# ---- the two kinds of work ---------------------------------------------------------------------------------
def run_trainings(cfg: Config, space: SearchSpace, todo: list, on_done: Callable, folder: Path,
                  work: Callable) -> int:
    """Every training of ``todo`` as a Slurm job (one array) running ``work`` (``trainings._train``);
    ``on_done(training, result)`` as each
    finishes. A training without a checkpoint folder gets one here, named by everything that decides it
    (so a later job resumes only the same training), removed once it is done, so that a killed job
    resumes. Returns the number of jobs."""
    folder = Path(folder)
    config, space_d = cfg.to_dict(), space.to_dict()
    ckpt = {}
    for t in todo:
        ident = hashlib.sha1(json.dumps([config, space_d, repr(t)], sort_keys=True, default=str).encode()).hexdigest()
        ckpt[t] = t.checkpoint_dir or str(folder / "ckpt" / f"{arch_key(t.arch)}_s{t.seed}_{ident[:10]}")
    items = [_Item(f"{t.arch} seed {t.seed}", TrainingTask(work), args, args)
             for t in todo for args in [(config, space_d, dataclasses.replace(t, checkpoint_dir=ckpt[t]))]]
    group = JobGroup(cfg, folder, executor(cfg, folder, "nasnav-training"))
    try:
        group.submit(items)
        for it, res in group.results():
            t = todo[items.index(it)]
            on_done(t, res)
            if t.checkpoint_dir is None:
                shutil.rmtree(ckpt[t], ignore_errors=True)
    finally:
        group.cancel_live()  # whatever ended this (a stop, an error in on_done): no job is left running
    return len(todo)


def train_supernet(run: RunDir, cfg: Config, k: int, resume: bool, work: Callable) -> dict:
    """Round k's supernet as one Slurm job: ``trainer.num_nodes`` nodes x ``trainer.devices`` tasks, each
    running ``work`` (``supernet.train_supernet_here``)."""
    devices = cfg.trainer.devices
    if not isinstance(devices, int) or devices < 1:
        raise InvalidInput(f"trainer.devices: {devices!r}; with cluster.backend: slurm the supernet job needs a "
                           "count of devices per node (e.g. 4): one Slurm task each")
    folder = slurm.group_dir(run, f"supernet-r{k:03d}")
    ex = executor(cfg, folder, "nasnav-supernet", nodes=cfg.trainer.num_nodes, tasks_per_node=devices)
    args = (str(run.path), cfg.to_dict(), k, resume)
    group = JobGroup(cfg, folder, ex)
    try:
        group.submit([_Item(f"supernet of round {k}", SupernetTask(work), args, (*args[:3], True))])
        for _, res in group.results():
            return res
    finally:
        group.cancel_live()
    raise JobStopped()  # no result: only a stop ends the loop without one
