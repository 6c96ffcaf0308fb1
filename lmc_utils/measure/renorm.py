"""Re-normalisation of interpolated (or pruned) networks: RESET, REPAIR, RESCALE, RESHIFT.

* **RESET** (Jordan et al. 2023): recompute a BatchNorm network's running statistics on data
  (:func:`reset`, i.e. :func:`lmc_utils.interpolation.reset_batchnorm` on a copy).
* **REPAIR** (Jordan et al. 2023): make every hidden channel's pre-activation mean and standard
  deviation equal to goal statistics, ``y <- (y - mu) / sigma * goal_std + goal_mean``; for an
  interpolated network the goal at ``lam`` is ``(1 - lam) * stats_A + lam * stats_B``
  (:func:`goal_statistics`).
* **RESCALE** / **RESHIFT** (Qu & Horvath 2024, §4.1): only the scale, ``y <- y / sigma * goal_std``,
  or only the shift, ``y <- y - mu + goal_mean``.

Where the correction acts (the *correction points*, :func:`correction_points`): at the output of
each hidden Linear/Conv's norm slot. Without a norm (plain models) the per-channel scale ``s`` and
shift ``t`` are folded into the preceding layer: its weight row ``c`` is multiplied by ``s[c]`` and
its bias becomes ``s * bias + t``. With LayerNorm (or BatchNorm) the correction is applied after the
norm, by adjusting the norm's affine weight and bias, as Jordan et al. do for LayerNorm networks
(a LayerNorm re-normalises its input, so a correction before it would be undone). The corrected
network is an ordinary model of the same class with no wrappers; scaling a row keeps zeros zero, so
a pruned model stays exactly as sparse. For ResNets the points are every conv's output: the stem,
both convs of each block and each 1x1 shortcut (an identity shortcut carries an already corrected
stream). A Fixup ResNet has the same points, at each conv's output before its scalar bias or
multiplier; its convs have no bias, so REPAIR and RESHIFT create per-channel ones (below).

**Bias-free models**: RESCALE never needs a bias. REPAIR and RESHIFT need a shift; when the layer
(or a bias-free LayerNorm) has no bias, one is created, so the returned model has extra
state-dict entries and no longer loads into a bias-free build of the architecture.

**Dead channels**: a channel whose measured standard deviation is (numerically) zero cannot be
rescaled; its scale is left at 1 (REPAIR/RESHIFT still shift its mean to the goal).

**One-pass vs sequential**: one-pass (``sequential=False``) is Jordan et al.'s implementation:
one pass over the data in which every point is already corrected with the statistics of the
current batch (BatchNorm in train mode, with the goal as its affine parameters) while the
uncorrected statistics are accumulated (average of batch means and of batch variances); then
all points are folded at once. Later points are thus measured behind batch-wise corrected
inputs, not behind the final folded correction, so with several batches they end slightly off
their goal (with one batch, one-pass equals sequential). Sequential (Qu & Horvath App. F.1)
measures and corrects one point at a time in forward order on the whole input, so every point
ends exactly on its goal (on the same inputs). Measuring all points in the *uncorrected*
network instead would compound the corrections of successive layers (in a collapsed midpoint
every scale is > 1) and is not offered.

**Data-independent mode** (:func:`per_batch`, Qu & Horvath App. F.2): the interpolated network
is never shown data before evaluation; it is evaluated "in train mode", i.e. each point is
normalised with the statistics of the evaluation batch itself and mapped onto the goal
statistics. For BatchNorm networks this is RESET's data-independent variant (BatchNorm uses batch
statistics). For other networks the goal statistics still have to come from the endpoints; Qu &
Horvath record them as running statistics during training, which our zoo does not do, so here
the endpoints' statistics are measured on training data once (:func:`goal_statistics`) and stored
with them; only the interpolated network's own statistics are data-free. The result is an
evaluation-only model with :class:`BatchCorrection` modules inserted, not an ordinary model.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import torch
from torch import nn

from .activations import output_moments
from ..core.data import TensorData
from .interpolation import reset_batchnorm
from ..core.models import MLP, VGG, ChannelLayerNorm, FixupResNet, ResNet

MODES = ("repair", "rescale", "reshift")
Goal = dict[str, tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class CorrectionPoint:
    """One place where channel statistics are corrected: the output of module ``name`` (a norm
    module, ``nn.Identity`` in plain models), produced by the Linear/Conv ``layer``."""

    name: str
    layer: str


def correction_points(model: nn.Module) -> list[CorrectionPoint]:
    """The correction points of a :mod:`lmc_utils.models` network in forward order."""
    if isinstance(model, MLP):
        return [CorrectionPoint(f"norms.{i}", f"hidden.{i}") for i in range(len(model.hidden))]
    if isinstance(model, VGG):
        return [CorrectionPoint(f"features.{i}.norm", f"features.{i}.conv") for i in range(len(model.features))]
    if isinstance(model, (ResNet, FixupResNet)):
        points = [CorrectionPoint("norm1", "conv1")]
        for s, stage in enumerate(model.stages):
            for b, block in enumerate(stage):
                p = f"stages.{s}.{b}"
                points += [CorrectionPoint(f"{p}.norm1", f"{p}.conv1"), CorrectionPoint(f"{p}.norm2", f"{p}.conv2")]
                if len(block.shortcut) > 0:
                    points.append(CorrectionPoint(f"{p}.shortcut.1", f"{p}.shortcut.0"))
        return points
    raise TypeError(f"no correction points for {type(model).__name__}; supported: MLP, VGG, ResNet, FixupResNet")


def _names(model: nn.Module) -> list[str]:
    return [p.name for p in correction_points(model)]


def goal_statistics(models: Sequence[nn.Module], weights: Sequence[float],
                    inputs: torch.Tensor | Iterable[torch.Tensor], batch_size: int = 500) -> Goal:
    """Per-channel goal statistics ``{point: (mean, std)}`` as the weighted combination of the
    given models' statistics on ``inputs`` (float64, CPU). REPAIR's goal at ``lam`` is
    ``goal_statistics([a, b], [1 - lam, lam], x)`` (B aligned to A); the unpruned model alone
    is ``goal_statistics([dense], [1.0], x)``. The models must share an architecture and width."""
    if len(models) != len(weights) or not models:
        raise ValueError(f"need one weight per model, got {len(models)} models and {len(weights)} weights")
    return combine_goals(model_statistics(models, inputs, batch_size), weights)


def model_statistics(models: Sequence[nn.Module], inputs: torch.Tensor | Iterable[torch.Tensor],
                     batch_size: int = 500) -> list[Goal]:
    """Each model's own per-channel ``{point: (mean, std)}`` on ``inputs`` (one forward pass each),
    to combine with :func:`combine_goals` (e.g. for several weightings of the same models)."""
    names = _names(models[0])
    batches = inputs if isinstance(inputs, torch.Tensor) else list(inputs)  # iterated once per model
    out = []
    for model in models:
        if _names(model) != names:
            raise ValueError("goal statistics need models of the same architecture")
        out.append(output_moments(model, names, batches, batch_size))
    return out


def combine_goals(goals: Sequence[Goal], weights: Sequence[float]) -> Goal:
    """The weighted combination ``sum_i w_i * goal_i`` of per-model statistics, mean and std alike."""
    if len(goals) != len(weights) or not goals:
        raise ValueError(f"need one weight per model, got {len(goals)} models and {len(weights)} weights")
    goal: Goal = {}
    for g, w in zip(goals, weights):
        for n, (m, s) in g.items():
            if n in goal:
                if goal[n][0].shape != m.shape:
                    raise ValueError(f"point {n!r}: {goal[n][0].numel()} vs {m.numel()} channels (different width?)")
                goal[n] = (goal[n][0] + w * m, goal[n][1] + w * s)
            else:
                goal[n] = (w * m, w * s)
    return goal


def _scale_shift(mode: str, mu: torch.Tensor, sigma: torch.Tensor, goal_mean: torch.Tensor,
                 goal_std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-channel ``(s, t)`` with corrected output ``s * y + t`` (``t`` None: no shift)."""
    dead = sigma <= 1e-6 * (mu.abs() + sigma.mean() + 1e-12)
    s = torch.where(dead, torch.ones_like(sigma), goal_std / sigma.clamp_min(1e-30))
    if mode == "repair":
        return s, goal_mean - s * mu
    if mode == "rescale":
        return s, None
    return torch.ones_like(sigma), goal_mean - mu  # reshift


def _new_bias(t: torch.Tensor, like: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(t.to(like.device, like.dtype).clone())


@torch.no_grad()
def _fold(model: nn.Module, point: CorrectionPoint, s: torch.Tensor, t: torch.Tensor | None) -> None:
    modules = dict(model.named_modules())
    norm, layer = modules[point.name], modules[point.layer]
    if isinstance(norm, (nn.LayerNorm, ChannelLayerNorm, nn.modules.batchnorm._BatchNorm)):
        target = norm
        if getattr(target, "weight", None) is None:
            raise ValueError(f"{point.name} has no affine weight to fold a correction into")
        w = target.weight
        w.mul_(s.to(w.device, w.dtype))
    elif isinstance(norm, nn.Identity):
        target = layer
        w = target.weight
        w.mul_(s.to(w.device, w.dtype).view(-1, *([1] * (w.ndim - 1))))
    else:
        raise TypeError(f"cannot fold a correction into {type(norm).__name__} at {point.name}")
    if target.bias is not None:
        target.bias.mul_(s.to(w.device, w.dtype))
        if t is not None:
            target.bias.add_(t.to(w.device, w.dtype))
    elif t is not None:
        target.bias = _new_bias(t, w)


def _check(model: nn.Module, goal: Mapping[str, tuple[torch.Tensor, torch.Tensor]], mode: str) -> list[CorrectionPoint]:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    points = correction_points(model)
    missing = [p.name for p in points if p.name not in goal]
    if missing:
        raise ValueError(f"goal statistics lack points {missing[:3]} (goal from a different architecture?)")
    return points


def _goal(goal, name: str, average: bool) -> tuple[torch.Tensor, torch.Tensor]:
    m, s = goal[name]
    m, s = m.double().cpu(), s.double().cpu()
    if average:
        m, s = torch.full_like(m, float(m.mean())), torch.full_like(s, float(s.mean()))
    return m, s


def correct(model: nn.Module, goal: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
            inputs: torch.Tensor | Iterable[torch.Tensor], mode: str = "repair", average: bool = False,
            sequential: bool = False, batch_size: int = 500) -> nn.Module:
    """A new model (same class, no wrappers; ``model`` is not modified) whose channel statistics
    at every correction point are moved onto ``goal`` (from :func:`goal_statistics`).

    Args:
        mode: ``repair`` (shift and scale), ``rescale`` (scale only), ``reshift`` (shift only).
        average: one goal std (and mean) per layer: the average over its channels.
        sequential: measure and correct point by point in forward order (otherwise one pass
            measures all points in the uncorrected model first).
        inputs: the data the statistics are measured on (a tensor or an iterable of batches).
    """
    points = _check(model, goal, mode)
    out = copy.deepcopy(model).eval()
    if not isinstance(inputs, torch.Tensor):
        inputs = list(inputs)
    measured = None if sequential else _one_pass_statistics(model, goal, inputs, mode, average, batch_size)
    for p in points:
        mu, sigma = (output_moments(out, [p.name], inputs, batch_size)[p.name] if sequential else measured[p.name])
        gm, gs = _goal(goal, p.name, average)
        s, t = _scale_shift(mode, mu, sigma, gm, gs)
        _fold(out, p, s, t)
    return out


def repair(model: nn.Module, goal, inputs, **kwargs) -> nn.Module:
    """:func:`correct` with ``mode="repair"``."""
    return correct(model, goal, inputs, mode="repair", **kwargs)


def rescale(model: nn.Module, goal, inputs, **kwargs) -> nn.Module:
    """:func:`correct` with ``mode="rescale"``."""
    return correct(model, goal, inputs, mode="rescale", **kwargs)


def reshift(model: nn.Module, goal, inputs, **kwargs) -> nn.Module:
    """:func:`correct` with ``mode="reshift"``."""
    return correct(model, goal, inputs, mode="reshift", **kwargs)


def reset(model: nn.Module, data: TensorData, batch_size: int = 256, max_samples: int | None = None) -> nn.Module:
    """RESET on a copy: BatchNorm running statistics recomputed on ``data``
    (:func:`lmc_utils.interpolation.reset_batchnorm`); models without BatchNorm come back unchanged."""
    return reset_batchnorm(copy.deepcopy(model), data, batch_size=batch_size, max_samples=max_samples)


class BatchCorrection(nn.Module):
    """Maps each channel of its input onto goal statistics using the statistics of the current
    batch (always, in train and eval mode): the data-independent correction of :func:`per_batch`.
    With ``record=True`` it also accumulates the batch means and variances of its input (float64)."""

    def __init__(self, goal_mean: torch.Tensor, goal_std: torch.Tensor, mode: str, eps: float = 0.0,
                 record: bool = False):
        super().__init__()
        self.register_buffer("goal_mean", goal_mean.float().clone())
        self.register_buffer("goal_std", goal_std.float().clone())
        self.mode, self.eps, self.record = mode, eps, record
        self.batches, self.mean_sum, self.var_sum = 0, 0.0, 0.0

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        dims = [0, 2, 3] if y.ndim == 4 else list(range(y.ndim - 1))
        shape = [1, -1, 1, 1] if y.ndim == 4 else [1] * (y.ndim - 1) + [-1]
        mu = y.mean(dims, keepdim=True)
        var = y.var(dims, unbiased=False, keepdim=True)
        if self.record:
            self.batches += 1
            self.mean_sum = self.mean_sum + mu.detach().double().flatten().cpu()
            self.var_sum = self.var_sum + var.detach().double().flatten().cpu()
        gm, gs = self.goal_mean.view(shape), self.goal_std.view(shape)
        if self.mode == "reshift":
            return y - mu + gm
        sigma = (var + self.eps).sqrt()
        dead = sigma <= 1e-6 * (mu.abs() + sigma.mean() + 1e-12)  # as in correct(): no rescaling
        scale = torch.where(dead, torch.ones_like(sigma), gs / sigma.clamp_min(1e-30))
        if self.mode == "repair":
            return (y - mu) * scale + gm
        return y * scale


def _one_pass_statistics(model: nn.Module, goal, inputs, mode: str, average: bool,
                         batch_size: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Jordan et al.'s statistics pass: every point corrected batch-wise while its uncorrected
    statistics (mean of batch means, root of the mean of batch variances) are accumulated."""
    probe = per_batch(model, goal, mode=mode, average=average)
    recorders = {n.rpartition(".")[0]: m for n, m in probe.named_modules() if isinstance(m, BatchCorrection)}
    for m in recorders.values():
        m.record = True
    device = next(probe.parameters()).device
    with torch.no_grad():
        for x in (inputs.split(batch_size) if isinstance(inputs, torch.Tensor) else inputs):
            probe(x.to(device))
    out = {}
    for wrapped, m in recorders.items():
        if m.batches == 0:
            raise ValueError("no inputs to measure statistics on")
        out[wrapped] = (m.mean_sum / m.batches, (m.var_sum / m.batches).sqrt())
    return out


def per_batch(model: nn.Module, goal: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
              mode: str = "repair", average: bool = False) -> nn.Module:
    """Data-independent re-normalisation (evaluation-only copy of ``model``).

    ``goal=None``: BatchNorm networks use the statistics of each evaluation batch instead of
    running statistics (data-independent RESET). Otherwise a :class:`BatchCorrection` is
    inserted after every correction point: each evaluation batch is mapped onto ``goal`` with
    its own statistics (data-independent REPAIR/RESCALE/RESHIFT). Batch statistics make the
    outputs depend on the evaluation batch size (use batches of a few hundred)."""
    out = copy.deepcopy(model).eval()
    if goal is None:
        bns = [m for m in out.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not bns:
            raise ValueError("per_batch(goal=None) is data-independent RESET and needs BatchNorm layers")
        for m in bns:
            m.track_running_stats = False
            m.running_mean = None
            m.running_var = None
            m.num_batches_tracked = None
        return out
    for p in _check(out, goal, mode):
        parent_name, _, attr = p.name.rpartition(".")
        parent = out.get_submodule(parent_name) if parent_name else out
        gm, gs = _goal(goal, p.name, average)
        dev = next(out.parameters()).device
        wrapped = nn.Sequential(getattr(parent, attr) if not attr.isdigit() else parent[int(attr)],
                                BatchCorrection(gm, gs, mode).to(dev))
        if attr.isdigit():
            parent[int(attr)] = wrapped
        else:
            setattr(parent, attr, wrapped)
    return out
