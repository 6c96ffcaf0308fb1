"""The oracle for weight matching: a plain NumPy implementation of Git Re-Basin's coordinate ascent
(Ainsworth et al. 2023, Algorithm 1), written for clarity, not speed. ``tests/test_matching.py`` and
``tests/test_traced_spec.py`` check :func:`lmc_utils.matching.weight_matching` against it (same
permutation, same objective); ``bench/bench_weight_matching.py`` times the two."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from lmc_utils.matching.common import MatchingResult, _matched_keys, group_order
from lmc_utils.permutation import PermutationSpec, StateDict


def weight_matching_reference(spec: PermutationSpec, state_a: StateDict, state_b: StateDict,
                              max_sweeps: int = 100, seed: int = 0, include_buffers: bool = False) -> MatchingResult:
    """The same algorithm as :func:`weight_matching`, written the direct way (NumPy/SciPy): for
    every group and weight, gather B permuted on its other axes, move the axis first, reshape,
    multiply. Slow; kept as the reference that tests and ``bench/`` compare against."""
    state_a, state_b = spec.viewed(state_a), spec.viewed(state_b)
    keys = _matched_keys(spec, state_a, include_buffers)
    a = {k: state_a[k].detach().cpu().numpy().astype(np.float32) for k in keys}
    b = {k: state_b[k].detach().cpu().numpy().astype(np.float32) for k in keys}
    entries = {g: [(k, ax) for k, ax in e if k in a] for g, e in spec.groups.items()}
    perm = {g: np.arange(n) for g, n in spec.sizes.items()}

    def b_permuted_except(key: str, except_axis: int) -> np.ndarray:
        w = b[key]
        for axis, g in enumerate(spec.axes[key]):
            if g is not None and axis != except_axis:
                w = np.take(w, perm[g], axis=axis)
        return w

    def objective() -> float:
        total = 0.0
        for k in keys:
            w = b[k]
            for axis, g in enumerate(spec.axes[k]):
                if g is not None:
                    w = np.take(w, perm[g], axis=axis)
            total += float(np.dot(a[k].ravel().astype(np.float64), w.ravel()))
        return total

    names = sorted(g for g in spec.sizes if entries[g])
    history, sweeps = [objective()], 0
    for sweep in range(max_sweeps):
        sweeps += 1
        progress = False
        for g in group_order(names, sweep, seed):
            n = spec.sizes[g]
            cost = np.zeros((n, n))
            for key, axis in entries[g]:
                wa = np.moveaxis(a[key], axis, 0).reshape(n, -1)
                wb = np.moveaxis(b_permuted_except(key, axis), axis, 0).reshape(n, -1)
                cost += wa @ wb.T
            _, ci = linear_sum_assignment(cost, maximize=True)
            old = cost[np.arange(n), perm[g]].sum()
            new = cost[np.arange(n), ci].sum()
            if new > old + 1e-12 * max(1.0, abs(old)):
                progress = True
                perm[g] = ci
        history.append(objective())
        if not progress:
            break
    return MatchingResult(perm={g: torch.as_tensor(p, dtype=torch.long) for g, p in perm.items()},
                          objective=history, sweeps=sweeps)
