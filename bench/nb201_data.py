"""The NAS-Bench-201 CIFAR-10 table shipped in the ``analog-nasbench`` wheel, read safely.

The wheel's ``analognasbench/data.anb`` is a pickle: a dict keyed by 6-tuples of operation indices
(NASLib order: 0 skip_connect, 1 none, 2 nor_conv_3x3, 3 nor_conv_1x1, 4 avg_pool_3x3; edges
(1,2), (1,3), (1,4), (2,3), (2,4), (3,4)) whose values are ``Architecture`` records holding
``baseline_accuracy`` (CIFAR-10 test accuracy in percent after 200 epochs) among other metrics,
some of them ``DriftMeasurement`` records. Its own API imports ``pkg_resources`` and breaks on
current setuptools, and a pickle can run any code it names, so it is read here with a restricted
unpickler: the two record classes map to plain stand-ins, a few builtin types are allowed, and any
other class is refused with a ValueError naming it.

Benchmark-only: install the wheel with ``pip install -r requirements-bench.txt``, or pass
the file (``.anb``) or the downloaded wheel (``.whl``) with ``--table``.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

from bench.table_pickle import installed, load_table
from nasnav.space import SearchSpace, Stage

OPS = ("skip", "none", "conv3x3", "conv1x1", "avgpool3x3")  # NASLib's index order
EDGES = ("edge12", "edge13", "edge14", "edge23", "edge24", "edge34")  # cell nodes (from, to)
RECORD_MODULE = "analognasbench.data"
MEMBER = "analognasbench/data.anb"  # the table's path inside the wheel


class Record:
    """A plain stand-in for an unpickled record: attributes only, no behaviour."""

    def __setstate__(self, state) -> None:
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise ValueError(f"{type(self).__name__} record: expected a mapping of attribute names, "
                             f"got {type(state).__name__}")
        self.__dict__.update(state)


class Architecture(Record):
    """Stand-in for ``analognasbench.data.Architecture``."""


class DriftMeasurement(Record):
    """Stand-in for ``analognasbench.data.DriftMeasurement``."""


RECORDS = {"Architecture": Architecture, "DriftMeasurement": DriftMeasurement}
ALLOWED = {(RECORD_MODULE, name): cls for name, cls in RECORDS.items()}


def _read_bytes(path: Path) -> bytes:
    if path.suffix == ".whl" or zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            if MEMBER not in z.namelist():
                raise ValueError(f"{path}: the wheel holds no {MEMBER}; expected analog-nasbench 0.1.3")
            return z.read(MEMBER)
    return path.read_bytes()


def load_anb(path: str | Path) -> dict[tuple[int, ...], float]:
    """``{op-index 6-tuple: baseline accuracy in percent}`` from a ``data.anb`` file or the wheel."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: table file not found; give analognasbench/data.anb or the analog-nasbench wheel")
    raw = load_table(path, _read_bytes(path), ALLOWED, f"{RECORD_MODULE}.{' / '.join(RECORDS)} records")
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a dict of architecture records, got {type(raw).__name__}")
    table = {}
    for key, rec in raw.items():
        if not (isinstance(key, tuple) and len(key) == len(EDGES)
                and all(isinstance(i, int) and 0 <= i < len(OPS) for i in key)):
            raise ValueError(f"{path}: key {key!r} is not a 6-tuple of operation indices 0..{len(OPS) - 1}")
        acc = getattr(rec, "baseline_accuracy", None) if isinstance(rec, Architecture) else None
        if isinstance(acc, bool) or not isinstance(acc, (int, float)) or not math.isfinite(acc):
            raise ValueError(f"{path}: entry {key} has no finite baseline_accuracy")
        table[key] = float(acc)
    if not table:
        raise ValueError(f"{path}: the table is empty")
    return table


def installed_table() -> Path | None:
    """The installed wheel's ``data.anb``, or None."""
    return installed("analognasbench", "data.anb")


def nb201_space(n_ops: int = len(OPS)) -> SearchSpace:
    """6 stages (the cell's edges) x the first ``n_ops`` operations, select one. Pure Python: the
    names are the table's, not the ops registry's (``none`` is not a trainable component)."""
    if not 2 <= n_ops <= len(OPS):
        raise ValueError(f"--subset: {n_ops} operations per edge; give 2..{len(OPS)}")
    return SearchSpace(tuple(Stage(e, OPS[:n_ops]) for e in EDGES)).validate(where="nb201 space")


def arch_key(ops: tuple[int, ...]) -> str:
    """The nasnav architecture string of an op-index tuple."""
    return "/".join(OPS[i] for i in ops)


def space_table(table: dict[tuple[int, ...], float], space: SearchSpace) -> dict[str, float]:
    """``{architecture string: accuracy}`` for every architecture of ``space``; ValueError naming a
    missing one (a subset table must hold the whole subset space)."""
    by_key = {arch_key(k): v for k, v in table.items()}
    out = {}
    for arch in space:
        key = str(arch)
        if key not in by_key:
            raise ValueError(f"the table has no entry for {key}: it holds {len(table):,} architectures, the space "
                             f"{space.size():,}; use --subset with the number of operations it covers")
        out[key] = by_key[key]
    return out
