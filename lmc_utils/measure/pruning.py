"""One-shot unstructured pruning, sparsity accounting, and redundancy removal in MLPs.

**Pruning** (Qu & Horvath 2024, §5 and App. G; Han et al. 2015; Singh & Alistarh 2020).
Only the weights of Linear and Conv2d layers are pruned (biases and norm parameters are
kept), as in the paper. Three one-shot criteria, each returning a *new* ordinary model
(masks are applied through :mod:`torch.nn.utils.prune` and then made permanent with
``prune.remove``, so no re-parametrisation or hooks are left behind):

* ``global_magnitude``: the smallest ``|w|`` over all prunable layers together
  (``prune.global_unstructured`` with ``prune.L1Unstructured``);
* ``layer_magnitude``: the same fraction of the smallest ``|w|`` in every layer
  (``prune.l1_unstructured`` per layer);
* ``fisher``: diagonal-Fisher (OBD-style) saliency ``s = w^2 * F_ww`` with the empirical
  Fisher diagonal ``F_ww = mean_b (dL_b/dw)^2`` over ``n_batches`` mini-batch gradients
  (see :func:`fisher_scores`), pruned globally by smallest saliency
  (``prune.global_unstructured`` with ``importance_scores``).

The number of weights removed is ``round(sparsity * n)`` (over all layers for the global
criteria, per layer for ``layer_magnitude``), so the achieved sparsity equals the requested one
up to rounding.

**Redundancy removal** (the talk *LMC up to permutation of hidden neurons*, "what if we
prune the networks?"). ReLU is positively homogeneous: if hidden unit ``j``'s incoming vector
``(w_j, b_j)`` equals ``c * (w_i, b_i)`` with ``c > 0``, then ``relu(z_j) = c * relu(z_i)`` and unit
``j`` can be removed by adding ``c`` times its outgoing weights to unit ``i``'s — the function is
unchanged. :func:`remove_redundant_units` merges units whose incoming vectors point in nearly
the same direction (cosine similarity ``>= 1 - tol``; ``c`` is the ratio of the vectors' norms)
and drops units that are never active on given inputs. With ``tol > 0`` the merge is an
approximation; the notebook shows how the reduced width and accuracy depend on ``tol``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import pandas as pd
import torch
import torch.nn.functional as F
import torch.nn.utils.prune as prune
from torch import nn

from ..core import models
from ..core.data import TensorData

METHODS = ("global_magnitude", "layer_magnitude", "fisher")
METHOD_LABELS = {"global_magnitude": "global magnitude", "layer_magnitude": "layer-wise magnitude",
                 "fisher": "diagonal Fisher"}


def prunable(model: nn.Module, exclude: Sequence[str] = ()) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every Linear and Conv2d layer (their ``weight`` is what gets pruned),
    but those named in ``exclude`` (e.g. ``["conv1"]``: ResNet50's first conv, which Qu & Horvath
    leave dense on ImageNet). A name in ``exclude`` that is no such layer is an error."""
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    excluded = set(exclude)
    unknown = sorted(excluded - {n for n, _ in layers})
    if unknown:
        raise ValueError(f"exclude names {unknown}, which are not Linear/Conv2d layers of {type(model).__name__}")
    return [(n, m) for n, m in layers if n not in excluded]


def _check_sparsity(sparsity: float) -> None:
    if not 0.0 <= float(sparsity) < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")


def prune_model(model: nn.Module, sparsity: float, method: str = "global_magnitude",
                scores: dict[str, torch.Tensor] | None = None, exclude: Sequence[str] = (),
                threshold: bool = False) -> nn.Module:
    """A pruned copy of ``model`` (``model`` itself is left untouched).

    Args:
        sparsity: fraction of the prunable weights (see :func:`prunable`) set to zero, in ``[0, 1)``.
        method: ``global_magnitude | layer_magnitude | fisher``.
        scores: for ``fisher``: ``{layer name: saliency}`` shaped like each layer's weight
            (from :func:`fisher_scores`); the lowest-saliency weights are removed.
        exclude: layers left dense (see :func:`prunable`); ``sparsity`` is the share of the others.
        threshold: magnitude methods only: prune by a threshold in linear time
            (:func:`_prune_by_threshold`; the same weights up to the choice among ties at the
            threshold) instead of through ``torch.nn.utils.prune`` (for models of millions of weights).
    Returns:
        a new model of the same class in the same train/eval mode, with zeros at the pruned weights.
    """
    _check_sparsity(sparsity)
    if method not in METHODS:
        raise ValueError(f"unknown pruning method {method!r}; choose one of {', '.join(METHODS)}")
    pruned = copy.deepcopy(model)
    layers = prunable(pruned, exclude)
    if not layers:
        raise ValueError("the model has no Linear or Conv2d layer to prune")
    params = [(m, "weight") for _, m in layers]
    if threshold and method in ("global_magnitude", "layer_magnitude"):
        _prune_by_threshold(params, float(sparsity), method)
        return pruned
    # torch.nn.utils.prune flattens with .view(-1), which fails on channels-last conv weights
    # (see lmc_utils.device.place): prune in the default layout, restore the layout afterwards.
    layouts = {}
    for m, name in params:
        w = getattr(m, name)
        if w.ndim == 4 and not w.is_contiguous() and w.is_contiguous(memory_format=torch.channels_last):
            layouts[m] = torch.channels_last
        w.data = w.data.contiguous()
    if method == "global_magnitude":
        prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=float(sparsity))
    elif method == "layer_magnitude":
        for m, name in params:
            prune.l1_unstructured(m, name, amount=float(sparsity))
    else:
        if scores is None:
            raise ValueError("fisher pruning needs scores (see pruning.fisher_scores)")
        missing = [n for n, _ in layers if n not in scores]
        if missing:
            raise ValueError(f"scores lack layers {missing[:5]}")
        importance = {}
        for n, m in layers:
            s = scores[n].to(m.weight.device).contiguous()
            if s.shape != m.weight.shape:
                raise ValueError(f"scores[{n!r}] has shape {tuple(s.shape)}, the weight {tuple(m.weight.shape)}")
            importance[(m, "weight")] = s
        prune.global_unstructured(params, pruning_method=prune.L1Unstructured, importance_scores=importance,
                                  amount=float(sparsity))
    for m, name in params:
        prune.remove(m, name)
        w = getattr(m, name)
        w.data = w.data.contiguous(memory_format=layouts.get(m, torch.contiguous_format))
    return pruned


@torch.no_grad()
def _prune_by_threshold(params: list[tuple[nn.Module, str]], sparsity: float, method: str) -> None:
    """Magnitude pruning in place by a threshold (``torch.kthvalue``: linear time, where the ``topk``
    of ``torch.nn.utils.prune`` takes minutes for ResNet50's 25M weights on a CPU). The
    ``round(sparsity * n)`` smallest ``|w|`` of each group (all layers together, or each layer) are
    zeroed, as ``prune`` does; among weights tied at the threshold the ones first in order (layer by
    layer, flattened) are pruned, where ``prune`` leaves that choice to ``topk``."""
    groups = [params] if method == "global_magnitude" else [[p] for p in params]
    for group in groups:
        weights = [getattr(m, name) for m, name in group]
        scores = torch.cat([w.detach().abs().reshape(-1) for w in weights])
        k = round(sparsity * scores.numel())  # as torch.nn.utils.prune._compute_nparams_toprune
        if k == 0:
            continue
        v = torch.kthvalue(scores, k).values
        keep = scores > v
        extra = scores.numel() - int(torch.count_nonzero(keep)) - k  # weights tied at v beyond the k-th: kept
        if extra > 0:  # the first tied weights are pruned, the last `extra` kept
            keep[(scores == v).nonzero().flatten()[-extra:]] = True
        for w, mask in zip(weights, keep.split([w.numel() for w in weights])):
            w.mul_(mask.reshape(w.shape).to(w.dtype))


def fisher_scores(model: nn.Module, data: TensorData, n_batches: int = 32, batch_size: int = 16,
                  seed: int = 0) -> dict[str, torch.Tensor]:
    """Diagonal-Fisher saliency ``w^2 * mean_b g_b^2`` of every prunable weight.

    ``g_b`` is the gradient of the mean cross-entropy (true labels: the empirical Fisher) over
    the ``b``-th of ``n_batches`` random mini-batches of ``batch_size`` examples of ``data``
    (``batch_size=1``: per-example gradients; larger batches average gradients first, as the
    "Fisher mini-batch size" of Singh & Alistarh 2020). ``w^2 F / 2`` is the loss increase
    that OBD (LeCun et al. 1990) predicts for setting ``w`` to zero, up to the constant factor.
    The model is evaluated in eval mode (BatchNorm uses its running statistics).

    Returns:
        ``{layer name: tensor shaped like that layer's weight}``, float32, on the model's device.
    """
    if n_batches < 1 or batch_size < 1:
        raise ValueError("n_batches and batch_size must be positive")
    layers = prunable(model)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    n = len(data)
    sq = {name: torch.zeros_like(m.weight, dtype=torch.float64) for name, m in layers}
    for _ in range(n_batches):
        idx = torch.randint(0, n, (batch_size,), generator=g).to(data.x.device)
        x, y = data.x[idx].to(device), data.y[idx].to(device)
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        for name, m in layers:
            sq[name] += m.weight.grad.detach().double() ** 2
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return {name: (m.weight.detach().double() ** 2 * sq[name] / n_batches).float() for name, m in layers}


def sparsity_table(model: nn.Module, exclude: Sequence[str] = ()) -> pd.DataFrame:
    """Per prunable layer (but ``exclude``): ``layer, weights, zeros, sparsity`` (exact zeros in the weight)."""
    rows = []
    for name, m in prunable(model, exclude):
        w = m.weight.detach()
        zeros = int((w == 0).sum())
        rows.append({"layer": name, "weights": w.numel(), "zeros": zeros, "sparsity": zeros / w.numel()})
    return pd.DataFrame(rows)


def sparsity(model: nn.Module, exclude: Sequence[str] = ()) -> float:
    """Fraction of exactly-zero weights over all prunable layers (but ``exclude``) together."""
    t = sparsity_table(model, exclude)
    return float(t["zeros"].sum() / t["weights"].sum())


# ---------------------------------------------------------------------------------------------
# Redundant hidden units of MLPs
# ---------------------------------------------------------------------------------------------

@dataclass
class Reduction:
    """What :func:`remove_redundant_units` did, per hidden layer: widths before and after,
    units dropped as dead, units merged into another."""

    widths_before: list[int]
    widths_after: list[int]
    dead: list[int]
    merged: list[int]


@torch.no_grad()
def _active(model: models.MLP, inputs: torch.Tensor) -> list[torch.Tensor]:
    """Per hidden layer: a bool ``[width]`` saying whether the unit is > 0 on any input."""
    x = inputs.to(next(model.parameters()).device).flatten(1)
    out = []
    for linear, norm, act in zip(model.hidden, model.norms, model.acts):
        x = act(norm(linear(x)))
        out.append((x > 0).any(0))
    return out


def _groups(vectors: torch.Tensor, keep: torch.Tensor, tol: float) -> list[tuple[int, list[int]]]:
    """Greedy clusters of units whose incoming directions have cosine >= 1 - tol with the cluster's
    representative (the largest-norm unit not yet assigned, in order of decreasing norm), as
    ``(representative, members)`` sorted by the representative's index: the reduced layer keeps
    the original order of its units (naive interpolation depends on it)."""
    norms = vectors.norm(dim=1)
    unit = vectors / norms.clamp_min(1e-300)[:, None]
    order = [int(i) for i in torch.argsort(norms, descending=True) if keep[i] and norms[i] > 0]
    assigned: set[int] = set()
    groups = []
    cos = unit @ unit.T
    for i in order:
        if i in assigned:
            continue
        members = [j for j in order if j not in assigned and j != i and cos[i, j] >= 1.0 - tol]
        assigned.add(i)
        assigned.update(members)
        groups.append((i, members))
    return sorted(groups)  # surviving units keep their original order


@torch.no_grad()
def remove_redundant_units(model: models.MLP, tol: float = 0.0, inputs: torch.Tensor | None = None
                           ) -> tuple[models.MLP, Reduction]:
    """A smaller MLP computing (nearly) the same function: per hidden layer, in order,

    1. drop *dead* units: never positive on ``inputs`` (if given), or with an all-zero incoming
       vector; their contribution is zero on those inputs;
    2. merge units whose incoming vectors ``(w, b)`` have cosine similarity ``>= 1 - tol`` into the
       largest-norm one of their group, adding ``|v_j| / |v_i|`` times unit ``j``'s outgoing weights
       to unit ``i``'s (exact for positive multiples, i.e. ``tol = 0`` up to float rounding).

    Merging changes the next layer's incoming vectors, which are then examined in turn. Only plain
    (``norm='none'``) MLPs: under LayerNorm a unit's output depends on all units of its layer.

    Returns:
        ``(reduced model, Reduction)``; the reduced model is a new :class:`~lmc_utils.models.MLP`
        with per-layer widths, on the same device, in eval mode.
    """
    if not isinstance(model, models.MLP):
        raise TypeError(f"redundancy removal is implemented for MLPs, got {type(model).__name__}")
    if model.norm != "none":
        raise ValueError("redundancy removal needs a plain MLP (norm='none'); LayerNorm couples the units")
    if tol < 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    has_bias = model.out.bias is not None
    active = _active(model, inputs) if inputs is not None else None
    weights = [lin.weight.detach().double().clone() for lin in model.hidden] + [model.out.weight.detach().double().clone()]
    biases = ([lin.bias.detach().double().clone() for lin in model.hidden] + [model.out.bias.detach().double().clone()]
              if has_bias else None)
    before, after, dead_counts, merged_counts = [], [], [], []
    for layer in range(len(model.hidden)):
        vec = weights[layer] if biases is None else torch.cat([weights[layer], biases[layer][:, None]], dim=1)
        width = vec.shape[0]
        keep = vec.norm(dim=1) > 0
        if active is not None:
            keep &= active[layer].to(keep.device)
        groups = _groups(vec, keep, tol)
        norms = vec.norm(dim=1)
        nxt = weights[layer + 1]
        new_out_cols = []
        for rep, members in groups:
            col = nxt[:, rep].clone()
            for j in members:
                col += (norms[j] / norms[rep]) * nxt[:, j]
            new_out_cols.append(col)
        reps = [rep for rep, _ in groups]
        weights[layer] = weights[layer][reps]
        if biases is not None:
            biases[layer] = biases[layer][reps]
        weights[layer + 1] = torch.stack(new_out_cols, dim=1) if new_out_cols else nxt[:, :0]
        before.append(width)
        after.append(len(reps))
        dead_counts.append(int((~keep).sum()))
        merged_counts.append(width - len(reps) - int((~keep).sum()))
    if min(after) == 0:
        raise ValueError("every unit of a hidden layer is dead on the given inputs; nothing left to keep")
    reduced = models.mlp(in_features=model.hidden[0].in_features, num_classes=model.out.out_features,
                         width=after, depth=len(after), norm="none", bias=has_bias)
    state = {}
    for i in range(len(after)):
        state[f"hidden.{i}.weight"] = weights[i]
        if has_bias:
            state[f"hidden.{i}.bias"] = biases[i]
    state["out.weight"] = weights[-1]
    if has_bias:
        state["out.bias"] = biases[-1]
    reduced.to(device=model.out.weight.device, dtype=model.out.weight.dtype)
    reduced.load_state_dict(state)
    reduced.eval()
    return reduced, Reduction(before, after, dead_counts, merged_counts)


@torch.no_grad()
def pad_hidden(model: models.MLP, widths: list[int]) -> models.MLP:
    """A copy of a plain MLP with hidden layer ``i`` widened to ``widths[i]`` by zero units (zero
    incoming weights and bias, zero outgoing weights): the function is unchanged. Used to compare
    reduced networks of different widths by interpolation."""
    if not isinstance(model, models.MLP):
        raise TypeError(f"pad_hidden needs an MLP, got {type(model).__name__}")
    current = [lin.out_features for lin in model.hidden]
    if len(widths) != len(current) or any(w < c for w, c in zip(widths, current)):
        raise ValueError(f"target widths {widths} must have one entry per hidden layer and be >= {current}")
    has_bias = model.out.bias is not None
    padded = models.mlp(in_features=model.hidden[0].in_features, num_classes=model.out.out_features,
                        width=list(widths), depth=len(widths), norm="none", bias=has_bias)
    padded.to(device=model.out.weight.device, dtype=model.out.weight.dtype)
    state = {k: torch.zeros_like(v) for k, v in padded.state_dict().items()}
    src = model.state_dict()
    sizes = [model.hidden[0].in_features] + current
    for i in range(len(widths)):
        state[f"hidden.{i}.weight"][:current[i], :sizes[i]] = src[f"hidden.{i}.weight"]
        if has_bias:
            state[f"hidden.{i}.bias"][:current[i]] = src[f"hidden.{i}.bias"]
    state["out.weight"][:, :current[-1]] = src["out.weight"]
    if has_bias:
        state["out.bias"] = src["out.bias"].clone()
    padded.load_state_dict(state)
    return padded.eval()
