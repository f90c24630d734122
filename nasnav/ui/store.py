"""What the pages read from a run directory, cached on file modification times.

Each reader takes the run's path and the mtimes of the files it depends on, so a cache entry
is reused until a job (or another session) rewrites the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from nasnav.analysis.fitness import steering_fitness
from nasnav.analysis.projection import get_projector
from nasnav.config import DataConfig
from nasnav.data.splits import describe, load_splits, preview_samples
from nasnav.errors import InvalidInput
from nasnav.jobs.control import running_job
from nasnav.model.supernet import Supernet
from nasnav.score.evaluate import CostModel, space_param_range
from nasnav.space import SearchSpace
from nasnav.store import layout, records
from nasnav.store.io import read_csv, read_yaml
from nasnav.store.records import read_finals
from nasnav.store.run_dir import RunDir
from nasnav.workflow import decisions, predictions
from nasnav.workflow.analysis import run_projector, steering_candidates
from nasnav.workflow.runs import load_run

GREY_SAMPLE = 200  # unscored architectures drawn from the space for the scatterplot


def mtime(path: str | Path) -> float:
    try:
        return Path(path).stat().st_mtime_ns / 1e9
    except OSError:
        return 0.0


@st.cache_data(max_entries=256, show_spinner=False)
def _csv(path: str, stamp: float) -> pd.DataFrame:
    return read_csv(path)


def csv(path: str | Path) -> pd.DataFrame:
    return _csv(str(path), mtime(path))


@st.cache_data(max_entries=32, show_spinner=False)
def _load(path: str, stamp: float):
    return load_run(path)


def load(path: str | Path):
    """(RunDir, Config) of a run directory; ValueError if it is not a run."""
    run = RunDir(path)
    return _load(str(run.path), mtime(run.config_path))


@st.cache_data(max_entries=64, show_spinner=False)
def _space(path: str, kind: str, stamp: float) -> SearchSpace:
    return SearchSpace.from_dict(read_yaml(path), kind)


def space(run: RunDir, cfg, k: int | None = None) -> SearchSpace:
    k = run.current_round() if k is None else k
    path = run.round_dir(k) / layout.SPACE
    if not path.exists():
        raise InvalidInput(f"{path}: round {k} has no space.yaml")
    return _space(str(path), cfg.kind, mtime(path))


def candidates(run: RunDir, k: int) -> pd.DataFrame:
    df = csv(run.round_dir(k) / layout.CANDIDATES)
    for col in ("arch", "one_shot_acc", "params", "flops", "val_loss"):
        if col not in df.columns:
            df[col] = pd.Series(dtype=float if col != "arch" else object)
    for col in ("one_shot_acc", "params", "flops", "val_loss"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    return df


def metrics(path: Path) -> pd.DataFrame:
    return csv(path)


def status(run: RunDir) -> dict:
    return run.read_status()


def finals(run: RunDir) -> pd.DataFrame:
    stamps = tuple(mtime(run.final_dir(k) / layout.FINAL_METRICS) for k in run.finals())
    return _finals(str(run.path), stamps)


@st.cache_data(max_entries=32, show_spinner=False)
def _finals(path: str, stamps: tuple) -> pd.DataFrame:
    return read_finals(RunDir(path))


def spotcheck(run: RunDir, k: int) -> dict | None:
    """Round k's spot-check summary; one that says "running" with no live spot-check job is "interrupted"
    (killed, or the machine went down: nobody will finish it)."""
    try:
        data = records.read_spotcheck(run, k)
    except ValueError:
        return None
    if data and data.get("state") == "running" and running_job(run, layout.SPOTCHECK_LANE) is None:
        data = {**data, "state": "interrupted", "message": "its job is gone"}
    return data


# ---- analysis: fitness, history, projection ------------------------------------------------
def fitness(run: RunDir, cfg, k: int) -> pd.DataFrame:
    """The fitness table of round k: the analysis file if it is up to date, else computed here."""
    rdir = run.round_dir(k)
    cand_t, fit_t, space_t = mtime(rdir / layout.CANDIDATES), mtime(rdir / layout.FITNESS), mtime(rdir / layout.SPACE)
    if fit_t and fit_t >= cand_t:
        return csv(rdir / layout.FITNESS)
    return _fitness(str(run.path), k, cfg.steering.confidence, cfg.seed, cand_t, space_t)


@st.cache_data(max_entries=16, show_spinner=False)
def _fitness(path: str, k: int, confidence: float, seed: int, cand_t: float, space_t: float) -> pd.DataFrame:
    run = RunDir(path)
    _, cfg = load(path)
    if candidates(run, k)["one_shot_acc"].notna().sum() == 0:
        return pd.DataFrame()
    df = steering_candidates(run, cfg, k)  # the auto-pilot's evidence (steering.evidence)
    return steering_fitness(df, space(run, cfg, k), cfg.steering, seed)


def history(run: RunDir) -> pd.DataFrame:
    stamps = tuple(mtime(p) for p in sorted((run.path / "rounds").glob("*/*")) if p.suffix in (".json", ".yaml", ".csv"))
    return _history(str(run.path), stamps + (mtime(run.path / layout.CURRENT_ROUND),))


@st.cache_data(max_entries=16, show_spinner=False)
def _history(path: str, stamps: tuple) -> pd.DataFrame:
    return decisions.history(RunDir(path))


def _projector(run: RunDir, cfg, method: str):
    """The run's stable layout for ``method`` (its fitted reference cached in RUN/projection/)."""
    if method == cfg.search.projection:
        return run_projector(run, cfg)
    size = getattr(cfg.search, "projection_reference", 1000)
    cache = run.path / "projection" / f"{method}-hamming-seed{cfg.seed}-n{size}.npz"
    return get_projector(cfg.search_space().unpruned(), method, cfg.seed, "hamming", size, cache)


def project(run: RunDir, cfg, archs: list[str], method: str) -> pd.DataFrame:
    """Columns arch, x, y on the run's stable layout."""
    if not archs:
        return pd.DataFrame(columns=["arch", "x", "y"])
    xy = _projector(run, cfg, method).transform(archs)
    return pd.DataFrame({"arch": archs, "x": xy[:, 0], "y": xy[:, 1]})


def grey_sample(sp: SearchSpace, k: int, n: int = GREY_SAMPLE) -> list[str]:
    """A seeded sample of the current space (what the search may still score)."""
    rng = np.random.default_rng([k, 4242])
    if sp.size() <= n:
        return [str(a) for a in sp]
    return list(dict.fromkeys(str(sp.sample(rng)) for _ in range(n)))


def scatter_points(run: RunDir, cfg, k: int, method: str, predict: bool = True) -> pd.DataFrame:
    """Candidates of round k placed on the stable projection, plus unscored ones in grey:
    columns arch, x, y, one_shot_acc, params, flops, scored, and the surrogate's predicted, predicted_sd
    of the unscored ones (NaN without ``predict``: while a search adds candidates every poll, a refit
    each time would compete with the search for the cores)."""
    df = candidates(run, k)
    df = df.dropna(subset=["arch"]).drop_duplicates("arch", keep="last")
    sp = space(run, cfg, k)
    scored = set(df["arch"].astype(str))
    grey = [a for a in grey_sample(sp, k) if a not in scored]
    archs = sorted(scored) + grey
    proj = project(run, cfg, list(archs), method)
    out = proj.merge(df[["arch", "one_shot_acc", "params", "flops"]], on="arch", how="left")
    out["scored"] = out["one_shot_acc"].notna()
    pred = _predictions(str(run.path), k, _evidence_stamp(run, k), tuple(grey)) if predict else ()
    return out.merge(pred, on="arch", how="left") if len(pred) else out.assign(predicted=np.nan, predicted_sd=np.nan)


@st.cache_data(max_entries=16, show_spinner=False)
def _predictions(path: str, k: int, stamp: tuple, archs: tuple[str, ...]) -> pd.DataFrame:
    """The surrogate's predicted accuracy (and sd) of the map's unscored points (empty: too few scored)."""
    run, cfg = load(path)
    try:
        return predictions.round_predictions(run, cfg, k, list(archs))
    except (ValueError, np.linalg.LinAlgError):
        return pd.DataFrame(columns=["arch", "predicted", "predicted_sd"])


def _evidence_stamp(run: RunDir, k: int) -> tuple[float, float]:
    """What the surrogate's views depend on: round k's candidates and the run's settings (steering.pick)."""
    return mtime(run.round_dir(k) / layout.CANDIDATES), mtime(run.path / layout.CONFIG)


SURROGATE_VIEWS = {"predicted_best": predictions.round_predicted_best,
                   "recommended": predictions.round_recommendations}


@st.cache_data(max_entries=32, show_spinner=False)
def _surrogate_view(view: str, path: str, k: int, stamp: tuple, n: int) -> pd.DataFrame:
    run, cfg = load(path)
    return SURROGATE_VIEWS[view](run, cfg, k, n)


def predicted_best(run: RunDir, k: int, n: int = 10) -> pd.DataFrame:
    """The ``n`` unscored architectures of round k's space with the best predicted accuracy."""
    return _surrogate_view("predicted_best", str(run.path), k, _evidence_stamp(run, k), n)


def recommended(run: RunDir, k: int, n: int = 5) -> pd.DataFrame:
    """Round k's candidates to retrain first, with own score, prediction and interval."""
    return _surrogate_view("recommended", str(run.path), k, _evidence_stamp(run, k), n)


# ---- data preview and cost of a space ------------------------------------------------------
@st.cache_data(max_entries=8, show_spinner="Loading the data set ...")
def data_preview(data_dict: dict, seed: int) -> dict:
    """Sizes, class counts and a few samples of a data section (as plain values)."""

    splits = load_splits(DataConfig(**data_dict), seed)
    info = describe(splits)
    info["samples"] = [(x.tolist(), label) for x, label in preview_samples(splits, 16)]
    return info


@st.cache_data(max_entries=32, show_spinner=False)
def space_cost(space_dict: dict, kind: str, shape: tuple, num_classes: int) -> tuple[int, int]:
    """Params of the smallest and of the largest architecture of a space."""

    sp = SearchSpace.from_dict(space_dict, kind)
    net = Supernet(sp, kind, shape[0], num_classes)
    return space_param_range(sp, CostModel(net, tuple(shape)))

