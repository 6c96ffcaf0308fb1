"""Permutation tier: permutation specs (hand-written or traced with torch.fx) and the pure operations
on permutations. Imports only :mod:`lmc_utils.core`."""

from .builders import permute_model, spec_for
from .spec import (Permutation, PermutationSpec, StateDict, apply_permutation, compose, identity, inverse,
                   random_permutation, spec_from_layers)
from .traced import UnsupportedModel, default_example_input, traced_spec

__all__ = ["Permutation", "PermutationSpec", "StateDict", "UnsupportedModel", "apply_permutation", "compose",
           "default_example_input", "identity", "inverse", "permute_model", "random_permutation", "spec_for", "spec_from_layers",
           "traced_spec"]
