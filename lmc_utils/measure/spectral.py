"""Singular value decompositions of layer weights and how they align across models
(Ito et al., ICLR 2025, §4–5).

Every weight with two or more axes is read as a matrix ``W = U diag(s) V^T`` of shape
``[out, in * prod(kernel)]``: a conv kernel ``[out, in, kh, kw]`` is flattened over its input
channels and kernel positions (row ``i`` is output channel ``i``'s filter). A permutation of
the output units permutes the rows of ``U``, a permutation of the input channels permutes the
rows of ``V`` (in blocks of ``kh * kw`` for convs); the singular values do not change.

Weight matching maximises ``<W_a, W_b'> = sum_ij s_i^a s_j^b <u_i^a, u_j^b> <v_i^a, v_j^b>``,
which rewards aligning the singular vectors with large singular values. The functions here
measure that: alignment matrices, diagonal alignment by rank, the share of the objective from
the top-k singular pairs, and how strongly right singular vectors point along a layer's inputs.
All computations are in float64 on CPU; signs of singular vectors are arbitrary, so
alignments are absolute values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import torch

StateDict = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class SVD:
    """``W = u @ diag(s) @ v.T`` with singular values ``s`` in decreasing order; ``u``: [out, r], ``v``: [in, r]."""

    u: torch.Tensor
    s: torch.Tensor
    v: torch.Tensor


def layer_matrices(state: StateDict) -> dict[str, torch.Tensor]:
    """``layer -> [out, in * prod(kernel)]`` float64 matrix for every weight with two or more axes
    (``layer`` is the module name, e.g. ``hidden.1`` or ``features.3.conv``)."""
    return {k.rpartition(".")[0]: v.detach().double().cpu().reshape(v.shape[0], -1)
            for k, v in state.items() if k.endswith("weight") and v.ndim >= 2}


def svd(matrix: torch.Tensor) -> SVD:
    u, s, vh = torch.linalg.svd(matrix.double(), full_matrices=False)
    return SVD(u=u, s=s, v=vh.T)


def spectra(state: StateDict) -> dict[str, SVD]:
    """The SVD of every layer matrix of a state dict."""
    return {layer: svd(m) for layer, m in layer_matrices(state).items()}


def alignment(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``|x^T y|``: absolute inner products between the columns of two sets of unit vectors."""
    return (x.T @ y).abs()


def diagonal_alignment(a: SVD, b: SVD) -> dict[str, torch.Tensor]:
    """Per rank ``i``: ``|<u_i^a, u_i^b>|`` and ``|<v_i^a, v_i^b>|`` (1 for identical directions)."""
    return {"u": (a.u * b.u).sum(0).abs(), "v": (a.v * b.v).sum(0).abs()}


def objective_terms(a: SVD, b: SVD) -> torch.Tensor:
    """The matrix ``T[i, j] = s_i^a s_j^b <u_i^a, u_j^b> <v_i^a, v_j^b>`` whose sum is ``<W_a, W_b>``."""
    return a.s[:, None] * b.s[None, :] * (a.u.T @ b.u) * (a.v.T @ b.v)


def top_k_share(a: SVD, b: SVD, ks: Sequence[int]) -> dict[int, float]:
    """For each ``k``: the part of ``<W_a, W_b>`` contributed by the top-``k`` singular pairs of both
    (``i, j < k``), as a fraction of the whole."""
    terms = objective_terms(a, b)
    total = float(terms.sum())
    return {k: float(terms[:k, :k].sum()) / total if total else float("nan") for k in ks}


def input_alignment(v: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """Mean over inputs ``z`` of ``|<v_i, z>| / ||z||`` for every right singular vector ``v_i``
    (columns of ``v``); ``inputs``: ``[n, in]`` (zero vectors are skipped). Returns ``[r]``."""
    z = inputs.double().reshape(inputs.shape[0], -1)
    norms = z.norm(dim=1)
    z = z[norms > 0] / norms[norms > 0, None]
    return (z @ v).abs().mean(0)


def count_large(s: torch.Tensor, ratio: float = 0.5) -> int:
    """How many singular values are at least ``ratio`` times the largest one."""
    return int((s >= ratio * s.max()).sum()) if s.numel() else 0


def fit_scale(s_a: torch.Tensor, s_b: torch.Tensor) -> float:
    """Least-squares constant ``c`` with ``s_a ~ c * s_b`` (to compare output-layer spectra that
    differ by a factor, as Ito et al. observe)."""
    return float((s_a * s_b).sum() / (s_b * s_b).sum())


def top_k_contribution(a: SVD, b: SVD, ks: Sequence[int]) -> dict[int, float]:
    """For each ``k``: the part of ``<W_a, W_b>`` from the top-``k`` singular pairs of both
    (``sum_{i, j < k} T[i, j]``, see :func:`objective_terms`), divided by ``||W_a||_F ||W_b||_F``:
    a cosine-like number in ``[-1, 1]`` that, unlike :func:`top_k_share`, stays meaningful when the
    whole inner product is near zero (e.g. for unaligned models)."""
    terms = objective_terms(a, b)
    norm = float(a.s.norm() * b.s.norm())
    return {k: float(terms[:k, :k].sum()) / norm if norm else float("nan") for k in ks}


def _weight_inputs(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The rows a layer's weight matrix (:func:`layer_matrices`) multiplies, from the layer's input
    ``x``: one per example for a linear layer; one per example and output position for a conv
    layer (the unfolded patch, ``in * prod(kernel)`` columns)."""
    x = x.detach()
    if isinstance(module, torch.nn.Conv2d):
        patches = torch.nn.functional.unfold(x, module.kernel_size, module.dilation, module.padding,
                                             module.stride)  # [n, in*k*k, positions]
        x = patches.transpose(1, 2).reshape(-1, patches.shape[1])
    return x.reshape(x.shape[0], -1)


def layer_inputs(model: torch.nn.Module, inputs: torch.Tensor, batch_size: int = 500,
                 max_rows: int | None = 20000, seed: int = 0) -> dict[str, torch.Tensor]:
    """The inputs ``z`` each layer's weight matrix acts on, as ``layer -> [n, in * prod(kernel)]``
    float64 CPU rows, collected with forward pre-hooks (model in eval mode, no grad).

    Linear layers: one row per example. Conv layers: one row per example and output position
    (the unfolded patch, matching :func:`layer_matrices`' column order). At most ``max_rows``
    rows per layer are kept, drawn at random with ``seed`` (``None``: all).
    """
    layers = {name: m for name, m in model.named_modules()
              if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))}
    rows: dict[str, list[torch.Tensor]] = {n: [] for n in layers}

    def hook(name: str, module: torch.nn.Module):
        def pre(_m, args):
            rows[name].append(_weight_inputs(module, args[0]).cpu())  # float64 after the draw: the same numbers
        return pre

    handles = [m.register_forward_pre_hook(hook(n, m)) for n, m in layers.items()]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for x in inputs.split(batch_size):
                model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, rs in rows.items():
        z = torch.cat(rs) if rs else torch.empty(0)
        if max_rows is not None and z.shape[0] > max_rows:
            z = z[torch.randperm(z.shape[0], generator=g)[:max_rows]]
        out[name] = z.double()
    return out


def streamed_input_alignment(model: torch.nn.Module, vectors: Mapping[str, torch.Tensor],
                             batches: Iterable[torch.Tensor], rows_per_batch: int | None = 4096,
                             seed: int = 0) -> dict[str, torch.Tensor]:
    """:func:`input_alignment` of the right singular vectors ``vectors[layer]`` (``[in * prod(kernel), r]``)
    on the inputs that layer's weight acts on, accumulated batch by batch over ``batches`` (input
    tensors), so that no layer's inputs are ever held (a conv layer of a ResNet50 at 224 pixels has
    thousands of patches per image). Rows as in :func:`layer_inputs` (one per example and output
    position); at most ``rows_per_batch`` of them per layer and batch, drawn at random with
    ``seed`` (``None``: all). The products run on the model's device in float32, the sums in
    float64. Returns ``layer -> [r]`` (CPU, float64): the mean over rows ``z`` of ``|<v_i, z>| / ||z||``."""
    modules = dict(model.named_modules())
    unknown = sorted(set(vectors) - set(modules))
    if unknown:
        raise ValueError(f"no layers {unknown[:3]} in {type(model).__name__}")
    device = next(model.parameters()).device
    vs = {name: v.to(device, torch.float32) for name, v in vectors.items()}
    sums = {name: torch.zeros(v.shape[1], dtype=torch.float64, device=device) for name, v in vectors.items()}
    counts = dict.fromkeys(vectors, 0)
    g = torch.Generator().manual_seed(seed)

    def hook(name: str, module: torch.nn.Module):
        def pre(_m, args):
            z = _weight_inputs(module, args[0]).float()
            if rows_per_batch is not None and z.shape[0] > rows_per_batch:
                z = z[torch.randperm(z.shape[0], generator=g)[:rows_per_batch].to(z.device)]
            norms = z.norm(dim=1)
            z = z[norms > 0] / norms[norms > 0, None]
            sums[name] += (z @ vs[name]).abs().sum(0).double()
            counts[name] += z.shape[0]
        return pre

    handles = [modules[n].register_forward_pre_hook(hook(n, modules[n])) for n in vectors]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for x in batches:
                model(x.to(device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    empty = [n for n, c in counts.items() if c == 0]
    if empty:
        raise ValueError(f"no inputs reached layers {empty[:3]}")
    return {n: (sums[n] / counts[n]).cpu() for n in vectors}
