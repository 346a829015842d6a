"""`python -m drillbook`: the same program as the `drillbook` console script."""

from __future__ import annotations

import sys

from drillbook.cli import main

if __name__ == "__main__":
    # The journal records the program's name from argv[0]; under -m it would be __main__.py.
    sys.argv[0] = "drillbook"
    main()
