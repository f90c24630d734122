"""The stages of a search on a run directory: create, train the supernet, score candidates.

Each stage reads what it needs from the run directory and writes its results back, so any
stage can run in a separate process (a job), be stopped, and be resumed.
"""

from __future__ import annotations

from pathlib import Path

from nasnav import limits
from nasnav.config import Config, config_from_dict, save_config
from nasnav.data.splits import load_splits
from nasnav.errors import InvalidInput
from nasnav.model.ops import list_ops
from nasnav.names import check_run_name
from nasnav.space import SearchSpace
from nasnav.store import layout
from nasnav.store.io import read_yaml, write_yaml
from nasnav.store.run_dir import RunDir


# ---- run directory contents -----------------------------------------------------------------
def create_run(cfg: Config, path: str | Path, exist_ok: bool = False) -> RunDir:
    """A new run directory with the resolved config and round 0's space; its folder name follows the run
    name rule (``nasnav.names``).

    Exclusive: the config is published only where none exists (``exist_ok`` replaces one on purpose), so
    of two creations of one name at once, one makes the run and the other gets an InvalidInput, having
    written nothing: nobody's config is silently replaced."""
    check_run_name(Path(path).name, f"run name (the folder {Path(path).name!r})")
    root = Path(path).parent
    limits.check_runs(root, sum(1 for p in root.iterdir() if RunDir(p).exists()) if root.is_dir() else 0)
    run = RunDir.create(path, exist_ok=exist_ok)
    if exist_ok:
        save_config(cfg, run.config_path)
    else:
        try:
            write_yaml(run.config_path, cfg.to_dict(), exclusive=True)
        except FileExistsError:
            raise InvalidInput(f"{run.path}: a run of this name was created meanwhile (by another session or "
                               "process); choose another name, or open that run") from None
    write_yaml(run.ensure_round_dir(0) / layout.SPACE, cfg.search_space().to_dict())
    run.write_status(state="idle", stage="created", progress=0.0, message="run created", pid=None)
    return run


def load_run(path: str | Path) -> tuple[RunDir, Config]:
    run = RunDir(path)
    if not run.exists():
        raise InvalidInput(f"{path}: not a nasnav run directory (no config.yaml); create one with `python -m nasnav run CONFIG --run-dir {path}`")
    cfg = config_from_dict(read_yaml(run.config_path), str(run.config_path))
    return run, cfg


def round_space(run: RunDir, cfg: Config, k: int | None = None) -> SearchSpace:
    k = run.current_round() if k is None else k
    path = run.round_dir(k) / layout.SPACE
    if not path.exists():
        raise InvalidInput(f"{path}: round {k} has no space.yaml")
    try:
        space = SearchSpace.from_dict(read_yaml(path), cfg.kind)
    except ValueError as e:
        msg = str(e)
        raise InvalidInput(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None

    return space.validate(list_ops(cfg.kind), where=str(path))


# ---- data --------------------------------------------------------------------------------------
_SPLITS: dict = {}  # the last config's data, kept for the process: every stage of a job reads the same


def load_data(cfg: Config):
    """The data splits of a config, cached per process (the same data for every stage)."""

    key = (repr(cfg.data), cfg.seed)
    if key not in _SPLITS:
        _SPLITS.clear()
        _SPLITS[key] = load_splits(cfg.data, cfg.seed)
    return _SPLITS[key]


# ---- supernet ------------------------------------------------------------------------------

