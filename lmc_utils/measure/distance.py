"""L2 distances between two models' weights, for the whole model and per layer.

A "layer" is a module of the state dict (``hidden.0``, ``features.3.conv``, ``stages.1.0.norm2``):
the entries that share the prefix before the last dot. BatchNorm running statistics and
other buffers are excluded unless asked for (they are not trained weights; Qu & Horvath
report distances with and without them).
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import pandas as pd
import torch

StateDict = Mapping[str, torch.Tensor]


def _keys(state: StateDict, buffers: Iterable[str], include_buffers: bool) -> list[str]:
    skip = set() if include_buffers else set(buffers)
    return [k for k, v in state.items() if v.is_floating_point() and k not in skip]


def layer_distances(state_a: StateDict, state_b: StateDict, buffers: Iterable[str] = (),
                    include_buffers: bool = False) -> pd.Series:
    """Euclidean distance ``||a - b||_2`` per layer (module name -> distance), in state-dict order."""
    if set(state_a) != set(state_b):
        raise ValueError("state dicts have different keys (different architectures?)")
    sq: dict[str, float] = {}
    for k in _keys(state_a, buffers, include_buffers):
        if state_a[k].shape != state_b[k].shape:
            raise ValueError(f"{k!r}: shapes {tuple(state_a[k].shape)} and {tuple(state_b[k].shape)} differ")
        layer = k.rpartition(".")[0]
        diff = state_a[k].detach().double() - state_b[k].detach().double().to(state_a[k].device)
        sq[layer] = sq.get(layer, 0.0) + float(diff.pow(2).sum())
    return pd.Series({layer: math.sqrt(v) for layer, v in sq.items()}, name="l2_distance")


def l2_distance(state_a: StateDict, state_b: StateDict, buffers: Iterable[str] = (),
                include_buffers: bool = False) -> float:
    """Euclidean distance between the two models' weights (all floating-point entries except ``buffers``)."""
    per_layer = layer_distances(state_a, state_b, buffers, include_buffers)
    return float(math.sqrt(float((per_layer ** 2).sum())))
