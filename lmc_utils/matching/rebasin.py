"""Re-basin of a pair of trained models: align B to A by a named method, then compare
interpolation curves across methods (the building block of every notebook).

Methods: ``naive`` (no permutation), ``weight`` (weight matching), ``activation``
(activation matching on training inputs), and ``random`` (a random permutation: the control).
Weight matching has two solvers (``matcher``): ``iterative``, the coordinate descent over
permutation groups of Ainsworth et al. (one LAP per group, in a random group order), and
``sinkhorn``, the Sinkhorn relaxation of Peña et al. (2023) that Ito et al. (2025) use.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from .. import permutation as P
from ..core.data import TensorData
from ..measure.interpolation import has_batchnorm, interpolation_curve
from .activation import activation_matching
from .sinkhorn import sinkhorn_weight_matching
from .weight import weight_matching

METHODS = ("naive", "weight", "activation")
MATCHERS = ("iterative", "sinkhorn")


def check_matcher(matcher: str) -> str:
    """``matcher`` if it names a weight-matching solver of :data:`MATCHERS`, else ``ValueError``."""
    if matcher not in MATCHERS:
        raise ValueError(f"unknown weight-matching solver {matcher!r}; choose one of {', '.join(MATCHERS)}")
    return matcher


def weight_orders(matcher: str, n_orders: int) -> int:
    """How many weight-matching group orders a pair gets with ``matcher`` (checked): ``n_orders`` for
    the iterative solver, 1 for the Sinkhorn relaxation, which optimises every group at once."""
    return n_orders if check_matcher(matcher) == "iterative" else 1


def align(method: str, model_a: nn.Module, model_b: nn.Module, inputs: torch.Tensor | None = None,
          seed: int = 0, matcher: str = "iterative", sinkhorn: Mapping | None = None) -> P.Permutation:
    """The permutation to apply to B's state for ``method`` (``inputs`` needed for ``activation``).
    ``weight`` is solved by ``matcher`` (``seed``: the iterative solver's group order; ``sinkhorn``:
    keyword arguments of :func:`~lmc_utils.matching.sinkhorn_weight_matching`)."""
    check_matcher(matcher)
    spec = P.spec_for(model_a)
    if method == "naive":
        return P.identity(spec)
    if method == "weight":
        if matcher == "sinkhorn":
            return sinkhorn_weight_matching(spec, model_a.state_dict(), model_b.state_dict(), seed=seed,
                                            **dict(sinkhorn or {})).perm
        return weight_matching(spec, model_a.state_dict(), model_b.state_dict(), seed=seed).perm
    if method == "activation":
        if inputs is None:
            raise ValueError("activation matching needs inputs")
        return activation_matching(model_a, model_b, inputs, spec).perm
    if method == "random":
        return P.random_permutation(spec, seed)
    raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS + ('random',))}")


def aligned_states(model_a: nn.Module, model_b: nn.Module, methods: Iterable[str], inputs: torch.Tensor | None = None,
                   seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """``{method: B's state dict permuted by that method}`` (``naive``: B unchanged)."""
    spec = P.spec_for(model_a)
    state_b = model_b.state_dict()
    return {m: P.apply_permutation(spec, align(m, model_a, model_b, inputs, seed), state_b) for m in methods}


def compare_methods(model_a: nn.Module, model_b: nn.Module, data: Mapping[str, TensorData],
                    methods: Iterable[str] = METHODS, match_inputs: torch.Tensor | None = None,
                    reset_bn: Iterable[bool] | None = None, reset_data: TensorData | None = None,
                    n_points: int = 11, seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """Interpolation curves between A and B aligned by each method.

    Args:
        data: ``{split: dataset}`` to evaluate on (e.g. train and test).
        match_inputs: inputs for activation matching (default: the first dataset's inputs).
        reset_bn: which RESET settings to run; default ``[False, True]`` for BatchNorm models,
            ``[False]`` otherwise. RESET statistics come from ``reset_data`` (default: first dataset).
    Returns:
        long DataFrame: ``method, reset, lam, split, loss, accuracy``.
    """
    methods = list(methods)
    first = next(iter(data.values()))
    inputs = match_inputs if match_inputs is not None else first.x
    resets = list(reset_bn) if reset_bn is not None else ([False, True] if has_batchnorm(model_a) else [False])
    state_a = model_a.state_dict()
    aligned = aligned_states(model_a, model_b, methods, inputs, seed=seed)
    frames = []
    jobs = [(m, r) for m in methods for r in resets]
    bar = tqdm(jobs, desc="interpolation curves", disable=not progress, leave=False)
    for method, reset in bar:
        bar.set_postfix(method=method, reset=reset)
        curve = interpolation_curve(model_a, state_a, aligned[method], data, n_points=n_points, reset_bn=reset,
                                    reset_data=reset_data or first)
        frames.append(curve.assign(method=method, reset=reset))
    cols = ["method", "reset", "lam", "split", "loss", "accuracy"]
    return pd.concat(frames, ignore_index=True)[cols]


