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

Specs are built by :func:`spec_for` from a model; the per-architecture builders only map
each layer's module name to ``(output group, input group)``, the rest is generic. Any other model
(a torchvision CNN, your own) gets a spec derived from its ``torch.fx`` graph
(:mod:`lmc_utils.traced_spec`), or one error naming what it cannot handle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Mapping

import torch
from torch import nn

from .models import MLP, VGG, FixupResNet, ResNet

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


def _mlp_spec(model: MLP) -> PermutationSpec:
    layers: dict[str, tuple[str | None, str | None]] = {}
    prev = None
    for i in range(len(model.hidden)):
        g = f"hidden.{i}"
        layers[f"hidden.{i}"] = (g, prev)
        layers[f"norms.{i}"] = (g, None)
        prev = g
    layers["out"] = (None, prev)
    acts = {f"hidden.{i}": (f"acts.{i}",) for i in range(len(model.hidden))}
    return spec_from_layers(model, layers, acts)


def _vgg_spec(model: VGG) -> PermutationSpec:
    layers: dict[str, tuple[str | None, str | None]] = {}
    acts: dict[str, tuple[str, ...]] = {}
    prev = None
    for i in range(len(model.features)):
        g = f"features.{i}"
        layers[f"features.{i}.conv"] = (g, prev)
        layers[f"features.{i}.norm"] = (g, None)
        acts[g] = (f"features.{i}.act",)
        prev = g
    layers["classifier"] = (None, prev)
    return spec_from_layers(model, layers, acts)


def _resnet_spec(model: ResNet | FixupResNet) -> PermutationSpec:
    """Residual streams: one group per stage (``stream.s``) shared by the stem (stage 0), every
    block output and every shortcut of that stage; one inner group per block. A
    :class:`~lmc_utils.models.FixupResNet` has the same module names without the norm layers; its
    scalar biases and multipliers (the model's ``bias1, bias2`` and each block's ``bias1a, bias1b,
    bias2a, scale, bias2b``) act on every channel alike and are not permuted."""
    fixup = isinstance(model, FixupResNet)
    layers: dict[str, tuple[str | None, str | None]] = {"conv1": ("stream.0", None)}
    layers.update({"": (None, None)} if fixup else {"norm1": ("stream.0", None)})
    acts: dict[str, list[str]] = {"stream.0": ["act1"]}
    stream_in = "stream.0"
    for s, stage in enumerate(model.stages):
        stream = f"stream.{s}"
        acts.setdefault(stream, [])
        for b, block in enumerate(stage):
            p = f"stages.{s}.{b}"
            inner = f"{p}.inner"
            if fixup:
                layers[p] = (None, None)  # the block's scalars
            layers[f"{p}.conv1"] = (inner, stream_in)
            if not fixup:
                layers[f"{p}.norm1"] = (inner, None)
            layers[f"{p}.conv2"] = (stream, inner)
            if not fixup:
                layers[f"{p}.norm2"] = (stream, None)
            if len(block.shortcut) > 0:
                layers[f"{p}.shortcut.0"] = (stream, stream_in)
                if not fixup:
                    layers[f"{p}.shortcut.1"] = (stream, None)
            acts[inner] = [f"{p}.act1"]
            acts[stream].append(f"{p}.act2")
            stream_in = stream
    layers["linear"] = (None, stream_in)
    return spec_from_layers(model, layers, {g: tuple(v) for g, v in acts.items()})


_BUILDERS = {MLP: _mlp_spec, VGG: _vgg_spec, ResNet: _resnet_spec, FixupResNet: _resnet_spec}


def spec_for(model: nn.Module, example_input: torch.Tensor | None = None) -> PermutationSpec:
    """The permutation spec of ``model``: the hand-written one for a model built by
    :mod:`lmc_utils.models`, otherwise one derived from its ``torch.fx`` graph by
    :func:`lmc_utils.traced_spec.traced_spec` (``example_input``: a batch the model accepts,
    default a small random one; only its shapes matter).

    Raises:
        lmc_utils.traced_spec.UnsupportedModel (a ``TypeError``): the model has something no spec
            can be derived for (grouped convolution, attention, concatenation of channels, ...),
            named with its graph node.
    """
    for cls, builder in _BUILDERS.items():
        if type(model) is cls:
            return builder(model)
    from .traced_spec import traced_spec  # imports this module

    return traced_spec(model, example_input)


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


def permute_model(model: nn.Module, perm: Permutation, spec: PermutationSpec | None = None) -> nn.Module:
    """Load the permuted weights into ``model`` in place and return it."""
    spec = spec or spec_for(model)
    model.load_state_dict(apply_permutation(spec, perm, model.state_dict()))
    return model
