"""Activation statistics per hidden layer: the scale of pre- and post-activations and dead units.

A *hidden layer* here is one ReLU module of a :mod:`lmc_utils.models` network; the permutation
spec's ``activations`` name them (one per MLP/VGG layer; for ResNets also the ReLUs after each
residual sum). A forward hook on the ReLU sees its input (the **pre-activation**) and its
output (the **post-activation**). Channel statistics pool over the batch and, for conv maps
``[N, C, H, W]``, over the positions, so every channel gets one mean and one standard deviation.

Used to show variance collapse in interpolated networks (Jordan et al. 2023; Qu & Horvath
2024, Fig. 4) and dead neurons (the share of exactly-zero post-activations), and reused by the
pruning notebook. :func:`output_moments` measures the same channel statistics at the output
of any modules (:mod:`lmc_utils.renorm` uses it for its correction points).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import pandas as pd
import torch
from torch import nn

from ..core import memo
from ..permutation import spec_for


def channels_last(t: torch.Tensor) -> torch.Tensor:
    """Module output -> ``[samples, channels]`` (conv maps: one sample per position)."""
    if t.ndim == 4:
        return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])
    return t.reshape(-1, t.shape[-1])


class _Moments:
    """Exact float64 per-channel sums (count, sum, sum of squares, zeros) over many batches."""

    def __init__(self) -> None:
        self.n = 0
        self.s: torch.Tensor | None = None
        self.ss: torch.Tensor | None = None
        self.zeros: torch.Tensor | None = None

    def add(self, t: torch.Tensor, count_zeros: bool = False) -> None:
        f = channels_last(t.detach()).double()
        s, ss = f.sum(0), (f * f).sum(0)
        z = (f == 0).sum(0).double() if count_zeros else None
        if self.s is None:
            self.s, self.ss, self.zeros = s, ss, z
        else:
            self.s += s
            self.ss += ss
            if z is not None:
                self.zeros += z
        self.n += f.shape[0]

    def mean_std(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.n == 0 or self.s is None:
            raise ValueError("no activations were recorded (empty inputs?)")
        mean = self.s / self.n
        var = (self.ss / self.n - mean ** 2).clamp_min(0)
        return mean.cpu(), var.sqrt().cpu()


def _batches(inputs: torch.Tensor | Iterable[torch.Tensor], batch_size: int) -> Iterable[torch.Tensor]:
    if isinstance(inputs, torch.Tensor):
        if inputs.shape[0] == 0:
            raise ValueError("inputs are empty")
        return inputs.split(batch_size)
    return inputs


class _Enough(Exception):
    """Raised by a hook to end a forward pass once every module of interest has run."""


def _run(model: nn.Module, inputs, batch_size: int, after_batch=None) -> None:
    """Forward ``inputs`` in eval mode without gradients; a hook may end a batch's pass early by
    raising :class:`_Enough`. ``after_batch(k)`` is called after batch ``k``."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            for k, x in enumerate(_batches(inputs, batch_size)):
                try:
                    model(x.to(device))
                except _Enough:
                    pass
                if after_batch is not None:
                    after_batch(k)
    finally:
        model.train(was_training)


@memo.memoized("moments")
def output_moments(model: nn.Module, names: Sequence[str], inputs: torch.Tensor | Iterable[torch.Tensor],
                   batch_size: int = 500) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per-channel ``(mean, std)`` (float64, CPU, population std) of the outputs of the named
    modules over ``inputs``, in one pass in eval mode without gradients.

    The first batch runs the whole network; when it called each named module once, later batches
    stop as soon as all of them have run (the modules after them do not change their outputs), so
    measuring an early layer costs a fraction of a forward pass."""
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        raise ValueError(f"modules {missing} are not in the model")
    acc = {n: _Moments() for n in names}
    calls = {n: 0 for n in names}  # calls in the current batch
    early = False  # set after the first batch if each module ran once in it

    def hook(_m, _i, out, n):
        acc[n].add(out)
        calls[n] += 1
        if early and all(calls.values()):
            raise _Enough

    def after_batch(k):
        nonlocal early
        if k == 0:
            early = all(c == 1 for c in calls.values())
        calls.update(dict.fromkeys(calls, 0))

    handles = [modules[n].register_forward_hook(lambda m, i, out, n=n: hook(m, i, out, n)) for n in names]
    try:
        _run(model, inputs, batch_size, after_batch)
    finally:
        for h in handles:
            h.remove()
    return {n: acc[n].mean_std() for n in names}


@dataclass
class LayerStats:
    """Statistics of one hidden layer (one ReLU module) over a set of inputs.

    ``pre_mean``, ``pre_std``: per-channel mean and std of the ReLU's input, ``[C]``;
    ``post_mean``, ``post_std``: the same of its output; ``zero_share``: per-channel share of
    exactly-zero outputs, ``[C]``. All float64 on the CPU.
    """

    group: str
    index: int
    pre_mean: torch.Tensor
    pre_std: torch.Tensor
    post_mean: torch.Tensor
    post_std: torch.Tensor
    zero_share: torch.Tensor

    @property
    def channels(self) -> int:
        return int(self.pre_std.numel())


def hidden_layers(model: nn.Module) -> dict[str, str]:
    """``ReLU module name -> permutation group`` in forward order (the spec's ``activations``)."""
    spec = spec_for(model)
    names = {n: g for g, ns in spec.activations.items() for n in ns}
    order = [n for n, _ in model.named_modules() if n in names]
    return {n: names[n] for n in order}


def layer_statistics(model: nn.Module, inputs: torch.Tensor | Iterable[torch.Tensor],
                     batch_size: int = 500) -> dict[str, LayerStats]:
    """Pre-/post-activation statistics of every hidden layer, keyed by the ReLU module's name
    (e.g. ``acts.0``, ``features.3.act``), in forward order. Eval mode, no gradients, float64
    accumulation over all of ``inputs`` (a tensor split into ``batch_size`` batches, or an
    iterable of batches)."""
    layers = hidden_layers(model)
    modules = dict(model.named_modules())
    pre = {n: _Moments() for n in layers}
    post = {n: _Moments() for n in layers}

    def hook(name):
        def fn(_m, args, out):
            pre[name].add(args[0])
            post[name].add(out, count_zeros=True)
        return fn

    handles = [modules[n].register_forward_hook(hook(n)) for n in layers]
    try:
        _run(model, inputs, batch_size)
    finally:
        for h in handles:
            h.remove()
    out = {}
    for i, (n, g) in enumerate(layers.items()):
        pm, ps = pre[n].mean_std()
        qm, qs = post[n].mean_std()
        out[n] = LayerStats(group=g, index=i, pre_mean=pm, pre_std=ps, post_mean=qm, post_std=qs,
                            zero_share=(post[n].zeros / post[n].n).cpu())
    return out


def pre_activation_table(model: nn.Module, inputs: torch.Tensor | Iterable[torch.Tensor],
                         batch_size: int = 500) -> pd.DataFrame:
    """The pre-activation columns of :func:`statistics_table` (``layer, module, group, channels,
    pre_mean, pre_std``, the same numbers) without measuring the post-activations: about half the
    work, for variance collapse, which needs only ``pre_std``."""
    layers = hidden_layers(model)
    modules = dict(model.named_modules())
    pre = {n: _Moments() for n in layers}
    handles = [modules[n].register_forward_hook(lambda _m, args, _out, n=n: pre[n].add(args[0])) for n in layers]
    try:
        _run(model, inputs, batch_size)
    finally:
        for h in handles:
            h.remove()
    rows = []
    for i, (n, g) in enumerate(layers.items()):
        m, sd = pre[n].mean_std()
        rows.append({"layer": i, "module": n, "group": g, "channels": int(sd.numel()), "pre_mean": float(m.mean()),
                     "pre_std": float(sd.mean())})
    return pd.DataFrame(rows)


def statistics_table(model: nn.Module, inputs: torch.Tensor | Iterable[torch.Tensor],
                     batch_size: int = 500) -> pd.DataFrame:
    """:func:`layer_statistics` as one row per hidden layer, averaged over channels: columns
    ``layer, module, group, channels, pre_mean, pre_std, post_mean, post_std, zero_share,
    dead_share`` (``pre_std`` etc. are channel averages; ``dead_share``: channels that are
    zero on every input)."""
    rows = []
    for name, s in layer_statistics(model, inputs, batch_size).items():
        rows.append({"layer": s.index, "module": name, "group": s.group, "channels": s.channels,
                     "pre_mean": float(s.pre_mean.mean()), "pre_std": float(s.pre_std.mean()),
                     "post_mean": float(s.post_mean.mean()), "post_std": float(s.post_std.mean()),
                     "zero_share": float(s.zero_share.mean()), "dead_share": float((s.zero_share == 1).double().mean())})
    return pd.DataFrame(rows)
