"""The trainer section resolved as Lightning resolves it: processes, strategy, scoring device, training slots.

Every strategy Lightning registers is tried on the CPU with one and two devices: a combination Lightning
accepts gives a launch plan (DDP flavours with find_unused_parameters on for the supernet), one it refuses
an InvalidInput naming the trainer keys (the CLI's exit 2). Real two-process runs are in test_ddp.py.
"""

import dataclasses
import os

import pytest
import torch
from lightning.pytorch.strategies import DDPStrategy, StrategyRegistry

from nasnav.config import TrainerConfig
from nasnav.errors import InvalidInput
from nasnav.train import devices
from nasnav.train.devices import is_multiprocess, launch, scoring_device, scoring_dtype, training_slots

CPU_OK = {"auto", "single_device", "ddp", "ddp_spawn", "ddp_fork", "ddp_notebook"} | {
    n for n in StrategyRegistry.available_strategies() if n.startswith("ddp")}
STRATEGIES = ["auto", *StrategyRegistry.available_strategies()]


def tc(**kw) -> TrainerConfig:
    return dataclasses.replace(TrainerConfig(), **kw)


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_on_the_cpu_is_planned_or_refused_clearly(strategy, n):
    cfg = tc(accelerator="cpu", devices=n, strategy=strategy)
    if strategy not in CPU_OK:
        with pytest.raises(InvalidInput, match=r"trainer: .*strategy"):
            launch(cfg, unused_parameters=True)
        return
    plan = launch(cfg, unused_parameters=True)
    ddp = strategy.startswith("ddp") or (strategy == "auto" and n > 1)
    assert plan.processes == (1 if strategy == "single_device" else n) and plan.accelerator == "cpu"
    assert plan.multiprocess == (plan.processes > 1) and not plan.external
    if ddp:  # every DDP flavour trains a supernet with unused parameters found, whatever the name said
        assert isinstance(plan.strategy, DDPStrategy) and plan.strategy._ddp_kwargs["find_unused_parameters"]
    relaunch = ddp and not any(m in strategy for m in ("spawn", "fork", "notebook"))
    assert plan.relaunch == relaunch
    assert launch(cfg).strategy == strategy  # a standalone training gets what the config says


def test_default_strategy_with_two_devices_and_auto_are_resolved_honestly():
    assert is_multiprocess(tc(devices=2)) and launch(tc(devices=2)).relaunch
    assert not is_multiprocess(tc(accelerator="cpu", devices="auto"))  # Lightning: one CPU device
    assert not is_multiprocess(tc(devices=1, strategy="ddp"))  # one process, whatever the strategy
    with pytest.raises(InvalidInput, match="trainer.devices"):
        launch(tc(accelerator="cpu", devices=-1))  # Lightning counts CPU devices, it does not find them


def test_torchrun_processes_are_external(monkeypatch):
    for k, v in {"TORCHELASTIC_RUN_ID": "t", "RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2",
                 "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29512"}.items():
        monkeypatch.setenv(k, v)
    plan = launch(tc(devices=2), unused_parameters=True)
    assert plan.external and plan.processes == 2 and not plan.relaunch


def test_scoring_device_follows_the_accelerator(monkeypatch):
    assert scoring_device(tc(accelerator="cpu")) == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidInput, match="trainer.accelerator"):
            scoring_device(tc(accelerator="gpu"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a fake GPU machine
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert scoring_device(tc(accelerator="gpu")) == torch.device("cuda", 0)
    assert scoring_device(tc(accelerator="auto", devices="2,3")) == torch.device("cuda", 2)
    assert scoring_dtype("auto", torch.device("cuda", 0)) is torch.bfloat16
    assert scoring_dtype("auto", torch.device("cpu")) is None and scoring_dtype("32", torch.device("cuda", 0)) is None
    assert scoring_dtype("bf16", torch.device("cpu")) is torch.bfloat16


def test_training_slots_one_worker_per_device_sharing_the_cores(monkeypatch):
    monkeypatch.setattr(devices.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert training_slots(tc(accelerator="cpu", devices=1)) == [{"device": None, "threads": 8}]
    assert training_slots(tc(accelerator="cpu", devices=2)) == [{"device": None, "threads": 4}] * 2
    assert len(training_slots(tc(accelerator="cpu", devices="auto"))) == 1  # as Lightning counts CPU devices
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    slots = training_slots(tc(accelerator="gpu", devices="auto", trainings_per_device=2))
    assert [s["device"] for s in slots] == [0, 0, 1, 1, 2, 2, 3, 3] and slots[0]["threads"] == 1
    assert [s["device"] for s in training_slots(tc(accelerator="gpu", devices="1,3"))] == [1, 3]
    assert [s["device"] for s in training_slots(tc(accelerator="gpu", devices=2))] == [0, 1]


@pytest.mark.parametrize("in_slurm_job", [False, True])
def test_the_srun_hint_shows_only_inside_a_slurm_job(tmp_path, monkeypatch, in_slurm_job):
    """A machine with Slurm installed (srun on PATH) trains locally without Lightning's 'srun is available but
    not used' hint on every training; inside a Slurm job, where it points at a real mistake, it still shows."""
    import warnings

    from lightning.fabric.plugins.environments import SLURMEnvironment

    from nasnav.train.trainer import make_trainer

    srun = tmp_path / "bin" / "srun"
    srun.parent.mkdir()
    srun.write_text("#!/bin/sh\nexit 0\n")
    srun.chmod(0o755)
    monkeypatch.setenv("PATH", f"{srun.parent}:{os.environ['PATH']}")
    for key in [k for k in os.environ if k.startswith("SLURM_")]:
        monkeypatch.delenv(key)
    if in_slurm_job:
        monkeypatch.setenv("SLURM_JOB_ID", "7")
    from lightning_utilities.core.rank_zero import rank_zero_only

    monkeypatch.setattr(rank_zero_only, "rank", 0, raising=False)  # another test's RANK=1 would silence rank 0's hints
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_trainer(TrainerConfig(accelerator="cpu"), 1, tmp_path, [])
        SLURMEnvironment.detect()  # what trainer.fit asks again, after the Trainer is made
    hints = [w for w in caught if "srun" in str(w.message)]
    assert bool(hints) == in_slurm_job
