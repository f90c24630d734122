"""Retraining from scratch: held-out test accuracy, seeds, resume, early stopping, the results table."""

from pathlib import Path

import pytest
import torch

from nasnav.config import load_config
from nasnav.model.supernet import build_network
from nasnav.stop import JobStopped, clear_stop, request_stop
from nasnav.store.io import read_csv, read_json
from nasnav.store.records import read_finals
from nasnav.workflow import retrain, trainings
from nasnav.workflow.runs import create_run, load_data, round_space
from nasnav.workflow.search import score_candidates
from nasnav.workflow.supernet import train_supernet

REPO = Path(__file__).resolve().parent.parent
FAST = ["steering.autopilot=false", "supernet.epochs=2", "search.budget=8", "retrain.epochs=2"]


pytestmark = pytest.mark.usefixtures("single_thread")  # tiny networks: one thread (conftest)


def make_run(path, *overrides):
    """A tiny run with a trained supernet and scored candidates (a few seconds)."""
    cfg = load_config(REPO / "configs" / "tiny.yaml", [*FAST, *overrides])
    run = create_run(cfg, path)
    train_supernet(run, cfg, 0)
    score_candidates(run, cfg, 0)
    return run, cfg


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("retrain") / "run")


def _accuracy(net, x, y) -> float:
    with torch.no_grad():
        return float((net.eval()(x).argmax(1) == y).float().mean())


def test_retrain_reports_held_out_test_accuracy(tiny):
    run, cfg = tiny
    space = round_space(run, cfg)
    arch = space.parse(read_csv(run.round_dir(0) / "candidates.csv")["arch"][0])
    m = retrain.retrain(run, cfg, space, arch)
    d = run.final_dir(m["key"])
    for f in ("metrics.json", "metrics.csv", "weights.pt", "arch.yaml", "seeds.csv"):
        assert (d / f).exists(), f
    for k in ("arch", "test_acc", "val_acc", "params", "flops", "latency_ms", "train_seconds", "one_shot_acc"):
        assert m[k] is not None, k
    assert read_json(d / "metrics.json")["test_acc"] == m["test_acc"]
    # The test accuracy is the saved network's accuracy on the test split, which is disjoint from
    # the training and validation splits (the only ones the search and the selection look at).
    splits = load_data(cfg)
    net = build_network(space, arch, splits.spec.kind, splits.spec.shape[0], splits.spec.num_classes)
    net.load_state_dict(retrain.load_weights(d / "weights.pt"))
    assert _accuracy(net, splits.x_test, splits.y_test) == pytest.approx(m["test_acc"], abs=1e-6)
    assert _accuracy(net, splits.x_val, splits.y_val) == pytest.approx(m["val_acc"], abs=1e-6)
    assert m["n_test"] == len(splits.y_test) and m["n_val"] == len(splits.y_val)
    # one-shot accuracy looked up from the round's candidates; curve with one row per epoch
    assert m["one_shot_acc"] is not None
    curve = read_csv(d / "metrics.csv")
    assert list(curve["epoch"]) == [1, 2] and curve["val_acc"].notna().all()
    assert m["params"] == sum(p.numel() for p in net.parameters())


def test_several_seeds_give_mean_and_spread_and_resume(tiny, monkeypatch):
    run, cfg = tiny
    space = round_space(run, cfg)
    arch = space.parse("skip/conv3x3/skip")
    m = retrain.retrain(run, cfg, space, arch, seeds=2)
    assert m["seeds"] == 2 and len(m["test_accs"]) == 2 and m["seed_list"] == [cfg.seed, cfg.seed + 1]
    assert m["test_acc"] == pytest.approx(sum(m["test_accs"]) / 2)
    assert m["test_acc_std"] >= 0
    assert len(read_csv(run.final_dir(m["key"]) / "seeds.csv")) == 2

    def boom(*a, **k):
        raise AssertionError("a finished seed was trained again")

    monkeypatch.setattr(trainings, "train_standalone", boom)  # finished seeds are reused
    again = retrain.retrain(run, cfg, space, arch, seeds=2)
    assert again["test_accs"] == m["test_accs"]


def test_stop_between_seeds_keeps_finished_ones(tiny, monkeypatch):
    run, cfg = tiny
    space = round_space(run, cfg)
    arch = space.parse("maxpool3x3/skip/skip")
    real = trainings.train_standalone
    calls = []

    def train_then_stop(*a, **k):
        calls.append(1)
        out = real(*a, **k)
        if len(calls) == 1:
            request_stop()  # as SIGTERM would
        return out

    monkeypatch.setattr(trainings, "train_standalone", train_then_stop)
    with pytest.raises(JobStopped):
        retrain.retrain(run, cfg, space, arch, seeds=3)
    key = retrain.arch_key(str(arch))
    d = run.final_dir(key)
    assert len(calls) == 1 and len(read_csv(d / "seeds.csv")) == 1 and (d / "weights.pt").exists()
    assert not (d / "metrics.json").exists()  # not a finished result yet: not listed in read_finals
    assert key not in list(read_finals(run)["key"])
    clear_stop()
    m = retrain.retrain(run, cfg, space, arch, seeds=3)
    assert len(calls) == 3 and m["seeds"] == 3  # resumed: only the two missing seeds trained


def test_early_stopping_keeps_best_validation_weights(tmp_path):
    run, cfg = make_run(tmp_path / "run", "retrain.epochs=6", "retrain.patience=1", "retrain.lr=0.5")
    space = round_space(run, cfg)
    m = retrain.retrain(run, cfg, space, space.parse("conv3x3/conv3x3/conv3x3"))
    curve = read_csv(run.final_dir(m["key"]) / "metrics.csv")
    assert m["best_epoch"] <= m["epochs_trained"][0] <= 6
    assert m["val_acc"] == pytest.approx(curve["val_acc"].max(), abs=1e-6)  # the kept weights are the best epoch's


def test_read_finals_has_the_results_table_columns(tiny):
    run, cfg = tiny
    space = round_space(run, cfg)
    retrain.retrain(run, cfg, space, space.parse("conv3x3/conv1x1/conv3x3"))
    df = read_finals(run)
    assert len(df) >= 1
    for c in (
        "arch",
        "test_acc",
        "test_acc_std",
        "val_acc",
        "one_shot_acc",
        "params",
        "flops",
        "latency_ms",
        "train_seconds",
    ):
        assert c in df.columns
    empty = read_finals(type(run)(run.path / "nowhere"))
    assert list(empty.columns)[:3] == ["arch", "test_acc", "test_acc_std"] and len(empty) == 0


def test_bad_seed_count_is_a_value_error(tiny):
    run, cfg = tiny
    space = round_space(run, cfg)
    with pytest.raises(ValueError, match="seeds"):
        retrain.retrain(run, cfg, space, space.parse("skip/skip/skip"), seeds=-1)


def test_finalists_retrain_together_side_by_side_with_the_results_of_one_at_a_time(tmp_path, monkeypatch):
    """retrain_all sends every pick's seeds out at once (two worker slots here: both train side by side, as a
    Slurm array would) and gives each the metrics a retrain of it alone gives."""
    run, cfg = make_run(tmp_path / "together", "trainer.trainings_per_device=2")
    space = round_space(run, cfg)
    archs = [space.parse(a) for a in ("skip/conv3x3/skip", "conv3x3/skip/skip")]
    calls = []
    real = retrain.run_trainings

    def spy(tcfg, sp, todo, *a, **k):
        calls.append(([t.arch for t in todo], len(k["slots"])))
        return real(tcfg, sp, todo, *a, **k)

    monkeypatch.setattr(retrain, "run_trainings", spy)
    together = retrain.retrain_all(run, cfg, space, [(archs[0], 0.5), (archs[1], None)])
    assert calls == [([str(a) for a in archs], 2)]  # one call: both trainings, two slots
    assert [m["arch"] for m in together] == [str(a) for a in archs] and together[0]["one_shot_acc"] == 0.5
    assert all(read_json(run.final_dir(m["key"]) / "metrics.json")["test_acc"] == m["test_acc"] for m in together)
    assert read_finals(run)["arch"].tolist().count(str(archs[1])) == 1

    alone_run, alone_cfg = make_run(tmp_path / "alone")
    for a, m in zip(archs, together):
        alone = retrain.retrain(alone_run, alone_cfg, round_space(alone_run, alone_cfg), a)
        assert alone["test_accs"] == m["test_accs"] and alone["val_accs"] == m["val_accs"]
    with pytest.raises(ValueError, match="twice"):
        retrain.retrain_all(run, cfg, space, [(archs[0], None), (archs[0], None)])
