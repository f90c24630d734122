"""Caps on resources (nasnav.limits): each refusal names the key, the value, the limit and the variable that
changes it; a raised limit lets the same value through; a config cannot lift a cap itself."""

from __future__ import annotations

import time

import pytest

from nasnav import cli, limits
from nasnav.config import TrainerConfig, config_from_dict, load_config, preset_path
from nasnav.errors import InvalidInput
from nasnav.store.io import read_yaml
from nasnav.train.devices import launch, training_slots


def tiny(*overrides: str):
    return config_from_dict(read_yaml(preset_path("tiny")), "tiny", list(overrides))


def stages(n: int, candidates: str = "conv3x3, skip", channels: int = 8) -> str:
    """An override of ``space.stages``: ``n`` stages."""
    return "space.stages=[" + ", ".join(f"{{name: s{i}, candidates: [{candidates}], channels: {channels}}}"
                                        for i in range(n)) + "]"


@pytest.mark.parametrize("cap,override,key,value", [
    ("stages", stages(65), "space.stages", 65),
    ("channels", "space.stem_channels=5000", "space.stem_channels", 5000),
    ("channels", "space.stages[1].channels=4097", "space.stages[1].channels", 4097),
    ("epochs", "supernet.epochs=10001", "supernet.epochs", 10001),
    ("epochs", "supernet.warm_start_epochs=20000", "supernet.warm_start_epochs", 20000),
    ("epochs", "retrain.epochs=1000000", "retrain.epochs", 1000000),
    ("epochs", "retrain.spotcheck_epochs=10001", "retrain.spotcheck_epochs", 10001),
    ("budget", "search.budget=100001", "search.budget", 100001),
    ("budget", "search.population=200000", "search.population", 200000),
    ("seeds", "retrain.seeds=101", "retrain.seeds", 101),
    ("seeds", "retrain.top_k=500", "retrain.top_k", 500),
])
def test_a_config_above_a_cap_is_refused_naming_key_value_and_limit(cap, override, key, value, monkeypatch):
    with pytest.raises(InvalidInput) as e:
        tiny(override)
    lim = limits.limit(cap)
    line = next((p for p in e.value.problems if f": {key}: " in p), str(e.value))
    said = f"is out of range 1..{lim}" if cap == "channels" else f"is above the limit of {lim:,}"
    assert f"{key}: {value} {said}" in line and limits.env_name(cap) in line, line
    monkeypatch.setenv(limits.env_name(cap), str(value))  # raised on purpose by whoever runs nasnav
    assert tiny(override)


def test_a_limit_must_be_a_positive_number(monkeypatch):
    monkeypatch.setenv("NASNAV_LIMIT_EPOCHS", "lots")
    with pytest.raises(InvalidInput, match="NASNAV_LIMIT_EPOCHS: 'lots' is not a positive whole number"):
        tiny()


def test_cpu_devices_beyond_the_cores_are_refused_before_any_process_starts(monkeypatch):
    cores = limits.cores()
    with pytest.raises(InvalidInput, match=rf"trainer\.devices: 500 is above the limit of {cores} .*"
                                           "NASNAV_LIMIT_CPU_PROCESSES"):
        launch(TrainerConfig(accelerator="cpu", devices=500, strategy="ddp"))
    assert launch(TrainerConfig(accelerator="cpu", devices=1)).processes == 1
    monkeypatch.setenv("NASNAV_LIMIT_CPU_PROCESSES", "500")
    assert launch(TrainerConfig(accelerator="cpu", devices=500, strategy="ddp")).processes == 500


def test_cpu_training_workers_beyond_the_cores_are_refused():
    cores = limits.cores()
    with pytest.raises(InvalidInput, match=rf"trainer\.devices x trainer\.trainings_per_device: {cores + 1} is above"):
        training_slots(TrainerConfig(accelerator="cpu", devices=1, trainings_per_device=cores + 1))
    assert len(training_slots(TrainerConfig(accelerator="cpu", devices=1, trainings_per_device=cores))) == cores


def test_gpu_devices_beyond_those_visible_are_refused():
    import torch

    n = torch.cuda.device_count()
    with pytest.raises(InvalidInput, match=rf"trainer\.devices: {n + 1} is more than the {n} GPUs"):
        launch(TrainerConfig(accelerator="gpu", devices=n + 1))


def test_data_workers_beyond_the_cores_are_refused():
    from nasnav.data.splits import NasDataModule, load_splits

    cfg = tiny(f"data.num_workers={limits.cores() + 1}")
    dm = NasDataModule(cfg.data, cfg.seed, load_splits(cfg.data, cfg.seed))
    with pytest.raises(InvalidInput, match=rf"data\.num_workers: {limits.cores() + 1} is above the limit"):
        dm.train_dataloader()


def test_a_huge_supernet_is_refused_without_allocating_it():
    from nasnav.workflow.supernet import check_supernet_size

    cfg = tiny(stages(40, "conv3x3, conv5x5, sepconv5x5", 4096))
    t = time.perf_counter()
    with pytest.raises(InvalidInput, match=r"space: its supernet has [\d,]+ parameters, above the limit of "
                                           r"100,000,000 .*NASNAV_LIMIT_PARAMS"):
        check_supernet_size(cfg.search_space(), cfg.kind, 1, 10)
    assert time.perf_counter() - t < 30  # counted on the meta device: billions of parameters, no memory


def test_the_supernet_job_refuses_a_space_above_the_parameter_cap(tmp_path, monkeypatch, capsys):
    from nasnav.workflow.runs import create_run

    run = create_run(tiny("trainer.enable_progress_bar=false"), tmp_path / "r")
    monkeypatch.setenv("NASNAV_LIMIT_PARAMS", "1000")
    assert cli.main(["supernet", str(run.path)]) == 2
    err = capsys.readouterr().err
    assert "parameters, above the limit of 1,000" in err and "Traceback" not in err, err
    assert not (run.round_dir(0) / "supernet.ckpt").exists()


def test_runs_in_one_folder_are_capped(tmp_path, monkeypatch):
    from nasnav.workflow.runs import create_run

    monkeypatch.setenv("NASNAV_LIMIT_RUNS", "2")
    cfg = load_config(preset_path("tiny"))
    create_run(cfg, tmp_path / "runs" / "a")
    create_run(cfg, tmp_path / "runs" / "b")
    with pytest.raises(InvalidInput, match=r"runs: holds 2 runs, the limit of runs in one runs folder is 2.*"
                                           "NASNAV_LIMIT_RUNS"):
        create_run(cfg, tmp_path / "runs" / "c")
    assert not (tmp_path / "runs" / "c").exists()
