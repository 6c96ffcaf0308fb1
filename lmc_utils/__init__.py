"""lmc_utils — the shared library behind the lmc-rebasin notebooks.

Linear mode connectivity (LMC) up to permutation ("model re-basin"), in tiers that import only
downward (``tests/test_layers.py`` fails on an upward import or a cycle):

=================  ============================================================================
tier               owns
=================  ============================================================================
``core``           paths and settings, atomic files, checkpoints, devices, datasets, models
``permutation``    permutation specs (hand-written, or traced with torch.fx) and permutations
``measure``        evaluation, interpolation and barriers, distance, Taylor, spectra, activations,
                   re-normalisation, pruning
``matching``       weight / activation / STE / Sinkhorn matching, merging many models, aligning pairs
``zoo``            training configs, the trainers, the checkpoint store, pairing recipes
``claims``         declared criteria, verdicts with intervals, tables, the claims report, the check
``figures``        one style, the figure and table writers, each notebook's plots
``studies``        one measurement protocol per notebook
``run``            profiles and parameters, the batch runner, provenance, dry and plan runs, the CLI
=================  ============================================================================

The modules keep their short names as a public face (:data:`PUBLIC`), so user code reads as before::

    from lmc_utils import data, matching, zoo
    from lmc_utils import permutation as P
    from lmc_utils.interpolation import barrier, interpolation_curve

Each short name is the very module object of its tier (``lmc_utils.data is lmc_utils.core.data``),
imported on first use; the package's own code imports the tier paths.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys

__version__ = "0.1.0"

# short public name -> the module in its tier (names that are tiers themselves need no entry)
PUBLIC = {
    "paths": "core.paths", "atomic": "core.atomic", "cache": "core.checkpoint", "settings": "core.settings",
    "device": "core.device", "progress": "core.progress", "data": "core.data", "models": "core.models",
    "imagenet": "core.imagenet", "traced_spec": "permutation.traced",
    "evaluation": "measure.evaluation", "interpolation": "measure.interpolation", "distance": "measure.distance",
    "taylor": "measure.taylor", "spectral": "measure.spectral", "activations": "measure.activations",
    "renorm": "measure.renorm", "pruning": "measure.pruning", "rebasin": "matching.rebasin",
    "verdicts": "claims.verdicts", "tables": "claims.tables", "check": "claims.check",
    "plots": "figures.plots", "profiles": "run.profiles", "parameter_types": "run.parameter_types",
    "provenance": "run.provenance", "executed": "run.executed", "dry_run": "run.dry_run",
    "zoo_plan": "run.plan", "zoo_cli": "run.zoo_cli", "cluster": "run.cluster",
}


class _PublicName(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes ``lmc_utils.<short name>`` the module of :data:`PUBLIC` (the same object, not a copy)."""

    def find_spec(self, fullname, path=None, target=None):
        package, _, name = fullname.rpartition(".")
        if package != __name__ or name not in PUBLIC:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):
        module = importlib.import_module(f"{__name__}.{PUBLIC[spec.name.rpartition('.')[2]]}")
        spec.loader_state = module.__spec__  # importlib sets module.__spec__ to this alias spec next
        return module

    def exec_module(self, module):
        module.__spec__ = module.__spec__.loader_state  # the module keeps its own spec


if not any(isinstance(f, _PublicName) for f in sys.meta_path):
    sys.meta_path.append(_PublicName())


def __getattr__(name: str):
    if name in PUBLIC:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
