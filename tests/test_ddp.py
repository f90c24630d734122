"""The multi-process path: the whole pipeline under Lightning DDP with two CPU processes (the default
strategy: ``--set trainer.devices=2`` alone), the supernet under the launchers that start processes in
place (spawn, fork), and two "nodes" of one process each started by torchrun.

DDP re-launches the command line, so this runs the real ``python -m nasnav run``. Only rank 0
writes; the test accuracy reported must be the exact one over the whole held-out split (Lightning's
distributed test loop would pad and split it), so it is recomputed here in one process from the
saved weights and compared.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from nasnav.cli import main
from nasnav.config import load_config
from nasnav.model.supernet import build_network
from nasnav.score.evaluate import exact_scores
from nasnav.space import SearchSpace
from nasnav.store.io import read_csv, read_json, read_yaml
from nasnav.workflow.retrain import load_weights
from nasnav.workflow.runs import create_run, load_data, load_run

REPO = Path(__file__).resolve().parent.parent
SETS = ["trainer.devices=2", "supernet.epochs=2", "retrain.epochs=2", "search.budget=10",
        "steering.autopilot=false", "data.max_samples=407"]  # 61 test samples: an odd count that two ranks would pad


@pytest.mark.slow
def test_pipeline_under_ddp_on_two_cpu_processes(tmp_path):
    run_dir = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "nasnav", "run", str(REPO / "configs" / "tiny.yaml"),
                           "--run-dir", str(run_dir), "--set", *SETS], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run, cfg = load_run(run_dir)
    assert run.read_status()["state"] == "done"

    metrics = read_csv(run.round_dir(0) / "metrics.csv")
    assert list(metrics["epoch"]) == [1, 2], "rank 0 alone writes one row per epoch"
    cands = read_csv(run.round_dir(0) / "candidates.csv")
    assert len(cands) == 10 and not cands["arch"].duplicated().any()

    finals = [p for p in (run_dir / "final").iterdir() if (p / "metrics.json").exists()]
    assert len(finals) == 1
    m = read_json(finals[0] / "metrics.json")
    record = read_yaml(finals[0] / "arch.yaml")
    splits = load_data(cfg)
    space = SearchSpace.from_dict(record["space"], splits.spec.kind)
    net = build_network(space, space.parse(m["arch"], check_active=False), splits.spec.kind, splits.spec.shape[0],
                        splits.spec.num_classes)
    net.load_state_dict(load_weights(finals[0] / "weights.pt"))
    acc, _ = exact_scores(net, splits.x_test, splits.y_test)
    assert m["test_acc"] == pytest.approx(acc, abs=1e-9), "the reported test accuracy is not the exact one"


def _supernet_run(tmp_path, *sets):
    cfg = load_config(REPO / "configs" / "tiny.yaml", ["steering.autopilot=false", "supernet.epochs=2", *sets])
    return create_run(cfg, tmp_path / "run")


def _check_supernet(run, out: str) -> None:
    assert run.read_status()["state"] == "done", out
    assert (run.round_dir(0) / "supernet.ckpt").exists(), out
    assert list(read_csv(run.round_dir(0) / "metrics.csv")["epoch"]) == [1, 2], "rank 0 alone writes the curve"


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp_spawn", "ddp_fork_find_unused_parameters_false"])
def test_supernet_under_launchers_that_start_processes_in_place(tmp_path, strategy):
    run = _supernet_run(tmp_path, "trainer.devices=2", f"trainer.strategy={strategy}")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "nasnav", "supernet", str(run.path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    out = proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, out
    _check_supernet(run, out)


@pytest.mark.slow
def test_two_nodes_started_by_torchrun(tmp_path):
    """What a multi-node job does (README, Multi-node), with two one-process "nodes" on this machine."""
    run = _supernet_run(tmp_path, "trainer.num_nodes=2", "trainer.devices=1")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank", str(r),
                               "--nproc-per-node", "1", "--master-addr", "127.0.0.1", "--master-port", str(port),
                               "-m", "nasnav", "supernet", str(run.path)],
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for r in (0, 1)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][-3000:] + outs[1][-3000:]
    _check_supernet(run, outs[0][-3000:])


def test_whole_pipeline_refuses_to_be_one_of_several_torchrun_processes(tmp_path, monkeypatch, capsys):
    for k, v in {"TORCHELASTIC_RUN_ID": "t", "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2",
                 "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29513"}.items():
        monkeypatch.setenv(k, v)
    code = main(["run", str(REPO / "configs" / "tiny.yaml"), "--run-dir", str(tmp_path / "x"),
                 "--set", "trainer.devices=2"])
    err = capsys.readouterr().err
    assert code == 2 and "torchrun" in err and "-m nasnav supernet RUN" in err and "Traceback" not in err
