"""``nasnav`` (the console script) and ``python -m nasnav``: the CLI, or ``nasnav app ...``: the Streamlit app."""

import sys

from nasnav.cli import main as cli_main


def main(argv: list[str] | None = None) -> int:
    """``app [--components FILE ...] [streamlit run options]`` starts the app (nasnav.ui.launch); anything else
    is a CLI command (nasnav.cli)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["app"]:
        from nasnav.ui import launch  # imports Streamlit: only for this command

        return launch.main(argv[1:])
    return cli_main(argv)


def entry() -> None:
    """The ``nasnav`` console script (pyproject.toml)."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
