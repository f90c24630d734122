"""Scoring candidates of a round with its supernet (or any evaluator): the search job."""

from __future__ import annotations

import numpy as np
import pandas as pd

from nasnav.analysis.fitness import evidence_frame
from nasnav.analysis.surrogate import make_fit
from nasnav.config import Config
from nasnav.progress import bar
from nasnav.score.evaluate import SupernetEvaluator, make_recal_batches
from nasnav.search.loop import plan_budget, run_search
from nasnav.stop import stop_requested
from nasnav.store.records import read_candidates, search_state
from nasnav.store.run_dir import RunDir
from nasnav.train.devices import scoring_device, scoring_dtype
from nasnav.workflow.runs import load_data, round_space
from nasnav.workflow.supernet import load_supernet


def supernet_evaluator(run: RunDir, cfg: Config, k: int):
    """The shared-weights evaluator of round k: its supernet, BN recalibration batches, validation split,
    on the configured accelerator (``trainer.accelerator``), in ``search.precision``."""

    net, spec = load_supernet(run, cfg, k)
    splits = load_data(cfg)
    recal = make_recal_batches(splits.x_train, cfg.search.recal_batches, cfg.data.batch_size, cfg.seed)
    device = scoring_device(cfg.trainer)
    return SupernetEvaluator(net, recal, splits.x_val, splits.y_val, tuple(spec.shape), device=device,
                             autocast=scoring_dtype(cfg.search.precision, device))


def score_candidates(run: RunDir, cfg: Config, k: int | None = None, budget: int | None = None,
                     strategy: str | None = None, evaluator=None, seconds: float | None = None,
                     resume: bool = False, fill: bool = False, should_stop=None) -> pd.DataFrame:
    """Score candidates of round k with the supernet (or ``evaluator``); appends to candidates.csv.

    ``budget`` new candidates (default search.budget) within ``seconds`` (default search.seconds);
    ``fill``: only as many as the round lacks to hold ``budget`` (idempotent, for whole rounds);
    ``resume``: continue the round's last stopped search to its target. Strategy and evolution /
    constraint parameters come from ``cfg.search``.
    """

    k = run.current_round() if k is None else k
    space = round_space(run, cfg, k)
    sc = cfg.search
    if resume:

        strategy = strategy or search_state(run, k).get("strategy")
    budget, seconds = plan_budget(run, k, budget or sc.budget, seconds if seconds is not None else sc.seconds,
                                  resume=resume, fill=fill)
    if budget == 0 or (seconds is not None and seconds <= 0):
        return read_candidates(run, k)
    if evaluator is None:
        evaluator = supernet_evaluator(run, cfg, k)
    n0 = len(read_candidates(run, k))
    rng = np.random.default_rng([cfg.seed, k, 17, n0])  # a resumed search draws fresh, reproducible numbers
    prior = None
    if cfg.steering.evidence == "all" and k > 0:  # scores of earlier rounds still hold: never score them again

        prior = evidence_frame([read_candidates(run, j) for j in run.rounds() if j < k], "all")

    shown = bar(budget or None, f"round {k}: scoring", unit="cand")  # drawn on a terminal only

    def progress(done: int, total: int) -> None:
        shown.update(done - shown.n)
        if total and (done % 5 == 0 or done == total):
            run.write_status(progress=done / total, message=f"scored {done}/{total} candidates")
        elif not total and done % 5 == 0:
            run.write_status(message=f"scored {done} candidates")

    strategy = strategy or sc.strategy
    fit = make_fit(space) if strategy == "guided" else None  # the surrogate the guided search consults
    with shown:
        return run_search(run, space, k, evaluator, budget, rng, strategy=strategy, seconds=seconds,
                          should_stop=should_stop or stop_requested, progress=progress, population=sc.population,
                          sample_size=sc.sample_size, crossover_prob=sc.crossover_prob, max_params=sc.max_params,
                          max_flops=sc.max_flops, retries=sc.mutation_retries, prior=prior, fit=fit)
