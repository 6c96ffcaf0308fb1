"""What every matching method shares: its result, the seeded group order, state-dict layouts, a patience
rule, and how much two permutations agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from ..permutation import Permutation, PermutationSpec, StateDict


@dataclass
class MatchingResult:
    """A permutation for model B plus how the search went.

    ``objective``: the weight-matching objective ``sum <W_a, pi(W_b)>`` before the first
    sweep and after each sweep (weight matching only); ``sweeps``: sweeps run.
    """

    perm: Permutation
    objective: list[float] = field(default_factory=list)
    sweeps: int = 0


def group_order(groups: list[str], sweep: int, seed: int) -> list[str]:
    """The order groups are visited in a sweep: a seeded shuffle, different every sweep."""
    rng = np.random.default_rng([seed, sweep])
    return [groups[i] for i in rng.permutation(len(groups))]


def assignment(cost: np.ndarray, heads: int = 1, blocks: int = 1) -> np.ndarray:
    """The permutation ``q`` maximising ``sum_i cost[i, q[i]]`` (SciPy's linear assignment) among those
    a group allows (:meth:`~lmc_utils.permutation.PermutationSpec.structure`): any one; with ``blocks``
    > 1 sub-blocks, each unit kept within its block of consecutive units (one assignment per diagonal
    block); with ``heads`` > 1, whole heads re-ordered, the best re-ordering found from every pair of
    heads' summed within-block assignments (one assignment of heads on those sums)."""
    if heads == 1 and blocks == 1:
        return linear_sum_assignment(cost, maximize=True)[1]
    n = len(cost)
    per, size = n // heads, n // (heads * blocks)
    value = np.zeros((heads, heads))
    best: dict[tuple[int, int], np.ndarray] = {}
    for h in range(heads):
        for h2 in range(heads) if heads > 1 else [h]:
            cols = []
            for s in range(blocks):
                r, c = h * per + s * size, h2 * per + s * size
                block = cost[r:r + size, c:c + size]
                q = linear_sum_assignment(block, maximize=True)[1]
                value[h, h2] += block[np.arange(size), q].sum()
                cols.append(q + c)
            best[h, h2] = np.concatenate(cols)
    order = linear_sum_assignment(value, maximize=True)[1] if heads > 1 else [0]
    return np.concatenate([best[h, int(order[h])] for h in range(heads)])


def _matched_keys(spec: PermutationSpec, state: StateDict, include_buffers: bool) -> list[str]:
    """The state entries weight matching compares: floating-point, permuted on some axis, and
    parameters unless ``include_buffers``."""
    return [k for k, ax in spec.axes.items() if any(g is not None for g in ax)
            and state[k].is_floating_point() and (include_buffers or k not in spec.buffers)]


def _layout(t: torch.Tensor, axes: tuple[str | None, ...]) -> torch.Tensor:
    """``t`` as a contiguous ``[rest, n0, n1]`` tensor: unpermuted axes flattened first, then
    the (at most two) permuted axes in order (``n1 = 1`` when only one axis is permuted)."""
    permuted = [i for i, g in enumerate(axes) if g is not None]
    if len(permuted) > 2:
        raise NotImplementedError("weight matching supports at most two permuted axes per tensor")
    other = [i for i, g in enumerate(axes) if g is None]
    n0 = t.shape[permuted[0]]
    n1 = t.shape[permuted[1]] if len(permuted) == 2 else 1
    return t.permute(*other, *permuted).reshape(-1, n0, n1).contiguous()


def _flat(t: torch.Tensor, dim: int) -> torch.Tensor:
    """A ``[rest, n0, n1]`` layout as a ``[n_dim, rest * n_other]`` matrix whose rows are the units of
    axis ``dim`` (1 or 2): one cost-matrix term is then one large product ``flat(A) @ flat(B)^T``."""
    return (t.transpose(0, 1) if dim == 1 else t.permute(2, 0, 1)).reshape(t.shape[dim], -1)


@dataclass
class Patience:
    """Early stopping on a loss that should fall: :meth:`update` with each new evaluation returns
    ``True`` once ``patience`` evaluations in a row have not improved on the best so far by more
    than ``min_delta`` (an improvement: ``value < best - min_delta``). ``patience=None`` never stops.
    """

    patience: int | None
    min_delta: float = 0.0
    best: float = float("inf")
    since_best: int = 0

    def __post_init__(self):
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be None or at least 1, got {self.patience}")
        if self.min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {self.min_delta}")

    def update(self, value: float) -> bool:
        """Record one evaluation; ``True``: stop now."""
        if value < self.best - self.min_delta:
            self.best, self.since_best = value, 0
        else:
            self.since_best += 1
        return self.patience is not None and self.since_best >= self.patience


def unit_agreement(p: Permutation, q: Permutation) -> float:
    """The share of all hidden units (every group, weighted by its size) on which two
    permutations agree: :func:`permutation_agreement` pooled over groups."""
    agree = permutation_agreement(p, q)
    sizes = {g: len(p[g]) for g in agree}
    return sum(agree[g] * sizes[g] for g in agree) / sum(sizes.values())


def permutation_agreement(p: Permutation, q: Permutation) -> dict[str, float]:
    """Per group, the share of units on which two permutations agree (identical rows of the
    permutation matrices). ``permutation_agreement(p, identity(spec))`` is the share of units a
    permutation leaves in place."""
    if set(p) != set(q):
        raise ValueError(f"permutations over different groups: {sorted(p)} vs {sorted(q)}")
    return {g: float((p[g].cpu() == q[g].cpu()).double().mean()) for g in p}
