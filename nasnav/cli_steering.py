"""Steering commands of the CLI (search, analyze, prune, round); see nasnav.cli."""


def register(sub) -> None:
    """Add this module's subcommands to the CLI's subparsers."""
