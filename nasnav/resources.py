"""Where the app's files are: ``app.py``, ``pages/`` and the presets in ``configs/``; the presets by name.

In a source checkout they sit beside the ``nasnav`` package (the repository root). In an installed
wheel they are inside it, as ``nasnav/bundle/`` (pyproject.toml maps the repository root, ``pages/``
and ``configs/`` there without moving them). Code that needs one of them asks here.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def bundle_root() -> Path:
    """The folder holding app.py, pages/ and configs/ (the installed copy first, else the checkout)."""
    for root in (_PACKAGE / "bundle", _PACKAGE.parent):
        if (root / "app.py").is_file() and (root / "configs").is_dir():
            return root
    raise RuntimeError(f"nasnav's app files (app.py, pages/, configs/) are neither in {_PACKAGE / 'bundle'} "
                       f"nor in {_PACKAGE.parent}: a broken installation")


def app_script() -> Path:
    return bundle_root() / "app.py"


def config_dir() -> Path:
    return bundle_root() / "configs"


def preset_path(name: str) -> Path:
    """configs/<name>.yaml; ValueError listing the presets for an unknown name."""
    path = config_dir() / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown preset '{name}'; presets: {', '.join(list_presets())}")
    return path


def list_presets() -> list[str]:
    return sorted(p.stem for p in config_dir().glob("*.yaml"))
