"""Matching algorithms: find the permutation of model B that best aligns it with model A.

* :func:`weight_matching` — Ainsworth et al. (2023), "Git Re-Basin", Algorithm 1: maximise
  ``sum_l <W_l^a, P_l W_l^b P_{l-1}^T>`` by coordinate ascent, solving one linear assignment
  problem per permutation group (in a random order each sweep) until no group improves.
* :func:`sinkhorn_weight_matching` — the same objective through the Sinkhorn relaxation
  (Peña et al. 2023; the solver Ito et al. 2025 use): all groups at once as soft permutations
  optimised by gradient ascent, then hardened by assignments.
* :func:`activation_matching` — match hidden units by the Pearson correlation of their
  activations on data, one assignment per group (Li et al. 2015; Ainsworth et al. 2023). Its
  ``statistics`` and ``refeed`` options select the implementations Qu & Horvath (2024, App. D.2,
  Table 2) compare: float32 sums over the data (Ainsworth et al.'s "A"), float64 averages of
  per-batch averages (Jordan et al.'s, the default), and layer-by-layer re-feeding ("B").

Each returns the permutation to apply to B (see :mod:`lmc_utils.permutation`).

* :func:`merge_many` — merge three or more models: reference, sequential or iterative matching
  (Qu & Horvath 2024, App. E.3; Ainsworth et al.'s MergeMany) with any matcher wrapped as a
  :data:`Matcher` (:func:`weight_matcher`, :func:`activation_matcher`, :func:`ste_matcher`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn
from tqdm.auto import tqdm

from . import dry_run
from .permutation import Permutation, PermutationSpec, StateDict, identity, permute_model, spec_for


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
            :data:`lmc_utils.dry_run.WEIGHT_MATCHING_SWEEPS`).
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
    for sweep in range(dry_run.weight_matching_sweeps(max_sweeps)):
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


def _sinkhorn(logits: torch.Tensor, iters: int) -> torch.Tensor:
    """A doubly stochastic matrix from ``logits`` by ``iters`` rounds of row and column
    normalisation in log space (Sinkhorn–Knopp; stable for large logits)."""
    for _ in range(iters):
        logits = logits - logits.logsumexp(1, keepdim=True)
        logits = logits - logits.logsumexp(0, keepdim=True)
    return logits.exp()


def _sinkhorn_batched(logits: torch.Tensor, iters: int, row: torch.Tensor | None = None,
                      col: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`_sinkhorn` on a stack ``[G, n, n]`` of logits at once, optionally warm-started from
    log scalings ``row [G, n, 1]`` and ``col [G, 1, n]`` (subtracted first; detached). Returns the
    doubly stochastic stack and the total log scalings (detached), so that the next call, on
    logits that moved a little, needs only a few rounds."""
    x = logits
    r = torch.zeros_like(logits[..., :1]) if row is None else row
    c = torch.zeros_like(logits[..., :1, :]) if col is None else col
    x = x - r - c
    for _ in range(iters):
        lr_ = x.logsumexp(-1, keepdim=True)
        x = x - lr_
        r = r + lr_.detach()
        lc = x.logsumexp(-2, keepdim=True)
        x = x - lc
        c = c + lc.detach()
    return x.exp(), r, c


def _soft_inner_product(la: dict[str, torch.Tensor], lb: dict[str, torch.Tensor], groups_of: dict[str, list[str]],
                        soft: dict[str, torch.Tensor]) -> torch.Tensor:
    """``sum_k <A_k, P(B_k)>`` with every permuted axis of B contracted with its group's
    (soft or hard) permutation matrix ``soft[g]`` (``[n, n]``, row ``i`` = weights of the old units
    that form new unit ``i``). Tensors are in :func:`_layout` form ``[rest, n0, n1]``."""
    total = la[next(iter(la))].new_zeros(())
    for k, a in la.items():
        g = groups_of[k]
        if len(g) == 1:
            pb = lb[k][..., 0] @ soft[g[0]].T  # [rest, n0]
            total = total + (a[..., 0] * pb).sum()
        else:
            pb = soft[g[0]] @ lb[k] @ soft[g[1]].T  # [rest, n0, n1]
            total = total + (a * pb).sum()
    return total


def sinkhorn_weight_matching(spec: PermutationSpec, state_a: StateDict, state_b: StateDict, steps: int = 300,
                             lr: float = 0.1, sinkhorn_iters: int = 20, tau: tuple[float, float] = (1.0, 0.01),
                             seed: int = 0, include_buffers: bool = False, device: str | torch.device | None = None,
                             progress: bool = False, init: str = "uniform", init_perm: Permutation | None = None,
                             init_margin: float = 2.0, carry_scalings: bool = False, precompute: bool = False,
                             tol: float | None = None, patience: int = 10) -> MatchingResult:
    """Weight matching through the Sinkhorn relaxation (Peña et al. 2023, as used by Ito et al. 2025).

    Every group's permutation is relaxed to a doubly stochastic matrix ``P_g = sinkhorn(L_g / tau)``
    of free logits ``L_g``. All groups are optimised at once by Adam on the relaxed
    weight-matching objective ``sum <W_a, P(W_b)>`` (normalised by ``sum ||W_a|| ||W_b||``), while
    the temperature ``tau`` falls geometrically from ``tau[0]`` to ``tau[1]`` over ``steps`` steps so
    the soft permutations harden. (For hard permutations this objective is
    ``(||a||^2 + ||b||^2 - ||a - pi(b)||^2) / 2``, i.e. the L2 objective; for soft ones the inner
    product is used because ``||P(W_b)||`` shrinks as ``P`` blurs, which would reward blur.) Groups
    of the same size are held as one ``[G, n, n]`` stack and normalised together.

    Hardening: groups are turned into permutations one at a time (order: :func:`group_order` with
    ``seed``), each by one linear assignment on the gradient of the relaxed objective with respect
    to that group, with the groups already hardened fixed and the others still soft. (Rounding
    every soft matrix on its own loses about 3% of the L2 objective on trained MLPs.)

    **Default** (``init="uniform"``, ``carry_scalings=False``, ``tol=None``): all logits zero at the
    start (every ``P_g`` uniform), ``sinkhorn_iters`` full rounds per step from scratch, all ``steps``
    steps: the result notebook 02 reports. **Fast options** (``bench/bench_sinkhorn.md``):

    * ``init="wm"``: warm start from a hard permutation (``init_perm``, else :func:`weight_matching`
      with ``seed``): ``L_g = tau[0] * (log n + init_margin)`` on its entries, 0 elsewhere, so the
      first soft matrices put most of each row's mass on it. The returned permutation is the better
      (by the hard objective) of the relaxation's and the warm start's: never worse than the start;
    * ``carry_scalings=True``: each step's Sinkhorn rounds start from the previous step's row and
      column log scalings (the logits move little between steps), so a few rounds
      (``sinkhorn_iters`` 2–5) keep the matrices near doubly stochastic;
    * ``precompute=True``: every term of a tensor with one permuted axis (first and last layers,
      biases) is summed once into an ``[n, n]`` matrix ``C_g`` with ``<A, P_g(B)> = <C_g, P_g>``, so a
      step multiplies only the tensors with two permuted axes (the same objective up to rounding);
    * ``tol``: stop early once the normalised relaxed objective has not risen by more than ``tol``
      for ``patience`` steps in a row (:class:`Patience`); ``steps`` stays the length of the
      temperature schedule and the cap.

    Args:
        spec, state_a, state_b, include_buffers, device: as for :func:`weight_matching`.
        steps: Adam steps (the cap when ``tol`` is set); lr: Adam learning rate on the logits;
            sinkhorn_iters: normalisation rounds per evaluation; tau: (start, end) temperature.
    Returns:
        :class:`MatchingResult` with ``perm``, ``objective = [<W_a, W_b>, <W_a, pi(W_b)>]`` (the
        hard objective before and after) and ``sweeps`` = the Adam steps taken.
    """
    if steps < 1 or sinkhorn_iters < 1 or not (tau[0] > 0 and tau[1] > 0):
        raise ValueError("sinkhorn_weight_matching needs steps >= 1, sinkhorn_iters >= 1 and positive temperatures")
    if init not in ("uniform", "wm"):
        raise ValueError(f"init must be 'uniform' or 'wm', got {init!r}")
    if init_perm is not None and init != "wm":
        raise ValueError("init_perm is only used with init='wm'")
    if tol is not None and tol < 0:
        raise ValueError(f"tol must be None or >= 0, got {tol}")
    spec.check_state(state_a, "state_a")
    spec.check_state(state_b, "state_b")
    state_a, state_b = spec.viewed(state_a), spec.viewed(state_b)
    keys = _matched_keys(spec, state_a, include_buffers)
    dev = torch.device(device) if device is not None else (state_a[keys[0]].device if keys else torch.device("cpu"))
    la = {k: _layout(state_a[k].detach().to(dev, torch.float32), spec.axes[k]) for k in keys}
    lb = {k: _layout(state_b[k].detach().to(dev, torch.float32), spec.axes[k]) for k in keys}
    groups_of = {k: [g for g in spec.axes[k] if g is not None] for k in keys}
    groups = sorted({g for gs in groups_of.values() for g in gs})
    scale = float(sum(la[k].norm() * lb[k].norm() for k in keys)) or 1.0
    hard_identity = {g: torch.eye(spec.sizes[g], device=dev) for g in groups}
    before = float(_soft_inner_product(la, lb, groups_of, hard_identity))
    # the relaxed objective: optionally with every single-group term summed once into [n, n]
    linear: dict[str, torch.Tensor] = {}
    la_q, lb_q, groups_q = la, lb, groups_of
    if precompute:
        single = [k for k in keys if len(groups_of[k]) == 1]
        for k in single:
            g = groups_of[k][0]
            term = la[k][..., 0].T @ lb[k][..., 0]  # [n, n]: <A, P(B)> = <term, P>
            linear[g] = linear[g] + term if g in linear else term
        la_q = {k: v for k, v in la.items() if k not in single}
        lb_q = {k: v for k, v in lb.items() if k not in single}
        groups_q = {k: v for k, v in groups_of.items() if k not in single}

    def objective(soft: dict[str, torch.Tensor]) -> torch.Tensor:
        if not precompute:
            return _soft_inner_product(la, lb, groups_of, soft)
        total = sum((linear[g] * soft[g]).sum() for g in linear)
        return total + _soft_inner_product(la_q, lb_q, groups_q, soft) if la_q else total

    def hard_matrix(p: torch.Tensor) -> torch.Tensor:
        m = torch.zeros(len(p), len(p), device=dev)
        m[torch.arange(len(p), device=dev), p.to(dev)] = 1.0
        return m

    start_perm = None
    if init == "wm":
        start_perm = init_perm if init_perm is not None else weight_matching(spec, state_a, state_b, seed=seed,
                                                                             device=dev).perm
        start_perm = {g: start_perm[g].clone().cpu() for g in groups}
    # groups of one size form one stack: by_size[n] = [groups], logits[n]: [G, n, n]
    by_size: dict[int, list[str]] = {}
    for g in groups:
        by_size.setdefault(spec.sizes[g], []).append(g)
    t0, t1 = tau
    logits = {}
    for n, gs in by_size.items():
        if start_perm is None:
            init_logits = torch.zeros(len(gs), n, n, device=dev)
        else:
            margin = t0 * (float(np.log(n)) + init_margin)
            init_logits = torch.stack([margin * hard_matrix(start_perm[g]) for g in gs])
        logits[n] = init_logits.requires_grad_(True)
    scalings: dict[int, tuple[torch.Tensor | None, torch.Tensor | None]] = {n: (None, None) for n in by_size}
    opt = torch.optim.Adam(list(logits.values()), lr=lr)
    stopper = Patience(patience if tol is not None else None, tol or 0.0)

    def soft_of(t: float, carry: bool) -> dict[str, torch.Tensor]:
        out = {}
        for n, gs in by_size.items():
            row, col = scalings[n] if carry else (None, None)
            stack, r, c = _sinkhorn_batched(logits[n] / t, sinkhorn_iters, row, col)
            if carry:
                scalings[n] = (r, c)
            out.update({g: stack[i] for i, g in enumerate(gs)})
        return out

    # At low temperature most entries underflow; denormal floats would make CPU arithmetic ~100x slower.
    flush = torch.set_flush_denormal(True)
    taken = 0
    try:
        for step in tqdm(range(steps), desc="Sinkhorn weight matching", disable=not progress, leave=False):
            t = t0 * (t1 / t0) ** (step / max(steps - 1, 1))
            soft = soft_of(t, carry_scalings)
            loss = -objective(soft) / scale
            opt.zero_grad()
            loss.backward()
            opt.step()
            taken = step + 1
            if stopper.update(float(loss.detach())):
                break
        with torch.no_grad():
            t_end = t0 * (t1 / t0) ** ((taken - 1) / max(steps - 1, 1)) if tol is not None else t1
            current = soft_of(t_end, carry_scalings)
    finally:
        if flush:
            torch.set_flush_denormal(False)

    perm = identity(spec)
    for g in group_order(groups, 0, seed):
        p_g = current[g].clone().requires_grad_(True)
        grad, = torch.autograd.grad(objective({**current, g: p_g}), p_g)
        _, q = linear_sum_assignment(grad.double().cpu().numpy(), maximize=True)
        perm[g] = torch.as_tensor(q, dtype=torch.long)
        current[g] = hard_matrix(perm[g])
    after = float(_soft_inner_product(la, lb, groups_of, current))  # the hard objective, always directly
    if start_perm is not None:
        start_value = float(_soft_inner_product(la, lb, groups_of, {g: hard_matrix(start_perm[g]) for g in groups}))
        if start_value > after:
            perm.update(start_perm)
            after = start_value
    return MatchingResult(perm=perm, objective=[before, after], sweeps=taken)


def _features(output: torch.Tensor) -> torch.Tensor:
    """Module output -> ``[samples, units]``: conv maps contribute one sample per position."""
    if output.ndim == 4:
        return output.permute(0, 2, 3, 1).reshape(-1, output.shape[1])
    return output.reshape(-1, output.shape[-1])


class _Recorder:
    """Forward hooks collecting each group's features during one forward pass."""

    def __init__(self, model: nn.Module, activations: dict[str, tuple[str, ...]]):
        self.features: dict[str, list[torch.Tensor]] = {g: [] for g in activations}
        modules = dict(model.named_modules())
        self.handles = []
        for g, names in activations.items():
            for n in names:
                self.handles.append(modules[n].register_forward_hook(self._hook(g)))

    def _hook(self, group: str):
        def hook(_module, _inputs, output):
            self.features[group].append(_features(output.detach()))
        return hook

    def pop(self) -> dict[str, torch.Tensor]:
        out = {g: torch.cat(fs, 0) for g, fs in self.features.items()}
        for fs in self.features.values():
            fs.clear()
        return out

    def close(self) -> None:
        for h in self.handles:
            h.remove()


STATISTICS = ("float64_mean", "float32_sums")


def activation_correlations(model_a: nn.Module, model_b: nn.Module, inputs: torch.Tensor | Iterable[torch.Tensor],
                            spec: PermutationSpec | None = None, batch_size: int = 500,
                            statistics: str = "float64_mean") -> dict[str, torch.Tensor]:
    """Pearson correlation between every unit of A and every unit of B, per group.

    One pass over ``inputs`` (a tensor, split into ``batch_size`` batches, or an iterable of
    batches), models in eval mode. ``statistics`` says how the means, second moments and cross
    moments are accumulated:

    * ``float64_mean`` (default; Jordan et al. 2023's implementation): in float64, as the average of
      per-batch averages (a short last batch weighs as much as a full one);
    * ``float32_sums`` (Ainsworth et al. 2023's): in float32, as sums over all samples divided by
      their count at the end; the correlation is computed in float32 too.

    Units with zero variance get correlation 0. Returns ``group -> [n_a, n_b]`` float64 CPU tensors.
    """
    if statistics not in STATISTICS:
        raise ValueError(f"unknown statistics {statistics!r}; choose one of {', '.join(STATISTICS)}")
    spec = spec or spec_for(model_a)
    batches = inputs.split(batch_size) if isinstance(inputs, torch.Tensor) else inputs
    rec_a, rec_b = _Recorder(model_a, spec.activations), _Recorder(model_b, spec.activations)
    stats: dict[str, list[torch.Tensor]] = {}
    rows: dict[str, int] = {}  # samples (positions of conv maps) per group, for float32_sums
    n_batches = 0
    sums = statistics == "float32_sums"
    was_training = (model_a.training, model_b.training)
    model_a.eval()
    model_b.eval()
    try:
        with torch.no_grad():
            for x in batches:
                model_a(x)
                model_b(x)
                fa, fb = rec_a.pop(), rec_b.pop()
                for g in spec.activations:
                    if sums:
                        a, b = fa[g].float(), fb[g].float()
                        batch = [a.sum(0), b.sum(0), (a * a).sum(0), (b * b).sum(0), a.T @ b]
                    else:
                        a, b = fa[g].double(), fb[g].double()
                        m = a.shape[0]
                        batch = [a.mean(0), b.mean(0), (a * a).mean(0), (b * b).mean(0), a.T @ b / m]
                    if g in stats:
                        for acc, v in zip(stats[g], batch):
                            acc += v
                    else:
                        stats[g] = batch
                    rows[g] = rows.get(g, 0) + a.shape[0]
                n_batches += 1
    finally:
        rec_a.close()
        rec_b.close()
        model_a.train(was_training[0])
        model_b.train(was_training[1])
    if n_batches == 0:
        raise ValueError("activation matching needs at least one batch of inputs")
    corrs = {}
    for g, (ma, mb, saa, sbb, sab) in stats.items():
        n = rows[g] if sums else n_batches
        ma, mb, saa, sbb, sab = (t / n for t in (ma, mb, saa, sbb, sab))
        std_a = (saa - ma ** 2).clamp_min(0).sqrt()
        std_b = (sbb - mb ** 2).clamp_min(0).sqrt()
        cov = sab - torch.outer(ma, mb)
        denom = torch.outer(std_a, std_b)
        corrs[g] = torch.where(denom > 0, cov / denom.clamp_min(1e-30), torch.zeros_like(cov)).double().cpu()
    return corrs


def activation_matching(model_a: nn.Module, model_b: nn.Module, inputs: torch.Tensor | Iterable[torch.Tensor],
                        spec: PermutationSpec | None = None, batch_size: int = 500,
                        statistics: str = "float64_mean", refeed: bool = False) -> MatchingResult:
    """Activation matching: for each group, the assignment maximising the summed Pearson
    correlation between A's units and B's re-ordered units (see :func:`activation_correlations`
    for ``statistics``).

    ``refeed=False``: one pass over ``inputs`` measures every group at once. ``refeed=True``
    (Jordan et al. 2023's implementation, "B" of Qu & Horvath 2024, App. D.2): groups are matched
    one at a time in forward order (of their first activation module), and after each, B is
    permuted by it and ``inputs`` are fed again to measure the next group through the partially
    permuted B. A permutation leaves B's function unchanged, so both see the same activations up
    to float rounding; re-feeding costs one pass per group.

    The two models must share an architecture; inputs are data samples (e.g. training images).
    """
    spec = spec or spec_for(model_a)
    spec_b = spec_for(model_b) if type(model_b) is type(model_a) else None
    if spec_b is None or spec_b.sizes != spec.sizes or set(spec_b.axes) != set(spec.axes):
        raise ValueError("activation matching needs two models of the same architecture and width")
    if statistics not in STATISTICS:
        raise ValueError(f"unknown statistics {statistics!r}; choose one of {', '.join(STATISTICS)}")

    def assign(c: torch.Tensor) -> torch.Tensor:
        _, q = linear_sum_assignment(c.numpy(), maximize=True)
        return torch.as_tensor(q, dtype=torch.long)

    if not refeed:
        corrs = activation_correlations(model_a, model_b, inputs, spec, batch_size, statistics)
        return MatchingResult(perm={g: assign(c) for g, c in corrs.items()})
    if not isinstance(inputs, torch.Tensor):
        inputs = list(inputs)  # fed once per group
    position = {n: i for i, (n, _) in enumerate(model_a.named_modules())}
    order = sorted(spec.activations, key=lambda g: min(position[n] for n in spec.activations[g]))
    b = copy.deepcopy(model_b)
    perm = identity(spec)
    for g in order:
        one = replace(spec, activations={g: spec.activations[g]})
        perm[g] = assign(activation_correlations(model_a, b, inputs, one, batch_size, statistics)[g])
        step = identity(spec)
        step[g] = perm[g]
        permute_model(b, step, spec)  # each group is permuted once, so ``perm`` is the composition
    return MatchingResult(perm=perm, sweeps=len(order))


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


def _project(spec: PermutationSpec, target: StateDict, source: StateDict, perm: Permutation,
             max_sweeps: int, seed: int) -> Permutation:
    """The permutation ``pi`` of ``source`` maximising ``<target, pi(source)>`` over the entries of
    ``target`` (weight matching's coordinate ascent, warm-started from ``perm``). One matrix
    product per (entry, axis) of a group: ``target[axis-first] @ pi_other(source)[axis-first]^T``,
    cheaper than :func:`weight_matching`'s per-slice products when an entry has one permuted axis
    and many others; used for the per-step projection of :func:`ste_matching`."""
    target, source = spec.viewed(target), spec.viewed(source)
    entries = {g: [(k, ax) for k, ax in e if k in target] for g, e in spec.groups.items()}
    groups = sorted(g for g in spec.sizes if entries[g])
    perm = {g: p.clone() for g, p in perm.items()}
    for sweep in range(max_sweeps):
        changed = False
        for g in group_order(groups, sweep, seed):
            n = spec.sizes[g]
            cost = None
            for k, axis in entries[g]:
                w = source[k]
                for ax2, h in enumerate(spec.axes[k]):
                    if h is not None and ax2 != axis:
                        w = w.index_select(ax2, perm[h].to(w.device))
                wa = target[k].movedim(axis, 0).reshape(n, -1)
                term = wa @ w.movedim(axis, 0).reshape(n, -1).to(wa.dtype).T
                cost = term if cost is None else cost + term
            c = cost.double().cpu().numpy()
            _, q = linear_sum_assignment(c, maximize=True)
            old_p = perm[g].cpu().numpy()
            if c[np.arange(n), q].sum() > c[np.arange(n), old_p].sum() + 1e-12 * max(1.0, abs(c[np.arange(n), old_p].sum())):
                perm[g] = torch.as_tensor(q, dtype=torch.long)
                changed = True
        if not changed:
            break
    return perm


STE_INITS = ("wm", "wm_projected", "a_identity", "identity", "random")
_STE_INIT_ALIASES = {"a": "wm", "projected": "wm_projected"}


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


@dataclass
class STEResult(MatchingResult):
    """A :class:`MatchingResult` of :func:`ste_matching`, plus how the search went.

    ``history``: one dict per evaluation of the held batch (``step``, ``held_loss``: midpoint
    loss with the hard permutation, nats; ``batch_loss``: the last training batch's midpoint
    loss); ``best_step``: the step whose permutation is returned (0: the starting permutation);
    ``stopped_step``: the last step taken; ``hit_cap``: the run took all ``steps`` steps of its
    budget, i.e. a patience rule (if any) did not stop it earlier (always ``True`` without one);
    ``init``: the starting point used (see :func:`ste_matching`).
    """

    history: list[dict[str, float]] = field(default_factory=list)
    best_step: int = 0
    stopped_step: int = 0
    hit_cap: bool = True
    init: str = "wm"


def ste_start(spec: PermutationSpec, state_a: StateDict, state_b: StateDict, init: str = "wm",
              init_perm: Permutation | None = None, seed: int = 0) -> tuple[Permutation, StateDict]:
    """The starting point of :func:`ste_matching`: ``(pi_0, theta~_0)``, the permutation the
    projection is warm-started from (and the one evaluated at step 0) and the initial learned copy.

    * ``"wm"`` — ``theta~ = theta_a``, ``pi_0 =`` ``init_perm`` or the weight-matching
      permutation. As both reference implementations run it (Ainsworth et al.'s ``mnist_mlp_ste2``
      and Ito et al.'s group's ``main_ste``: the copy starts at ``theta_a`` and the first
      projection, of ``theta_a`` from the identity to convergence, *is* weight matching);
    * ``"wm_projected"`` — ``theta~ = pi_0(theta_b)``, ``pi_0`` as for ``"wm"`` (a WM start with a
      large margin: the copy must travel far before the projection changes);
    * ``"a_identity"`` — ``theta~ = theta_a``, ``pi_0 =`` identity: the copy starts where the papers'
      does, but the projection is warm-started from B as it is, so with a partial projection
      (``wm_sweeps`` small) the search starts at no permutation instead of at WM's;
    * ``"identity"`` — ``theta~ = theta_b``, ``pi_0 =`` identity: no weight matching at all;
    * ``"random"`` — ``theta~ = rho(theta_b)``, ``pi_0 = rho``, a uniformly random permutation
      drawn from ``seed`` (:func:`lmc_utils.permutation.random_permutation`).

    ``"a"`` and ``"projected"`` are accepted as the former names of ``"wm"`` and ``"wm_projected"``.
    ``init_perm`` is only meaningful for the two WM starts; it is an error with the others.
    """
    from .permutation import apply_permutation, random_permutation

    init = _STE_INIT_ALIASES.get(init, init)
    if init not in STE_INITS:
        raise ValueError(f"init must be one of {', '.join(STE_INITS)}, got {init!r}")
    if init_perm is not None and init not in ("wm", "wm_projected"):
        raise ValueError(f"init_perm is only used with init='wm' or 'wm_projected', not {init!r}")
    if init in ("wm", "wm_projected"):
        perm = init_perm if init_perm is not None else weight_matching(spec, state_a, state_b, seed=seed).perm
    elif init == "random":
        perm = random_permutation(spec, seed)
    else:
        perm = identity(spec)
    perm = {g: p.clone().cpu() for g, p in perm.items()}
    if init in ("wm", "a_identity"):
        start = state_a
    elif init == "identity":
        start = state_b
    else:
        start = apply_permutation(spec, perm, state_b)
    return perm, start


def ste_matching(model: nn.Module, state_a: StateDict, state_b: StateDict, data, steps: int = 200,
                 lr: float = 1e-3, batch_size: int = 500, held_size: int = 1000, eval_every: int = 10,
                 init: str = "wm", init_perm: Permutation | None = None, wm_sweeps: int = 100, seed: int = 0,
                 patience: int | None = None, min_delta: float = 0.0, optimizer: str = "adam",
                 momentum: float = 0.9, weight_decay: float = 0.0,
                 spec: PermutationSpec | None = None, progress: bool = True) -> STEResult:
    """Straight-through estimator (Ainsworth et al. 2023, "Git Re-Basin", §3.3): learn a
    permutation of B that minimises the loss at the midpoint ``(theta_a + pi(theta_b)) / 2``.

    A continuous copy ``theta~`` of B's permuted parameters is learned, starting from
    :func:`ste_start` with ``init`` (default ``"wm"``: ``theta~ = theta_a``, the projection
    warm-started from the weight-matching permutation ``init_perm`` or, if None, computed here;
    there ``<theta~, pi_0(theta_b)>`` of ``"wm_projected"`` starts at ``|theta_b|^2``, a large
    margin: on MNIST MLPs 100 steps at ``lr=1e-3`` changed no unit). Each of at most ``steps``
    optimiser steps (one shuffled mini-batch of ``batch_size`` training examples):

    1. project ``theta~`` onto the nearest permutation of B: ``pi = argmax <theta~, pi(theta_b)>``
       by weight matching's coordinate ascent (:func:`_project`), warm-started from the previous
       ``pi``, for at most ``wm_sweeps`` sweeps (``wm_sweeps=1``: one sweep per step, an amortised
       projection that keeps improving across steps);
    2. forward the midpoint of ``theta_a`` and ``pi(theta_b) + theta~ - stopgrad(theta~)`` (the hard
       permutation's weights in the forward pass, gradients straight through to ``theta~``) with
       ``torch.func.functional_call``, and take a step on its cross-entropy: ``optimizer="adam"``
       (default; ``lr``, ``weight_decay``) or ``"sgd"`` (``lr``, ``momentum``, ``weight_decay``; the
       reference implementations use SGD: Ainsworth et al. lr 0.01 with momentum 0.9, Ito et al.'s
       group lr 0.5 with weight decay 1e-4).

    Buffers are not learned: the midpoint uses the mean of A's and ``pi(theta_b)``'s buffers;
    BatchNorm models run in train mode (batch statistics) for the midpoint loss.

    **Returned permutation:** the best one seen by the midpoint loss on a held batch (the first
    ``held_size`` examples of ``data``, which are excluded from the training batches), measured for
    the starting permutation and then every ``eval_every`` steps and after the last one. The
    starting permutation is returned when no step improves on it. (The reference implementations
    keep the permutation of the lowest *training-batch* loss instead.)

    **Stopping:** with ``patience=None`` (default) all ``steps`` steps are run. Otherwise ``steps``
    is a cap and the run stops after ``patience`` held evaluations in a row without a held loss
    below the best so far minus ``min_delta`` nats (:class:`Patience`; the step-0 evaluation
    counts as the first best).

    Args:
        model: a model of the architecture (used as a functional template; not modified).
        state_a, state_b: state dicts; B is the one permuted.
        data: a :class:`~lmc_utils.data.TensorData` of training examples (on the models' device).
    Returns:
        :class:`STEResult` (``perm`` to apply to B, ``history``, ``best_step``, ``stopped_step``,
        ``hit_cap``, ``init``).
    """
    import torch.nn.functional as F
    from torch.func import functional_call
    from tqdm.auto import tqdm

    from .permutation import apply_permutation

    if steps < 0 or batch_size < 1 or lr <= 0 or eval_every < 1:
        raise ValueError(f"need steps >= 0, batch_size >= 1, lr > 0, eval_every >= 1 "
                         f"(got {steps}, {batch_size}, {lr}, {eval_every})")
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    stopper = Patience(patience, min_delta)
    n = len(data)
    if not 0 < held_size < n:
        raise ValueError(f"held_size must be between 1 and len(data) - 1 = {n - 1}, got {held_size}")
    spec = spec or spec_for(model)
    spec.check_state(state_a, "state_a")
    spec.check_state(state_b, "state_b")
    params = [k for k, _ in model.named_parameters()]
    dev = state_a[params[0]].device
    a = {k: v.detach().to(dev) for k, v in state_a.items()}
    b = {k: v.detach().to(dev) for k, v in state_b.items()}
    init = _STE_INIT_ALIASES.get(init, init)
    perm, start = ste_start(spec, a, b, init, init_perm, seed)
    tilde = {k: start[k].clone().float().requires_grad_(True) for k in params}
    if optimizer == "adam":
        opt = torch.optim.Adam(list(tilde.values()), lr=lr, weight_decay=weight_decay)
    else:
        opt = torch.optim.SGD(list(tilde.values()), lr=lr, momentum=momentum, weight_decay=weight_decay)
    bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())

    def midpoint(proj: dict[str, torch.Tensor], straight: bool) -> dict[str, torch.Tensor]:
        out = {}
        for k, v in a.items():
            if k in tilde:
                wb = proj[k] + tilde[k] - tilde[k].detach() if straight else proj[k]
                out[k] = 0.5 * (v + wb)
            elif v.is_floating_point():
                out[k] = 0.5 * (v + proj[k])  # buffers: the mean (a copy, so BN may update it freely)
            else:
                out[k] = v.clone()
        return out

    def loss_of(state, x, y) -> torch.Tensor:
        return F.cross_entropy(functional_call(model, state, (x,)), y)

    held_x, held_y = data.x[:held_size], data.y[:held_size]
    train_x, train_y = data.x[held_size:], data.y[held_size:]
    gen = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.train(bn)

    def held_loss(p: Permutation) -> float:
        with torch.no_grad():
            return float(loss_of(midpoint(apply_permutation(spec, p, b), straight=False), held_x, held_y))

    best_loss = held_loss(perm)
    stopper.update(best_loss)
    best_perm, best_step = perm, 0
    history = [{"step": 0, "held_loss": best_loss, "batch_loss": float("nan")}]
    order = torch.randperm(len(train_y), generator=gen)
    pos = 0
    stopped_step, hit_cap = 0, True
    bar = tqdm(range(1, steps + 1), desc="STE", disable=not progress, leave=False)
    try:
        for step in bar:
            if pos + batch_size > len(order):
                order, pos = torch.randperm(len(train_y), generator=gen), 0
            idx = order[pos:pos + batch_size].to(train_x.device)
            pos += batch_size
            perm = _project(spec, {k: t.detach() for k, t in tilde.items()}, b, perm, wm_sweeps, seed + step)
            proj = apply_permutation(spec, perm, b)
            loss = loss_of(midpoint(proj, straight=True), train_x[idx], train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            stopped_step = step
            if step % eval_every == 0 or step == steps:
                # the permutation the step was taken with; the next step re-projects theta~
                h = held_loss(perm)
                history.append({"step": step, "held_loss": h, "batch_loss": float(loss.detach())})
                if h < best_loss:
                    best_loss, best_perm, best_step = h, perm, step
                bar.set_postfix(held=f"{h:.4f}", best=f"{best_loss:.4f}")
                if stopper.update(h) and step < steps:
                    hit_cap = False
                    break
    finally:
        model.train(was_training)
        bar.close()
    return STEResult(perm=best_perm, history=history, best_step=best_step, sweeps=stopped_step,
                     stopped_step=stopped_step, hit_cap=hit_cap, init=init)


# --- merging three or more models -----------------------------------------------------------

Matcher = Callable[[StateDict, StateDict, "Permutation | None"], Permutation]
"""``matcher(target, source, init_perm) -> perm``: the permutation of ``source`` aligning it with
``target`` (``init_perm``: a starting point the matcher may use, or ``None``)."""

REGIMES = ("reference", "sequential", "iterative")


def weight_matcher(spec: PermutationSpec, seed: int = 0, max_sweeps: int = 100,
                   device: str | torch.device | None = None) -> Matcher:
    """Weight matching as a :data:`Matcher` (warm-started from ``init_perm`` when given)."""
    def match(target: StateDict, source: StateDict, init_perm: Permutation | None = None) -> Permutation:
        return weight_matching(spec, target, source, max_sweeps=max_sweeps, seed=seed, init_perm=init_perm,
                               device=device).perm
    return match


def activation_matcher(template: nn.Module, inputs: torch.Tensor, spec: PermutationSpec | None = None,
                       reset_data=None, batch_size: int = 500, statistics: str = "float64_mean",
                       refeed: bool = False) -> Matcher:
    """Activation matching as a :data:`Matcher`: ``target`` and ``source`` are loaded into copies of
    ``template`` and matched on ``inputs`` (``init_perm`` is ignored; ``statistics``, ``refeed``: see
    :func:`activation_matching`). With ``reset_data`` the target's BatchNorm statistics are
    recomputed on it first (for targets that are averages)."""
    import copy

    from .interpolation import reset_batchnorm

    spec = spec or spec_for(template)

    def match(target: StateDict, source: StateDict, init_perm: Permutation | None = None) -> Permutation:
        a, b = copy.deepcopy(template), copy.deepcopy(template)
        a.load_state_dict(target)
        b.load_state_dict(source)
        if reset_data is not None:
            reset_batchnorm(a, reset_data)
        return activation_matching(a, b, inputs, spec, batch_size, statistics=statistics, refeed=refeed).perm
    return match


def ste_matcher(template: nn.Module, data, spec: PermutationSpec | None = None, seed: int = 0,
                **ste: object) -> Matcher:
    """The straight-through estimator (:func:`ste_matching`, keyword arguments ``ste``) as a
    :data:`Matcher`: the midpoint of ``target`` and ``pi(source)``, started from ``init_perm`` or
    else from weight matching."""
    spec = spec or spec_for(template)

    def match(target: StateDict, source: StateDict, init_perm: Permutation | None = None) -> Permutation:
        return ste_matching(template, target, source, data, init_perm=init_perm, seed=seed, spec=spec,
                            progress=False, **ste).perm
    return match


def average_states(states: Sequence[StateDict]) -> dict[str, torch.Tensor]:
    """The entry-wise mean of state dicts (floating-point entries; others copied from the first)."""
    if not states:
        raise ValueError("average_states needs at least one state")
    return {k: (sum(s[k].float() for s in states) / len(states)).to(v.dtype) if v.is_floating_point() else v.clone()
            for k, v in states[0].items()}


def pairwise_objective(spec: PermutationSpec, states: Sequence[StateDict]) -> float:
    """MergeMany's objective ``sum_{i < j} <theta_i, theta_j>`` over the entries weight matching
    compares (float64), computed as ``(||sum_i theta_i||^2 - sum_i ||theta_i||^2) / 2``."""
    total = 0.0
    for k in _matched_keys(spec, states[0], include_buffers=False):
        stack = torch.stack([s[k].detach().double().flatten().cpu() for s in states])
        total += 0.5 * float(stack.sum(0).square().sum() - stack.square().sum())
    return total


def pairwise_scale(spec: PermutationSpec, states: Sequence[StateDict]) -> float:
    """``sum_{i < j} ||theta_i|| ||theta_j||`` over the entries :func:`pairwise_objective` uses: the
    permutation-invariant scale that bounds it (their ratio is a weighted mean cosine similarity)."""
    keys = _matched_keys(spec, states[0], include_buffers=False)
    norms = torch.tensor([float(sum(s[k].detach().double().square().sum() for k in keys)) for s in states]).sqrt()
    return 0.5 * float(norms.sum() ** 2 - norms.square().sum())


@dataclass
class MergeManyResult:
    """How ``n`` models were merged.

    ``perms[i]``: the permutation applied to model ``i`` (identity for model 0 under the reference
    and sequential regimes); ``aligned[i]``: model ``i`` permuted; ``merged``: their mean;
    ``objective``: :func:`pairwise_objective` of the aligned models — for ``iterative`` before the
    first iteration and after each one, otherwise once, at the end; ``iterations``: full passes
    over the models (iterative; 0 otherwise); ``converged``: whether a pass changed no permutation
    before the cap (iterative; ``None`` otherwise); ``scale``: :func:`pairwise_scale` of the models
    (``objective / scale``: their weighted mean pairwise cosine similarity, at most 1)."""

    perms: list[Permutation]
    aligned: list[dict[str, torch.Tensor]]
    merged: dict[str, torch.Tensor]
    objective: list[float] = field(default_factory=list)
    iterations: int = 0
    converged: bool | None = None
    scale: float = float("nan")


def _same(p: Permutation, q: Permutation) -> bool:
    return all(torch.equal(p[g].cpu(), q[g].cpu()) for g in p)


def merge_many(states: Sequence[StateDict], spec: PermutationSpec, regime: str = "reference",
               matcher: Matcher | None = None, max_iterations: int = 30, seed: int = 0,
               progress: bool = False) -> MergeManyResult:
    """Align ``n >= 1`` models of one architecture into a common basis and average them
    (Qu & Horvath 2024, App. E.3, Algorithms 1-3; Ainsworth et al. 2023, MergeMany).

    * ``reference``: every model ``i >= 1`` is matched to model 0;
    * ``sequential``: model ``i`` is matched to model ``i - 1`` as already permuted (for ``n = 2``
      both are one pairwise matching);
    * ``iterative``: starting from the unpermuted models, each pass visits the models in a seeded
      random order (a different one every pass) and matches model ``i`` to the mean of the other
      models as currently permuted (warm-started from its current permutation). It stops after a
      pass that changed no permutation (``converged``) or after ``max_iterations`` passes.

    Args:
        states: the models' state dicts; ``spec``: their permutation spec.
        matcher: a :data:`Matcher` (default: :func:`weight_matcher` with ``seed``).
        max_iterations: the cap on passes of ``iterative`` (Qu & Horvath stop at 30).
        seed: seed of the iterative regime's visiting orders.
    Returns:
        :class:`MergeManyResult`.
    """
    from .permutation import apply_permutation

    if regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r}; choose one of {', '.join(REGIMES)}")
    if not states:
        raise ValueError("merge_many needs at least one model")
    if max_iterations < 1:
        raise ValueError(f"max_iterations must be at least 1, got {max_iterations}")
    for i, s in enumerate(states):
        spec.check_state(s, f"states[{i}]")
    match = matcher or weight_matcher(spec, seed=seed)
    n = len(states)
    perms = [identity(spec) for _ in range(n)]
    aligned = [dict(s) for s in states]
    if regime in ("reference", "sequential"):
        for i in tqdm(range(1, n), desc=f"{regime} matching", disable=not progress, leave=False):
            target = aligned[0] if regime == "reference" else aligned[i - 1]
            perms[i] = match(target, states[i], None)
            aligned[i] = apply_permutation(spec, perms[i], states[i])
        return MergeManyResult(perms=perms, aligned=aligned, merged=average_states(aligned),
                               objective=[pairwise_objective(spec, aligned)], scale=pairwise_scale(spec, states))
    history = [pairwise_objective(spec, aligned)]
    converged, iterations = n == 1, 0
    floats = [k for k, v in states[0].items() if v.is_floating_point()]
    total = {k: sum(a[k].double() for a in aligned) for k in floats}
    bar = tqdm(range(max_iterations), desc="iterative matching", disable=not progress or n == 1, leave=False)
    for it in bar:
        if n == 1:
            break
        iterations += 1
        changed = False
        for i in np.random.default_rng([seed, it]).permutation(n):
            rest = {k: ((total[k] - aligned[i][k].double()) / (n - 1)).to(states[0][k].dtype) for k in floats}
            target = {k: rest.get(k, v) for k, v in states[0].items()}
            new = match(target, states[i], perms[i])
            if not _same(new, perms[i]):
                changed = True
                perms[i] = new
                new_state = apply_permutation(spec, new, states[i])
                for k in floats:
                    total[k] = total[k] - aligned[i][k].double() + new_state[k].double()
                aligned[i] = new_state
        history.append(pairwise_objective(spec, aligned))
        bar.set_postfix(objective=f"{history[-1]:.4g}")
        if not changed:
            converged = True
            break
    return MergeManyResult(perms=perms, aligned=aligned, merged=average_states(aligned), objective=history,
                           iterations=iterations, converged=converged, scale=pairwise_scale(spec, states))
