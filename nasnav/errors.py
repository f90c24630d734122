"""The project's own error for bad input, and the command line's exit codes.

``InvalidInput`` is raised wherever a user's file, config value, argument or data is wrong; its
message names the key, file or value in the user's words and says what would be valid. The CLI
prints it without a traceback and exits 2; pages show it with ``st.error``. Any other exception is
a bug in nasnav: exit 1 with the traceback.
"""

EXIT_OK, EXIT_INTERNAL, EXIT_INVALID = 0, 1, 2


class InvalidInput(ValueError):
    """Bad input from the user: the message says what is wrong and what would be right."""
