"""Weight matching: Ainsworth et al. (2023), "Git Re-Basin", Algorithm 1 -- maximise ``sum_l <W_l^a, P_l
W_l^b P_{l-1}^T>`` by coordinate ascent, one linear assignment problem per permutation group (in a
seeded random order each sweep) until no group improves. :func:`weight_matching_memory` says, before
a run, how much memory it will hold (and within which bound ``chunk_bytes`` keeps it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..core import memo, settings
from ..permutation import Permutation, PermutationSpec, StateDict, identity
from ..permutation.spec import positions_in
from .common import MatchingResult, _flat, _layout, _matched_keys, assignment, group_order


@memo.memoized("matching", result_type=MatchingResult)
def weight_matching(spec: PermutationSpec, state_a: StateDict, state_b: StateDict, max_sweeps: int = 100,
                    seed: int = 0, init_perm: Permutation | None = None, include_buffers: bool = False,
                    device: str | torch.device | None = None, chunk_bytes: int | None = None) -> MatchingResult:
    """Weight matching (Git Re-Basin, Algorithm 1).

    Each step solves the linear assignment for one group with all others fixed, using
    ``C = sum_(w, axis in group) W_a[axis-first] @ pi(W_b)[axis-first]^T``; a sweep visits
    every group once in a random order (:func:`group_order`); the search stops after a sweep
    in which no group improved, or after ``max_sweeps``.

    Implementation (same algorithm, same result as a direct port, faster):

    * every weight is held once, for A and for B, as a ``[rest, n0, n1]`` tensor whose last two
      axes are its permuted axes; B is kept permuted by the current permutation. A cost matrix
      is then a sum of one matrix product per weight, ``flat(A) @ flat(B)^T`` with the group's
      axis as rows and everything else as one long inner dimension (:func:`_flat`; A's matrices
      are made once, B's is one copy), which is the flop floor, ``2 * n_group * numel`` per weight
      and group, in products large enough to run near the machine's matmul rate;
    * when a group's assignment changes, only the weights touching it are re-indexed (one copy);
    * a group none of whose neighbours changed since it was last solved is not solved again:
      its assignment is already optimal, so the step would not improve (skipping it changes
      nothing but the time);
    * with ``chunk_bytes``, A's matrices are not kept: every product is made in slices of at most
      ``chunk_bytes`` per operand, so memory stays within :func:`weight_matching_memory`'s bound
      (the same costs up to float rounding, slower).

    Args:
        spec: permutation spec shared by both models.
        state_a, state_b: state dicts (same architecture); B is the one permuted.
        max_sweeps: upper bound on the number of sweeps (in a dry run at most
            :data:`lmc_utils.core.settings.WEIGHT_MATCHING_SWEEPS`).
        seed: seed of the group order.
        init_perm: starting permutation of B (default: identity).
        include_buffers: also match on buffers such as BN running statistics (default: parameters only).
        device: where the products run (default: where ``state_a`` lives).
        chunk_bytes: bound on the bytes of each slice of a product (default: no bound, fastest).
    Returns:
        :class:`MatchingResult` with ``perm`` such that ``apply_permutation(spec, perm, state_b)``
        is aligned with ``state_a``, and the objective before and after every sweep.
    """
    spec.check_state(state_a, "state_a")
    spec.check_state(state_b, "state_b")
    state_a, state_b = spec.viewed(state_a), spec.viewed(state_b)
    keys = _matched_keys(spec, state_a, include_buffers)
    dev = torch.device(device) if device is not None else (state_a[keys[0]].device if keys else torch.device("cpu"))
    perm = {g: p.clone().cpu() for g, p in (init_perm or identity(spec)).items()}

    la: dict[str, torch.Tensor] = {}
    lb: dict[str, torch.Tensor] = {}
    # group -> (key, dim 1 or 2, offset, units, selection): the stretch of a layout axis it permutes (all
    # of it, offset 0, unless the axis holds concatenated features; selection: which of the group's units)
    slots: dict[str, list[tuple[str, int, int, int, torch.Tensor | None]]] = {g: [] for g in spec.sizes}
    neighbours: dict[str, set[str]] = {g: set() for g in spec.sizes}
    for k in keys:
        axes = spec.axes[k]
        b = state_b[k].detach().to(dev, torch.float32)
        for axis, g in enumerate(axes):
            if g is not None:
                b = b.index_select(axis, spec.index(g, perm).to(dev))
        la[k] = _layout(state_a[k].detach().to(dev, torch.float32), axes)
        lb[k] = _layout(b, axes)
        named = [name for name in axes if name is not None]  # the layout's dims 1 and 2
        on_axis = [[part[0] for part in spec.parts(name)] for name in named]
        for dim, name in enumerate(named, start=1):
            others = [h for i, hs in enumerate(on_axis, start=1) if i != dim for h in hs]
            for g, offset, n, sel in spec.parts(name):
                slots[g].append((k, dim, offset, n, None if sel is None else sel.to(dev)))
                # a group on two axes of one tensor depends on itself (a quadratic term)
                neighbours[g].update(others)

    fa: dict[tuple[str, int], torch.Tensor] = {}  # A's entries as [n_group, rest] matrices, made on first use

    def total() -> float:
        return float(sum(torch.dot(la[k].flatten(), lb[k].flatten()) for k in keys))

    history = [total()]
    groups = sorted(g for g in spec.sizes if slots[g])
    version = {g: 0 for g in groups}
    solved_at: dict[str, tuple[int, ...]] = {}
    sweeps = 0
    for sweep in range(settings.weight_matching_sweeps(max_sweeps)):
        sweeps += 1
        improved = False
        for g in group_order(groups, sweep, seed):
            state = tuple(version[h] for h in sorted(neighbours[g]))
            if solved_at.get(g) == state:
                continue  # nothing it depends on changed: still optimal
            n = spec.sizes[g]
            cost = torch.zeros(n, n, dtype=torch.float32, device=dev)
            for k, dim, offset, units, sel in slots[g]:
                if chunk_bytes is None:
                    if (k, dim) not in fa:
                        fa[(k, dim)] = _flat(la[k], dim)
                    pieces = [(fa[(k, dim)], _flat(lb[k], dim))]
                else:  # slices of the layouts' leading (unpermuted) axis, one product each
                    step = max(1, chunk_bytes // (4 * la[k].shape[1] * la[k].shape[2]))
                    pieces = ((_flat(la[k][r:r + step], dim), _flat(lb[k][r:r + step], dim))
                              for r in range(0, la[k].shape[0], step))
                for a, b in pieces:
                    if units == b.shape[0] and sel is None:
                        cost.addmm_(a, b.T)
                    elif sel is None:  # this group's stretch of a concatenated axis
                        cost.addmm_(a[offset:offset + units], b[offset:offset + units].T)
                    else:  # a stretch holding some of the group's units (an attention projection's queries)
                        cost[sel[:, None], sel[None, :]] += a[offset:offset + units] @ b[offset:offset + units].T
            cost64 = cost.double().cpu().numpy()
            q = assignment(cost64, *spec.structure(g))
            old = float(np.trace(cost64))
            new = float(cost64[np.arange(n), q].sum())
            solved_at[g] = state
            if new > old + 1e-12 * max(1.0, abs(old)):
                improved = True
                version[g] += 1
                q_t = torch.as_tensor(q, dtype=torch.long)
                perm[g] = perm[g][q_t]
                q_dev = q_t.to(dev)
                for k, dim, offset, units, sel in slots[g]:
                    full = lb[k].shape[dim]
                    if units == full and sel is None:
                        lb[k] = lb[k].index_select(dim, q_dev)
                    else:
                        index = torch.arange(full, device=dev)
                        index[offset:offset + units] = offset + (q_dev if sel is None else positions_in(sel, q_dev[sel]))
                        lb[k] = lb[k].index_select(dim, index)
        history.append(total())
        if not improved:
            break
    return MatchingResult(perm=perm, objective=history, sweeps=sweeps)


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes :func:`weight_matching` holds at its peak, beyond the two state dicts the caller passes."""

    weights: int  # B's matched entries as float32 layouts, and A's where they are copies
    products: int  # A's entries re-laid as [units, rest] matrices and kept (none with chunk_bytes)
    temporary: int  # the largest of: B's largest entry being permuted and laid out (two copies at once, when
    # weight matching starts), the matrix made for one product (B's entry re-laid, or two slices)
    costs: int  # the largest group's cost matrix in float32, its float64 copy, and SciPy's two copies

    @property
    def peak(self) -> int:
        return self.weights + self.products + self.temporary + self.costs

    def __str__(self) -> str:
        gib = 2 ** 30
        return (f"weight matching will hold about {self.peak / gib:.2f} GiB beyond the state dicts: "
                f"{self.weights / gib:.2f} GiB for both models' weights, {self.products / gib:.2f} GiB of "
                f"re-laid products kept, {self.temporary / gib:.2f} GiB for one product, "
                f"{self.costs / gib:.3f} GiB of cost matrices")


def weight_matching_memory(spec: PermutationSpec, state: StateDict, include_buffers: bool = False,
                           chunk_bytes: int | None = None) -> MemoryEstimate:
    """What :func:`weight_matching` with these arguments will hold in memory (float32 throughout), from
    the spec and one state dict's shapes, counting a re-laid matrix only where it is a copy rather than
    a view (a Linear's ``[out, in]`` is its own layout; a convolution's is not); with ``chunk_bytes``,
    the peak is bounded by the weights plus ``2 * chunk_bytes`` plus the cost matrices."""
    viewed = spec.viewed({k: v.to("meta") for k, v in state.items()})  # shapes only: nothing is allocated
    keys = _matched_keys(spec, viewed, include_buffers)
    weights = products = largest_product = largest_entry = 0
    per_row = []
    for k in keys:
        t, axes = viewed[k], spec.axes[k]
        size = t.numel() * 4
        permuted = [i for i, g in enumerate(axes) if g is not None]
        other = [i for i, g in enumerate(axes) if g is None]
        n0 = t.shape[permuted[0]]
        n1 = t.shape[permuted[1]] if len(permuted) == 2 else 1
        rest = t.numel() // (n0 * n1)
        own_layout = other + permuted == list(range(t.ndim)) and t.dtype == torch.float32 and t.is_contiguous()
        weights += size * (1 if own_layout else 2)  # B's layout is always a copy (permuted), A's unless its own
        copied = rest > 1 and n0 > 1  # the [n0, rest * n1] matrix of the first axis (the second's is a view)
        products += size * copied
        largest_product = max(largest_product, size if copied else 0)
        largest_entry = max(largest_entry, size)
        per_row.append(n0 * n1 * 4)
    largest = max((spec.sizes[g] for g in spec.sizes), default=0)
    if chunk_bytes is None:
        temporary = largest_product  # B's matrix for one product
    else:
        products = 0  # slices of one row of the unpermuted axes at least
        temporary = 2 * max((max(chunk_bytes // row, 1) * row for row in per_row), default=0)
    return MemoryEstimate(weights=weights, products=products, temporary=max(temporary, 2 * largest_entry),
                          costs=largest * largest * 28)
