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

Three structures beyond one group per axis (none of this package's own models has them; traced
torchvision models do):

* a **blocked** group (``blocks``) permutes its units only within equal consecutive blocks, as the
  channels feeding and leaving a grouped convolution (ResNeXt) must stay in their convolution group;
* a **grouped** entry (``grouped``) is stored as the diagonal blocks of a block-diagonal weight (a
  grouped convolution's ``[out, in/G, *kernel]``); every function taking a spec sees it through
  :meth:`PermutationSpec.view` as the dense ``[out, in, *kernel]`` with zeros off the blocks;
* a **concatenated** axis (``concats``) holds the features of several groups one after the other
  (DenseNet's ``torch.cat`` of every earlier layer's output): its name in ``axes`` stands for the
  parts, each keeping its own group's permutation at its offset. A part may hold a regular selection
  of its group's units (the same stretch of every block of ``period`` units);
* a group with **heads** (``heads``) is ``H`` equal heads that a permutation may re-order as wholes,
  each head's units staying in their sub-block (``blocks`` / ``H`` per head) of whichever head they
  move with: multi-head attention, whose group holds each head's query/key units and its value
  units (its ``in_proj_weight`` rows are three selections of that group, ``concats``).

Specs are built by :func:`lmc_utils.permutation.spec_for` from a model
(:mod:`lmc_utils.permutation.builders`); this module holds the data types and the operations on them.
"""

from __future__ import annotations

import json
from collections import OrderedDict
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
        blocks: group -> ``B`` > 1 when its permutation must keep every unit within its block of
            ``size / B`` consecutive units (grouped convolutions); absent: any permutation.
        grouped: key -> ``G`` for an entry stored as the ``G`` diagonal blocks ``[out, in/G, ...]`` of a
            block-diagonal ``[out, in, ...]`` weight (a grouped convolution); viewed dense.
        concats: axis name -> its parts ``(group or None, units)`` in order: an axis holding
            concatenated features, each part permuted by its own group (``None``: never permuted);
            a part ``(group, units, period, start)`` holds, in order, units ``start .. start + k - 1``
            of every block of ``period`` units of its group (``k = units * period / size``).
        heads: group -> ``H`` > 1 when its units are ``H`` heads permuted as wholes (see above).
    """

    axes: dict[str, tuple[str | None, ...]]
    sizes: dict[str, int]
    activations: dict[str, tuple[str, ...]] = field(default_factory=dict)
    buffers: frozenset[str] = frozenset()
    views: dict[str, tuple[int, ...]] = field(default_factory=dict)
    blocks: dict[str, int] = field(default_factory=dict)
    grouped: dict[str, int] = field(default_factory=dict)
    concats: dict[str, tuple[tuple, ...]] = field(default_factory=dict)
    heads: dict[str, int] = field(default_factory=dict)

    @property
    def is_plain(self) -> bool:
        """One group (or none) per axis, any permutation of each: no blocked group, grouped entry,
        concatenated axis or heads."""
        return not (self.blocks or self.grouped or self.concats or self.heads)

    def structure(self, g: str) -> tuple[int, int]:
        """``(heads, sub-blocks per head)`` of group ``g``: ``(1, 1)`` for any permutation."""
        h = self.heads.get(g, 1)
        return h, max(self.blocks.get(g, 1), h) // h

    def axis_size(self, name: str) -> int:
        """The units of an axis named in ``axes``: a group's size, or a concatenation's total."""
        if name in self.concats:
            return sum(part[1] for part in self.concats[name])
        return self.sizes[name]

    def parts(self, name: str) -> list[tuple[str, int, int, torch.Tensor | None]]:
        """The groups acting on an axis named in ``axes``, as ``(group, offset, units, selection)``:
        ``selection`` is ``None`` (the whole group) or which of the group's units the stretch holds."""
        if name not in self.concats:
            return [(name, 0, self.sizes[name], None)]
        out, offset = [], 0
        for part in self.concats[name]:
            g, n = part[0], part[1]
            if g is not None:
                out.append((g, offset, n, selected_units(self.sizes[g], n, *part[2:]) if len(part) > 2 else None))
            offset += n
        return out

    def index(self, name: str, perm: "Permutation") -> torch.Tensor:
        """The indices that permute an axis named in ``axes`` by ``perm`` (``index_select`` order)."""
        if name not in self.concats:
            return perm[name]
        pieces, offset = [], 0
        for part in self.concats[name]:
            g, n = part[0], part[1]
            if g is None:
                pieces.append(torch.arange(n) + offset)
            elif len(part) == 2:
                pieces.append(perm[g].cpu() + offset)
            else:
                sel = selected_units(self.sizes[g], n, *part[2:])
                pieces.append(positions_in(sel, perm[g].cpu()[sel]) + offset)
            offset += n
        return torch.cat(pieces)

    def view(self, key: str, t: torch.Tensor) -> torch.Tensor:
        """``t`` (the entry ``key``) in the shape its ``axes`` refer to (``t`` itself unless viewed)."""
        shape = self.views.get(key)
        if shape is not None:
            if t.numel() != int(torch.Size(shape).numel()):
                raise ValueError(f"entry {key!r} of shape {tuple(t.shape)} cannot be viewed as {shape} "
                                 f"(different architecture?)")
            t = t.reshape(shape)
        g = self.grouped.get(key)
        if g is not None:  # [out, in/G, ...] -> block-diagonal [out, in, ...]
            out, per = t.shape[0], t.shape[1]
            if out % g:
                raise ValueError(f"entry {key!r} of shape {tuple(t.shape)} has no {g} blocks of outputs")
            dense = t.new_zeros((out, per * g) + tuple(t.shape[2:]))
            rows = out // g
            for b in range(g):
                dense[b * rows:(b + 1) * rows, b * per:(b + 1) * per] = t[b * rows:(b + 1) * rows]
            t = dense
        return t

    def unview(self, key: str, t: torch.Tensor, shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
        """The inverse of :meth:`view`: a viewed entry back in its stored ``shape``."""
        g = self.grouped.get(key)
        if g is not None:  # the diagonal blocks of [out, in, ...]
            out, per = t.shape[0], t.shape[1] // g
            rows = out // g
            t = torch.cat([t[b * rows:(b + 1) * rows, b * per:(b + 1) * per] for b in range(g)])
        return t.reshape(shape)

    def viewed(self, state: StateDict) -> dict[str, torch.Tensor]:
        """``state`` with every entry in the shape its ``axes`` refer to."""
        return {k: self.view(k, t) for k, t in state.items()}

    @property
    def groups(self) -> dict[str, list[tuple[str, int]]]:
        """group -> list of ``(state-dict key, axis)`` it permutes (alone: a concatenated axis, which
        a group permutes in part, is listed under its :meth:`parts` by :attr:`segments`)."""
        out: dict[str, list[tuple[str, int]]] = {g: [] for g in self.sizes}
        for key, axes in self.axes.items():
            for axis, g in enumerate(axes):
                if g is not None and g not in self.concats:
                    out[g].append((key, axis))
        return out

    @property
    def segments(self) -> dict[str, list[tuple[str, int, int, int, torch.Tensor | None]]]:
        """group -> list of ``(state-dict key, axis, offset, units, selection)``: every stretch of an
        axis it permutes (see :meth:`parts`)."""
        out: dict[str, list[tuple[str, int, int, int, torch.Tensor | None]]] = {g: [] for g in self.sizes}
        for key, axes in self.axes.items():
            for axis, name in enumerate(axes):
                if name is not None:
                    for g, offset, n, sel in self.parts(name):
                        out[g].append((key, axis, offset, n, sel))
        return out

    def to_json(self) -> str:
        d = {"axes": self.axes, "sizes": self.sizes, "activations": self.activations,
             "buffers": sorted(self.buffers), "views": self.views}
        d.update({k: v for k, v in (("blocks", self.blocks), ("grouped", self.grouped),
                                    ("concats", self.concats), ("heads", self.heads)) if v})  # a plain spec's text as before
        return json.dumps(d, indent=1)

    @classmethod
    def from_json(cls, text: str) -> "PermutationSpec":
        d = json.loads(text)
        return cls(axes={k: tuple(v) for k, v in d["axes"].items()}, sizes=d["sizes"],
                   activations={k: tuple(v) for k, v in d["activations"].items()},
                   buffers=frozenset(d["buffers"]),
                   views={k: tuple(v) for k, v in d.get("views", {}).items()},
                   blocks=d.get("blocks", {}), grouped=d.get("grouped", {}),
                   concats={k: tuple(tuple(part) for part in v) for k, v in d.get("concats", {}).items()},
                   heads=d.get("heads", {}))

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
                if g is not None and t.shape[axis] != self.axis_size(g):
                    raise ValueError(f"{name}[{key!r}] axis {axis} has size {t.shape[axis]}, but group "
                                     f"{g!r} has {self.axis_size(g)} units (different width?)")


def selected_units(size: int, units: int, period: int, start: int) -> torch.Tensor:
    """The units of a group of ``size`` that a concatenation part holds: ``start .. start + k - 1`` of
    every block of ``period`` units, ``k = units * period / size``."""
    per = units * period // size
    return (torch.arange(size // period)[:, None] * period + start + torch.arange(per)).reshape(-1)


def positions_in(selection: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
    """The positions in ``selection`` of ``units`` (all of which it must hold)."""
    where = torch.full((max(int(selection.max()), int(units.max())) + 1,), -1, dtype=torch.long,
                       device=selection.device)
    where[selection] = torch.arange(len(selection), device=selection.device)
    out = where[units]
    if bool((out < 0).any()):
        raise ValueError("a permutation moves units out of a selection of their group (a query unit to a value's place?)")
    return out


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
    """A uniformly random permutation of every group (within its blocks, and moving whole heads, see
    ``spec.blocks`` and ``spec.heads``), reproducible from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for g, n in sorted(spec.sizes.items()):
        heads, sub = spec.structure(g)
        if heads == 1 and sub == 1:
            out[g] = torch.randperm(n, generator=gen)
            continue
        order = torch.randperm(heads, generator=gen) if heads > 1 else torch.zeros(1, dtype=torch.long)
        per, size = n // heads, n // (heads * sub)
        out[g] = torch.cat([int(order[h]) * per + s * size + torch.randperm(size, generator=gen)
                            for h in range(heads) for s in range(sub)])
    return out


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
        heads, sub = spec.structure(g)
        if heads == 1 and sub == 1:
            continue
        n, p = spec.sizes[g], p.cpu()
        per, size = n // heads, n // (heads * sub)
        units = torch.arange(n)
        if heads == 1 and not bool((p // size == units // size).all()):
            raise ValueError(f"permutation of group {g!r} moves units between its {sub} blocks "
                             f"(a grouped convolution's channels must stay in their group)")
        source = (p // per).view(heads, per)
        if heads > 1 and not (bool((source == source[:, :1]).all()) and bool(((units % per) // size == (p % per) // size).all())
                              and sorted(source[:, 0].tolist()) == list(range(heads))):
            raise ValueError(f"permutation of group {g!r} does not move whole heads of {per} units "
                             f"(each head's query/key and value units in their places)")


def apply_permutation(spec: PermutationSpec, perm: Permutation, state: StateDict) -> dict[str, torch.Tensor]:
    """Return a new state dict with every permuted axis re-indexed (the input is not modified)."""
    spec.check_state(state)
    _check_perm(spec, perm)
    out: dict[str, torch.Tensor] = OrderedDict()
    if hasattr(state, "_metadata"):  # a module's state_dict: keep the versions its loader may need
        out._metadata = state._metadata  # type: ignore[attr-defined]
    for key, tensor in state.items():
        t = spec.view(key, tensor)
        for axis, g in enumerate(spec.axes[key]):
            if g is not None:
                t = t.index_select(axis, spec.index(g, perm).to(t.device))
        out[key] = spec.unview(key, t, tensor.shape) if t is not tensor else tensor.clone()
    return out
