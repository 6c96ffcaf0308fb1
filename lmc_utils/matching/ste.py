"""The straight-through estimator (Ainsworth et al. 2023, Algorithm 2): learn a model whose projection onto
B's permutations, interpolated with A, has low loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from ..core import memo
from ..permutation import Permutation, PermutationSpec, StateDict, identity, spec_for
from .common import MatchingResult, Patience, group_order
from .weight import weight_matching


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

# STE as Ainsworth et al. (2023) run it on their MNIST MLP (samuela/git-re-basin, src/mnist_mlp_ste2.py):
# the learned copy starts at theta_a; every step projects it onto B's permutations by weight matching
# (max_iter=100, warm-started from the last projection), takes the midpoint loss's straight-through
# gradient, and updates with SGD (lr 1e-2, momentum 0.9, constant) on batches of 1000, for 250 epochs
# (15,000 steps on 60k images). These are the defaults of :func:`ste_matching`. Where the companion
# differs: the permutation returned is the one with the lowest loss on a held batch (the reference keeps
# the one with the lowest *training-batch* loss, a noisier and optimistically biased choice), and a
# patience rule on that held loss may stop the run before its 15,000-step cap (``patience``).
PROTOCOL = {"init": "wm", "optimizer": "sgd", "lr": 1e-2, "momentum": 0.9, "weight_decay": 0.0,
            "batch_size": 1000, "wm_sweeps": 100, "steps": 15_000}


_STE_INIT_ALIASES = {"a": "wm", "projected": "wm_projected"}


@dataclass
class STEResult(MatchingResult):
    """A :class:`MatchingResult` of :func:`ste_matching`, plus how the search went.

    ``history``: one dict per evaluation of the held batch (``step``, ``held_loss``: midpoint
    loss with the hard permutation, nats; ``batch_loss``: the last training batch's midpoint
    loss); ``best_step``: the step whose permutation is returned (0: the starting permutation);
    ``stopped_step``: the last step taken; ``hit_cap``: the run took all ``steps`` steps of its
    budget, i.e. a patience rule (if any) did not stop it earlier (always ``True`` without one);
    ``init``: the starting point used (see :func:`ste_matching`); ``budget_steps``, ``budget_perms``,
    ``budget_losses``: for each step budget asked for (``budgets``), the permutation the run would have
    returned had it been stopped there (the best held loss up to that step) and its held loss; a budget
    beyond ``stopped_step`` gets the run's own result.
    """

    history: list[dict[str, float]] = field(default_factory=list)
    best_step: int = 0
    stopped_step: int = 0
    hit_cap: bool = True
    init: str = "wm"
    budget_steps: list[int] = field(default_factory=list)
    budget_perms: list[Permutation] = field(default_factory=list)
    budget_losses: list[float] = field(default_factory=list)


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
    from ..permutation import apply_permutation, random_permutation

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


@memo.memoized("matching", ignore=("progress",), result_type=STEResult)
def ste_matching(model: nn.Module, state_a: StateDict, state_b: StateDict, data, steps: int = 15_000,
                 lr: float = 1e-2, batch_size: int = 1000, held_size: int = 1000, eval_every: int = 50,
                 init: str = "wm", init_perm: Permutation | None = None, wm_sweeps: int = 100, seed: int = 0,
                 patience: int | None = None, min_delta: float = 0.0, optimizer: str = "sgd",
                 momentum: float = 0.9, weight_decay: float = 0.0, budgets: tuple[int, ...] = (),
                 spec: PermutationSpec | None = None, progress: bool = True) -> STEResult:
    """Straight-through estimator (Ainsworth et al. 2023, "Git Re-Basin", §3.3): learn a
    permutation of B that minimises the loss at the midpoint ``(theta_a + pi(theta_b)) / 2``.

    A continuous copy ``theta~`` of B's permuted parameters is learned, starting from
    :func:`ste_start` with ``init`` (default ``"wm"``: ``theta~ = theta_a``, the projection
    warm-started from the weight-matching permutation ``init_perm`` or, if None, computed here;
    there ``<theta~, pi_0(theta_b)>`` of ``"wm_projected"`` starts at ``|theta_b|^2``, a large
    margin: on MNIST MLPs 100 steps at ``lr=1e-3`` changed no unit). Each of at most ``steps``
    optimiser steps (one shuffled mini-batch of ``batch_size`` training examples; the defaults are
    Ainsworth et al.'s protocol, :data:`PROTOCOL`):

    1. project ``theta~`` onto the nearest permutation of B: ``pi = argmax <theta~, pi(theta_b)>``
       by weight matching's coordinate ascent (:func:`_project`), warm-started from the previous
       ``pi``, for at most ``wm_sweeps`` sweeps (``wm_sweeps=1``: one sweep per step, an amortised
       projection that keeps improving across steps);
    2. forward the midpoint of ``theta_a`` and ``pi(theta_b) + theta~ - stopgrad(theta~)`` (the hard
       permutation's weights in the forward pass, gradients straight through to ``theta~``) with
       ``torch.func.functional_call``, and take a step on its cross-entropy: ``optimizer="sgd"``
       (default; ``lr``, ``momentum``, ``weight_decay``: Ainsworth et al. lr 0.01 with momentum 0.9;
       Ito et al.'s group lr 0.5 with weight decay 1e-4) or ``"adam"`` (``lr``, ``weight_decay``).

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

    **Budgets:** ``budgets`` (multiples of ``eval_every``) also records, for each, the permutation the
    run would have returned with that many steps (the best held loss up to it): one run gives STE's
    result at a ladder of training lengths, and asking for budgets changes nothing else.

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

    from ..permutation import apply_permutation

    if steps < 0 or batch_size < 1 or lr <= 0 or eval_every < 1:
        raise ValueError(f"need steps >= 0, batch_size >= 1, lr > 0, eval_every >= 1 "
                         f"(got {steps}, {batch_size}, {lr}, {eval_every})")
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    budgets = sorted({int(b) for b in budgets})
    if any(b < 1 or b % eval_every for b in budgets):
        raise ValueError(f"budgets must be positive multiples of eval_every={eval_every} (the held loss is "
                         f"evaluated there), got {budgets}")
    stopper = Patience(patience, min_delta)
    n = len(data)
    if not 0 < held_size < n:
        raise ValueError(f"held_size must be between 1 and len(data) - 1 = {n - 1}, got {held_size}")
    spec = spec or spec_for(model)
    if not spec.is_plain:
        raise NotImplementedError("STE matching needs a plain spec (no grouped convolution or concatenated "
                                  "features); use weight_matching for this model")
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
    at_budget: dict[int, tuple[Permutation, float]] = {}
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
                if step in budgets:
                    at_budget[step] = (best_perm, best_loss)
                bar.set_postfix(held=f"{h:.4f}", best=f"{best_loss:.4f}")
                if stopper.update(h) and step < steps:
                    hit_cap = False
                    break
    finally:
        model.train(was_training)
        bar.close()
    for b in budgets:  # a budget the run did not reach: it stopped (or was capped) before, with this result
        at_budget.setdefault(b, (best_perm, best_loss))
    return STEResult(perm=best_perm, history=history, best_step=best_step, sweeps=stopped_step,
                     stopped_step=stopped_step, hit_cap=hit_cap, init=init, budget_steps=list(budgets),
                     budget_perms=[at_budget[b][0] for b in budgets],
                     budget_losses=[at_budget[b][1] for b in budgets])
