"""The multi-process path: the whole pipeline under Lightning DDP with two CPU processes.

DDP re-launches the command line, so this runs the real ``python -m nasnav run``. Only rank 0
writes; the test accuracy reported must be the exact one over the whole held-out split (Lightning's
distributed test loop would pad and split it), so it is recomputed here in one process from the
saved weights and compared.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nasnav.model.supernet import build_network
from nasnav.score.evaluate import exact_scores
from nasnav.space import SearchSpace
from nasnav.store.io import read_csv, read_json, read_yaml
from nasnav.workflow.retrain import load_weights
from nasnav.workflow.runs import load_data, load_run

REPO = Path(__file__).resolve().parent.parent
SETS = ["trainer.devices=2", "trainer.strategy=ddp", "supernet.epochs=2", "retrain.epochs=2", "search.budget=10",
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
