"""``final/<key>/arch.yaml`` read back, checked: the record the exporter turns into code and the card into text.

A run folder is user data: anyone who can write it can edit arch.yaml. So every value the exporter and the
model card use is checked here first (types, the name rule on the space, finite statistics), and the
derived values (the per-stage choices) are computed again from the architecture rather than trusted.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from nasnav.data.splits import InputSpec
from nasnav.errors import InvalidInput
from nasnav.space import Arch, SearchSpace
from nasnav.store.io import read_yaml

TEXT_MAX = 2000  # raw_input, data_source: a sentence or two, not a payload


def _numbers(value: Any, key: str, where: str) -> list[float] | None:
    if value is None:
        return None
    ok = isinstance(value, list) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value
    )
    if not ok:
        raise InvalidInput(f"{where}: normalisation.{key}: expected a list of finite numbers or null")
    return [float(v) for v in value]


def _normalisation(raw: Any, where: str) -> dict:
    if raw is None:
        return {"mean": None, "std": None, "shape": None}
    if not isinstance(raw, dict) or set(raw) - {"mean", "std", "shape"}:
        raise InvalidInput(f"{where}: normalisation: expected a mapping with mean, std and shape")
    mean, std = _numbers(raw.get("mean"), "mean", where), _numbers(raw.get("std"), "std", where)
    shape = raw.get("shape")
    if (mean is None) != (std is None):
        raise InvalidInput(f"{where}: normalisation: give both mean and std, or neither")
    if mean is None:
        return {"mean": None, "std": None, "shape": None}
    if not (isinstance(shape, list) and shape and all(type(s) is int and s > 0 for s in shape)):
        raise InvalidInput(f"{where}: normalisation.shape: expected a list of positive integers")
    if len(mean) != len(std) or math.prod(shape) != len(mean):
        raise InvalidInput(f"{where}: normalisation: mean and std must have as many values as shape "
                           f"{shape} holds ({math.prod(shape)})")
    return {"mean": mean, "std": std, "shape": shape}


def _text(raw: dict, key: str, where: str) -> str | None:
    value = raw.get(key)
    if value is not None and (not isinstance(value, str) or len(value) > TEXT_MAX):
        raise InvalidInput(f"{where}: {key}: expected text of at most {TEXT_MAX} characters")
    return value


def check_arch_record(raw: Any, where: str) -> dict:
    """The record with every value checked (InvalidInput naming ``where`` and the key otherwise):
    ``arch``, ``space`` (a ``SearchSpace``), ``parsed`` (its ``Arch``), ``spec`` (an ``InputSpec``),
    ``choices`` (stage name -> choice, from the architecture), ``normalisation``, ``raw_input``,
    ``data_source``."""
    if not isinstance(raw, dict) or not isinstance(raw.get("arch"), str) or "space" not in raw:
        raise InvalidInput(f"{where}: not an arch record (expected arch, space, input); retrain the architecture")
    try:
        spec = InputSpec.from_dict(raw.get("input"))
        space = SearchSpace.from_dict(raw["space"], spec.kind).validate()
        arch: Arch = space.parse(raw["arch"], check_active=False)
    except (ValueError, TypeError) as e:
        raise InvalidInput(f"{where}: {e}") from None
    return {
        "arch": str(arch),
        "space": space,
        "parsed": arch,
        "spec": spec,
        "choices": {s.name: "+".join(c) for s, c in zip(space.stages, arch.choices)},
        "normalisation": _normalisation(raw.get("normalisation"), where),
        "raw_input": _text(raw, "raw_input", where),
        "data_source": _text(raw, "data_source", where),
    }


def read_arch_record(path: str | Path) -> dict:
    """``check_arch_record`` of an arch.yaml file."""
    return check_arch_record(read_yaml(path), str(path))
