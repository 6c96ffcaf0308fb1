"""Matching algorithms: find the permutation of model B that best aligns it with model A.

* :func:`weight_matching` — Ainsworth et al. (2023), "Git Re-Basin", Algorithm 1: maximise
  ``sum_l <W_l^a, P_l W_l^b P_{l-1}^T>`` by coordinate ascent, solving one linear assignment
  problem per permutation group (in a random order each sweep) until no group improves;
  :func:`weight_matching_memory` estimates its memory beforehand (``chunk_bytes`` bounds it).
* :func:`sinkhorn_weight_matching` — the same objective through the Sinkhorn relaxation
  (Peña et al. 2023; the solver Ito et al. 2025 use): all groups at once as soft permutations
  optimised by gradient ascent, then hardened by assignments.
* :func:`activation_matching` — match hidden units by the Pearson correlation of their
  activations on data, one assignment per group (Li et al. 2015; Ainsworth et al. 2023). Its
  ``statistics`` and ``refeed`` options select the implementations Qu & Horvath (2024, App. D.2,
  Table 2) compare: float32 sums over the data (Ainsworth et al.'s "A"), float64 averages of
  per-batch averages (Jordan et al.'s, the default), and layer-by-layer re-feeding ("B").

Each returns the permutation to apply to B (see :mod:`lmc_utils.permutation`).

* :func:`verify_spec` — check a permutation spec on a model (outputs unchanged under a random
  permutation, a planted permutation recovered, the entries no group permutes): a readable report.
* :func:`merge_many` — merge three or more models: reference, sequential or iterative matching
  (Qu & Horvath 2024, App. E.3; Ainsworth et al.'s MergeMany) with any matcher wrapped as a
  :data:`Matcher` (:func:`weight_matcher`, :func:`activation_matcher`, :func:`ste_matcher`).

Layout: :mod:`.common` (result, group order, agreement), :mod:`.weight`, :mod:`.sinkhorn`,
:mod:`.activation`, :mod:`.ste`, :mod:`.merge`, :mod:`.verify` (spec checks), and :mod:`.rebasin` (align a
pair by a named method).
The matching tier imports core, permutation and measure.
"""

from .activation import STATISTICS, activation_correlations, activation_matching
from .common import MatchingResult, Patience, group_order, permutation_agreement, unit_agreement
from .merge import (REGIMES, Matcher, MergeManyResult, activation_matcher, average_states, merge_many,
                    pairwise_objective, pairwise_scale, ste_matcher, weight_matcher)
from .sinkhorn import sinkhorn_weight_matching
from .ste import PROTOCOL as STE_PROTOCOL, STE_INITS, STEResult, ste_matching, ste_start
from .verify import SpecReport, verify_spec
from .weight import MemoryEstimate, weight_matching, weight_matching_memory

__all__ = ["REGIMES", "STATISTICS", "STE_INITS", "STE_PROTOCOL", "MatchingResult", "Matcher", "MergeManyResult", "Patience",
           "STEResult", "SpecReport", "activation_correlations", "activation_matcher", "activation_matching", "average_states",
           "group_order", "merge_many", "pairwise_objective", "pairwise_scale", "permutation_agreement",
           "sinkhorn_weight_matching", "ste_matcher", "ste_matching", "ste_start", "unit_agreement", "verify_spec",
           "weight_matcher", "weight_matching", "weight_matching_memory", "MemoryEstimate"]
