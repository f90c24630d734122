"""Who owns a run and whether it is shared: RUN/owner.json (written atomically, read tolerantly).

Only a lab server (logins on) writes it. A run without the file (made before logins, or by the CLI)
has no owner: only admins see it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from nasnav.store import layout
from nasnav.store.io import read_json, write_json
from nasnav.store.run_dir import RunDir


@dataclass(frozen=True)
class Ownership:
    owner: str  # the user id of the owner (the login's e-mail)
    shared: bool = False  # readable (never writable) by everyone logged in


def read_owner(run: RunDir) -> Ownership | None:
    """The run's owner record; None when there is none or it cannot be read (nobody may then claim it)."""
    try:
        data = read_json(run.path / layout.OWNER, default=None)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("owner"), str) or not data["owner"]:
        return None
    return Ownership(data["owner"], data.get("shared") is True)


def write_owner(run: RunDir, ownership: Ownership) -> None:
    write_json(run.path / layout.OWNER, {"owner": ownership.owner, "shared": ownership.shared, "updated": time.time()})
