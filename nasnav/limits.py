"""Caps on what a config may ask of the machine: every resource has a limit and a refusal that names it.

Without caps one config (an upload on a shared app) could start 500 processes on a CPU, build a supernet
of a billion parameters, ask for a million epochs or fill a disk with runs. Each cap has a default sized
for a lab machine and an environment variable, set by whoever runs nasnav, that changes it on purpose
(``NASNAV_LIMIT_EPOCHS=50000``): a config itself cannot lift a cap. A refusal is an InvalidInput naming
the config key (or what was asked), the value, the limit and the variable.

- static caps (stages, epochs, budget, seeds) are checked with the config (``config_problems``), the
  channels by the space's own range check (``SearchSpace.problems``: the config and the space editor);
- the machine caps (processes of a CPU training, data loader workers) where the work runs
  (``check_cpu_processes``, ``check_data_workers``): a job may run on another machine than the app's;
- the supernet's parameters where it is built (``check_params``; ``workflow.supernet`` counts them on the
  meta device, without allocating them); the runs in a runs folder where a run is created (``check_runs``).
"""

from __future__ import annotations

import os
from pathlib import Path

from nasnav.errors import InvalidInput

ENV_PREFIX = "NASNAV_LIMIT_"


def cores() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# name: (default, what it counts); None: this machine's cores
CAPS: dict[str, tuple[int | None, str]] = {
    "stages": (64, "stages in a space"),
    "channels": (4096, "channels of one stage or of the stem"),
    "epochs": (10_000, "epochs of one training"),
    "budget": (100_000, "candidates scored in one round"),
    "seeds": (100, "trainings of one architecture or one spot check"),
    "params": (100_000_000, "parameters of the supernet"),
    "runs": (1000, "runs in one runs folder"),
    "cpu_processes": (None, "processes of CPU trainings at once (this machine's cores)"),
    "data_workers": (None, "data loader worker processes (this machine's cores)"),
}


def env_name(cap: str) -> str:
    return ENV_PREFIX + cap.upper()


def limit(cap: str) -> int:
    """The cap's value: its environment variable when set (a positive whole number), else the default."""
    default, _ = CAPS[cap]
    text = os.environ.get(env_name(cap), "").strip()
    if not text:
        return cores() if default is None else default
    if not text.isdigit() or int(text) < 1:
        raise InvalidInput(f"{env_name(cap)}: {text!r} is not a positive whole number; unset it for the default "
                           f"({'the cores of this machine' if default is None else default})")
    return int(text)


def refusal(key: str, value: int, cap: str) -> str:
    """One problem line: the key, the value, the limit and how to change it."""
    lim = limit(cap)
    return (f"{key}: {value} is above the limit of {lim:,} {CAPS[cap][1]}; use at most {lim:,} "
            f"(whoever runs nasnav can change the limit: {env_name(cap)})")


def hint(cap: str, value: int) -> str:
    """What a range message adds when ``value`` is above the cap: which limit, and how to change it."""
    if value <= limit(cap):
        return ""
    return f" (above the limit of {CAPS[cap][1]}; whoever runs nasnav can change it: {env_name(cap)})"


def config_problems(cfg) -> list[str]:
    """The static caps a config breaks, one line each (``config._cross_problems`` adds them)."""
    values = [("space.stages", len(cfg.space.stages), "stages")]  # channels: SearchSpace.problems' range
    values += [(f"supernet.{k}", getattr(cfg.supernet, k), "epochs") for k in ("epochs", "warm_start_epochs")]
    values += [(f"retrain.{k}", getattr(cfg.retrain, k), "epochs") for k in ("epochs", "spotcheck_epochs")]
    values += [(f"search.{k}", getattr(cfg.search, k), "budget") for k in ("budget", "population")]
    values += [(f"retrain.{k}", getattr(cfg.retrain, k), "seeds") for k in ("seeds", "top_k", "spotcheck_seeds")]
    return [refusal(key, v, cap) for key, v, cap in values if isinstance(v, int) and v > limit(cap)]


def check_cpu_processes(key: str, value: int) -> None:
    """Refuse more CPU training processes at once than the cap (this machine's cores by default)."""
    if value > limit("cpu_processes"):
        raise InvalidInput(refusal(key, value, "cpu_processes"))


def check_data_workers(value: int) -> None:
    """Refuse more data loader workers than the cap (this machine's cores by default)."""
    if value > limit("data_workers"):
        raise InvalidInput(refusal("data.num_workers", value, "data_workers"))


def check_params(n: int) -> None:
    """Refuse a supernet of ``n`` parameters above the cap (``workflow.supernet`` counts them on the meta device)."""
    if n > limit("params"):
        raise InvalidInput(f"space: its supernet has {n:,} parameters, above the limit of {limit('params'):,} "
                           f"{CAPS['params'][1]}; use fewer or narrower stages or fewer candidates (whoever runs "
                           f"nasnav can change the limit: {env_name('params')})")


def check_runs(root: str | Path, runs: int) -> None:
    """Refuse a new run in ``root``, which holds ``runs`` runs, when that is the cap's number already."""
    if runs >= limit("runs"):
        raise InvalidInput(f"{root}: holds {runs:,} runs, the limit of {CAPS['runs'][1]} is {limit('runs'):,}; "
                           f"delete old runs, use another runs folder, or change the limit ({env_name('runs')})")
