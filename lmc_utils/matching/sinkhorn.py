"""Sinkhorn weight matching: the weight-matching objective through the Sinkhorn relaxation (Pena et al.
2023; the solver Ito et al. 2025 use): all groups at once as soft permutations optimised by gradient
ascent, then hardened by assignments.
"""

from __future__ import annotations


import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from tqdm.auto import tqdm

from ..core import memo
from ..permutation import Permutation, PermutationSpec, StateDict, identity
from .common import MatchingResult, Patience, _layout, _matched_keys, group_order
from .weight import weight_matching


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


@memo.memoized("matching", result_type=MatchingResult)
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
    if not spec.is_plain:
        raise NotImplementedError("Sinkhorn matching needs a plain spec (no grouped convolution or concatenated "
                                  "features); use weight_matching for this model")
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
