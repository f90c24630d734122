"""A stable 2-D layout of architectures for the search-space scatterplot.

Stability is the point: a dot the analyst has seen must not jump when more candidates arrive,
when a new round begins, or when the app restarts. So the layout is fitted once, on a fixed,
seeded **reference** sample of the ORIGINAL (unpruned) space (the whole space when it is small),
and every architecture is then placed by a pure function of its own binary mask:

- a reference architecture sits at its fitted point;
- any other is placed by kernel regression on the reference points, weighted by
  ``exp(-beta * (d - d_min))`` over its distance ``d`` to each reference mask (Hamming or
  Jaccard): it lands among its nearest reference neighbours (``pca`` is linear: exact);
- a small jitter derived from a hash of the architecture string separates points that would
  otherwise coincide.

So the same architecture string always maps to the same point, whatever else is projected, in
any round, in any process. The fitted reference layout can be cached in a file (``.npz``, no
pickle) so that a run keeps its layout even across library upgrades.

Methods: ``mds`` (SMACOF metric MDS from a classical-MDS start), ``tsne``, ``umap`` (umap-learn),
``pca``. Costs on 2 CPU cores: see BENCHMARKS.md / bench/throughput.py.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.manifold import TSNE, ClassicalMDS, smacof

from nasnav.choices import PROJECTIONS
from nasnav.errors import InvalidInput
from nasnav.space import SearchSpace
from nasnav.store.io import atomic_write_bytes

METRICS = ("hamming", "jaccard")
JITTER = 0.015  # in layout units (the reference layout spans [-1, 1])
SHARPNESS = 3.0  # beta in units of the smallest distance step: the nearest neighbours dominate
CHUNK = 1000  # rows of the (new x reference) distance matrix computed at once


def _check(method: str, metric: str) -> None:
    if method not in PROJECTIONS:
        raise InvalidInput(f"projection method '{method}' is unknown; methods: {', '.join(PROJECTIONS)}")
    if metric not in METRICS:
        raise InvalidInput(f"projection metric '{metric}' is unknown; metrics: {', '.join(METRICS)}")


def distances(a: np.ndarray, b: np.ndarray, metric: str = "hamming") -> np.ndarray:
    """(len(a), len(b)) distances between binary masks: Hamming counts or Jaccard distances."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    inter = a @ b.T
    if metric == "hamming":
        return a.sum(1)[:, None] + b.sum(1)[None, :] - 2 * inter
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    return 1.0 - np.divide(inter, union, out=np.ones_like(inter), where=union > 0)


def _jitter(archs: list[str]) -> np.ndarray:
    """A fixed offset per architecture string, uniform in [-JITTER, JITTER]^2."""
    out = np.empty((len(archs), 2))
    for i, a in enumerate(archs):
        h = hashlib.blake2b(a.encode(), digest_size=8).digest()
        out[i] = np.frombuffer(h, dtype=np.uint32) / np.float64(2**32)
    return (out * 2 - 1) * JITTER


class Projector:
    """Stable 2-D coordinates for architecture strings of one space (see the module docstring).

    ``space``: the ORIGINAL space (pruning is ignored: the layout covers the whole space).
    """

    def __init__(self, space: SearchSpace, method: str = "mds", seed: int = 0, metric: str = "hamming",
                 reference_size: int = 1000, cache_path: str | Path | None = None):
        _check(method, metric)
        self.space, self.method, self.seed, self.metric = space.unpruned(), method, int(seed), metric
        self._index = [{c: j for j, c in enumerate(s.candidates)} for s in self.space.stages]
        self._offsets = np.cumsum([0] + [len(s.candidates) for s in self.space.stages])
        self.ref_archs = self._reference(reference_size)
        self.ref_masks = self.masks(self.ref_archs)
        self._ref_pos = {a: i for i, a in enumerate(self.ref_archs)}
        xy = self._load(cache_path)
        if xy is None:
            xy = self._fit()
            if cache_path is not None:
                self._save(cache_path, xy)
        self.ref_xy = xy
        step = distances(self.ref_masks[:200], self.ref_masks[:200], metric)
        self.beta = SHARPNESS / float(step[step > 1e-12].min()) if (step > 1e-12).any() else SHARPNESS
        self._coords: dict[str, np.ndarray] = {}

    # ---- masks ---------------------------------------------------------------------------------
    def masks(self, archs: list[str]) -> np.ndarray:
        """(n, columns) binary masks of architecture strings; ValueError naming a bad one."""
        out = np.zeros((len(archs), int(self._offsets[-1])), dtype=np.uint8)
        for i, text in enumerate(archs):
            parts = str(text).split("/")
            try:
                if len(parts) != len(self._index):
                    raise KeyError
                for st, part in enumerate(parts):
                    for c in part.split("+"):
                        out[i, self._offsets[st] + self._index[st][c]] = 1
            except KeyError:
                self.space.parse(str(text), check_active=False)  # raises with a precise message
                raise InvalidInput(f"architecture '{text}' does not fit the space") from None
        return out

    def _reference(self, size: int) -> list[str]:
        """All architectures of a small space, else ``size`` distinct seeded samples."""
        if self.space.size() <= size:
            return [str(a) for a in self.space]
        rng = np.random.default_rng([self.seed, 7919])
        seen: dict[str, None] = {}
        tries = 0
        while len(seen) < size and tries < 50 * size:
            seen.setdefault(str(self.space.sample(rng)), None)
            tries += 1
        return list(seen)

    # ---- fitting the reference layout ------------------------------------------------------------
    def _fit(self) -> np.ndarray:
        x = self.ref_masks.astype(np.float64)
        n = len(x)
        if n == 1:
            return np.zeros((1, 2))
        if self.method == "pca":
            self._mean = x.mean(0)
            _, _, vt = np.linalg.svd(x - self._mean, full_matrices=False)
            self._components = vt[:2] if len(vt) >= 2 else np.vstack([vt, np.zeros_like(vt)])
            xy = (x - self._mean) @ self._components.T
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                xy = self._fit_nonlinear(x)
        return self._normalise(xy)

    def _fit_nonlinear(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        if n <= 3:
            return np.column_stack([np.arange(n, dtype=float), np.zeros(n)])
        if self.method == "mds":

            d = distances(x, x, self.metric)
            init = ClassicalMDS(n_components=2, metric="precomputed").fit_transform(d)
            init = init + np.random.default_rng(self.seed).normal(0, 1e-6, init.shape)  # break exact ties
            xy, _ = smacof(d, n_components=2, init=init, n_init=1, max_iter=200, random_state=self.seed)
            return xy
        if self.method == "tsne":

            metric = "euclidean" if self.metric == "hamming" else "jaccard"  # euclidean on masks = sqrt(Hamming)
            data = x if metric == "euclidean" else x.astype(bool)
            return TSNE(n_components=2, perplexity=float(min(30, (n - 1) / 3)), init="pca" if metric == "euclidean" else "random",
                        max_iter=500, metric=metric, random_state=self.seed).fit_transform(data)
        import umap  # umap-learn; the first call compiles (numba), later ones are quick

        return umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), min_dist=0.1, metric=self.metric,
                         random_state=self.seed, init="random" if n < 20 else "spectral").fit_transform(x)

    def _normalise(self, xy: np.ndarray) -> np.ndarray:
        """Centre, rotate onto principal axes, fix signs and scale into [-1, 1]: a canonical pose,
        so two fits that differ by a rotation or reflection draw the same picture."""
        xy = np.asarray(xy, dtype=np.float64)
        self._centre = xy.mean(0)
        c = xy - self._centre
        _, _, vt = np.linalg.svd(c, full_matrices=False)
        rot = vt.T
        c = c @ rot
        signs = np.where((c**3).sum(0) < 0, -1.0, 1.0)  # skew to the positive side
        rot = rot * signs
        scale = float(np.abs(c).max()) or 1.0
        self._rot, self._scale = rot, scale
        return (xy - self._centre) @ rot / scale

    # ---- cache ------------------------------------------------------------------------------------
    def _meta(self) -> str:
        return f"{self.method}|{self.metric}|{self.seed}|{len(self.ref_archs)}|v1"

    def _load(self, path: str | Path | None) -> np.ndarray | None:
        if path is None or not Path(path).exists() or self.method == "pca":
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["meta"]) != self._meta() or list(z["archs"]) != self.ref_archs:
                    return None
                return np.array(z["xy"], dtype=np.float64)
        except (OSError, KeyError, ValueError):
            return None  # unreadable or foreign: refit

    def _save(self, path: str | Path, xy: np.ndarray) -> None:
        if self.method == "pca":
            return  # linear and instant: nothing worth caching

        buf = io.BytesIO()
        np.savez(buf, meta=np.array(self._meta()), archs=np.array(self.ref_archs), xy=xy)
        atomic_write_bytes(path, buf.getvalue())

    # ---- placing architectures --------------------------------------------------------------------
    def transform(self, archs: list[str]) -> np.ndarray:
        """(n, 2) coordinates; the same architecture string always maps to the same point."""
        archs = [str(a) for a in archs]
        new = list(dict.fromkeys(a for a in archs if a not in self._coords))
        if new:
            xy = self._place(new) + _jitter(new)
            for a, p in zip(new, xy):
                self._coords[a] = p
        if not archs:
            return np.zeros((0, 2))
        return np.array([self._coords[a] for a in archs])

    def _place(self, archs: list[str]) -> np.ndarray:
        m = self.masks(archs)
        out = np.empty((len(archs), 2))
        if self.method == "pca":
            if not hasattr(self, "_components"):
                self._fit()  # loaded from nowhere: the linear map is recomputed (cheap, deterministic)
            return ((m - self._mean) @ self._components.T - self._centre) @ self._rot / self._scale
        for lo in range(0, len(archs), CHUNK):
            d = distances(m[lo:lo + CHUNK], self.ref_masks, self.metric)  # (chunk, R)
            dmin = d.min(1, keepdims=True)
            w = np.exp(-self.beta * (d - dmin))
            out[lo:lo + CHUNK] = (w @ self.ref_xy) / w.sum(1, keepdims=True)
        exact = [i for i, a in enumerate(archs) if a in self._ref_pos]
        for i in exact:
            out[i] = self.ref_xy[self._ref_pos[archs[i]]]
        return out


_CACHE: OrderedDict = OrderedDict()


def get_projector(space: SearchSpace, method: str = "mds", seed: int = 0, metric: str = "hamming",
                  reference_size: int = 1000, cache_path: str | Path | None = None) -> Projector:
    """A Projector shared per (original space, method, seed, metric, size, cache file) in this process."""
    _check(method, metric)
    key = (space.unpruned(), method, int(seed), metric, int(reference_size), str(cache_path))
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    proj = Projector(space, method, seed, metric, reference_size, cache_path)
    _CACHE[key] = proj
    while len(_CACHE) > 8:
        _CACHE.popitem(last=False)
    return proj


def project(space: SearchSpace, archs: list[str], method: str = "mds", seed: int = 0, **kw) -> pd.DataFrame:
    """Columns arch, x, y: stable coordinates of ``archs`` (a cached Projector per space/method/seed)."""
    archs = [str(a) for a in archs]
    xy = get_projector(space, method, seed, **kw).transform(archs)
    return pd.DataFrame({"arch": archs, "x": xy[:, 0] if len(archs) else [], "y": xy[:, 1] if len(archs) else []})
