"""Final-network commands of the CLI (spotcheck, export); see nasnav.cli."""


def register(sub) -> None:
    """Add this module's subcommands to the CLI's subparsers."""
