"""Late, guarded access to engine functions, so a page still renders (with a clear message)
when an optional part of the engine is missing or broken in this build."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


class Unavailable(ValueError):
    """An engine function the app needs is not present."""


def fn(module: str, name: str) -> Callable[..., Any]:
    """``nasnav.<module>.<name>``; Unavailable (a ValueError) naming what is missing."""
    try:
        mod = importlib.import_module(f"nasnav.{module}")
    except ImportError as e:
        raise Unavailable(f"nasnav.{module} is not available in this build ({e})") from None
    f = getattr(mod, name, None)
    if f is None:
        raise Unavailable(f"nasnav.{module}.{name} is not available in this build")
    return f


def has(module: str, name: str) -> bool:
    try:
        fn(module, name)
    except Unavailable:
        return False
    return True


def cli_commands() -> dict[str, set[str]]:
    """The CLI's subcommands and their option strings (to offer only what the CLI accepts)."""
    import argparse

    try:
        parser = fn("cli", "build_parser")()
    except Exception:  # a half-written CLI module must not break the page
        return {}
    out: dict[str, set[str]] = {}
    for action in parser._actions:  # argparse keeps subparsers here; no public accessor
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out[name] = {o for a in sub._actions for o in a.option_strings}
    return out
