"""The anytime curves of ``bench/search_efficiency.py`` as a PNG: incumbent test accuracy against wall time."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from bench.records import results_dir


def plot_path(group: str) -> Path:
    """``<results>/plots/search_efficiency-<group>.png`` (the results directory of the run's records)."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", group).strip("_") or "run"
    return results_dir() / "plots" / f"search_efficiency-{slug}.png"


def link_from_page(path: Path) -> str:
    """The plot's path as the generated page (bench/report.py) links it."""
    from bench.report import page_path

    return Path(os.path.relpath(path, page_path(results_dir()).parent)).as_posix()


def plot_curves(curves: dict, level: float, marks: list[float], title: str, path: Path,
                xlabel: str = "wall time, s") -> Path:
    """Median (line) and range (band) over repetitions of each method's incumbent test accuracy on a
    grid of times; dotted: the level (best - 0.5 pp); dashed: ``marks`` (nasnav's end, twice it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    horizon = max(c.t for cs in curves.values() for c in cs)
    grid = np.linspace(0, horizon, 400)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    for m, cs in curves.items():
        v = np.array([[c.at(t) if t <= c.t else np.nan for t in grid] for c in cs])  # none past a run's end
        ok = ~np.isnan(v).all(axis=0)
        if not ok.any():
            continue
        with np.errstate(all="ignore"):
            med = np.nanmedian(v[:, ok], axis=0)
            lo, hi = np.nanmin(v[:, ok], axis=0), np.nanmax(v[:, ok], axis=0)
        (line,) = ax.step(grid[ok], med, where="post", label=m, lw=2 if m == "nasnav" else 1.3)
        ax.fill_between(grid[ok], lo, hi, step="post", alpha=0.12, color=line.get_color())
    ax.axhline(level, ls=":", c="k", lw=1, label="best - 0.5 pp")
    for x in marks:
        ax.axvline(x, ls="--", c="grey", lw=0.8)
    finite = [c.best_test for cs in curves.values() for c in cs if np.isfinite(c.best_test)]
    if finite:
        ax.set_ylim(max(min(finite) - 0.02, level - 0.05), max(finite) + 0.004)
    ax.set_xlabel(xlabel + " (cached trainings at their measured cost)")
    ax.set_ylabel("incumbent test accuracy (chosen by validation)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path
