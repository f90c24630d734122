"""nasnav: human-in-the-loop one-shot neural architecture search (NAS-Navigator)."""

__version__ = "0.1.0"
