"""Own components: a user's PyTorch modules as candidates of a search space.

A component file (or a module of an installed package) is plain PyTorch with a ``COMPONENTS`` mapping::

    COMPONENTS = {
        "se_conv3x3": SEConv,  # built as SEConv(channels=C, dim=d)
        "se_conv5x5": {"cls": SEConv, "kwargs": {"kernel": 5}, "kinds": ["image"], "description": "..."},
    }
    KINDS = ("image", "sequence")  # optional: the input kinds of the file's components (this is the default)

Like the built-in ones (``nasnav.model.layers``), a component class is built as ``cls(channels=C, dim=d,
**kwargs)`` (d: 2 images (N, C, H, W), 1 sequences (N, C, L), 0 tables (N, C)) and keeps the shape of its
input. Its description is the ``description`` given, else the first line of the class's docstring.

Where they come from: a config's top-level ``components:`` list (paths of ``.py`` files, relative to the
config file, or module names of installed packages), and the modules that installed packages declare under
the entry-point group ``nasnav.components``. Every process reads its config through
``nasnav.config.config_from_dict``, which calls ``load`` here, so the CLI, the app, each job
(``python -m nasnav ...``), each DDP rank and each training worker load them the same way.

A component file is code. Only files and modules named by a config on disk (the CLI's, a run's
config.yaml, a preset) or at the app's start (``nasnav app --components FILE``) are imported; a config
built from browser input (``load_code=False``) may only name components already loaded, never a new one.

Faults are ``InvalidInput`` naming the file, the component and what is wrong: a file that fails to import,
a name that clashes with a built-in or another file's component, a constructor that cannot take
``channels`` and ``dim``, an output whose shape differs from its input (probed with a small dummy tensor
at load time, and again at each stage's width when a config is checked).
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.abc
import importlib.metadata
import importlib.util
import inspect
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from nasnav.errors import InvalidInput
from nasnav.model import layers, ops
from nasnav.names import name_problem
from nasnav.store.io import atomic_write_bytes

GROUP = "nasnav.components"  # the entry-point group of installed packages
DEFAULT_KINDS = ("image", "sequence")
PROBE_CHANNELS = 8
PROBE_SHAPE = {2: (8, 8), 1: (16,), 0: ()}  # per-sample extent after the channels, by dim
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_SPEC_KEYS = {"cls", "kwargs", "kinds", "description"}
# names model.py defines itself (layers.py's source plus the generated part): a class may not shadow them
_TAKEN = {n for n in vars(layers) if not n.startswith("_")} | {
    "build", "load", "preprocess", "predict", "INPUT_SHAPE", "CLASS_NAMES", "MEAN", "STD"}  # fmt: skip
# an exported source file becomes <stem>.py beside model.py: it may not hide these on the import path
_TAKEN_MODULES = {"model", "torch", "nasnav", "numpy", *sys.stdlib_module_names}


@dataclass(frozen=True)
class _Loaded:
    digest: str  # of the file's bytes: a changed file is loaded again
    names: tuple[str, ...]
    stem: str


_LOADED: dict[str, _Loaded] = {}  # by entry: an absolute .py path or a module name
_ENTRY_POINT_PROBLEMS: list[str] | None = None  # None: entry points not loaded yet in this process


# ---- naming and loading ------------------------------------------------------------------------
def resolve(entry: str, base: Path | None = None) -> str:
    """A ``components`` entry as loaded: a .py path made absolute (relative to ``base``, else the current
    folder); a module name as it is."""
    if not entry.endswith(".py"):
        return entry
    path = Path(entry).expanduser()
    return str((path if path.is_absolute() else (base or Path.cwd()) / path).resolve())


def load(entries: list[str], load_code: bool = True) -> list[str]:
    """Load the entry points' modules and the resolved ``entries``; one problem line per fault."""
    problems = list(load_entry_points())
    for i, entry in enumerate(entries):
        try:
            _load_entry(entry, load_code)
        except InvalidInput as e:
            problems.append(f"components[{i}]: {e}")
    return problems


def load_entry_points() -> list[str]:
    """Load the modules installed packages declare under ``nasnav.components`` (once per process)."""
    global _ENTRY_POINT_PROBLEMS
    if _ENTRY_POINT_PROBLEMS is None:
        _ENTRY_POINT_PROBLEMS = []
        for ep in importlib.metadata.entry_points(group=GROUP):
            try:
                _load_entry(ep.module, load_code=True)
            except InvalidInput as e:
                dist = ep.dist.name if ep.dist else "an installed package"
                _ENTRY_POINT_PROBLEMS.append(f"entry point '{ep.name}' of {dist} ({GROUP}): {e}")
    return _ENTRY_POINT_PROBLEMS


def _refused(entry: str) -> InvalidInput:
    return InvalidInput(
        f"{entry}: not loaded in this app, and a config from the browser never imports code; name it when "
        f"starting the app (`nasnav app --components {entry}`) or run the config from the command line"
    )


def _load_entry(entry: str, load_code: bool) -> None:
    if entry.endswith(".py"):
        path = Path(entry)
        if not path.is_file():
            raise InvalidInput(f"{path}: component file not found")
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if entry in _LOADED and _LOADED[entry].digest == digest:
            return
        if not load_code:
            raise _refused(entry)
        _check_source(path, data)
        module = _import_file(path, digest)
    else:
        if not _MODULE.match(entry):
            raise InvalidInput(f"'{entry}': neither a .py file nor a module name (e.g. my_blocks.attention)")
        if entry in _LOADED:
            return
        if not load_code:
            raise _refused(entry)
        try:
            module = importlib.import_module(entry)
        except Exception as e:
            raise InvalidInput(f"module {entry}: fails to import: {type(e).__name__}: {e}") from None
        path = Path(getattr(module, "__file__", None) or entry)
        if path.suffix != ".py":
            raise InvalidInput(f"module {entry}: has no Python source file ({path}); export copies the source")
        data = path.read_bytes()
        _check_source(path, data)
        digest = hashlib.sha256(data).hexdigest()
    _register(entry, module, path, digest)


def _check_source(path: Path, data: bytes) -> None:
    """The source must parse and must not import nasnav (model.py runs without it)."""
    try:
        tree = ast.parse(data, filename=str(path))
    except SyntaxError as e:
        raise InvalidInput(f"{path}: fails to import: SyntaxError at line {e.lineno}: {e.msg}") from None
    except ValueError as e:  # null bytes, not UTF-8: not a Python source file
        raise InvalidInput(f"{path}: fails to import: not Python source ({e})") from None
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []  # fmt: skip
        if any(n.split(".")[0] == "nasnav" for n in names):
            raise InvalidInput(f"{path}: line {node.lineno} imports nasnav; a component is plain PyTorch (the "
                               f"exported model.py runs without nasnav)")


def _import_file(path: Path, digest: str):
    """Import a file as its own module, kept in sys.modules (tracing and pickling look classes up there) and
    in the environment, so that a process started by spawning finds it by that name (``_SpawnedFinder``)."""
    name = f"{_PREFIX}{re.sub(r'[^A-Za-z0-9_]', '_', path.stem)}_{digest[:12]}"
    if name not in sys.modules:  # else the same bytes, imported before (or unpickled from a parent's classes)
        spec = importlib.util.spec_from_file_location(name, path)
        sys.modules[name] = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(sys.modules[name])
        except Exception as e:
            del sys.modules[name]
            raise InvalidInput(f"{path}: fails to import: {type(e).__name__}: {e}") from None
    os.environ[_ENV] = json.dumps({**_spawned_files(), name: str(path)})
    return sys.modules[name]


_PREFIX = "nasnav_user_"
_ENV = "NASNAV_COMPONENT_MODULES"  # {module name: file} of the component files this process (or its parent) loaded


def _spawned_files() -> dict:
    try:
        files = json.loads(os.environ.get(_ENV) or "{}")
    except ValueError:
        return {}
    return files if isinstance(files, dict) else {}


class _SpawnedFinder(importlib.abc.MetaPathFinder):
    """A process started by spawning (DDP's ``ddp_spawn``, multiprocessing) unpickles a supernet by class and module
    name before it reads any config: this finds the component files its parent loaded, by their module names."""

    def find_spec(self, name, path=None, target=None):
        file = _spawned_files().get(name) if name.startswith(_PREFIX) else None
        return importlib.util.spec_from_file_location(name, file) if isinstance(file, str) else None


sys.meta_path.append(_SpawnedFinder())


# ---- registering ---------------------------------------------------------------------------------
def _register(entry: str, module, path: Path, digest: str) -> None:
    table = getattr(module, "COMPONENTS", None)
    if not isinstance(table, dict) or not table:
        raise InvalidInput(f"{path}: defines no COMPONENTS mapping (component name -> nn.Module class)")
    stem = path.stem
    if not stem.isidentifier() or stem in _TAKEN_MODULES:
        raise InvalidInput(f"{path}: the file name '{stem}' cannot be imported beside the exported model.py "
                           f"(not an identifier, or the name of a standard or required module); rename the file")
    old = _LOADED.get(entry)
    for other_entry, other in _LOADED.items():
        if other_entry != entry and other.stem == stem:
            raise InvalidInput(f"{path}: another component source is also called {stem}.py ({other_entry}); an "
                               f"export puts both beside model.py, so rename one")
    default_kinds = getattr(module, "KINDS", DEFAULT_KINDS)
    mine = set(old.names) if old else set()
    built = [_spec(name, value, module, path, stem, default_kinds, mine) for name, value in table.items()]
    for name in mine:  # a changed file replaces its own components
        ops.remove(name)
    for spec, kinds in built:
        ops.add(spec, kinds)
    _LOADED[entry] = _Loaded(digest, tuple(table), stem)


def _spec(name, value, module, path: Path, stem: str, default_kinds, mine: set) -> tuple[ops.OpSpec, tuple]:
    """One COMPONENTS entry, checked: name, class, keyword arguments, kinds, constructor, output shape."""
    if (problem := name_problem(name, "component name")) is not None:
        raise InvalidInput(f"{path}: {problem}")
    where = f"{path}: component '{name}'"
    if isinstance(value, dict):
        if set(value) - _SPEC_KEYS or "cls" not in value:
            raise InvalidInput(f"{where}: a mapping needs 'cls' and may have {', '.join(sorted(_SPEC_KEYS - {'cls'}))}"
                               f"; got {', '.join(map(str, value))}")
        cls, kwargs = value["cls"], value.get("kwargs") or {}
        kinds, description = value.get("kinds", default_kinds), value.get("description")
    else:
        cls, kwargs, kinds, description = value, {}, default_kinds, None
    known = ops.find(name)
    if known is not None and name not in mine:
        owner = known.source or "nasnav's built-in components"
        raise InvalidInput(f"{where}: the name clashes with a component of {owner}; rename it")
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise InvalidInput(f"{where}: {cls!r} is not a torch.nn.Module class")
    if getattr(module, cls.__name__, None) is not cls:
        raise InvalidInput(f"{where}: class {cls.__name__} must be a top-level name of {path.name} (the exported "
                           f"model.py imports it from there)")
    if cls.__name__ in _TAKEN or _class_taken(cls, mine):
        raise InvalidInput(f"{where}: class name {cls.__name__} clashes with a name of the exported model.py "
                           f"(nasnav's building blocks or another component file); rename the class")
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds) if isinstance(kinds, (list, tuple)) else (kinds,)
    if not kinds or any(k not in ops.KINDS for k in kinds):
        raise InvalidInput(f"{where}: kinds {list(kinds)}: use some of {', '.join(ops.KINDS)}")
    if not isinstance(kwargs, dict) or not all(_literal(v) for v in kwargs.values()):
        raise InvalidInput(f"{where}: kwargs must map names to plain values (numbers, strings, booleans, lists)")
    try:
        inspect.signature(cls).bind(channels=PROBE_CHANNELS, dim=2, **kwargs)
    except TypeError as e:
        raise InvalidInput(f"{where}: wrong constructor {cls.__name__}{inspect.signature(cls)}: it is built as "
                           f"{cls.__name__}(channels=C, dim=d{''.join(f', {k}=...' for k in kwargs)}) ({e})") from None
    doc = (cls.__dict__.get("__doc__") or "").strip().splitlines()
    spec = ops.OpSpec(name, cls, dict(kwargs), str(description or (doc[0] if doc else "")), str(path), stem)
    for kind in kinds:
        problem = probe(spec, kind, PROBE_CHANNELS)
        if problem:
            raise InvalidInput(f"{where}: {problem}")
    return spec, kinds


def _class_taken(cls: type, mine: set) -> bool:
    """Whether another loaded file's component has a different class of the same name."""
    others = (ops.find(n) for e in _LOADED.values() for n in e.names if n not in mine)
    return any(s is not None and s.cls.__name__ == cls.__name__ and s.cls is not cls for s in others)


def _literal(value) -> bool:
    try:
        return ast.literal_eval(repr(value)) == value
    except (ValueError, SyntaxError):
        return False


# ---- probing --------------------------------------------------------------------------------------
def probe(spec: ops.OpSpec, kind: str, channels: int) -> str | None:
    """None if the component builds with ``channels`` for ``kind`` and keeps a dummy input's shape; else why not."""
    key = (spec.cls, repr(spec.kwargs), kind, channels)  # a config is checked on every load: probe each once
    if key not in _PROBED:
        _PROBED[key] = _probe(spec, kind, channels)
    return _PROBED[key]


_PROBED: dict[tuple, str | None] = {}


def _probe(spec: ops.OpSpec, kind: str, channels: int) -> str | None:
    dim = ops.KIND_DIM[kind]
    x = torch.randn(2, channels, *PROBE_SHAPE[dim], generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            module = spec.build(channels, dim)
            if not isinstance(module, nn.Module):
                return f"{spec.cls.__name__}(...) gave {type(module).__name__}, not a torch.nn.Module"
            y = module.eval()(x)
    except Exception as e:
        return (f"building it with {channels} channels for {kind} data (dim={dim}) and running it on a "
                f"{tuple(x.shape)} tensor failed: {type(e).__name__}: {e}")
    shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
    if shape != tuple(x.shape):
        return (f"for {kind} data it turns a {tuple(x.shape)} tensor into {shape}; a component must keep the "
                f"shape of its input (N, C{', ...' if dim else ''}) with C the stage's channels")
    return None


def stage_problems(space, kind: str) -> list[str]:
    """Each own component of each stage probed at the stage's width (config checks)."""
    out = []
    for i, stage in enumerate(space.stages):
        for name in stage.candidates:
            spec = ops.find(name)
            if spec is None or not spec.source or name not in ops.list_ops(kind):
                continue
            problem = probe(spec, kind, stage.channels)
            if problem:
                out.append(f"space.stages[{i}].candidates: component '{name}' ({spec.source}) with "
                           f"{stage.channels} channels: {problem}")
    return out


# ---- export ------------------------------------------------------------------------------------------
def own_specs(names, kind: str) -> list[ops.OpSpec]:
    """The own components among ``names`` (built-in ones left out)."""
    return [s for s in (ops.get_op(n, kind) for n in dict.fromkeys(names)) if s.source]


def copy_sources(names, kind: str, folder: Path) -> list[str]:
    """Copy the source files of the own components among ``names`` into ``folder`` as ``<stem>.py``
    (the modules the exported model.py imports); the file names written."""
    written = {}
    for spec in own_specs(names, kind):
        target = f"{spec.module}.py"
        if target not in written:
            atomic_write_bytes(Path(folder) / target, Path(spec.source).read_bytes())
            written[target] = spec.source
    return sorted(written)
