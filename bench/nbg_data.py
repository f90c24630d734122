"""The NAS-Bench-Graph tables shipped in the ``nas-bench-graph`` wheel, read safely, as nasnav spaces.

NAS-Bench-Graph (Qin et al., NeurIPS 2022 datasets track; Apache-2.0) trained 26,206 GNN
architectures on each of 8 node-classification data sets, and 2,021 on ogbg-proteins with another
operation set. Each table, ``nas_bench_graph/light/<name>.bench``, is a pickle ``{hash: {"valid_perf",
"perf", "latency", "para"}}``: validation and test accuracy (fractions), latency, parameters (numpy
scalars). An architecture is a link pattern (which earlier node each of the 4 computing nodes reads:
9 patterns up to isomorphism) and 4 operations; the package's ``Arch(link, ops).valid_hash()`` maps
each of the 9 x 9^4 combinations to its table entry (isomorphic graphs share one), except the 9
all-skip ones, which are no GNN and are not in the tables: here they get the table's worst
validation and test accuracy.

As a nasnav space: 5 stages, ``link`` (components ``l0000`` .. ``l0123``) and ``op1`` .. ``op4``
(the operations), select one. The pickles are read with a restricted unpickler (dicts, numbers,
numpy scalars and dtypes), never ``pickle.load``; the hashing is the package's own (pure Python, it
imports nothing heavy).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy._core.multiarray import scalar

from bench.table_pickle import installed, load_table
from nasnav.space import SearchSpace, Stage

LINKS = ((0, 0, 0, 0), (0, 0, 0, 1), (0, 0, 1, 1), (0, 0, 1, 2), (0, 0, 1, 3), (0, 1, 1, 1), (0, 1, 1, 2),
         (0, 1, 2, 2), (0, 1, 2, 3))  # the package's link_list
OPS = ("gat", "gcn", "gin", "cheb", "sage", "arma", "graph", "fc", "skip")  # its gnn_list
OPS_PROTEINS = ("gcn", "sage", "arma", "fc", "skip")  # its gnn_list_proteins (hashed with gnn_list's codes)
TABLES = ("cora", "citeseer", "pubmed", "cs", "physics", "photo", "computers", "arxiv", "proteins")
FIELDS = ("valid_perf", "perf", "latency", "para")
# numpy pickles its scalars by these names (numpy.core is numpy._core's alias on numpy 2)
ALLOWED = {("numpy.core.multiarray", "scalar"): scalar, ("numpy._core.multiarray", "scalar"): scalar, ("numpy", "dtype"): np.dtype}


def link_name(link: tuple[int, ...]) -> str:
    return "l" + "".join(map(str, link))


def load_bench(path: str | Path) -> dict[int, dict[str, float]]:
    """``{hash: {"valid_perf", "perf", "latency", "para"}}`` as plain floats; ValueError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: table file not found; give nas_bench_graph/light/<name>.bench")
    raw = load_table(path, path.read_bytes(), ALLOWED, "numpy scalars and dtypes")
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{path}: expected a non-empty dict of architecture records")
    out = {}
    for key, rec in raw.items():
        if not isinstance(key, int) or not isinstance(rec, dict):
            raise ValueError(f"{path}: entry {key!r} is not an integer hash with a record")
        vals = {}
        for f in FIELDS:
            v = rec.get(f)
            try:
                v = float(v)
            except (TypeError, ValueError):
                raise ValueError(f"{path}: entry {key} has no number '{f}'") from None
            if not math.isfinite(v):
                raise ValueError(f"{path}: entry {key} has a non-finite '{f}'")
            vals[f] = v
        out[key] = vals
    return out


def installed_dir() -> Path | None:
    """The installed wheel's ``light`` folder, or None."""
    return installed("nas_bench_graph", "light")


def graph_space(name: str) -> SearchSpace:
    """The nasnav space of a table: ``link`` x 4 operation stages, select one."""
    ops = OPS_PROTEINS if name == "proteins" else OPS
    stages = [Stage("link", tuple(link_name(lk) for lk in LINKS))] + [Stage(f"op{i + 1}", ops) for i in range(4)]
    return SearchSpace(tuple(stages)).validate(where=f"nas-bench-graph {name} space")


@dataclass
class GraphTable:
    """One table over its whole nasnav space: architecture string -> validation / test accuracy (percent)."""

    name: str
    space: SearchSpace
    valid: dict[str, float]
    test: dict[str, float]
    entries: int  # distinct architectures in the published table


def _hash(link: tuple[int, ...], ops: tuple[str, ...]) -> int:
    from nas_bench_graph.architecture import Arch  # pure Python (random, json); the package's own hashing

    return Arch(list(link), list(ops)).valid_hash()


def graph_table(name: str, folder: str | Path | None = None) -> GraphTable:
    """Table ``name`` from ``folder`` (default: the installed wheel), mapped onto ``graph_space(name)``."""
    if name not in TABLES:
        raise ValueError(f"NAS-Bench-Graph table '{name}' is unknown; tables: {', '.join(TABLES)}")
    folder = Path(folder) if folder else installed_dir()
    if folder is None:
        raise ValueError("no NAS-Bench-Graph tables: pip install -r requirements-bench.txt")
    bench = load_bench(folder / f"{name}.bench")
    space = graph_space(name)
    worst_v = min(r["valid_perf"] for r in bench.values()) * 100
    worst_t = min(r["perf"] for r in bench.values()) * 100
    valid, test = {}, {}
    ops = space.stages[1].candidates
    for li, combo in itertools.product(range(len(LINKS)), itertools.product(ops, repeat=4)):
        key = "/".join((link_name(LINKS[li]),) + combo)
        if all(o == "skip" for o in combo):
            valid[key], test[key] = worst_v, worst_t
            continue
        h = _hash(LINKS[li], combo)
        if h not in bench:
            raise ValueError(f"{name}: architecture {key} (hash {h}) is not in the table")
        valid[key], test[key] = bench[h]["valid_perf"] * 100, bench[h]["perf"] * 100
    return GraphTable(name, space, valid, test, len(bench))


def tau(a: dict[str, float], b: dict[str, float]) -> float:
    """Kendall tau between two columns over the same keys (ties broken by order): a quick check."""
    from scipy.stats import kendalltau

    keys = list(a)
    return float(kendalltau(np.array([a[k] for k in keys]), np.array([b[k] for k in keys])).statistic)
