"""Matching algorithms: find the permutation of model B that best aligns it with model A.

* :func:`weight_matching` — Ainsworth et al. (2023), "Git Re-Basin", Algorithm 1: maximise
  ``sum_l <W_l^a, P_l W_l^b P_{l-1}^T>`` by coordinate ascent, solving one linear assignment
  problem per permutation group (in a random order each sweep) until no group improves.
* :func:`activation_matching` — match hidden units by the Pearson correlation of their
  activations on data, one assignment per group (Li et al. 2015; Ainsworth et al. 2023).

Both return the permutation to apply to B (see :mod:`lmc_utils.permutation`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from .permutation import Permutation, PermutationSpec, StateDict, identity, spec_for


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


def _moved(t: torch.Tensor, axis: int) -> torch.Tensor:
    """``t`` with ``axis`` first, flattened to 2-D ``[size(axis), rest]``, contiguous."""
    return t.movedim(axis, 0).reshape(t.shape[axis], -1).contiguous()


def weight_matching(spec: PermutationSpec, state_a: StateDict, state_b: StateDict, max_sweeps: int = 100,
                    seed: int = 0, init_perm: Permutation | None = None, include_buffers: bool = False,
                    device: str | torch.device | None = None) -> MatchingResult:
    """Weight matching (Git Re-Basin, Algorithm 1).

    Each step solves the linear assignment for one group with all others fixed, using
    ``C = sum_(w, axis in group) W_a[axis-first] @ pi(W_b)[axis-first]^T``; a sweep visits
    every group once in a random order (:func:`group_order`); the search stops after a sweep
    in which no group improved, or after ``max_sweeps``.

    Implementation: B is kept permuted by the current permutation, in one 2-D copy per
    (weight, permuted axis), so each cost matrix is a sum of plain matrix products (the flop
    floor, ``2 * n_group * numel`` per weight and group). When a group's assignment changes,
    only the copies of weights touching that group are re-indexed.

    Args:
        spec: permutation spec shared by both models.
        state_a, state_b: state dicts (same architecture); B is the one permuted.
        include_buffers: also match on buffers such as BN running statistics (default: parameters only).
        device: where the products run (default: where ``state_a`` lives).
    Returns:
        :class:`MatchingResult` with ``perm`` such that ``apply_permutation(spec, perm, state_b)``
        is aligned with ``state_a``.
    """
    spec.check_state(state_a, "state_a")
    spec.check_state(state_b, "state_b")
    keys = [k for k, ax in spec.axes.items()
            if any(g is not None for g in ax) and state_a[k].is_floating_point()
            and (include_buffers or k not in spec.buffers)]
    first = state_a[keys[0]] if keys else torch.zeros(0)
    dev = torch.device(device) if device is not None else first.device
    perm = {g: p.clone().cpu() for g, p in (init_perm or identity(spec)).items()}

    # For each weight: B permuted by the current permutation, and the layouts used by each group.
    b_full: dict[str, torch.Tensor] = {}
    a_moved: dict[tuple[str, int], torch.Tensor] = {}
    b_moved: dict[tuple[str, int], torch.Tensor] = {}
    for k in keys:
        a = state_a[k].detach().to(dev, torch.float32)
        b = state_b[k].detach().to(dev, torch.float32)
        for axis, g in enumerate(spec.axes[k]):
            if g is not None:
                b = b.index_select(axis, perm[g].to(dev))
        b_full[k] = b
        for axis, g in enumerate(spec.axes[k]):
            if g is not None:
                a_moved[(k, axis)] = _moved(a, axis)
                b_moved[(k, axis)] = _moved(b, axis)
    group_axes = {g: [(k, ax) for (k, ax) in entries if k in b_full] for g, entries in spec.groups.items()}
    # Each 2-D copy b_moved[(k, ax)] depends on every permuted axis of k: which ones to refresh per group.
    touched = {g: sorted({k for k, _ in entries}) for g, entries in group_axes.items()}

    def total() -> float:
        return float(sum(torch.dot(state_a[k].detach().to(dev, torch.float32).flatten(), b_full[k].flatten())
                         for k in keys))

    history = [total()]
    groups = sorted(g for g in spec.sizes if group_axes[g])
    sweeps = 0
    for sweep in range(max_sweeps):
        sweeps += 1
        improved = False
        for g in group_order(groups, sweep, seed):
            n = spec.sizes[g]
            cost = torch.zeros(n, n, dtype=torch.float32, device=dev)
            for ka in group_axes[g]:
                cost.addmm_(a_moved[ka], b_moved[ka].T)
            cost64 = cost.double().cpu().numpy()
            _, q = linear_sum_assignment(cost64, maximize=True)
            old = float(np.trace(cost64))
            new = float(cost64[np.arange(n), q].sum())
            if new > old + 1e-12 * max(1.0, abs(old)):
                improved = True
                q_t = torch.as_tensor(q, dtype=torch.long)
                perm[g] = perm[g][q_t]
                q_dev = q_t.to(dev)
                for k in touched[g]:
                    for axis, gg in enumerate(spec.axes[k]):
                        if gg == g:
                            b_full[k] = b_full[k].index_select(axis, q_dev)
                    for axis, gg in enumerate(spec.axes[k]):
                        if gg is not None:
                            b_moved[(k, axis)] = _moved(b_full[k], axis)
        history.append(total())
        if not improved:
            break
    return MatchingResult(perm=perm, objective=history, sweeps=sweeps)


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


def activation_correlations(model_a: nn.Module, model_b: nn.Module, inputs: torch.Tensor | Iterable[torch.Tensor],
                            spec: PermutationSpec | None = None, batch_size: int = 500) -> dict[str, torch.Tensor]:
    """Pearson correlation between every unit of A and every unit of B, per group.

    One pass over ``inputs`` (a tensor, split into ``batch_size`` batches, or an iterable of
    batches), models in eval mode. Means, second moments and cross moments are accumulated in
    float64 as averages of per-batch averages. Units with zero variance get correlation 0.
    Returns ``group -> [n_a, n_b]`` float64 CPU tensors.
    """
    spec = spec or spec_for(model_a)
    batches = inputs.split(batch_size) if isinstance(inputs, torch.Tensor) else inputs
    rec_a, rec_b = _Recorder(model_a, spec.activations), _Recorder(model_b, spec.activations)
    stats: dict[str, list[torch.Tensor]] = {}
    n_batches = 0
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
                    a, b = fa[g].double(), fb[g].double()
                    m = a.shape[0]
                    batch = [a.mean(0), b.mean(0), (a * a).mean(0), (b * b).mean(0), a.T @ b / m]
                    if g in stats:
                        for acc, v in zip(stats[g], batch):
                            acc += v
                    else:
                        stats[g] = batch
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
        ma, mb, saa, sbb, sab = (t / n_batches for t in (ma, mb, saa, sbb, sab))
        std_a = (saa - ma ** 2).clamp_min(0).sqrt()
        std_b = (sbb - mb ** 2).clamp_min(0).sqrt()
        cov = sab - torch.outer(ma, mb)
        denom = torch.outer(std_a, std_b)
        corrs[g] = torch.where(denom > 0, cov / denom.clamp_min(1e-30), torch.zeros_like(cov)).cpu()
    return corrs


def activation_matching(model_a: nn.Module, model_b: nn.Module, inputs: torch.Tensor | Iterable[torch.Tensor],
                        spec: PermutationSpec | None = None, batch_size: int = 500) -> MatchingResult:
    """Activation matching: for each group, the assignment maximising the summed Pearson
    correlation between A's units and B's re-ordered units (see :func:`activation_correlations`).

    The two models must share an architecture; inputs are data samples (e.g. training images).
    """
    spec = spec or spec_for(model_a)
    spec_b = spec_for(model_b) if type(model_b) is type(model_a) else None
    if spec_b is None or spec_b.sizes != spec.sizes or set(spec_b.axes) != set(spec.axes):
        raise ValueError("activation matching needs two models of the same architecture and width")
    corrs = activation_correlations(model_a, model_b, inputs, spec, batch_size)
    perm = {}
    for g, c in corrs.items():
        _, q = linear_sum_assignment(c.numpy(), maximize=True)
        perm[g] = torch.as_tensor(q, dtype=torch.long)
    return MatchingResult(perm=perm)
