"""Linear interpolation between two models, loss/accuracy curves along it, and barriers.

The barrier of a curve is the largest gap, over lambda, between the value at the
interpolated weights and the straight line joining the endpoint values (Frankle et al.
2020; Entezari et al. 2022; Ainsworth et al. 2023):

* loss:     ``max_lam  L(lam) - [(1 - lam) L(0) + lam L(1)]``
* accuracy: ``max_lam  [(1 - lam) A(0) + lam A(1)] - A(lam)``  (a drop, in accuracy units)

Both are >= 0 when the endpoints are on the grid, and exactly 0 for a model with itself.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn

from .data import TensorData
from .evaluation import evaluate

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
    original = {k: v.clone() for k, v in model.state_dict().items()}
    rows = []
    try:
        for lam in np.linspace(0.0, 1.0, n_points):
            model.load_state_dict(interpolate(state_a, state_b, float(lam)))
            if reset_bn:
                reset_batchnorm(model, reset_on)
            for split, ds in datasets.items():
                loss, acc = evaluate(model, ds, batch_size)
                rows.append({"lam": float(lam), "split": split, "loss": loss, "accuracy": acc})
    finally:
        model.load_state_dict(original)
    return pd.DataFrame(rows)


def _barrier_1d(lam: np.ndarray, values: np.ndarray) -> float:
    order = np.argsort(lam)
    lam, values = lam[order], values[order]
    if lam[0] != 0.0 or lam[-1] != 1.0:
        raise ValueError("a barrier needs the endpoints lam=0 and lam=1 on the curve")
    line = (1 - lam) * values[0] + lam * values[-1]
    return float(np.max(values - line))


def barrier(curve: pd.DataFrame) -> pd.DataFrame:
    """Loss and accuracy barriers of an :func:`interpolation_curve`, one row per split.

    Returns a DataFrame indexed by ``split`` with columns ``loss`` (nats) and ``accuracy``
    (drop in accuracy, a fraction in ``[0, 1]``).
    """
    if "split" not in curve:
        curve = curve.assign(split="data")
    rows = {}
    for split, c in curve.groupby("split", sort=False):
        lam = c["lam"].to_numpy(float)
        rows[split] = {"loss": _barrier_1d(lam, c["loss"].to_numpy(float)),
                       "accuracy": _barrier_1d(lam, -c["accuracy"].to_numpy(float))}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "split"
    return out
