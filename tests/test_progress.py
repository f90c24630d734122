"""Progress bars on long terminal work (issue 25, item 5): a download and the scoring of candidates draw a
bar on a terminal (a pty here), and nothing into a file (a job's log, which the app reads) or a pipe."""

from __future__ import annotations

import fcntl
import hashlib
import os
import pty
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import sys
from pathlib import Path
from nasnav.config import load_config, preset_path
from nasnav.data import standard
from nasnav.workflow.runs import create_run
from nasnav.workflow.search import score_candidates
from nasnav.workflow.supernet import train_supernet

work = Path(sys.argv[1])
remote = standard.Remote("unused", "blob.bin", sys.argv[2])
standard.fetch(remote, work / "data", "cifar10", standard.DATASETS["cifar10"])  # from NASNAV_DATA_MIRROR
cfg = load_config(preset_path("tiny"), overrides=["data.max_samples=200", "supernet.epochs=1",
                                                  "trainer.enable_progress_bar=false"])
run = create_run(cfg, work / "run")
train_supernet(run, cfg)
score_candidates(run, cfg, 0, budget=6)
print("done", flush=True)
"""


def child(tmp_path: Path, name: str, stderr) -> tuple[subprocess.Popen, Path]:
    work = tmp_path / name
    mirror = work / "mirror"
    mirror.mkdir(parents=True)
    blob = os.urandom(3 << 20)
    (mirror / "blob.bin").write_bytes(blob)
    env = {**os.environ, "NASNAV_DATA_MIRROR": mirror.as_uri(), "OMP_NUM_THREADS": "1", "COLUMNS": "100"}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(work), hashlib.md5(blob).hexdigest()], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=stderr)
    return proc, work


def test_a_terminal_shows_bars_a_pipe_or_a_file_gets_none(tmp_path):
    # on a terminal (standard error a pty)
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a terminal's size
    proc, _ = child(tmp_path, "tty", follower)
    os.close(follower)
    seen = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 120)
        if not ready:
            break
        try:
            chunk = os.read(leader, 1 << 16)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        seen += chunk
    out, _ = proc.communicate(timeout=120)
    os.close(leader)
    assert proc.returncode == 0 and b"done" in out, seen.decode(errors="replace")[-2000:]
    text = seen.decode(errors="replace")
    assert "blob.bin" in text and "%|" in text and "/3.15M" in text, text[-2000:]  # the download, in bytes
    assert "round 0: scoring" in text and "/6 [" in text, text[-2000:]  # the candidates scored

    # into a file, as a job the app starts writes its log: the same work, no bar
    log = tmp_path / "job.log"
    with open(log, "wb") as f:
        proc, _ = child(tmp_path, "file", f)
        out, _ = proc.communicate(timeout=240)
    logged = log.read_text(errors="replace")
    assert proc.returncode == 0 and b"done" in out, logged[-2000:]
    assert "%|" not in logged and "scoring" not in logged and "blob.bin" not in logged, logged[-2000:]
