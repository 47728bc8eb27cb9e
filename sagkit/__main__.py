"""``python -m sagkit {train,eval,export,embed,search,synth,bench,workbook,results}``: see ``sagkit.cli``."""

import sys

from sagkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
