"""Weight matching: Ainsworth et al. (2023), "Git Re-Basin", Algorithm 1 -- maximise ``sum_l <W_l^a, P_l
W_l^b P_{l-1}^T>`` by coordinate ascent, one linear assignment problem per permutation group (in a
seeded random order each sweep) until no group improves.
"""

from __future__ import annotations


import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from ..core import memo, settings
from ..permutation import Permutation, PermutationSpec, StateDict, identity
from .common import MatchingResult, _flat, _layout, _matched_keys, group_order


@memo.memoized("matching", result_type=MatchingResult)
def weight_matching(spec: PermutationSpec, state_a: StateDict, state_b: StateDict, max_sweeps: int = 100,
                    seed: int = 0, init_perm: Permutation | None = None, include_buffers: bool = False,
                    device: str | torch.device | None = None) -> MatchingResult:
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
      nothing but the time).

    Args:
        spec: permutation spec shared by both models.
        state_a, state_b: state dicts (same architecture); B is the one permuted.
        max_sweeps: upper bound on the number of sweeps (in a dry run at most
            :data:`lmc_utils.core.settings.WEIGHT_MATCHING_SWEEPS`).
        seed: seed of the group order.
        init_perm: starting permutation of B (default: identity).
        include_buffers: also match on buffers such as BN running statistics (default: parameters only).
        device: where the products run (default: where ``state_a`` lives).
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
    slots: dict[str, list[tuple[str, int]]] = {g: [] for g in spec.sizes}  # group -> (key, dim 1 or 2)
    neighbours: dict[str, set[str]] = {g: set() for g in spec.sizes}
    for k in keys:
        axes = spec.axes[k]
        b = state_b[k].detach().to(dev, torch.float32)
        for axis, g in enumerate(axes):
            if g is not None:
                b = b.index_select(axis, perm[g].to(dev))
        la[k] = _layout(state_a[k].detach().to(dev, torch.float32), axes)
        lb[k] = _layout(b, axes)
        groups_k = [g for g in axes if g is not None]
        for dim, g in enumerate(groups_k, start=1):
            slots[g].append((k, dim))
            # a group on two axes of one tensor depends on itself (a quadratic term)
            neighbours[g].update(h for h in groups_k if h != g or groups_k.count(g) > 1)

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
            for k, dim in slots[g]:
                if (k, dim) not in fa:
                    fa[(k, dim)] = _flat(la[k], dim)
                cost.addmm_(fa[(k, dim)], _flat(lb[k], dim).T)
            cost64 = cost.double().cpu().numpy()
            _, q = linear_sum_assignment(cost64, maximize=True)
            old = float(np.trace(cost64))
            new = float(cost64[np.arange(n), q].sum())
            solved_at[g] = state
            if new > old + 1e-12 * max(1.0, abs(old)):
                improved = True
                version[g] += 1
                q_t = torch.as_tensor(q, dtype=torch.long)
                perm[g] = perm[g][q_t]
                q_dev = q_t.to(dev)
                for k, dim in slots[g]:
                    lb[k] = lb[k].index_select(dim, q_dev)
        history.append(total())
        if not improved:
            break
    return MatchingResult(perm=perm, objective=history, sweeps=sweeps)
