"""Entry point: `python -m mimo_operator.fetcher --repo R --revision V --dest DIR`."""

import sys

from mimo_operator.fetcher.cli import main

sys.exit(main())
