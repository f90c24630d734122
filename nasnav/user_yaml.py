"""YAML a user hands in: configs and uploads (safe tags only, no aliases) and ``key=value`` overrides."""

from __future__ import annotations

import copy
import re
from typing import Any

import yaml


class _NoAliasLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses aliases (``*name``): a few hundred bytes of nested aliases
    expand into gigabytes ("billion laughs"); nasnav's own files never use them."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None,
                None,
                "YAML aliases (*name) are not accepted; write the value out in full",
                self.peek_event().start_mark,
            )
        return super().compose_node(parent, index)


def load_user_yaml(text: str | bytes, name: str) -> Any:
    """Parse YAML a user handed in (a config file, an upload): safe tags only, no aliases.
    A ValueError names ``name`` and the line for malformed YAML or a file that is not text."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{name}: not a UTF-8 text file; expected YAML") from None
    try:
        loader = _NoAliasLoader(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ValueError(f"{name}: not valid YAML{where}: {getattr(e, 'problem', None) or e}") from None


_INDEX = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)$")


def apply_overrides(raw: dict, overrides: list[str] | tuple) -> dict:
    """Return a copy of ``raw`` with ``a.b[2].c=value`` overrides applied (values parsed as YAML)."""

    out = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override '{item}': expected key=value, e.g. trainer.devices=2")
        key, text = item.split("=", 1)
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            value = text
        node: Any = out
        parts = key.strip().split(".")
        for n, part in enumerate(parts):
            m = _INDEX.match(part)
            if not m:
                raise ValueError(f"override '{item}': '{part}' is not a valid key")
            name, idx = m.group(1), [int(i) for i in re.findall(r"\d+", m.group(2))]
            last = n == len(parts) - 1 and not idx
            if not isinstance(node, dict):
                raise ValueError(f"override '{item}': '{name}' is inside a value that is not a mapping")
            if last:
                node[name] = value
                break
            node = node.setdefault(name, [] if idx else {})
            for j, i in enumerate(idx):
                if not isinstance(node, list) or i >= len(node):
                    raise ValueError(f"override '{item}': index [{i}] of '{name}' is out of range")
                if n == len(parts) - 1 and j == len(idx) - 1:
                    node[i] = value
                else:
                    node = node[i]
    return out
