"""Activation matching: hidden units matched by the Pearson correlation of their activations on data, one
assignment per group (Li et al. 2015; Ainsworth et al. 2023). Its ``statistics`` and ``refeed`` options
select the implementations Qu & Horvath (2024, App. D.2, Table 2) compare.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Iterable

import torch
from torch import nn

from ..core import memo
from ..permutation import PermutationSpec, identity, permute_model, spec_for
from .common import MatchingResult, assignment


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


@memo.memoized("matching", result_type=MatchingResult)
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
    unseen = sorted(set(spec.sizes) - set(spec.activations))
    if unseen:
        raise ValueError(f"activation matching needs a layer whose outputs carry each group's units, and the spec "
                         f"names none for {len(unseen)} of {len(spec.sizes)} groups ({', '.join(unseen[:3])}"
                         f"{', ...' if len(unseen) > 3 else ''}: attention heads, or features on the last axis); "
                         f"use weight_matching for this model")

    def assign(c: torch.Tensor, g: str) -> torch.Tensor:
        return torch.as_tensor(assignment(c.numpy(), *spec.structure(g)), dtype=torch.long)

    if not refeed:
        corrs = activation_correlations(model_a, model_b, inputs, spec, batch_size, statistics)
        return MatchingResult(perm={g: assign(c, g) for g, c in corrs.items()})
    if not isinstance(inputs, torch.Tensor):
        inputs = list(inputs)  # fed once per group
    position = {n: i for i, (n, _) in enumerate(model_a.named_modules())}
    order = sorted(spec.activations, key=lambda g: min(position[n] for n in spec.activations[g]))
    b = copy.deepcopy(model_b)
    perm = identity(spec)
    for g in order:
        one = replace(spec, activations={g: spec.activations[g]})
        perm[g] = assign(activation_correlations(model_a, b, inputs, one, batch_size, statistics)[g], g)
        step = identity(spec)
        step[g] = perm[g]
        permute_model(b, step, spec)  # each group is permuted once, so ``perm`` is the composition
    return MatchingResult(perm=perm, sweeps=len(order))
