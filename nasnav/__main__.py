"""``python -m nasnav``."""

import sys

from nasnav.cli import main

if __name__ == "__main__":
    sys.exit(main())
