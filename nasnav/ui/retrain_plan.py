"""What a press of "Retrain & export" will train, and roughly how long it takes: one source for the Retrain
page's picker and the walkthrough's words, so the two never disagree.

Pure functions over the run directory (no Streamlit). The time comes from the run's own timings: the
seconds per epoch of its standalone trainings (spot checks, earlier retrainings), else of its supernet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from nasnav.analysis import trust
from nasnav.store import layout, records
from nasnav.store.io import read_csv
from nasnav.store.run_dir import RunDir

ADVISED, RECOMMENDED, CHOOSE, SAVED = ("as the spot check advises", "recommended candidate", "choose candidates",
                                      "saved selection")
WORDS = {ADVISED: "as the spot check advises", RECOMMENDED: "the recommended candidate",  # a Plan's source
         CHOOSE: "the candidates you chose", SAVED: "the best of the saved selection"}


@dataclass(frozen=True)
class Plan:
    """The networks one press retrains: how many, with how many seeds and epochs, chosen how."""

    n: int  # networks (one retrain job each)
    seeds: int  # trainings per network
    epochs: int  # per training
    source: str  # how they were chosen (WORDS of the picker's mode)
    seconds: float | None  # the estimate from the run's timings; None when the run has timed nothing yet

    def words(self) -> str:
        """'retrain 8 networks from scratch (as the spot check advises; 8 x 2 seeds x 8 epochs, about 1m 04s by
        this run's own timings), test and export them' (the walkthrough's next step)."""
        if self.n == 0:
            return "choose at least one network to retrain"
        nets = f"{self.n} network{'s' if self.n != 1 else ''}"
        them = "them" if self.n != 1 else "it"
        work = f"{self.n} x {self.seeds} seed{'s' if self.seeds != 1 else ''} x {self.epochs} epochs"
        when = (f"about {duration(self.seconds)} by this run's own timings" if self.seconds is not None
                else "no timing in this run yet to estimate the time")
        return f"retrain {nets} from scratch ({self.source}; {work}, {when}), test and export {them}"


def duration(seconds: float) -> str:
    """'45s', '3m 20s', '1h 05m'."""
    s = max(0, int(round(seconds)))
    if s >= 3600:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 60}m {s % 60:02d}s" if s >= 60 else f"{s}s"


def advice_in_space(run: RunDir, cfg) -> tuple[list[str], str] | None:
    """The latest spot check's advice (``trust.advised_retrain``), without networks the current space no
    longer holds (the check may be of an earlier round); None when none is left."""
    advice = trust.advised_retrain(records.latest_spotcheck(run, run.current_round())[1])
    if not advice:
        return None
    space = records.read_space(run, run.current_round(), kind=cfg.kind)
    archs = [a for a in advice[0] if space.contains(space.parse(a, check_active=False))]
    gone = len(advice[0]) - len(archs)
    return (archs, advice[1] + (f" ({gone} pruned since, left out)" if gone else "")) if archs else None


def default_mode(run: RunDir, cfg) -> str:
    """The picker's default: the spot check's advice where there is one, else the recommended candidate."""
    return ADVISED if advice_in_space(run, cfg) else RECOMMENDED


def seconds_per_epoch(run: RunDir) -> float | None:
    """Median seconds per epoch of the run's standalone trainings (spot checks, retrained seeds); without
    any, of its supernet's epochs (one path per step, about a standalone network's cost); None without either."""
    rates: list[float] = []
    for k in run.rounds():
        runs = read_csv(run.round_dir(k) / layout.SPOTCHECK_RUNS)
        if {"seconds", "epochs"} <= set(runs.columns):
            rates += _rates(runs["seconds"], runs["epochs"])
    for m, seeds in records.final_seeds(run):
        if m.get("epochs") and "train_seconds" in seeds.columns:
            rates += _rates(seeds["train_seconds"], pd.Series([m["epochs"]] * len(seeds)))
    if not rates:
        for k in reversed(run.rounds()):
            df = read_csv(run.round_dir(k) / layout.TRAIN_METRICS)
            if "seconds" in df.columns:
                rates = [float(s) for s in pd.to_numeric(df["seconds"], errors="coerce") if s == s and s > 0]
                if rates:
                    break
    return float(np.median(rates)) if rates else None


def _rates(seconds: pd.Series, epochs: pd.Series) -> list[float]:
    s, e = pd.to_numeric(seconds, errors="coerce"), pd.to_numeric(epochs, errors="coerce")
    return [float(a / b) for a, b in zip(s, e) if a == a and b == b and a > 0 and b > 0]


def plan(run: RunDir, cfg, n: int, seeds: int | None = None, mode: str = RECOMMENDED) -> Plan:
    """A press that retrains ``n`` networks chosen by the picker's ``mode``, with ``seeds`` seeds each (the
    config's by default)."""
    seeds = int(cfg.retrain.seeds if seeds is None else seeds)
    epochs = int(cfg.retrain.epochs)
    rate = seconds_per_epoch(run)
    return Plan(n, seeds, epochs, WORDS.get(mode, mode), None if rate is None else n * seeds * epochs * rate)


def default_plan(run: RunDir, cfg) -> Plan:
    """What the Retrain page retrains when nothing is changed on it: the spot check's advice, else one network."""
    advice = advice_in_space(run, cfg)
    return plan(run, cfg, len(advice[0]), mode=ADVISED) if advice else plan(run, cfg, 1)
