"""Reading a published table's pickle without running code it names.

A pickle can call any importable function. The tables bench/ reads (NAS-Bench-201 in
``analog-nasbench``, NAS-Bench-Graph in ``nas-bench-graph``) need only plain builtin types and a
few classes of their own, so ``TableUnpickler`` resolves exactly those and refuses anything else
with a ValueError naming it; ``load_table`` turns every failure into a ValueError naming the file.
"""

from __future__ import annotations

import builtins
import importlib.util
import io
import pickle
from pathlib import Path

SAFE_BUILTINS = frozenset({"dict", "list", "tuple", "set", "frozenset", "int", "float", "complex", "str", "bytes",
                           "bool"})


class TableUnpickler(pickle.Unpickler):
    """Resolves plain builtin types and the ``allowed`` ``{(module, name): object}``; refuses the rest."""

    def __init__(self, data: bytes, allowed: dict[tuple[str, str], object], allowed_words: str):
        super().__init__(io.BytesIO(data))
        self.allowed, self.allowed_words = allowed, allowed_words

    def find_class(self, module: str, name: str):
        if module == "builtins" and name in SAFE_BUILTINS:
            return getattr(builtins, name)
        if (module, name) in self.allowed:
            return self.allowed[(module, name)]
        raise ValueError(f"table pickle refers to {module}.{name}, which is not allowed: only {self.allowed_words} "
                         "and plain builtin types may appear")


def load_table(path: Path, data: bytes, allowed: dict[tuple[str, str], object], allowed_words: str) -> object:
    """Unpickle a table's bytes with ``TableUnpickler``; every failure is a ValueError naming ``path``."""
    try:
        return TableUnpickler(data, allowed, allowed_words).load()
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, IndexError, KeyError) as e:
        raise ValueError(f"{path}: not a readable table pickle ({type(e).__name__}: {e})") from None


def installed(package: str, name: str) -> Path | None:
    """``name`` inside an installed package's folder (found without importing the package), or None."""
    spec = importlib.util.find_spec(package)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / name
        if path.exists():
            return path
    return None
