"""Merging three or more models: reference, sequential or iterative matching (Qu & Horvath 2024, App. E.3;
Ainsworth et al.'s MergeMany) with any matcher wrapped as a :data:`Matcher`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..permutation import Permutation, PermutationSpec, StateDict, identity, spec_for
from .common import _matched_keys
from .weight import weight_matching
from .activation import activation_matching
from .ste import ste_matching


Matcher = Callable[[StateDict, StateDict, "Permutation | None"], Permutation]


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

    from ..measure.interpolation import reset_batchnorm

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
    from ..permutation import apply_permutation

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
