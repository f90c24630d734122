"""A surrogate of accuracy over the space, fitted on the scored candidates, with uncertainty.

A Gaussian process on architectures: the covariance of two architectures is
``exp(-theta * d)``, ``d`` the number of stages whose choice differs (a Hamming distance over the
stages; ``theta`` small: distant architectures still inform each other, large: only near
neighbours do). It is the product over stages of ``1 + a [same choice]`` (``a = e^theta - 1``)
up to scale, so it carries every order of interaction between stages, weighted down by order:
unlike the additive model behind fitness, it sees that a component is good in one combination and
poor in another. Scores are standardised; the noise share of the variance (``noise``) and
``theta`` are chosen by the marginal likelihood over a small grid unless given.

What it answers:

- ``predict(codes)``: posterior mean and standard deviation of the accuracy of any architectures,
  scored or not (the Explore page's prediction map, predictor-guided proposals);
- ``smoothed()``: the posterior mean at the scored candidates themselves, each candidate's own
  score blended with what the candidates like it say: a pick by it corrects part of the winner's
  curse (the best of many noisy scores is biased upward);
- ``loo()``: leave-one-out predictions (what the others alone say about each scored candidate).

Pure numpy; a few hundred candidates fit in milliseconds (a Cholesky factor of n x n); beyond
``MAX_FIT`` candidates it is fitted on the best and an even spread of the rest (``fitted_rows``).
Architectures are encoded per stage as the integer bit mask of the chosen components
(``encode``), so ``one`` and ``any`` stages alike compare choice by choice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.linalg import cho_factor, cho_solve

from nasnav.space import Arch, SearchSpace

THETAS = (0.25, 0.5, 1.0, 2.0)  # grid of the kernel's decay per differing stage
NOISES = (0.03, 0.1, 0.3, 1.0)  # grid of the noise variance, as a share of the standardised signal's
CHUNK = 4096  # rows of a prediction computed at once (memory: CHUNK x n floats)
SELECT_ON = 300  # the grid is judged on at most this many candidates (evenly spaced in order): cost n^3
MAX_FIT = 1000  # at most this many candidates are fitted (``fitted_rows``): the Cholesky factor costs n^3


def fitted_rows(y: np.ndarray, cap: int | None = None) -> np.ndarray:
    """Which of ``y``'s candidates a surrogate is fitted on: all up to ``cap``; beyond it the best half
    of ``cap`` by score (where the pick and the next proposals are decided) and the rest spread evenly
    over the remaining ones by score (the map's far regions). Sorted indices."""
    n, cap = len(y), MAX_FIT if cap is None else cap
    if n <= cap:
        return np.arange(n)
    order = np.argsort(-np.asarray(y, float), kind="stable")
    top, rest = order[: cap // 2], order[cap // 2:]
    spread = rest[np.unique(np.linspace(0, len(rest) - 1, cap - len(top)).astype(int))]
    return np.sort(np.concatenate([top, spread]))


def encode(space: SearchSpace, archs: Sequence[Arch | str]) -> np.ndarray:
    """(n, stages) int64: per stage the bit mask of the chosen components over the stage's ORIGINAL
    candidates (stable under pruning and pinning)."""
    pos = [{c: i for i, c in enumerate(s.candidates)} for s in space.stages]
    out = np.zeros((len(archs), len(space.stages)), dtype=np.int64)
    for r, a in enumerate(archs):
        arch = space.parse(a, check_active=False) if isinstance(a, str) else a
        for j, choice in enumerate(arch.choices):
            out[r, j] = sum(1 << pos[j][c] for c in choice)
    return out


def enumerate_codes(space: SearchSpace) -> np.ndarray:
    """Codes of every architecture of the (pruned) space, in ``iter(space)`` order, without building
    ``Arch`` objects (the space's size rows: keep it for spaces of up to a few 100,000)."""
    pos = [{c: i for i, c in enumerate(s.candidates)} for s in space.stages]
    per_stage = [np.array([sum(1 << pos[j][c] for c in ch) for ch in s.choices()], dtype=np.int64)
                 for j, s in enumerate(space.stages)]
    grids = np.meshgrid(*per_stage, indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=1)


def decode(space: SearchSpace, codes: np.ndarray) -> list[str]:
    """Architecture strings of codes (``encode``'s inverse)."""
    names = [s.candidates for s in space.stages]
    return ["/".join("+".join(c for i, c in enumerate(names[j]) if int(row[j]) >> i & 1) for j in range(len(row)))
            for row in np.asarray(codes)]


def _differing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The number of stages whose choice differs between the rows of ``a`` (n, S) and ``b`` (m, S): (n, m)."""
    return (a[:, None, :] != b[None, :, :]).sum(-1)


def _kernel(a: np.ndarray, b: np.ndarray, theta: float) -> np.ndarray:
    """exp(-theta * differing stages) between the rows of ``a`` and ``b``."""
    return np.exp(-theta * _differing(a, b))


@dataclass
class Surrogate:
    """A fitted Gaussian process (``fit``); predictions are in the scores' own units."""

    codes: np.ndarray  # (n, S) the scored candidates
    y: np.ndarray  # (n,) their scores
    theta: float
    noise: float  # noise variance / signal variance (standardised units)
    mean: float
    scale: float
    _factor: tuple  # Cholesky factor of K + noise I
    _alpha: np.ndarray  # (K + noise I)^-1 z, z the standardised scores

    @classmethod
    def fit(cls, codes: np.ndarray, y: np.ndarray, theta: float | None = None,
            noise: float | None = None) -> Surrogate:
        """Fit on ``codes`` (``encode``) with scores ``y`` (beyond ``MAX_FIT`` of them, on ``fitted_rows``);
        ``theta`` / ``noise`` None: the marginal likelihood's choice over ``THETAS`` / ``NOISES``.
        Duplicated rows are fine (a noise term)."""
        codes, y = np.asarray(codes, dtype=np.int64), np.asarray(y, dtype=float)
        if codes.ndim != 2 or len(codes) != len(y) or not len(y):
            raise ValueError(f"surrogate: {len(codes)} encoded candidates for {len(y)} scores; need at least one")
        keep = fitted_rows(y)
        codes, y = codes[keep], y[keep]
        mean = float(y.mean())
        scale = float(y.std()) or 1.0
        z = (y - mean) / scale
        d = _differing(codes, codes)
        if theta is None or noise is None:
            sub = np.unique(np.linspace(0, len(y) - 1, min(len(y), SELECT_ON)).astype(int))
            ds, zs, best = d[np.ix_(sub, sub)], z[sub], None
            for th in THETAS if theta is None else (theta,):
                k = np.exp(-th * ds)
                for nz in NOISES if noise is None else (noise,):
                    factor = cho_factor(k + nz * np.eye(len(sub)), lower=True)
                    # log marginal likelihood, up to a constant: -z'K^-1 z / 2 - log|L|
                    ll = -0.5 * float(zs @ cho_solve(factor, zs)) - float(np.log(np.diag(factor[0])).sum())
                    if best is None or ll > best[0]:
                        best = (ll, th, nz)
            _, theta, noise = best
        factor = cho_factor(np.exp(-theta * d) + noise * np.eye(len(y)), lower=True)
        return cls(codes, y, float(theta), float(noise), mean, scale, factor, cho_solve(factor, z))

    def predict(self, codes: np.ndarray, sd: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Posterior mean and standard deviation of the (noise-free) accuracy at ``codes``; the sd is
        skipped (None) with ``sd=False``, which is much cheaper for many rows."""
        codes = np.asarray(codes, dtype=np.int64)
        means, sds = [], []
        for lo in range(0, len(codes), CHUNK):
            ks = _kernel(codes[lo:lo + CHUNK], self.codes, self.theta)  # (m, n)
            means.append(self.mean + self.scale * (ks @ self._alpha))
            if sd:
                v = np.einsum("ij,ji->i", ks, cho_solve(self._factor, ks.T))
                sds.append(self.scale * np.sqrt(np.clip(1.0 - v, 1e-12, None)))
        mean = np.concatenate(means) if means else np.zeros(0)
        return mean, (np.concatenate(sds) if sds else np.zeros(0)) if sd else None

    def smoothed(self) -> np.ndarray:
        """Posterior mean at the scored candidates: each own score shrunk towards what similar
        candidates say (by how noisy the scores look)."""
        return self.y - self.scale * self.noise * self._alpha

    def loo(self) -> tuple[np.ndarray, np.ndarray]:
        """Leave-one-out predictive mean and sd of each scored candidate's score from the others."""
        inv_diag = np.diag(cho_solve(self._factor, np.eye(len(self.y))))
        z = (self.y - self.mean) / self.scale
        return self.mean + self.scale * (z - self._alpha / inv_diag), self.scale / np.sqrt(inv_diag)


def fit_frame(df: pd.DataFrame, space: SearchSpace, score: str = "one_shot_acc", theta: float | None = None,
              noise: float | None = None) -> tuple[Surrogate | None, list[str]]:
    """A surrogate fitted on the candidates of ``df`` that lie in ``space`` (ORIGINAL candidates:
    pruned ones count as evidence too) with a finite ``score``; also their architecture strings.
    None with fewer than 3 such candidates."""
    if df is None or not len(df) or "arch" not in df or score not in df:
        return None, []
    df = df.drop_duplicates("arch", keep="last")  # a candidate scored again: its latest score
    y = pd.to_numeric(df[score], errors="coerce").to_numpy(dtype=float)
    archs, ys, seen = [], [], set()
    for text, v in zip(df["arch"].astype(str), y):
        if not math.isfinite(v) or text in seen:
            continue
        try:
            space.parse(text, check_active=False)
        except ValueError:
            continue
        seen.add(text)
        archs.append(text)
        ys.append(v)
    if len(ys) < 3:
        return None, archs
    return Surrogate.fit(encode(space, archs), np.array(ys), theta, noise), archs


def pick(surrogate: Surrogate, blend: float = 0.0) -> int:
    """Index, into the fitted candidates (``surrogate.y``: beyond ``MAX_FIT`` a subset, see ``fitted_rows``),
    of the one to retrain: the best of ``blend`` x own score + (1 - blend) x the posterior mean
    (``smoothed``); blend 1 is the best own score. ``recommend`` ranks every candidate."""
    return int(np.argmax(blend * surrogate.y + (1.0 - blend) * surrogate.smoothed()))


RECOMMEND_COLUMNS = ["arch", "score", "predicted", "sd", "low", "high", "estimate"]


def recommend(df: pd.DataFrame, space: SearchSpace, blend: float = 0.0, score: str = "one_shot_acc",
              z: float = 1.96, theta: float | None = None, noise: float | None = None) -> pd.DataFrame:
    """The scored candidates of ``space`` best first by ``estimate`` = ``blend`` x own score + (1 -
    ``blend``) x the surrogate's posterior mean (fitted on every scored candidate of the original
    space), with the posterior's ``z`` interval (``low``, ``high``): why a candidate is recommended.
    With fewer than 3 scored candidates the estimate is the own score (no prediction)."""
    model, archs = fit_frame(df, space, score, theta, noise)
    if not archs:
        return pd.DataFrame(columns=RECOMMEND_COLUMNS)
    inside = np.array([space.contains(space.parse(a, check_active=False)) for a in archs])
    latest = pd.to_numeric(df.drop_duplicates("arch", keep="last").set_index("arch")[score], errors="coerce")
    own = np.array([float(latest[a]) for a in archs])  # every scored candidate, fitted or not (``fitted_rows``)
    if model is None:
        out = pd.DataFrame({"arch": archs, "score": own, "predicted": np.nan, "sd": np.nan, "low": np.nan,
                            "high": np.nan, "estimate": own})
    else:
        mean, sd = model.predict(encode(space, archs))
        out = pd.DataFrame({"arch": archs, "score": own, "predicted": mean, "sd": sd, "low": mean - z * sd,
                            "high": mean + z * sd, "estimate": blend * own + (1 - blend) * mean})
    out = out[inside]
    return out.sort_values("estimate", ascending=False, kind="stable").reset_index(drop=True)


def predicted_best(df: pd.DataFrame, space: SearchSpace, n: int = 10, score: str = "one_shot_acc", z: float = 1.96,
                   limit: int = 200_000, rng: np.random.Generator | None = None) -> pd.DataFrame:
    """The ``n`` architectures of ``space`` not scored yet with the best predicted accuracy (posterior
    mean), with the ``z`` interval: what to score next. Spaces up to ``limit`` architectures are
    predicted whole; larger ones on ``limit`` uniform samples."""
    model, archs = fit_frame(df, space, score)
    if model is None:
        return pd.DataFrame(columns=["arch", "predicted", "sd", "low", "high"])
    if space.size() <= limit:
        codes = enumerate_codes(space)
    else:
        rng = rng if rng is not None else np.random.default_rng(0)
        codes = np.unique(encode(space, [space.sample(rng) for _ in range(limit)]), axis=0)
    seen = set(archs) | set(df["arch"].astype(str))  # scored, or tried and failed (NaN): not "not yet scored"
    mean, _ = model.predict(codes, sd=False)
    order = np.argsort(-mean, kind="stable")
    rows = []
    for i in order:
        key = decode(space, codes[i:i + 1])[0]
        if key not in seen:
            rows.append(i)
            if len(rows) == n:
                break
    mean, sd = model.predict(codes[rows])
    return pd.DataFrame({"arch": decode(space, codes[rows]), "predicted": mean, "sd": sd, "low": mean - z * sd,
                         "high": mean + z * sd})


def predict_archs(df: pd.DataFrame, space: SearchSpace, archs: Sequence[str], score: str = "one_shot_acc") -> pd.DataFrame:
    """Predicted accuracy (posterior mean) and its sd of ``archs`` (any architecture strings of the
    original space) from the scored candidates of ``df``; NaN with fewer than 3 scored candidates.
    The Explore page's prediction map."""
    model, _ = fit_frame(df, space, score)
    if model is None or not len(archs):
        return pd.DataFrame({"arch": list(archs), "predicted": np.nan, "predicted_sd": np.nan})
    mean, sd = model.predict(encode(space, list(archs)))
    return pd.DataFrame({"arch": list(archs), "predicted": mean, "predicted_sd": sd})


def make_fit(space: SearchSpace, theta: float | None = None, noise: float | None = None):
    """The model ``nasnav.search.guided.Guided`` takes: ``fit(archs, scores)`` returns
    ``predict(archs) -> (mean, sd)``. Settings left None are chosen by the marginal likelihood, again
    each time the number of scores has doubled since the last choice (a refit in between keeps them:
    one Cholesky factor instead of a grid of them)."""
    chosen: dict = {}
    rows: dict[str, np.ndarray] = {}  # encodings of architectures seen before

    def codes(archs: Sequence[Arch]) -> np.ndarray:
        new = [a for a in archs if str(a) not in rows]
        for a, row in zip(new, encode(space, new)):
            rows[str(a)] = row
        return np.array([rows[str(a)] for a in archs]).reshape(len(archs), len(space.stages))

    def fit(archs: Sequence[Arch], scores: np.ndarray):
        n = len(scores)
        if not chosen or n >= 2 * chosen["n"]:
            s = Surrogate.fit(codes(archs), scores, theta, noise)
            chosen.update(n=n, theta=s.theta, noise=s.noise)
        else:
            s = Surrogate.fit(codes(archs), scores, chosen["theta"], chosen["noise"])
        return lambda xs: s.predict(encode(space, xs))

    return fit
