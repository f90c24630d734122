"""GPU smoke check: the cifar10 preset, briefly, on whatever accelerator the machine has.

    python bench/gpu_smoke.py                        # a GPU machine: random CIFAR-shaped data, recorded
    python bench/gpu_smoke.py --download --root DIR  # real CIFAR-10, fetched into DIR (data.download)
    python bench/gpu_smoke.py --quick --no-write     # the reduced CPU version the suite runs

Measures, with the product's own code paths: supernet training samples/s (``workflow.supernet``, one
device), candidates scored per second with BatchNorm recalibration (``workflow.search.supernet_evaluator``:
on the configured accelerator, in ``search.precision`` auto = bf16 on a GPU, and in float32 for
comparison, with how far the two scores lie apart), standalone retraining samples/s
(``train.standalone``), peak memory of each, and supernet training under DDP on every device of the
machine (``python -m nasnav supernet`` with ``trainer.devices`` = the device count; skipped on one GPU,
``--ddp-processes N`` forces N, which on a CPU means N processes).
"""

from __future__ import annotations

import argparse
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, log, markdown_table, quiet_engine, report  # noqa: E402
from nasnav.config import load_config, preset_path  # noqa: E402
from nasnav.data import sources  # noqa: E402
from nasnav.store.io import read_csv  # noqa: E402
from nasnav.train.standalone import train_standalone  # noqa: E402
from nasnav.workflow.runs import create_run, load_data, round_space  # noqa: E402
from nasnav.workflow.search import supernet_evaluator  # noqa: E402
from nasnav.workflow.supernet import train_supernet  # noqa: E402


def scratch_root() -> Path | None:
    """Where the run's temporary data goes: the first data root (``sources.data_roots``; data paths are
    confined to them), or the system's temporary folder when every path is allowed."""
    root = sources.data_roots()[0]
    if root == Path(root.anchor):
        return None
    root.mkdir(parents=True, exist_ok=True)
    return root


def random_cifar(folder: Path, n: int, seed: int = 0) -> Path:
    """CIFAR-10 python batches of random pixels and labels (``n`` images): the shapes of the real thing."""
    rng = np.random.default_rng(seed)
    out = folder / "cifar-10-batches-py"
    out.mkdir(parents=True)
    per = max(1, n // 6)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (per, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, per).tolist()}
        (out / name).write_bytes(pickle.dumps(batch))
    return out


def _peak_reset() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def _peak_mib() -> float:
    """Peak GPU memory allocated since the last reset; on a CPU the process's peak resident memory."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _rate(metrics: pd.DataFrame) -> float:
    r = pd.to_numeric(metrics["samples_per_s"], errors="coerce").dropna()
    return float(r.iloc[1:].median() if len(r) > 1 else r.median())


def _score(run, cfg, archs) -> tuple[float, list[float]]:
    ev = supernet_evaluator(run, cfg, 0)
    ev(archs[0])  # warm-up: kernels, allocator
    t = time.perf_counter()
    accs = [ev(a)["one_shot_acc"] for a in archs]
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return len(archs) / (time.perf_counter() - t), accs


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=12000, help="random CIFAR-shaped images (without --download)")
    p.add_argument("--download", action="store_true", help="real CIFAR-10 (source cifar10, data.download true)")
    p.add_argument("--root", default=None, help="data.root for --download")
    p.add_argument("--epochs", type=int, default=2, help="supernet and retrain epochs")
    p.add_argument("--candidates", type=int, default=100, help="candidates to score")
    p.add_argument("--ddp-processes", type=int, default=None,
                   help="processes of the DDP run (default: every GPU when there are several; 0: none)")
    p.add_argument("--quick", action="store_true", help="the reduced CPU run of the test suite")
    p.add_argument("--no-write", action="store_true", help="print only; record nothing")
    args = p.parse_args(argv)
    gpu = torch.cuda.is_available()
    if args.quick:
        args.samples, args.epochs, args.candidates = 480, 1, 6
    quiet_engine()
    with tempfile.TemporaryDirectory(dir=scratch_root()) as tmp:  # the random CIFAR is data: inside a data root
        tmp = Path(tmp)
        sets = ["steering.autopilot=false", f"supernet.epochs={args.epochs}", f"retrain.epochs={args.epochs}",
                "trainer.enable_progress_bar=false"]
        if args.download:
            sets += ["data.source=cifar10", "data.download=true"] + ([f"data.root={args.root}"] if args.root else [])
        else:
            sets += ["data.source=cifar", f"data.path={random_cifar(tmp, args.samples)}"]
        if not gpu:  # the preset asks for 16-mixed on a GPU; a CPU trains in float32
            sets += ["trainer.accelerator=cpu", "trainer.devices=1", "trainer.precision=32-true"]
        if args.quick:  # narrow stages: seconds on a CPU
            sets += ["data.batch_size=64", "space.stem_channels=8"] + [
                f"space.stages[{i}].channels={c}" for i, c in enumerate((8, 16, 16, 16, 16))]
        cfg = load_config(preset_path("cifar10"), [*sets, "trainer.devices=1"])
        run = create_run(cfg, tmp / "run")
        rows, metrics = [], {}

        log("supernet, one device")
        _peak_reset()
        t = time.time()
        train_supernet(run, cfg, 0)
        sup = read_csv(run.round_dir(0) / "metrics.csv")
        rows.append({"what": "supernet training", "per second": f"{_rate(sup):.0f} samples",
                     "seconds": f"{time.time() - t:.1f}", "peak MiB": f"{_peak_mib():.0f}"})
        metrics["supernet_samples_per_s"] = round(_rate(sup), 1)

        space = round_space(run, cfg, 0)
        rng = np.random.default_rng(0)
        archs = [space.sample(rng) for _ in range(args.candidates)]
        log(f"scoring {len(archs)} candidates")
        _peak_reset()
        rate, accs = _score(run, cfg, archs)
        mib = _peak_mib()
        precision = "bf16" if gpu and torch.cuda.is_bf16_supported() else "float32"
        rate32, accs32 = _score(run, load_config(preset_path("cifar10"), [*sets, "trainer.devices=1",
                                                                          "search.precision=32"]), archs)
        diff = float(np.max(np.abs(np.array(accs) - np.array(accs32))))
        rows.append({"what": f"candidates scored ({precision}, BN recalibration)", "per second": f"{rate:.1f}",
                     "seconds": f"{len(archs) / rate:.1f}", "peak MiB": f"{mib:.0f}"})
        rows.append({"what": "candidates scored (float32)", "per second": f"{rate32:.1f}",
                     "seconds": f"{len(archs) / rate32:.1f}", "peak MiB": ""})
        metrics.update(candidates_per_s=round(rate, 2), candidates_per_s_fp32=round(rate32, 2),
                       max_score_difference=round(diff, 4))

        log("retraining the largest candidate")
        _peak_reset()
        t = time.time()
        res = train_standalone(cfg, space, space.largest(), load_data(cfg), cfg.seed, args.epochs,
                               metrics_path=tmp / "retrain.csv", quiet=True, test=False, single_process=True)
        rate = _rate(pd.DataFrame(res["rows"]))
        rows.append({"what": "retraining (largest candidate)", "per second": f"{rate:.0f} samples",
                     "seconds": f"{time.time() - t:.1f}", "peak MiB": f"{_peak_mib():.0f}"})
        metrics["retrain_samples_per_s"] = round(rate, 1)

        n = args.ddp_processes if args.ddp_processes is not None else (torch.cuda.device_count() if gpu else 0)
        if n > 1:
            log(f"supernet under DDP, {n} processes")
            ddp = create_run(load_config(preset_path("cifar10"), [*sets, f"trainer.devices={n}"]), tmp / "ddp")
            t = time.time()
            proc = subprocess.run([sys.executable, "-m", "nasnav", "supernet", str(ddp.path)], cwd=ROOT,
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"DDP supernet failed:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
            m = read_csv(ddp.round_dir(0) / "metrics.csv")
            rows.append({"what": f"supernet training, DDP on {n} {'GPUs' if gpu else 'CPU processes'}",
                         "per second": f"{_rate(m):.0f} samples", "seconds": f"{time.time() - t:.1f}",
                         "peak MiB": ""})
            metrics["ddp_samples_per_s"], metrics["ddp_processes"] = round(_rate(m), 1), n
        else:
            rows.append({"what": "supernet training, DDP on every device", "per second": "one device: not run",
                         "seconds": "", "peak MiB": ""})
    device = torch.cuda.get_device_name(0) if gpu else "CPU"
    data = "CIFAR-10 (downloaded)" if args.download else f"{args.samples} random CIFAR-shaped images"
    body = (f"cifar10 preset{' (narrowed: --quick)' if args.quick else ''}, {data}, {args.epochs} epoch(s), "
            f"on {device}.\n\n{markdown_table(rows)}\nOne-shot accuracy, {precision} against float32 scoring: "
            f"largest difference {diff:.4f} over {len(archs)} candidates.\n")
    report("GPU smoke check: the cifar10 preset on the accelerator", body, not args.no_write,
           group="gpu" if gpu else "cpu", params=vars(args), metrics=metrics, benchmark="gpu_smoke")


if __name__ == "__main__":
    main()
