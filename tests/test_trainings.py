"""Standalone trainings side by side (workflow.trainings): the same results as one after another, every
result handed over as it finishes, a stop ends the workers; spot checks and retrain seeds use it."""

import multiprocessing
import queue
from pathlib import Path

import pytest

from nasnav.config import load_config
from nasnav.stop import JobStopped, clear_stop, request_stop
from nasnav.store.io import read_csv
from nasnav.workflow import retrain, trainings
from nasnav.workflow.runs import create_run, load_data, round_space
from nasnav.workflow.trainings import Training, run_trainings

REPO = Path(__file__).resolve().parent.parent
CPU2 = [{"device": None, "threads": 1}, {"device": None, "threads": 1}]

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cfg = load_config(REPO / "configs" / "tiny.yaml", ["steering.autopilot=false", "retrain.epochs=1"])
    run = create_run(cfg, tmp_path_factory.mktemp("trainings") / "run")
    return run, cfg, round_space(run, cfg), load_data(cfg)


TODO = [Training("conv3x3/skip/skip", 0, 1), Training("skip/conv1x1/conv3x3", 1, 1), Training("skip/skip/skip", 0, 1)]


def test_workers_give_the_results_of_one_process(tiny, monkeypatch):
    run, cfg, space, splits = tiny
    here: dict = {}
    assert run_trainings(cfg, space, TODO, splits, lambda t, r: here.setdefault(t, r)) == 1
    monkeypatch.setattr(trainings, "PARENT_TRAINS", False)  # every training in a spawned worker
    there: dict = {}
    assert run_trainings(cfg, space, TODO, splits, lambda t, r: there.setdefault(t, r), slots=CPU2) == 2
    assert set(there) == set(TODO)
    for t in TODO:
        assert there[t]["val_acc"] == here[t]["val_acc"] and there[t]["val_loss"] == pytest.approx(here[t]["val_loss"])
    assert not multiprocessing.active_children()  # the workers are gone


def test_a_worker_trains_until_the_end_mark(tiny):
    run, cfg, space, splits = tiny
    tasks, results = queue.Queue(), queue.Queue()
    for i, t in enumerate(TODO[:2]):
        tasks.put((i, t))
    tasks.put((2, Training("nonsense/skip/skip", 0, 1)))
    tasks.put(None)
    payload = {"config": cfg.to_dict(), "space": space.to_dict(), "splits": splits}
    trainings._worker({"device": None, "threads": 1}, payload, tasks, results)
    out = [results.get_nowait() for _ in range(3)]
    assert [o[:2] for o in out] == [(0, True), (1, True), (2, False)]
    assert out[2][2][0] == "invalid" and "nonsense" in out[2][2][1]  # a user error comes back as one


def test_a_stop_ends_the_workers_at_once(tiny):
    run, cfg, space, splits = tiny
    request_stop()
    try:
        with pytest.raises(JobStopped):
            run_trainings(cfg, space, TODO, splits, lambda t, r: None, slots=CPU2)
    finally:
        clear_stop()
    assert not multiprocessing.active_children()


def test_retrain_seeds_side_by_side_keep_the_files(tiny):
    run, cfg, space, splits = tiny
    cfg2 = load_config(REPO / "configs" / "tiny.yaml", ["steering.autopilot=false", "retrain.epochs=1",
                                                        "trainer.devices=2"])
    arch = space.parse("conv3x3/skip/conv3x3")
    m = retrain.retrain(run, cfg2, space, arch, seeds=2)
    d = run.final_dir(m["key"])
    for f in ("metrics.json", "metrics.csv", "metrics_seed1.csv", "weights.pt", "arch.yaml", "seeds.csv"):
        assert (d / f).exists(), f
    seeds = read_csv(d / "seeds.csv")
    assert sorted(seeds["seed"]) == [0, 1] and m["fingerprint"] == retrain.fingerprint(retrain.single_device(cfg2),
                                                                                         space, arch)
    assert not (d / "lightning").exists() or not any((d / "lightning").iterdir())  # resume points cleared
