"""Start the app with the engine already imported: ``python -m nasnav.ui.launch [streamlit run options]``.

``streamlit run app.py`` imports nothing until the first browser session, so the first page anyone
opens waits for torch, Lightning and the rest of the engine (about 4 s on 2 cores; BENCHMARKS.md,
Explore page render). Streamlit runs every session's script in this same process, so modules
imported here, before the server starts, are already loaded when the first page runs. Then this is
``streamlit run app.py`` with the given options, through Streamlit's own command line.

Closed by default: the server listens on 127.0.0.1 (this machine only). Anyone who reaches the port sees
every run, starts and stops jobs and decides on any run; without the lab server's logins there is no
login. Opening it to the network is a deliberate setting: ``NASNAV_ADDRESS=0.0.0.0 make run`` (or an
interface's address), or ``--server.address`` given on the command line (README, "Opening the app").
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from streamlit.web import cli

# the modules the pages import (and, through them, torch, Lightning, pandas, scikit-learn)
from nasnav.ui import explore, final, predict_panels, run_panels, space_panels, steer, store  # noqa: F401

APP = Path(__file__).resolve().parents[2] / "app.py"
ADDRESS_ENV = "NASNAV_ADDRESS"
LOOPBACK = "127.0.0.1"


def options(argv: list[str]) -> list[str]:
    """The Streamlit options: ``argv`` with the listening address set (``$NASNAV_ADDRESS``, else 127.0.0.1)
    unless ``argv`` names one itself."""
    if any(a == "--server.address" or a.startswith("--server.address=") for a in argv):
        return list(argv)
    address = os.environ.get(ADDRESS_ENV, "").strip() or LOOPBACK
    return ["--server.address", address, *argv]


def main(argv: list[str] | None = None) -> None:
    sys.argv = ["streamlit", "run", str(APP), *options(sys.argv[1:] if argv is None else argv)]
    cli.main()


if __name__ == "__main__":
    main()
