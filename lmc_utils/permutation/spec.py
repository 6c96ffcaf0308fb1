"""Permutation specs and permutations, both as plain data.

A **permutation** is a ``dict`` mapping a permutation-group name to a ``LongTensor`` ``p``
of that group's size. Applying it re-orders the hidden units so that the new unit ``i``
is the old unit ``p[i]``; the network function is unchanged.

A **permutation spec** (:class:`PermutationSpec`) says, for every entry of a model's
state dict, which group permutes each of its axes (``None``: the axis is not permuted).
Units joined by a residual connection share one group. BatchNorm running statistics
and LayerNorm parameters are permuted with their channels. The spec also names, for each
group, the modules whose outputs carry that group's features (used by activation
matching), and which entries are buffers rather than trained parameters.

Specs are built by :func:`lmc_utils.permutation.spec_for` from a model
(:mod:`lmc_utils.permutation.builders`); this module holds the data types and the operations on them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Mapping

import torch
from torch import nn


Permutation = dict[str, torch.Tensor]
StateDict = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class PermutationSpec:
    """Which axes of which state-dict entries each permutation group acts on.

    Attributes:
        axes: state-dict key -> one group name (or ``None``) per tensor axis.
        sizes: group name -> number of units it permutes.
        activations: group name -> module names whose outputs (channel axis 1, or the
            last axis for 2-D outputs) carry that group's features.
        buffers: keys that are buffers (e.g. BN running statistics), not parameters.
        views: key -> the shape an entry is viewed as before its ``axes`` apply (empty for this
            package's models). A classifier reading ``C`` channels flattened from ``h x w`` maps,
            ``[out, C*h*w]``, is viewed as ``[out, C, h*w]`` so that a group of ``C`` units permutes
            blocks of ``h*w`` inputs. Every function taking a spec applies it (:meth:`view`).
    """

    axes: dict[str, tuple[str | None, ...]]
    sizes: dict[str, int]
    activations: dict[str, tuple[str, ...]] = field(default_factory=dict)
    buffers: frozenset[str] = frozenset()
    views: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def view(self, key: str, t: torch.Tensor) -> torch.Tensor:
        """``t`` (the entry ``key``) in the shape its ``axes`` refer to (``t`` itself unless viewed)."""
        shape = self.views.get(key)
        if shape is None:
            return t
        if t.numel() != int(torch.Size(shape).numel()):
            raise ValueError(f"entry {key!r} of shape {tuple(t.shape)} cannot be viewed as {shape} "
                             f"(different architecture?)")
        return t.reshape(shape)

    def viewed(self, state: StateDict) -> dict[str, torch.Tensor]:
        """``state`` with every entry in the shape its ``axes`` refer to."""
        return {k: self.view(k, t) for k, t in state.items()}

    @property
    def groups(self) -> dict[str, list[tuple[str, int]]]:
        """group -> list of ``(state-dict key, axis)`` it permutes."""
        out: dict[str, list[tuple[str, int]]] = {g: [] for g in self.sizes}
        for key, axes in self.axes.items():
            for axis, g in enumerate(axes):
                if g is not None:
                    out[g].append((key, axis))
        return out

    def to_json(self) -> str:
        return json.dumps({"axes": self.axes, "sizes": self.sizes, "activations": self.activations,
                           "buffers": sorted(self.buffers), "views": self.views}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> "PermutationSpec":
        d = json.loads(text)
        return cls(axes={k: tuple(v) for k, v in d["axes"].items()}, sizes=d["sizes"],
                   activations={k: tuple(v) for k, v in d["activations"].items()},
                   buffers=frozenset(d["buffers"]),
                   views={k: tuple(v) for k, v in d.get("views", {}).items()})

    def check_state(self, state: StateDict, name: str = "state dict") -> None:
        """Raise ``ValueError`` unless ``state`` has exactly this spec's keys with matching group sizes."""
        missing = sorted(set(self.axes) - set(state))
        extra = sorted(set(state) - set(self.axes))
        if missing or extra:
            raise ValueError(f"{name} does not match the permutation spec (different architecture?): "
                             f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                             f"unexpected {extra[:5]}{'...' if len(extra) > 5 else ''}")
        for key, axes in self.axes.items():
            t = self.view(key, state[key])
            if t.ndim != len(axes):
                raise ValueError(f"{name}[{key!r}] has {t.ndim} axes, the spec expects {len(axes)}")
            for axis, g in enumerate(axes):
                if g is not None and t.shape[axis] != self.sizes[g]:
                    raise ValueError(f"{name}[{key!r}] axis {axis} has size {t.shape[axis]}, but group "
                                     f"{g!r} has {self.sizes[g]} units (different width?)")


def _layer_axes(module: nn.Module, param: str, ndim: int, out_g: str | None,
                in_g: str | None) -> tuple[str | None, ...]:
    """Axes of one state entry of a Linear/Conv (``[out, in, *kernel]``) or a norm layer (``[C]``)."""
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        if param == "weight":
            return (out_g, in_g) + (None,) * (ndim - 2)
        return (out_g,)  # bias
    if ndim == 0:  # BatchNorm's num_batches_tracked
        return ()
    return (out_g,)  # norm weight / bias / running_mean / running_var


def spec_from_layers(model: nn.Module, layers: Mapping[str, tuple[str | None, str | None]],
                     activations: Mapping[str, tuple[str, ...]]) -> PermutationSpec:
    """Build a spec from ``module name -> (output group, input group)`` for every layer that
    holds state. Every state-dict entry must belong to a listed module."""
    modules = dict(model.named_modules())
    state = model.state_dict()
    buffers = {name for name, _ in model.named_buffers()}
    axes: dict[str, tuple[str | None, ...]] = {}
    sizes: dict[str, int] = {}
    for key, tensor in state.items():
        mod_name, _, param = key.rpartition(".")
        if mod_name not in layers:
            raise ValueError(f"state entry {key!r} belongs to no layer of the spec builder")
        out_g, in_g = layers[mod_name]
        ax = _layer_axes(modules[mod_name], param, tensor.ndim, out_g, in_g)
        axes[key] = ax
        for axis, g in enumerate(ax):
            if g is None:
                continue
            if sizes.setdefault(g, tensor.shape[axis]) != tensor.shape[axis]:
                raise ValueError(f"group {g!r} has inconsistent sizes at {key!r}")
    for g, names in activations.items():
        for n in names:
            if n not in modules:
                raise ValueError(f"activation module {n!r} of group {g!r} not in model")
    return PermutationSpec(axes=axes, sizes=sizes, activations={g: tuple(v) for g, v in activations.items()},
                           buffers=frozenset(buffers))


def identity(spec: PermutationSpec) -> Permutation:
    return {g: torch.arange(n) for g, n in spec.sizes.items()}


def random_permutation(spec: PermutationSpec, seed: int) -> Permutation:
    """A uniformly random permutation of every group, reproducible from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    return {g: torch.randperm(n, generator=gen) for g, n in sorted(spec.sizes.items())}


def inverse(perm: Permutation) -> Permutation:
    """``apply(inverse(p), apply(p, s)) == s``."""
    return {g: torch.argsort(p) for g, p in perm.items()}


def compose(p: Permutation, q: Permutation) -> Permutation:
    """The permutation that applies ``q`` first, then ``p``:
    ``apply(compose(p, q), s) == apply(p, apply(q, s))``."""
    if set(p) != set(q):
        raise ValueError(f"cannot compose permutations over different groups: {sorted(p)} vs {sorted(q)}")
    return {g: q[g][p[g].to(q[g].device)] for g in p}


def _check_perm(spec: PermutationSpec, perm: Permutation) -> None:
    if set(perm) != set(spec.sizes):
        raise ValueError(f"permutation groups {sorted(perm)} do not match spec groups {sorted(spec.sizes)}")
    for g, p in perm.items():
        if p.shape != (spec.sizes[g],):
            raise ValueError(f"permutation of group {g!r} has shape {tuple(p.shape)}, expected ({spec.sizes[g]},)")


def apply_permutation(spec: PermutationSpec, perm: Permutation, state: StateDict) -> dict[str, torch.Tensor]:
    """Return a new state dict with every permuted axis re-indexed (the input is not modified)."""
    spec.check_state(state)
    _check_perm(spec, perm)
    out = {}
    for key, tensor in state.items():
        t = spec.view(key, tensor)
        for axis, g in enumerate(spec.axes[key]):
            if g is not None:
                t = t.index_select(axis, perm[g].to(t.device))
        out[key] = t.reshape(tensor.shape) if t is not tensor else tensor.clone()
    return out
