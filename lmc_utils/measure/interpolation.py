"""Linear interpolation between two models, loss/accuracy curves along it, and barriers.

The barrier of a curve is the largest gap, over lambda, between the value at the
interpolated weights and the straight line joining the endpoint values (Frankle et al.
2020; Entezari et al. 2022; Ainsworth et al. 2023):

* loss:     ``max_lam  L(lam) - [(1 - lam) L(0) + lam L(1)]``
* accuracy: ``max_lam  [(1 - lam) A(0) + lam A(1)] - A(lam)``  (a drop, in accuracy units)

Both are >= 0 when the endpoints are on the grid, and exactly 0 for a model with itself.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..core import memo
from ..core.data import TensorData
from .evaluation import evaluate
from .barrier import barrier, curve_barriers  # noqa: F401  (the public face: lmc_utils.interpolation.barrier)

StateDict = Mapping[str, torch.Tensor]


def interpolate(state_a: StateDict, state_b: StateDict, lam: float) -> dict[str, torch.Tensor]:
    """``(1 - lam) * a + lam * b`` for floating-point entries; integer entries (e.g. BN's
    ``num_batches_tracked``) are taken from ``a``. Shapes and keys must match."""
    if set(state_a) != set(state_b):
        raise ValueError("cannot interpolate state dicts with different keys (different architectures?)")
    out = {}
    for k, a in state_a.items():
        b = state_b[k]
        if a.shape != b.shape:
            raise ValueError(f"cannot interpolate {k!r}: shapes {tuple(a.shape)} and {tuple(b.shape)} differ")
        out[k] = torch.lerp(a, b.to(a.device, a.dtype), lam) if a.is_floating_point() else a.clone()
    return out


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@torch.no_grad()
def reset_batchnorm(model: nn.Module, data: TensorData, batch_size: int = 256, max_samples: int | None = None) -> nn.Module:
    """RESET (Jordan et al. 2023): recompute every BatchNorm layer's running mean and variance
    as exact averages over ``data`` (first ``max_samples`` examples), in place. Returns ``model``
    in eval mode. Models without BatchNorm are returned unchanged."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return model.eval()
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average = exact mean over batches
    model.train()
    device = next(model.parameters()).device
    seen = 0
    for x, _ in data.batches(batch_size):
        if max_samples is not None and seen >= max_samples:
            break
        model(x.to(device))
        seen += x.shape[0]
    for m, mom in zip(bns, momenta):
        m.momentum = mom
    return model.eval()


@contextmanager
def restored(model: nn.Module) -> Iterator[nn.Module]:
    """A block that may load other weights into ``model`` (and change its train/eval mode): a
    copy of its state dict and its mode are put back afterwards, also when the block raises."""
    original = {k: v.clone() for k, v in model.state_dict().items()}
    was_training = model.training
    try:
        yield model
    finally:
        model.load_state_dict(original)
        model.train(was_training)


def evaluate_state(model: nn.Module, state: StateDict, data: TensorData, reset_data: TensorData | None = None,
                   batch_size: int = 256) -> tuple[float, float]:
    """``(loss, accuracy)`` of ``model`` holding ``state``, with its BatchNorm statistics first
    recomputed on ``reset_data`` when given (:func:`reset_batchnorm`; no-op without BatchNorm).
    ``model`` itself is left as it was (:func:`restored`)."""
    with restored(model):
        model.load_state_dict(state)
        if reset_data is not None:
            reset_batchnorm(model, reset_data)
        return evaluate(model, data, batch_size)


@memo.memoized("curve")
def interpolation_curve(model: nn.Module, state_a: StateDict, state_b: StateDict,
                        data: TensorData | Mapping[str, TensorData], n_points: int = 11,
                        reset_bn: bool = False, reset_data: TensorData | None = None,
                        batch_size: int = 256) -> pd.DataFrame:
    """Loss and accuracy of ``model`` loaded with ``interpolate(a, b, lam)`` on an even grid of
    ``n_points`` lambdas in ``[0, 1]``.

    Args:
        model: a model of the right architecture (its weights are overwritten; restored after).
        data: one dataset, or ``{split name: dataset}`` to evaluate several.
        reset_bn: apply :func:`reset_batchnorm` at every lambda (endpoints included), using
            ``reset_data`` (default: the first dataset in ``data``).
    Returns:
        long-format DataFrame with columns ``lam, split, loss, accuracy``.
    """
    if n_points < 2:
        raise ValueError("n_points must be at least 2 (the two endpoints)")
    # Copies: a state dict from ``model.state_dict()`` shares storage with the model, and
    # loading interpolated weights into ``model`` would otherwise move the endpoint itself.
    state_a = {k: v.detach().clone() for k, v in state_a.items()}
    state_b = {k: v.detach().clone() for k, v in state_b.items()}
    datasets = {"data": data} if isinstance(data, TensorData) else dict(data)
    reset_on = reset_data if reset_data is not None else next(iter(datasets.values()))
    rows = []
    with restored(model):
        for lam in np.linspace(0.0, 1.0, n_points):
            model.load_state_dict(interpolate(state_a, state_b, float(lam)))
            if reset_bn:
                reset_batchnorm(model, reset_on)
            for split, ds in datasets.items():
                loss, acc = evaluate(model, ds, batch_size)
                rows.append({"lam": float(lam), "split": split, "loss": loss, "accuracy": acc})
    return pd.DataFrame(rows)


def plane_basis(state_a: StateDict, state_b: StateDict, state_c: StateDict,
                ) -> tuple[list[str], torch.Tensor, torch.Tensor, torch.Tensor, dict[str, tuple[float, float]]]:
    """An orthonormal basis of the plane through three states (Gram–Schmidt, float64).

    Over the floating-point entries (``keys``, in state order), with ``a`` the origin:
    ``e1 = (b - a) / |b - a|``, ``e2`` = the part of ``c - a`` orthogonal to ``e1``, normalised.
    Plane coordinates are then true Euclidean distances in weight space.
    Returns ``(keys, a_flat, e1, e2, coords)`` with ``coords = {"a": (0, 0), "b": (|b - a|, 0),
    "c": (<c - a, e1>, <c - a, e2>)}``. Raises ``ValueError`` if the three states are collinear.
    """
    if not (set(state_a) == set(state_b) == set(state_c)):
        raise ValueError("the three state dicts have different keys (different architectures?)")
    keys = [k for k, v in state_a.items() if v.is_floating_point()]

    def flat(s: StateDict) -> torch.Tensor:
        return torch.cat([s[k].detach().double().cpu().reshape(-1) for k in keys])

    a, b, c = flat(state_a), flat(state_b), flat(state_c)
    if a.shape != b.shape or a.shape != c.shape:
        raise ValueError("the three state dicts have different shapes")
    d1, d2 = b - a, c - a
    n1 = float(d1.norm())
    if n1 == 0:
        raise ValueError("states a and b are identical: no plane")
    e1 = d1 / n1
    r = d2 - (d2 @ e1) * e1
    n2 = float(r.norm())
    if n2 <= 1e-6 * max(n1, float(d2.norm())):  # float32 states: rounding is ~1e-7 relative
        raise ValueError("the three states are collinear: no plane")
    e2 = r / n2
    coords = {"a": (0.0, 0.0), "b": (n1, 0.0), "c": (float(d2 @ e1), n2)}
    return keys, a, e1, e2, coords


@memo.memoized("plane", ignore=("progress",))
def plane_grid(model: nn.Module, state_a: StateDict, state_b: StateDict, state_c: StateDict,
               data: TensorData | Mapping[str, TensorData], resolution: int = 21, margin: float = 0.2,
               reset_bn: bool = False, reset_data: TensorData | None = None, batch_size: int = 256,
               progress: bool = True) -> pd.DataFrame:
    """Loss and accuracy on a grid in the plane through three models (Garipov et al. 2018;
    Ito et al. 2025, appendix).

    The plane is spanned by :func:`plane_basis` (origin ``a``, orthonormal axes, so ``x`` and
    ``y`` are distances in weight space). The grid covers the bounding box of the three models
    widened by ``margin`` times its size on every side, ``resolution`` points per axis; the three
    models themselves are evaluated too (at their plane coordinates, which reproduce them).
    Integer entries (e.g. BN's ``num_batches_tracked``) are taken from ``a``; with ``reset_bn``
    every point's BN statistics are recomputed on ``reset_data`` (default: the first dataset).

    Returns:
        long DataFrame ``point, x, y, split, loss, accuracy`` where ``point`` is ``grid`` or one
        of ``a, b, c``.
    """
    from tqdm.auto import tqdm

    if resolution < 2:
        raise ValueError("resolution must be at least 2")
    keys, a, e1, e2, coords = plane_basis(state_a, state_b, state_c)
    datasets = {"data": data} if isinstance(data, TensorData) else dict(data)
    reset_on = reset_data if reset_data is not None else next(iter(datasets.values()))
    xs = [p[0] for p in coords.values()]
    ys = [p[1] for p in coords.values()]
    wx, wy = max(xs) - min(xs), max(ys) - min(ys)
    gx = np.linspace(min(xs) - margin * wx, max(xs) + margin * wx, resolution)
    gy = np.linspace(min(ys) - margin * wy, max(ys) + margin * wy, resolution)
    points = [("grid", float(x), float(y)) for y in gy for x in gx] + [(n, *xy) for n, xy in coords.items()]
    template = {k: v.detach().clone() for k, v in state_a.items()}
    shapes = [(k, template[k].shape, template[k].numel(), template[k].dtype) for k in keys]
    rows = []
    with restored(model):
        for name, x, y in tqdm(points, desc="plane", disable=not progress, leave=False):
            vec = a + x * e1 + y * e2
            state, i = dict(template), 0
            for k, shape, n, dtype in shapes:
                state[k] = vec[i:i + n].reshape(shape).to(template[k].device, dtype)
                i += n
            model.load_state_dict(state)
            if reset_bn:
                reset_batchnorm(model, reset_on)
            for split, ds in datasets.items():
                loss, acc = evaluate(model, ds, batch_size)
                rows.append({"point": name, "x": x, "y": y, "split": split, "loss": loss, "accuracy": acc})
    return pd.DataFrame(rows)


@memo.memoized("curves")
@torch.no_grad()
def batched_curves(model: nn.Module, states_a: list[StateDict], states_b: list[StateDict], data: TensorData,
                   n_points: int = 11, max_models: int = 128, batch_size: int = 1000) -> dict[str, np.ndarray]:
    """Loss and accuracy curves of many pairs at once: pair ``p`` interpolates ``states_a[p]`` to
    ``states_b[p]``; the ``pairs x n_points`` interpolated models are evaluated together, at most
    ``max_models`` per ``torch.func.vmap`` call over the stacked weights (a few batched forward passes
    instead of one per pair and lambda). Equal to :func:`interpolation_curve` per pair up to float
    rounding. Only for models without BatchNorm (the interpolated statistics would need RESET).

    Returns ``{"lam": [n_points], "loss": [pairs, n_points], "accuracy": [pairs, n_points]}`` (mean
    cross-entropy in nats and accuracy on ``data``).
    """
    from torch.func import functional_call, vmap

    if n_points < 2:
        raise ValueError("n_points must be at least 2 (the two endpoints)")
    if len(states_a) != len(states_b):
        raise ValueError(f"batched_curves needs as many states_a as states_b, got {len(states_a)} and {len(states_b)}")
    if has_batchnorm(model):
        raise ValueError("batched_curves does not handle BatchNorm models; use interpolation_curve with reset_bn")
    lams = np.linspace(0.0, 1.0, n_points)
    n_pairs = len(states_a)
    loss = np.zeros((n_pairs, n_points))
    acc = np.zeros((n_pairs, n_points))
    if n_pairs == 0:
        return {"lam": lams, "loss": loss, "accuracy": acc}
    device = next(model.parameters()).device
    keys = [k for k, v in states_a[0].items() if v.is_floating_point()]
    fixed = {k: v.to(device) for k, v in states_a[0].items() if not v.is_floating_point()}
    was_training = model.training
    model.eval()

    def logits_of(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(model, {**params, **fixed}, (x,))

    run = vmap(logits_of, in_dims=(0, None))
    per_chunk = max(1, max_models // n_points)
    lam_t = torch.as_tensor(lams, dtype=torch.float32, device=device)
    try:
        for start in range(0, n_pairs, per_chunk):
            stop = min(n_pairs, start + per_chunk)
            c = stop - start
            params = {}
            for k in keys:
                a = torch.stack([s[k].detach().to(device) for s in states_a[start:stop]])  # [c, ...]
                b = torch.stack([s[k].detach().to(device, a.dtype) for s in states_b[start:stop]])
                w = lam_t.to(a.dtype).view(1, n_points, *([1] * (a.dim() - 1)))
                params[k] = (a[:, None] + w * (b - a)[:, None]).reshape(c * n_points, *a.shape[1:])
            total = torch.zeros(c * n_points, dtype=torch.float64, device=device)
            correct = torch.zeros(c * n_points, dtype=torch.long, device=device)
            for x, y in data.batches(batch_size):
                x, y = x.to(device), y.to(device)
                out = run(params, x)  # [models, batch, classes]
                ce = torch.nn.functional.cross_entropy(out.flatten(0, 1), y.repeat(out.shape[0]), reduction="none")
                total += ce.view(out.shape[0], -1).sum(1).double()
                correct += (out.argmax(-1) == y[None]).sum(1)
            loss[start:stop] = (total / len(data)).view(c, n_points).cpu().numpy()
            acc[start:stop] = (correct.double() / len(data)).view(c, n_points).cpu().numpy()
    finally:
        model.train(was_training)
    return {"lam": lams, "loss": loss, "accuracy": acc}
