"""``python -m lmc_utils.claims``: the claims report (:mod:`lmc_utils.claims.report`)."""

import sys

from .report import main

sys.exit(main())
