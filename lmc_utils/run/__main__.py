"""``python -m lmc_utils.run``: the batch runner (:mod:`lmc_utils.run.runner`)."""

import sys

from .runner import main

sys.exit(main())
