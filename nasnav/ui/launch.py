"""Start the app with the engine already imported: ``nasnav app [--components FILE ...] [streamlit run options]``
(also ``python -m nasnav.ui.launch ...``, what ``make run`` does).

``streamlit run app.py`` imports nothing until the first browser session, so the first page anyone
opens waits for torch, Lightning and the rest of the engine (about 4 s on 2 cores; BENCHMARKS.md,
Explore page render). Streamlit runs every session's script in this same process, so modules
imported here, before the server starts, are already loaded when the first page runs. Then this is
``streamlit run app.py`` with the given options, through Streamlit's own command line.

Closed by default: the server listens on 127.0.0.1 (this machine only). Anyone who reaches the port sees
every run, starts and stops jobs and decides on any run; without the lab server's logins there is no
login. Opening it to the network is a deliberate setting: ``NASNAV_ADDRESS=0.0.0.0 make run`` (or an
interface's address), or ``--server.address`` given on the command line (README, "Opening the app").

``--components``: own component files (or module names) loaded before the server starts. A config the
browser hands in (an upload) may name only these: the app imports no code that a browser names
(``nasnav.components``). Runs and presets on disk name their own, as on the command line.
"""

from __future__ import annotations

import argparse
import os
import sys
import tomllib

from streamlit.web import cli

from nasnav import components
from nasnav.errors import EXIT_INVALID, InvalidInput
from nasnav.resources import app_script, bundle_root

# the modules the pages import (and, through them, torch, Lightning, pandas, scikit-learn)
from nasnav.ui import explore, final, predict_panels, run_panels, space_panels, steer, store  # noqa: F401

APP = app_script()  # app.py of the checkout, or the installed copy (nasnav.resources)
ADDRESS_ENV = "NASNAV_ADDRESS"
LOOPBACK = "127.0.0.1"


def options(argv: list[str]) -> list[str]:
    """The Streamlit options: ``argv`` with the listening address set (``$NASNAV_ADDRESS``, else 127.0.0.1)
    unless ``argv`` names one itself."""
    if any(a == "--server.address" or a.startswith("--server.address=") for a in argv):
        return list(argv)
    address = os.environ.get(ADDRESS_ENV, "").strip() or LOOPBACK
    return ["--server.address", address, *argv]


def load_components(argv: list[str]) -> list[str]:
    """Load the ``--components`` files of ``argv``; the rest of it (Streamlit's options). InvalidInput
    lists every faulty component."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--components", nargs="+", action="extend", default=[])
    known, rest = parser.parse_known_args(argv)
    problems = components.load([components.resolve(e) for e in known.components])
    if problems:
        raise InvalidInput("\n".join(f"--components: {p}" for p in problems))
    return rest


def bundled_options() -> list[str]:
    """The app's ``.streamlit/config.toml`` as command-line options: Streamlit reads that file only from the
    current folder, and an installed ``nasnav app`` runs from any folder. Options given after these win."""
    path = bundle_root() / ".streamlit" / "config.toml"
    settings = tomllib.loads(path.read_text()) if path.is_file() else {}
    return [f"--{section}.{key}={str(value).lower() if isinstance(value, bool) else value}"
            for section, values in settings.items() for key, value in values.items()]


def main(argv: list[str] | None = None) -> int:
    try:
        rest = load_components(list(sys.argv[1:] if argv is None else argv))
    except InvalidInput as e:
        print("\n".join(f"error: {line}" for line in str(e).splitlines()), file=sys.stderr)
        return EXIT_INVALID
    sys.argv = ["streamlit", "run", str(APP), *bundled_options(), *options(rest)]
    cli.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
