"""The package's structure (README, Architecture): each subpackage imports only from lower layers,
no import cycles, each run-directory file name spelled in one module, pages short and without torch,
streamlit only in the UI."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "nasnav"

# Lowest first. A module may import its own subpackage and any lower layer; never a sibling of its
# layer or anything above.
LAYERS = [
    {"errors", "stop", "choices", "resources", "progress", "quiet"},
    {"names", "markdown", "limits", "user_yaml"},
    {"space"},
    {"store"},
    {"model", "data"},
    {"components"},
    {"config"},
    {"score"},
    {"train"},
    {"search", "analysis"},
    {"steering", "jobs"},
    {"workflow"},
    {"cli", "ui"},
    {"__main__"},
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}
LAZY_IMPORTS_MAX = 25


def modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        name = ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        out[name] = p
    return out


def room(module: str) -> str:
    """nasnav.workflow.retrain -> workflow; nasnav.config -> config."""
    return module.split(".")[1]


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported nasnav module, line, function-local) for every import of nasnav in the file."""
    tree = ast.parse(path.read_text())
    local = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
             for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("nasnav"):
            names = [n.module] + [f"{n.module}.{a.name}" for a in n.names]
            out += [(m, n.lineno, id(n) in local) for m in names]
        elif isinstance(n, ast.Import):
            out += [(a.name, n.lineno, id(n) in local) for a in n.names if a.name.startswith("nasnav")]
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        for target, _, _ in imports(p):
            while target and target not in mods:
                target = target.rpartition(".")[0]
            if target and target != m and target != "nasnav":
                edges[m].add(target)
    return edges


def test_every_subpackage_has_a_layer():
    rooms = {room(m) for m in modules() if m != "nasnav"}
    assert rooms <= set(LAYER), f"add these to LAYERS (and to README's Architecture): {sorted(rooms - set(LAYER))}"


def test_lower_layers_never_import_higher_ones():
    bad = []
    for m, targets in graph().items():
        if m == "nasnav":
            continue
        for t in targets:
            a, b = room(m), room(t)
            if a != b and LAYER[b] >= LAYER[a] and not (a == b):
                bad.append(f"{m} imports {t} ({a} is layer {LAYER[a]}, {b} is layer {LAYER[b]})")
    assert not bad, "\n".join(sorted(bad))


def test_no_import_cycles():
    edges = graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(m, stack):
        state[m] = 1
        for t in edges[m]:
            if state.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t, stack + [t])
        state[m] = 2

    for m in edges:
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(cycles)


def test_few_function_local_imports():
    local = []
    for p in PKG.rglob("*.py"):
        tree = ast.parse(p.read_text())
        for f in ast.walk(tree):
            if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)):
                local += [f"{p.relative_to(ROOT)}:{n.lineno}" for n in ast.walk(f)
                          if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert len(local) <= LAZY_IMPORTS_MAX, "\n".join(local)


def test_run_directory_file_names_live_in_the_store_layout_only():
    from nasnav.store import layout

    names = {v for k, v in vars(layout).items() if k.isupper() and isinstance(v, str) and "." in v}
    assert {"space.yaml", "candidates.csv", "supernet.ckpt", "decisions.json"} <= names
    offenders = []
    for p in PKG.rglob("*.py"):
        if p.name == "layout.py":
            continue
        text = p.read_text()
        offenders += [f"{p.relative_to(ROOT)}: {n}" for n in names if f'"{n}"' in text or f"'{n}'" in text]
    assert not offenders, "\n".join(sorted(offenders))


def test_streamlit_only_in_the_ui_and_pages_short_without_torch():
    for p in PKG.rglob("*.py"):
        if "ui" not in p.relative_to(PKG).parts:
            assert "streamlit" not in {m.split(".")[0] for m in _all_imports(p)}, p
    for p in sorted((ROOT / "pages").glob("*.py")) + [ROOT / "app.py"]:
        assert len(p.read_text().splitlines()) <= 80, f"{p.name} is over 80 lines"
        assert not {"torch", "lightning"} & {m.split(".")[0] for m in _all_imports(p)}, p


def _all_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom) and n.module:
            out.add(n.module)
        elif isinstance(n, ast.Import):
            out |= {a.name for a in n.names}
    return out


def test_no_module_is_a_grab_bag():
    big = [f"{p.relative_to(ROOT)} {n}" for p in PKG.rglob("*.py")
           if (n := len(p.read_text().splitlines())) > 650]
    assert not big, big


def test_engine_functions_are_called_not_looked_up_by_name():
    for p in list((PKG / "ui").glob("*.py")) + list((ROOT / "pages").glob("*.py")):
        text = p.read_text()
        assert not re.search(r"import_module|\._actions\b|getattr\(mod", text), p


def test_steering_is_pure_frames_in_decision_out():
    """steering/ holds the typed actions and the policy: it reads and writes nothing, so it never
    imports the run directory's store, the jobs, or file and process modules."""
    for p in (PKG / "steering").glob("*.py"):
        mods = _all_imports(p)
        assert not {m for m in mods if m.startswith(("nasnav.store", "nasnav.jobs"))}, p
        assert not {m.split(".")[0] for m in mods} & {"os", "pathlib", "json", "shutil", "subprocess", "yaml"}, p
