"""What the ``trainer`` section asks for, resolved the way Lightning resolves it, before anything starts.

``launch(tc)`` asks Lightning itself (a Trainer is built and never run: a few milliseconds) how many
processes a training starts, on which devices and how, so that ``devices: auto`` on a multi-GPU host,
``--set trainer.devices=2`` with the default strategy, torchrun and SLURM are all seen for what they
are. A combination Lightning refuses is an ``InvalidInput`` naming the keys (the CLI exits 2).

For a supernet (``unused_parameters``) every DDP flavour gets ``find_unused_parameters=True``: a step
trains one path, so the other components produce no gradient, which DDP otherwise treats as an error.
Strategies that shard or offload the weights (FSDP, DeepSpeed) are refused for the supernet.

Also here: the device candidates are scored on (``scoring_device``), the autocast dtype of scoring
(``scoring_dtype``) and how many standalone trainings run side by side (``training_slots``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.strategies import DDPStrategy

from nasnav import limits
from nasnav.config import TrainerConfig
from nasnav.errors import InvalidInput
from nasnav.quiet import hide_srun_hint, quiet_loggers

log = logging.getLogger(__name__)

_KEYS = "trainer.accelerator, trainer.devices, trainer.num_nodes, trainer.strategy, trainer.precision"


@dataclass(frozen=True)
class Launch:
    """How one training runs, as Lightning will run it."""

    accelerator: str  # the accelerator Lightning picked: cpu, cuda, mps, ...
    devices: int  # devices (processes) per node
    num_nodes: int
    processes: int  # processes of the training, all nodes together (Lightning's world size)
    relaunch: bool  # Lightning starts the other ranks by running this command line again
    external: bool  # the processes were started by torchrun or SLURM, not by Lightning
    strategy: Any  # what to hand to ``Trainer(strategy=...)``

    @property
    def multiprocess(self) -> bool:
        return self.processes > 1


def _quiet_lightning():
    """The probe Trainer would print Lightning's device banner once more: keep it quiet."""
    return quiet_loggers(("lightning.pytorch", "lightning.fabric"), logging.WARNING)


def _probe(tc: TrainerConfig, strategy: Any) -> pl.Trainer:
    """A Trainer as ``make_trainer`` would build it, never run; Lightning's refusal in the user's words."""
    hide_srun_hint()
    try:
        with _quiet_lightning():
            return pl.Trainer(accelerator=tc.accelerator, devices=tc.devices, num_nodes=tc.num_nodes,
                              strategy=strategy, precision=tc.precision, logger=False, enable_checkpointing=False,
                              enable_progress_bar=False, enable_model_summary=False)
    except (MisconfigurationException, ValueError, TypeError, RuntimeError, ImportError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise InvalidInput(
            f"trainer: Lightning cannot run accelerator {tc.accelerator!r}, devices {tc.devices!r}, num_nodes "
            f"{tc.num_nodes}, strategy {tc.strategy!r}, precision {tc.precision!r} on this machine: {first}. "
            f"Change {_KEYS} (e.g. accelerator auto, devices auto, strategy auto: every device of this machine)"
        ) from None


def launch(tc: TrainerConfig, unused_parameters: bool = False) -> Launch:
    """How a training under ``tc`` runs (see the module's docstring). ``unused_parameters``: the model
    leaves parameters without a gradient in a step (the supernet)."""
    _check_gpus(tc)
    trainer = _probe(tc, tc.strategy)
    if type(trainer.accelerator).__name__ == "CPUAccelerator":  # a CPU "device" is a process of its own
        limits.check_cpu_processes("trainer.devices", int(trainer.num_devices))
    s = trainer.strategy
    strategy: Any = tc.strategy
    processes = int(trainer.world_size)
    if unused_parameters and isinstance(s, DDPStrategy):
        if s._ddp_kwargs.get("find_unused_parameters") is False:  # e.g. ddp_find_unused_parameters_false
            log.warning(f"trainer.strategy {tc.strategy!r}: a supernet step trains one path, so the other "
                        "components get no gradient; training with find_unused_parameters on")
        strategy = DDPStrategy(start_method=getattr(s, "_start_method", "popen"), find_unused_parameters=True)
    elif unused_parameters and processes > 1:
        raise InvalidInput(
            f"trainer.strategy: {tc.strategy!r} ({type(s).__name__}) cannot train a supernet: each step trains "
            "one path, so most weights get no gradient, which sharded or offloaded weights do not allow; use "
            "'auto' or a DDP flavour ('ddp', 'ddp_spawn', 'ddp_fork'), or one device (trainer.devices: 1)"
        )
    env = getattr(s, "cluster_environment", None)
    external = bool(env is not None and env.creates_processes_externally and processes > 1)
    launcher = getattr(s, "launcher", None)
    return Launch(
        accelerator=type(trainer.accelerator).__name__.removesuffix("Accelerator").lower(),
        devices=int(trainer.num_devices),
        num_nodes=int(trainer.num_nodes),
        processes=processes,
        relaunch=not external and type(launcher).__name__ == "_SubprocessScriptLauncher",
        external=external,
        strategy=strategy,
    )


def _check_gpus(tc: TrainerConfig) -> None:
    """A count of GPUs above those visible, refused in the user's words before Lightning's own error."""
    wants_gpu = str(tc.accelerator).lower() in ("gpu", "cuda")
    if wants_gpu and isinstance(tc.devices, int) and tc.devices > 0 and tc.devices > torch.cuda.device_count():
        raise InvalidInput(f"trainer.devices: {tc.devices} is more than the {torch.cuda.device_count()} GPUs this "
                           "process sees (the limit); use at most that many, or 'auto' (every visible GPU)")


def is_multiprocess(tc: TrainerConfig) -> bool:
    """Whether a training under ``tc`` runs in several processes (``devices: auto`` resolved as Lightning
    resolves it), so that its stage must run as a command of its own (DDP re-runs the command line)."""
    return launch(tc).multiprocess


def _device_type(tc: TrainerConfig) -> str:
    """The kind of device a single-process job (scoring, one standalone training) uses, as Lightning
    picks it for ``trainer.accelerator``: cuda, mps or cpu (any other accelerator: cpu)."""
    name = str(tc.accelerator).lower()
    if name in ("auto", "gpu"):
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cuda" if name == "gpu" else "cpu"  # gpu without one: scoring_device says so
    return name if name in ("cuda", "mps") else "cpu"


def _first_index(devices: int | str) -> int:
    """The first device of a Lightning device list ('2,3', '[1]'); 0 for a count, 'auto' or -1."""
    if isinstance(devices, str) and ("," in devices or devices.strip().startswith("[")):
        first = devices.strip().strip("[]").split(",")[0].strip()
        return int(first) if first.isdigit() else 0
    return 0


def scoring_device(tc: TrainerConfig) -> torch.device:
    """Where one-shot scoring (BatchNorm recalibration included) runs: the configured accelerator's
    first device (this process's own under torchrun: ``LOCAL_RANK``)."""
    kind = _device_type(tc)
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise InvalidInput(f"trainer.accelerator: {tc.accelerator!r} but no CUDA GPU is visible to this process; "
                               "use 'auto' or 'cpu'")
        local = int(os.environ.get("LOCAL_RANK", "0") or 0)
        return torch.device("cuda", _first_index(tc.devices) + local)
    return torch.device(kind)


def scoring_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of scoring (``search.precision``): None for full precision.

    auto: bfloat16 on a CUDA GPU that supports it, full precision elsewhere (on a CPU the scores are
    exactly those of plain float32); bf16: bfloat16 on any device (CPUs support it too); 32: none.
    """
    if precision == "32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def training_slots(tc: TrainerConfig) -> list[dict]:
    """The standalone trainings that may run side by side on this machine, one dict per worker:
    ``device`` (a CUDA index or None) and ``threads`` (CPU threads of that worker).

    One worker per device of ``trainer.devices`` (``auto`` or -1: every GPU; on a CPU ``devices: 2`` is two
    workers, ``auto`` one, as Lightning counts CPU devices), ``trainer.trainings_per_device`` workers on
    each; the machine's cores are shared out between the workers.
    """
    kind = _device_type(tc)
    per = int(getattr(tc, "trainings_per_device", 1) or 1)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if kind == "cuda" and torch.cuda.is_available():
        visible = torch.cuda.device_count()
        devices = tc.devices
        if isinstance(devices, str) and ("," in devices or devices.strip().startswith("[")):
            ids = [int(d) for d in devices.strip().strip("[]").split(",") if d.strip().isdigit()]
        elif devices in ("auto", -1, "-1"):
            ids = list(range(visible))
        else:
            ids = list(range(min(int(devices), visible)))
        slots = [{"device": i, "threads": max(1, cores // max(1, len(ids) * per))} for i in ids for _ in range(per)]
        return slots or [{"device": None, "threads": cores}]
    if kind == "cpu":  # a CPU "device" is a worker process; auto is one, as Lightning counts it
        n = int(tc.devices) if str(tc.devices).lstrip("-").isdigit() and int(tc.devices) > 0 else 1
        workers = n * per
        limits.check_cpu_processes("trainer.devices x trainer.trainings_per_device", workers)
        return [{"device": None, "threads": max(1, cores // workers)} for _ in range(workers)]
    return [{"device": None, "threads": cores}]  # mps and others: one training at a time
