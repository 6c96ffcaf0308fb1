"""lmc_utils — the shared library behind the lmc-rebasin notebooks.

Linear mode connectivity (LMC) up to permutation ("model re-basin"): data, models,
permutation specs, matching algorithms, interpolation and barriers, a cached model zoo,
figure writers and the Papermill runner. One module per concept; import what you need::

    from lmc_utils import data, models, permutation, matching, interpolation, zoo
"""

__version__ = "0.1.0"
