"""The one rule for names a user gives: stages, components and runs.

A name is identifier-like: a letter or ``_`` first, then letters, digits and ``_``, at most 64
characters (ASCII only). Such a name can stand anywhere unquoted: in a file or folder name, a CSV
column (``choice_<stage>``), an architecture string (``/`` and ``+`` join names), a chart field, a
URL and Markdown. A run is a folder, and folder names often carry ``-`` or ``.`` (``mnist1d-wide``):
a run name may also use those two after its first character, never ``..``. Nothing else is a name
(a config's ``name`` is a free label and class labels come from the data: both are escaped where
they are shown).

The rule is checked wherever names are read: a config (``SearchSpace.problems``), a run folder's
files (space records, arch.yaml, decisions), the space editor and its uploads, the component
registry, and the run names the app and CLI create.
"""

from __future__ import annotations

import re

from nasnav.errors import InvalidInput

NAME_MAX = 64
NAME = re.compile(rf"[A-Za-z_][A-Za-z0-9_]{{0,{NAME_MAX - 1}}}")
RUN_NAME_MAX = 80
RUN_NAME = re.compile(rf"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{{0,{RUN_NAME_MAX - 1}}})")

NAME_RULE = f"1-{NAME_MAX} ASCII letters, digits or '_', not starting with a digit (e.g. s1, conv3x3, my_block)"
RUN_NAME_RULE = (f"1-{RUN_NAME_MAX} ASCII letters, digits, '_', '-' or '.', starting with a letter, digit or '_', "
                 "without '..' (e.g. mnist1d-wide)")


def _shown(value: object) -> str:
    """A bad value as a message quotes it: repr (escapes control and line-separator characters), cut short."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def is_name(value: object) -> bool:
    return isinstance(value, str) and NAME.fullmatch(value) is not None


def is_run_name(value: object) -> bool:
    return isinstance(value, str) and RUN_NAME.fullmatch(value) is not None and ".." not in value


def name_problem(value: object, what: str) -> str | None:
    """None if ``value`` follows the name rule, else a problem line starting with ``what`` (e.g. a key)."""
    if is_name(value):
        return None
    return f"{what}: {_shown(value)} is not a valid name; use {NAME_RULE}"


def check_name(value: object, what: str) -> str:
    """``value`` if it follows the name rule; InvalidInput naming ``what`` and the rule otherwise."""
    problem = name_problem(value, what)
    if problem:
        raise InvalidInput(problem)
    return value  # type: ignore[return-value]


def check_run_name(value: object, what: str = "run name") -> str:
    """A run (folder) name, stripped of surrounding spaces; InvalidInput saying what is allowed."""
    name = value.strip(" \t") if isinstance(value, str) else value  # typed padding only: U+2028 etc. stay wrong
    if not is_run_name(name):
        raise InvalidInput(f"{what}: {_shown(name)} is not a valid run name; use {RUN_NAME_RULE}")
    return name
