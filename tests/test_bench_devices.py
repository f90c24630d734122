"""Smoke runs of the device benchmarks (bench/gpu_smoke.py, bench/parallel.py): their reduced CPU
versions end to end, recording into a temporary results directory (``NASNAV_BENCH_RESULTS``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(script: str, args: list[str], tmp_path: Path) -> tuple[subprocess.CompletedProcess, list[dict]]:
    results = tmp_path / "results"
    env = {**os.environ, "NASNAV_BENCH_RESULTS": str(results), "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / f"{script}.py"), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    records = [json.loads(line) for line in (results / f"{script}.jsonl").read_text().splitlines()]
    return proc, records


def test_gpu_smoke_reduced_on_the_cpu(tmp_path):
    proc, records = _run("gpu_smoke", ["--quick"], tmp_path)
    assert "supernet training" in proc.stdout and "candidates scored" in proc.stdout
    m = records[-1]["metrics"]
    assert m["supernet_samples_per_s"] > 0 and m["candidates_per_s"] > 0 and m["retrain_samples_per_s"] > 0
    assert m["max_score_difference"] == 0  # on a CPU both scorings are float32
    assert records[-1]["group"] == "cpu (quick)"


@pytest.mark.slow
def test_parallel_benchmark_quick(tmp_path):
    proc, records = _run("parallel", ["--preset", "tiny", "--quick"], tmp_path)
    m = records[-1]["metrics"]
    assert m["spotcheck_same_results"] is True and m["supernet_seconds_2"] > 0
