"""What the evaluated candidates of a round say: fitness per component, importance per stage,
(the scatterplot's projection is ``nasnav.analysis.projection``).

Fitness of a component (stage s, component c) answers "how much better are candidates with c
than without it". Two estimators:

- ``marginal``: mean accuracy of candidates containing c minus the mean of those that don't,
  with a Welch t interval. Unbiased only when the other stages are sampled independently of c
  (uniform random search).
- ``adjusted`` (default): the same contrast with the other stages held fixed. An additive model
  ``acc ~ intercept + sum of component effects`` is fitted by least squares over all candidates;
  for a ``one`` stage the fitness is ``beta_c`` minus the frequency-weighted mean effect of the
  choices the candidates without c made, for an ``any`` stage it is ``beta_c`` (the gain of adding
  c). Under uniform sampling its expectation equals the marginal difference; under evolution,
  which over-samples good components in every stage together, it removes the bias the marginal
  difference inherits from the other stages. Its interval uses a heteroscedasticity-robust
  (HC1 sandwich) standard error and a t quantile.

``bootstrap=B`` replaces either interval by a seeded percentile bootstrap over candidates.

Evidence: by default a round's fitness uses that round's candidates only (a fine-tuned supernet
scores differently from the previous one). With ``steering.evidence: all`` (an evaluator whose
scores do not change between rounds: a lookup table, standalone training) the candidates of earlier
rounds that still lie in the space count too (``evidence_frame``); ``in_top`` then still looks at
the latest round only, so that one lucky score does not protect its components forever.

Neither estimator sees interactions between stages (a component poor on average can be the best
one in the best cell); the table therefore also reports the upper tail of each component
(``top_with``: a quantile of the accuracies of candidates containing it, ``best_with``) and
``in_top`` (how many of the round's best candidates use it), which the auto-pilot uses.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from nasnav.choices import EVIDENCE_MODES, FITNESS_MODES
from nasnav.errors import InvalidInput
from nasnav.space import SearchSpace

FITNESS_COLUMNS = ["stage", "component", "fitness", "ci_low", "ci_high", "frequency", "mean_with", "mean_without",
                   "best_with", "top_with", "in_top", "pruned", "pinned", "active"]


def design(df: pd.DataFrame, space: SearchSpace) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Masks (n, columns) and accuracies of the candidates that belong to ``space`` with a finite score."""
    if df is None or not len(df) or "arch" not in df:
        return np.zeros((0, len(space.columns())), dtype=np.uint8), np.zeros(0), []
    acc = pd.to_numeric(df["one_shot_acc"], errors="coerce").to_numpy(dtype=float)
    masks, ys, archs = [], [], []
    seen: set[str] = set()
    for text, y in zip(df["arch"].astype(str), acc):
        if not math.isfinite(y) or text in seen:
            continue
        try:
            arch = space.parse(text, check_active=False)
        except ValueError:
            continue
        if space.contains(arch):
            seen.add(text)
            masks.append(space.mask(arch))
            ys.append(y)
            archs.append(text)
    if not masks:
        return np.zeros((0, len(space.columns())), dtype=np.uint8), np.zeros(0), []
    return np.array(masks, dtype=np.uint8), np.array(ys), archs


def _stage_slices(space: SearchSpace) -> list[slice]:
    out, lo = [], 0
    for s in space.stages:
        out.append(slice(lo, lo + len(s.candidates)))
        lo += len(s.candidates)
    return out


def _contrasts(m: np.ndarray, space: SearchSpace, cols: list[int]) -> dict[int, np.ndarray]:
    """Per estimable column j: the vector a with fitness_j = a . beta (beta over [1] + cols)."""
    pos = {c: i + 1 for i, c in enumerate(cols)}
    out = {}
    for s, sl in zip(space.stages, _stage_slices(space)):
        for j in range(sl.start, sl.stop):
            if j not in pos:
                continue
            a = np.zeros(len(cols) + 1)
            a[pos[j]] = 1.0
            if s.select == "one":
                without = m[:, j] == 0
                counts = m[without, sl].sum(0).astype(float)
                for jj, cnt in zip(range(sl.start, sl.stop), counts):
                    if cnt and jj in pos:
                        a[pos[jj]] -= cnt / counts.sum()
            out[j] = a
    return out


def _adjusted(m: np.ndarray, y: np.ndarray, space: SearchSpace, cols: list[int]) -> tuple[dict, dict, int]:
    """Point estimates and robust standard errors of the adjusted fitness; also the residual dof."""
    x = np.column_stack([np.ones(len(y)), m[:, cols].astype(float)])
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ beta
    rank = int(np.linalg.matrix_rank(x))
    dof = len(y) - rank
    bread = np.linalg.pinv(x.T @ x)
    meat = (x * (resid**2)[:, None]).T @ x
    cov = bread @ meat @ bread * (len(y) / dof if dof > 0 else math.nan)
    est, se = {}, {}
    for j, a in _contrasts(m, space, cols).items():
        est[j] = float(a @ beta)
        se[j] = float(math.sqrt(max(a @ cov @ a, 0.0))) if dof > 0 else math.nan
    return est, se, dof


def _estimable(m: np.ndarray) -> list[int]:
    freq = m.sum(0)
    return [j for j in range(m.shape[1]) if 0 < freq[j] < len(m)]


def _top(df: pd.DataFrame, archs: list[str], y: np.ndarray, top: int) -> np.ndarray:
    """Indices (into the design) of the ``top`` best candidates of the latest round present."""
    idx = np.arange(len(y))
    if len(y) and "round" in df.columns:
        rounds = pd.to_numeric(df["round"], errors="coerce")
        if rounds.notna().any():
            latest = set(df.loc[rounds == rounds.max(), "arch"].astype(str))
            idx = np.array([i for i, a in enumerate(archs) if a in latest], dtype=int)
    return idx[np.argsort(-y[idx], kind="stable")][: max(0, int(top))] if len(idx) else idx


def _point(m: np.ndarray, y: np.ndarray, space: SearchSpace, method: str) -> dict[int, float]:
    cols = _estimable(m)
    if method == "adjusted":
        return _adjusted(m, y, space, cols)[0] if cols else {}
    return {j: float(y[m[:, j] == 1].mean() - y[m[:, j] == 0].mean()) for j in cols}


def fitness_table(df: pd.DataFrame, space: SearchSpace, confidence: float = 0.95, seed: int = 0,
                  method: str = "adjusted", quantile: float = 0.9, top: int = 5, bootstrap: int = 0) -> pd.DataFrame:
    """One row per ORIGINAL (stage, component): fitness with a ``confidence`` interval, frequency,
    mean accuracy with / without, best and ``quantile`` accuracy with it, uses among the ``top`` best
    candidates (of the latest round, if ``df`` has a ``round`` column), and the pruned / pinned /
    active flags. Candidates outside ``space`` are ignored; fitness is NaN where it cannot be
    estimated (never or always used)."""

    if method not in FITNESS_MODES:
        raise InvalidInput(f"fitness method '{method}' is unknown; methods: {', '.join(FITNESS_MODES)}")
    if not 0 < confidence < 1:
        raise InvalidInput(f"confidence {confidence} must lie strictly between 0 and 1")
    m, y, archs = design(df, space)
    n = len(y)
    cols = _estimable(m) if n else []
    est, lo, hi = {}, {}, {}
    z = 0.5 + confidence / 2
    if cols and method == "adjusted":
        est, se, dof = _adjusted(m, y, space, cols)
        t = stats.t.ppf(z, dof) if dof > 0 else math.nan
        lo = {j: est[j] - t * se[j] for j in est}
        hi = {j: est[j] + t * se[j] for j in est}
    elif cols:
        for j in cols:
            a, b = y[m[:, j] == 1], y[m[:, j] == 0]
            est[j] = float(a.mean() - b.mean())
            va, vb = (a.var(ddof=1) / len(a) if len(a) > 1 else math.nan), (b.var(ddof=1) / len(b) if len(b) > 1 else math.nan)
            se = math.sqrt(va + vb)
            dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)) if se > 0 else math.inf
            t = stats.t.ppf(z, dof) if math.isfinite(se) else math.nan
            lo[j], hi[j] = est[j] - t * se, est[j] + t * se
    if bootstrap and cols:
        rng = np.random.default_rng(seed)
        draws = {j: [] for j in est}
        for _ in range(int(bootstrap)):
            idx = rng.integers(0, n, n)
            p = _point(m[idx], y[idx], space, method)
            for j in draws:
                draws[j].append(p.get(j, math.nan))
        for j, d in draws.items():
            d = np.array(d)
            d = d[np.isfinite(d)]
            lo[j], hi[j] = (np.quantile(d, 1 - z), np.quantile(d, z)) if len(d) else (math.nan, math.nan)
    top_idx = _top(df, archs, y, top)
    rows = []
    pairs = [(st, c) for st in space.stages for c in st.candidates]  # the mask's columns, in order
    for j, (s, c) in enumerate(pairs):
        with_c = m[:, j] == 1 if n else np.zeros(0, dtype=bool)
        yw, yo = y[with_c], y[~with_c]
        rows.append({
            "stage": s.name, "component": c,
            "fitness": est.get(j, math.nan), "ci_low": lo.get(j, math.nan), "ci_high": hi.get(j, math.nan),
            "frequency": int(with_c.sum()),
            "mean_with": float(yw.mean()) if len(yw) else math.nan,
            "mean_without": float(yo.mean()) if len(yo) else math.nan,
            "best_with": float(yw.max()) if len(yw) else math.nan,
            "top_with": float(np.quantile(yw, quantile)) if len(yw) else math.nan,
            "in_top": int(m[top_idx, j].sum()) if n else 0,
            "pruned": c not in s.active, "pinned": s.pinned is not None and c in s.pinned, "active": c in s.active,
        })
    return pd.DataFrame(rows, columns=FITNESS_COLUMNS)


def steering_fitness(df: pd.DataFrame, space: SearchSpace, sc, seed: int = 0) -> pd.DataFrame:
    """The fitness table the auto-pilot decides on, with the settings of ``sc`` (a SteeringConfig):
    the one call shared by the app's fitness view and proposals, the headless auto-pilot and bench/."""
    return fitness_table(df, space, confidence=sc.confidence, seed=seed, method=sc.fitness,
                         quantile=sc.quantile, top=sc.protect_top)


def evidence_frame(rounds: list[pd.DataFrame], evidence: str = "round") -> pd.DataFrame:
    """The candidates fitness is computed from, given each round's candidates (oldest first):
    ``round``: the latest round's; ``all``: every round's, an architecture scored in several rounds
    keeping its latest score (fitness ignores those outside the current space)."""
    if evidence not in EVIDENCE_MODES:
        raise InvalidInput(f"steering.evidence: '{evidence}' is not one of {', '.join(EVIDENCE_MODES)}")
    frames = [f for f in rounds if f is not None and len(f)]
    if evidence == "round" or not frames:
        return rounds[-1] if rounds else pd.DataFrame(columns=["arch", "one_shot_acc"])
    pooled = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return pooled.drop_duplicates("arch", keep="last").reset_index(drop=True)


def stage_importance(df: pd.DataFrame, space: SearchSpace) -> pd.DataFrame:
    """Share of the accuracy variance each stage's choice explains (0..1): the variance of the stage's
    part of the additive model over the candidates, divided by the variance of the accuracies. The
    shares add up to the additive model's R^2 when stages were sampled independently; the rest is
    interactions and noise (column ``r2`` repeats the model's R^2)."""
    m, y, _ = design(df, space)
    cols = _estimable(m) if len(y) else []
    imp = {s.name: 0.0 for s in space.stages}
    r2 = 0.0
    if cols and len(y) > 2 and y.var() > 0:
        x = np.column_stack([np.ones(len(y)), m[:, cols].astype(float)])
        beta, *_ = np.linalg.lstsq(x, y, rcond=None)
        r2 = float(max(0.0, 1 - ((y - x @ beta) ** 2).mean() / y.var()))
        pos = {c: i + 1 for i, c in enumerate(cols)}
        for s, sl in zip(space.stages, _stage_slices(space)):
            js = [j for j in range(sl.start, sl.stop) if j in pos]
            if js:
                part = m[:, js].astype(float) @ beta[[pos[j] for j in js]]
                imp[s.name] = float(min(1.0, part.var() / y.var()))
    return pd.DataFrame({"stage": list(imp), "importance": list(imp.values()), "r2": r2})

