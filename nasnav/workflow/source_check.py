"""Check generated Python (the exported ``model.py``) against its expected shape before anything imports it.

Values reach generated source only through ``repr()``; this is the second wall. The text is parsed with
``ast`` and every top-level statement must be one of:

- a statement of the fixed parts (docstring, imports, building blocks, helper functions, the
  ``__main__`` block), equal node for node to nasnav's own template;
- an assignment of one of the data names to a literal (``ast.literal_eval`` reads it) or, for a tensor
  name, ``torch.tensor(<literal>).reshape(<literal>)``;
- the builder function, whose body only assigns, appends, and returns calls of known constructors with
  literal arguments.

Anything else (an extra statement, an import, a call, a name defined twice) is refused with
``UnsafeSource``, naming the line, before the file is written or imported.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

from nasnav.errors import InvalidInput


class UnsafeSource(InvalidInput):
    """Generated source that is not of the expected shape; nothing was written or imported."""


@dataclass(frozen=True)
class SourceShape:
    """What a generated module may contain.

    ``fixed``: source whose top-level statements must appear as they are (each exactly once);
    ``data``: names assigned a literal; ``tensors``: names assigned None or a literal tensor;
    ``builder``: the name of the function that calls ``constructors`` (plus ``nn.<module>`` calls
    listed in ``nn_modules``) with literal arguments.
    """

    fixed: str
    data: frozenset[str]
    tensors: frozenset[str] = frozenset()
    builder: str = "build"
    constructors: frozenset[str] = frozenset()
    nn_modules: frozenset[str] = frozenset({"Identity"})

    @cached_property
    def fixed_nodes(self) -> dict[str, ast.stmt]:
        """The fixed statements by a key (their definition name, or their dump for other statements)."""
        return {_key(node): node for node in ast.parse(self.fixed).body}


def _key(node: ast.stmt) -> str:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return f"def {node.name}"
    return ast.dump(node)


def _label(key: str) -> str:
    """A key of ``_key`` in words: the definition's name, or the kind of statement."""
    return key.removeprefix("def ") if key.startswith("def ") else f"a fixed {key.split('(')[0]} statement"


def _same(a: ast.AST, b: ast.AST) -> bool:
    return ast.dump(a, include_attributes=False) == ast.dump(b, include_attributes=False)


def _literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def _tensor(node: ast.expr) -> bool:
    """None, or ``torch.tensor(<literal>).reshape(<literal>)``."""
    if isinstance(node, ast.Constant) and node.value is None:
        return True
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "reshape"):
        return False
    inner = node.func.value
    return (
        len(node.args) == 1 and not node.keywords and _literal(node.args[0])
        and isinstance(inner, ast.Call) and len(inner.args) == 1 and not inner.keywords and _literal(inner.args[0])
        and isinstance(inner.func, ast.Attribute) and inner.func.attr == "tensor"
        and isinstance(inner.func.value, ast.Name) and inner.func.value.id == "torch"
    )  # fmt: skip


class _Builder:
    """The builder's body: local names bound to constructor calls, lists of them, ``.append``, ``return``."""

    def __init__(self, shape: SourceShape):
        self.shape = shape
        self.local: set[str] = set()  # names the builder has bound so far

    def call(self, node: ast.expr) -> bool:
        if not isinstance(node, ast.Call):
            return False
        f = node.func
        known = (isinstance(f, ast.Name) and f.id in self.shape.constructors) or (
            isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "nn"
            and f.attr in self.shape.nn_modules
        )  # fmt: skip
        return known and all(self.value(a) for a in node.args) and all(
            k.arg is not None and self.value(k.value) for k in node.keywords
        )

    def value(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Name):
            return node.id in self.local
        if isinstance(node, ast.List):
            return all(self.value(e) for e in node.elts)
        return _literal(node) or self.call(node)

    def statement(self, node: ast.stmt) -> bool:
        if isinstance(node, ast.Assign):
            if len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) and self.value(node.value):
                self.local.add(node.targets[0].id)
                return True
            return False
        if isinstance(node, ast.Return):
            return node.value is not None and self.call(node.value)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            f = node.value.func  # stages.append(<call>)
            return (
                isinstance(f, ast.Attribute) and f.attr == "append" and self.value(f.value)
                and len(node.value.args) == 1 and not node.value.keywords and self.value(node.value.args[0])
            )  # fmt: skip
        return False

    def function(self, node: ast.stmt) -> bool:
        a = getattr(node, "args", None)
        return (
            isinstance(node, ast.FunctionDef) and not node.decorator_list and node.returns is None
            and not (a.args or a.posonlyargs or a.kwonlyargs or a.vararg or a.kwarg)
            and bool(node.body) and all(self.statement(s) for s in node.body)
        )  # fmt: skip


def check_source(source: str, shape: SourceShape, where: str) -> ast.Module:
    """The parsed module if ``source`` has the expected shape; ``UnsafeSource`` naming ``where`` otherwise."""

    def refuse(why: str, node: ast.AST | None = None) -> UnsafeSource:
        line = f" (line {node.lineno})" if node is not None and hasattr(node, "lineno") else ""
        return UnsafeSource(
            f"{where}: the generated source is not of the expected shape{line}: {why}. It was not written or "
            "imported. A value from a run folder file (arch.yaml, a space record) reached the code; check those "
            "files or retrain the architecture"
        )

    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError) as e:
        raise refuse(f"it does not parse ({e})") from None
    fixed = shape.fixed_nodes
    seen: set[str] = set()
    builder = _Builder(shape)
    for node in tree.body:
        key = _key(node)
        if key in seen:
            raise refuse(f"{_label(key)} is defined twice", node)
        seen.add(key)
        if key in fixed:
            if not _same(node, fixed[key]):
                raise refuse(f"{_label(key)} differs from nasnav's template", node)
            continue
        if key == f"def {shape.builder}":
            if not builder.function(node):
                raise refuse(f"{shape.builder}() may only call the network's building blocks", node)
            continue
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in seen:
                raise refuse(f"{name} is assigned twice", node)
            seen.add(name)
            if name in shape.data and _literal(node.value):
                continue
            if name in shape.tensors and _tensor(node.value):
                continue
        raise refuse(f"unexpected {type(node).__name__} statement", node)
    missing = [_label(k) for k in fixed if k not in seen] + sorted(_label(k) for k in _expected(shape) if k not in seen)
    if missing:
        raise refuse(f"missing {', '.join(missing[:5])}")
    return tree


def _expected(shape: SourceShape) -> Iterable[str]:
    yield from shape.data
    yield from shape.tensors
    yield f"def {shape.builder}"
