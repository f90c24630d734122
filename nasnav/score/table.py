"""An evaluator that looks accuracies up in a table instead of asking a supernet.

A table maps architecture strings (``conv3x3/skip/...``) to accuracies: a published benchmark
(NAS-Bench-201 in ``bench/nb201_table.py``), standalone results of earlier runs, or anything a user
measured. ``TableEvaluator`` plugs such a table into everything that takes an evaluator: search
(``nasnav.search.loop.run_search``), a headless round (``nasnav.workflow.pipeline.run_round``) and the auto-pilot
(``nasnav.steering.policy.autopilot_round``). Optional Gaussian noise stands in for one-shot estimation
error, so that search and steering policies can be judged against the known truth.

No torch: the table is plain Python.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from nasnav.errors import InvalidInput
from nasnav.space import Arch, SearchSpace


class TableEvaluator:
    """``arch -> {"one_shot_acc", "table_acc"}`` from a table of accuracies.

    ``table``: architecture string -> accuracy, in percent if ``percent`` (published tables), else a
    fraction. ``one_shot_acc`` is always a fraction (as the supernet's), the table value plus
    N(0, ``noise_pp`` percentage points) drawn from ``rng``; ``table_acc`` is the noiseless value.
    With ``persistent`` noise an architecture keeps its first error when scored again, like a fixed
    supernet's bias (re-scoring does not average the error away); otherwise every call draws anew.
    ``calls`` counts evaluations (repeats included).
    """

    def __init__(self, table: Mapping[str, float], noise_pp: float = 0.0, rng: np.random.Generator | None = None,
                 percent: bool = True, persistent: bool = True):
        if not table:
            raise InvalidInput("table evaluator: the table is empty; give architecture -> accuracy entries")
        if not (isinstance(noise_pp, (int, float)) and math.isfinite(noise_pp) and noise_pp >= 0):
            raise InvalidInput(f"table evaluator: noise_pp {noise_pp!r} must be a finite number >= 0 (percentage points)")
        if noise_pp > 0 and rng is None:
            raise InvalidInput("table evaluator: noise_pp > 0 needs rng (a numpy Generator): randomness is passed in")
        scale = 0.01 if percent else 1.0
        self.table = {str(k): float(v) * scale for k, v in table.items()}
        bad = [k for k, v in self.table.items() if not math.isfinite(v)]
        if bad:
            raise InvalidInput(f"table evaluator: accuracy of '{bad[0]}' is not a finite number ({len(bad)} such entries)")
        self.noise, self.rng, self.persistent = noise_pp * 0.01, rng, persistent
        self._error: dict[str, float] = {}
        self.calls = 0

    def _draw(self, key: str) -> float:
        if not self.noise:
            return 0.0
        if self.persistent:
            if key not in self._error:
                self._error[key] = float(self.rng.normal(0.0, self.noise))
            return self._error[key]
        return float(self.rng.normal(0.0, self.noise))

    def __call__(self, arch: Arch | str) -> dict:
        key = str(arch)
        if key not in self.table:
            raise InvalidInput(f"table evaluator: architecture '{key}' is not in the table ({len(self.table):,} entries); "
                             "the space and the table must name stages' components alike")
        self.calls += 1
        true = self.table[key]
        return {"one_shot_acc": true + self._draw(key), "table_acc": true}

    def best(self, space: SearchSpace | None = None) -> tuple[str, float]:
        """The table's best (architecture, fraction), over ``space`` if given (every one must be in the table)."""
        keys = [str(a) for a in space] if space is not None else list(self.table)
        missing = [k for k in keys if k not in self.table]
        if missing:
            raise InvalidInput(f"table evaluator: {len(missing)} architecture(s) of the space are not in the table, "
                             f"e.g. '{missing[0]}'")
        key = max(keys, key=self.table.__getitem__)
        return key, self.table[key]

    @classmethod
    def from_csv(cls, path: str | Path, space: SearchSpace, arch_column: str = "arch", acc_column: str = "accuracy",
                 **kwargs) -> TableEvaluator:
        """A table from a CSV file with an architecture column and an accuracy column; every
        architecture must parse in ``space`` (ValueError naming the row otherwise)."""

        path = Path(path)
        if not path.is_file():
            raise InvalidInput(f"{path}: table file not found")
        df = pd.read_csv(path)
        for col in (arch_column, acc_column):
            if col not in df.columns:
                raise InvalidInput(f"{path}: no column '{col}'; columns: {', '.join(map(str, df.columns))}")
        table = {}
        for i, (text, acc) in enumerate(zip(df[arch_column].astype(str), pd.to_numeric(df[acc_column], errors="coerce"))):
            try:
                arch = space.parse(text, check_active=False)
            except ValueError as e:
                raise InvalidInput(f"{path}: row {i + 2}: {e}") from None
            table[str(arch)] = float(acc)
        return cls(table, **kwargs)
