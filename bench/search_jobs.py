"""The runs of ``bench/search_efficiency.py`` (a nasnav pipeline, or one baseline, for one repetition) as
tasks, in this process or side by side in ``jobs`` worker processes.

Each process holds the same config, data split and standalone trainer (bench/standalone.py; its cache
file is shared, an entry another process appended is read on a miss). Times are the trainer's clock:
with ``cpu``, a process's CPU seconds, which side-by-side processes (or other jobs on the machine) do not
inflate the way they inflate wall time.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import multiprocessing
import os
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from bench.common import engine_progress, quiet_engine, set_threads
from bench.search_methods import TRAIN_SEED, Curve, baseline
from bench.standalone import StandaloneTrainer

_STATE: dict = {}


def load(config_path: str, sets: list[str], quick: bool = False):
    from nasnav.config import load_config

    cfg = load_config(config_path, sets)
    if quick:
        cfg.supernet.epochs, cfg.supernet.warm_start_epochs, cfg.search.budget = 1, 1, 10
    return cfg


def setup(config_path: str, sets: list[str], quick: bool, epochs: int | None, cache: str, threads: int | None,
          clock: str) -> dict:
    """This process's config, data split, space and trainer (once per process)."""
    from nasnav.workflow.runs import load_data

    if multiprocessing.parent_process() is not None:  # a worker: it ends with the process that started it
        threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()

    set_threads(threads)
    quiet_engine()
    cfg = load(config_path, sets, quick)
    splits = load_data(cfg)
    _STATE.update(init=(config_path, sets, quick, epochs, cache, threads, clock), digest=_digest(config_path), cfg=cfg, splits=splits, space=cfg.search_space(), clock=clock,
                  trainer=StandaloneTrainer(cfg, splits, epochs, cache=cache, clock=clock))
    return _STATE


def _digest(config_path: str) -> str:
    """The config file's settings (its comments aside) as a short hash."""
    import yaml

    settings = yaml.safe_load(Path(config_path).read_text())
    return hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _state(init: tuple) -> dict:
    """This process's state for ``init``, set up anew when the settings or the config file's content changed."""
    if _STATE.get("init") != init or _STATE.get("digest") != _digest(init[0]):
        setup(*init)
    return _STATE


def _exit_with_parent(ppid: int) -> None:
    """A killed benchmark leaves no worker behind, training on for nobody."""
    while os.getppid() == ppid:
        time.sleep(2)
    os._exit(1)


def _clock(kind: str) -> float:
    return time.process_time() if kind == "cpu" else time.perf_counter()


@contextlib.contextmanager
def _same_split(pipeline, cfg, splits):
    """The product's data cache holds ``splits`` for ``cfg`` (its seed is the rep's, the split the base
    config's) inside the block only: nothing after it (another run in this process) reads that split."""
    pipeline._SPLITS.clear()
    pipeline._SPLITS[(repr(cfg.data), cfg.seed)] = splits
    try:
        yield
    finally:
        pipeline._SPLITS.clear()


def run_nasnav(cfg, splits, trainer, rep: int, topk: int, root: Path, ranking: tuple[int, int] = (0, 0),
               clock: str = "wall") -> tuple[Curve, dict]:
    """The headless pipeline with seed ``rep`` (the data split stays the base config's), then the
    product's ``topk`` picks of its last round (``steering.pick``, as the pipeline retrains) trained
    standalone; with ``ranking`` (n, top), the rounds' ranking measured on the run (not timed)."""
    from bench.search_rounds import round_ranking
    from nasnav.store.records import read_candidates
    from nasnav.store.run_dir import RunDir
    from nasnav.workflow import runs as pipeline
    from nasnav.workflow.pipeline import run_pipeline
    from nasnav.workflow.predictions import round_recommendations

    c = copy.deepcopy(cfg)
    c.seed = rep
    c.retrain.top_k = 0  # the pipeline retrains none: the bench trains its picks with the baselines' trainer
    with _same_split(pipeline, c, splits):  # the same split for every rep and method
        t = _clock(clock)
        with engine_progress(f"  nasnav rep {rep}: "):  # the pipeline's progress (logger "nasnav") on stderr
            run_pipeline(c, root / f"nasnav-{rep}")
            run = RunDir(root / f"nasnav-{rep}")
            k = run.current_round()
            picks = list(round_recommendations(run, c, k, n=topk)["arch"])
        t_pipe = _clock(clock) - t
        curve = Curve(t_pipe)
        for arch in picks:
            res = trainer(arch, TRAIN_SEED)
            curve.add(res["seconds"], res)
        scored = sum(len(read_candidates(run, j)) for j in run.rounds())
        meta = {"pipeline_s": t_pipe, "rounds": k + 1, "scored": scored}
        if ranking[0] or ranking[1]:
            meta["ranking"] = round_ranking(run, c, trainer, ranking[0], ranking[1], np.random.default_rng([rep, 11]))
    return curve, meta


def task(method: str, rep: int, options: dict) -> tuple[Curve, dict]:
    """One run: ``nasnav`` (options: topk, ranking), a baseline (options: max_evals, max_seconds), or
    ``reseed`` (options: pairs of architecture and seed to train: the re-measurement's, no curve)."""
    st = _STATE
    before = st["trainer"].trained
    if method == "reseed":
        from bench.search_reseed import train_pairs

        curve, meta = Curve(), {"tests": train_pairs(st["trainer"], options["pairs"])}
    elif method == "nasnav":
        with tempfile.TemporaryDirectory(prefix="nasnav-search-") as tmp:
            curve, meta = run_nasnav(st["cfg"], st["splits"], st["trainer"], rep, options["topk"], Path(tmp),
                                     options.get("ranking", (0, 0)), st["clock"])
    else:
        curve = baseline(method, st["space"], st["trainer"], rep, options["max_evals"], options["max_seconds"])
        meta = {}
    return curve, {**meta, "trained": st["trainer"].trained - before}


def _key(t: tuple, init: tuple) -> str:
    """A task's identity in the progress file. A baseline's run depends on what its trainings depend on (the
    standalone trainer's key: data, space, retrain and trainer settings, epochs) and its clock, so it is
    reused when only nasnav's settings change; a nasnav run depends on the whole config file's content and
    the overrides (an edited config under the same path is another benchmark)."""
    if t[0] != "nasnav":
        return json.dumps([t[0], t[1], t[2], _state(init)["trainer"].key, init[6]], sort_keys=True, default=str)
    return json.dumps([t[0], t[1], t[2], init[:5], init[6], _digest(init[0])], sort_keys=True, default=str)


def run_tasks(tasks: list[tuple[str, int, dict]], jobs: int, init: tuple, done=None,
              progress: Path | None = None) -> list[tuple[Curve, dict]]:
    """Every task's result, in order; ``jobs`` > 1: in that many worker processes (spawned, each set up
    with ``init``, the arguments of ``setup``); ``done(i, result)`` as each one finishes. With
    ``progress`` (a JSON-lines file), each finished task is appended there, and a task found there (the
    same task and settings) is not run again: an interrupted benchmark goes on where it stopped."""
    finished: dict[str, tuple[Curve, dict]] = {}
    if progress is not None and Path(progress).exists():
        for line in Path(progress).read_text().splitlines():
            try:
                e = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by the interruption
            finished[e["key"]] = (Curve.from_dict(e["curve"]), e["meta"])
    keys = [_key(t, init) for t in tasks]
    todo = [i for i, k in enumerate(keys) if k not in finished]

    def record(j: int, res) -> None:
        i = todo[j]
        if progress is not None:
            with open(progress, "a") as f:
                f.write(json.dumps({"key": keys[i], "curve": res[0].to_dict(), "meta": res[1]}) + "\n")
        finished[keys[i]] = res
        if done:
            done(i, res)

    _run([tasks[i] for i in todo], jobs, init, record)
    return [finished[k] for k in keys]


def _run(tasks: list[tuple[str, int, dict]], jobs: int, init: tuple, done) -> None:
    if jobs <= 1:
        _state(init)
        for i, t in enumerate(tasks):
            done(i, task(*t))
        return
    if not tasks:
        return
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=setup, initargs=init) as pool:
        futures = {pool.submit(task, *t): i for i, t in enumerate(tasks)}
        for f in as_completed(futures):
            done(futures[f], f.result())
