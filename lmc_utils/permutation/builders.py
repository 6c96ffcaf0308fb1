"""Permutation specs of models: hand-written for this package's models, traced with torch.fx for any other.

Each per-architecture builder only maps a layer's module name to ``(output group, input group)``;
:func:`lmc_utils.permutation.spec.spec_from_layers` does the rest. Any other model (a torchvision
CNN, your own) gets a spec derived from its ``torch.fx`` graph (:mod:`lmc_utils.permutation.traced`),
or one error naming what it cannot handle.
"""

from __future__ import annotations

import torch
from torch import nn

from ..core.models import MLP, VGG, FixupResNet, ResNet
from .spec import Permutation, PermutationSpec, apply_permutation, spec_from_layers
from .traced import traced_spec


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
    return traced_spec(model, example_input)


def permute_model(model: nn.Module, perm: Permutation, spec: PermutationSpec | None = None) -> nn.Module:
    """Load the permuted weights into ``model`` in place and return it."""
    spec = spec or spec_for(model)
    model.load_state_dict(apply_permutation(spec, perm, model.state_dict()))
    return model
