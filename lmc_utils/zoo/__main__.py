"""``python -m lmc_utils.zoo plan|train``: the zoo's command line (:mod:`lmc_utils.run.zoo_cli`)."""

import sys

from ..run.zoo_cli import main

sys.exit(main())
