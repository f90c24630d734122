"""Lightning's own multi-node launch, no launcher in between: two "nodes" of one process each on 127.0.0.1,
told their place by MASTER_ADDR, MASTER_PORT and NODE_RANK (Lightning's environment), as a cluster without
Slurm or torchrun would start them (README, Running on a Slurm cluster; torchrun: tests/test_ddp.py)."""

import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from nasnav.config import load_config
from nasnav.store import layout
from nasnav.store.io import read_csv
from nasnav.train.trainer import AtomicCheckpointIO
from nasnav.workflow.runs import create_run, load_data

REPO = Path(__file__).resolve().parent.parent
FOREIGN = ("SLURM_", "TORCHELASTIC_", "RANK", "LOCAL_RANK", "WORLD_SIZE", "GROUP_RANK", "LOCAL_WORLD_SIZE")


@pytest.mark.slow
def test_lightning_two_nodes_of_one_process_each_on_localhost(tmp_path):
    cfg = load_config(REPO / "configs" / "tiny.yaml", ["steering.autopilot=false", "supernet.epochs=2",
                                                       "trainer.num_nodes=2", "trainer.devices=1",
                                                       "trainer.strategy=ddp"])
    run = create_run(cfg, tmp_path / "run")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}  # no other launcher's variables
    base.update(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    procs = [subprocess.Popen([sys.executable, "-m", "nasnav", "supernet", str(run.path)], cwd=REPO,
                              env={**base, "NODE_RANK": str(r)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for r in (0, 1)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][-3000:] + outs[1][-3000:]
    assert run.read_status()["state"] == "done"
    assert (run.round_dir(0) / layout.SUPERNET).exists()
    assert list(read_csv(run.round_dir(0) / layout.TRAIN_METRICS)["epoch"]) == [1, 2], "node 0 alone writes"
    # one training over two ranks: each rank steps through half of the data (DistributedSampler), so there
    # are half as many optimizer steps as one process would take
    last = AtomicCheckpointIO().load_checkpoint(run.round_dir(0) / layout.TRAINING_DIR / layout.LAST_CKPT)
    n, batch = len(load_data(cfg).y_train), cfg.data.batch_size
    assert last["global_step"] == 2 * math.ceil(math.ceil(n / 2) / batch) < 2 * math.ceil(n / batch)
