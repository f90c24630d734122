"""Start the app with the engine already imported: ``python -m nasnav.ui.launch [streamlit run options]``.

``streamlit run app.py`` imports nothing until the first browser session, so the first page anyone
opens waits for torch, Lightning and the rest of the engine (about 4 s on 2 cores; BENCHMARKS.md,
Explore page render). Streamlit runs every session's script in this same process, so modules
imported here, before the server starts, are already loaded when the first page runs. Then this is
``streamlit run app.py`` with the given options, through Streamlit's own command line.
"""

from __future__ import annotations

import sys
from pathlib import Path

from streamlit.web import cli

# the modules the pages import (and, through them, torch, Lightning, pandas, scikit-learn)
from nasnav.ui import explore, final, predict_panels, run_panels, space_panels, steer, store  # noqa: F401

APP = Path(__file__).resolve().parents[2] / "app.py"


def main(argv: list[str] | None = None) -> None:
    sys.argv = ["streamlit", "run", str(APP), *(sys.argv[1:] if argv is None else argv)]
    cli.main()


if __name__ == "__main__":
    main()
