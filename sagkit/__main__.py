"""``python -m sagkit {train,eval,synth,bench,workbook}`` — see ``sagkit.cli``."""

import sys

from sagkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
