"""`python -m ferrocorn.ctl`: the same as the `ferrocornc` command."""

import sys

from ferrocorn.ctl.cli import main

if __name__ == "__main__":
    sys.exit(main())
