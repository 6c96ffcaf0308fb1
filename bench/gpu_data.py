"""The GPU data path: whole datasets as device tensors, crop + flip on the device, bf16 training steps.

What CPU training does one step at a time on the host becomes device work when CUDA is there:

- :func:`to_device`: a :class:`~lmc_utils.data.TensorData` split moved to the device once, images in
  the channels-last layout (what cuDNN's fast convolutions read; models get it from
  :func:`lmc_utils.device.place`).
- :func:`augment`: random crop (4-pixel zero padding) and horizontal flip of a whole batch on its
  device, the offsets and flips drawn from a seeded generator *on that device*
  (:func:`generator`), so no random numbers cross the bus; :func:`crop_flip` is the deterministic
  part (offsets given), the same crop and flip as :func:`lmc_utils.zoo` applies on the CPU.
- :func:`train_epoch`: one epoch of shuffled mini-batches (order from the device generator), the
  forward pass under ``torch.autocast`` in bfloat16 (``bf16=True``; weights, gradients and the
  optimiser stay float32, and the loss is taken in float32), optionally through ``torch.compile``
  (:func:`compiled`).
- :func:`evaluate`: loss and accuracy in float32 with autocast switched off, whatever context it
  is called from: evaluation and the statistics matching uses are never computed in bf16.

On CPU every function runs too (``torch.autocast`` has a CPU bfloat16 mode), which is how
``tests/test_gpu_data.py`` checks it: bf16 training gives float32 training's results up to
autocast rounding, and with ``bf16=False`` it is plain float32 SGD. ``bench/bench_epoch.py`` times
a ResNet20 epoch through it. The zoo's cached models are still trained by
:func:`lmc_utils.zoo.train` (float32, CPU random streams): bf16 weights are other weights and
would need their own cache key.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from lmc_utils.core.data import TensorData

PADDING = 4  # pixels of zero padding before the random crop


def generator(device: str | torch.device, seed: int) -> torch.Generator:
    """A generator on ``device`` seeded with ``seed`` (the device's own random stream)."""
    return torch.Generator(device=torch.device(device)).manual_seed(seed)


def to_device(data: TensorData, device: str | torch.device) -> TensorData:
    """``data`` with its tensors on ``device``; images (4-d) in channels-last layout, float32."""
    dev = torch.device(device)
    x = data.x.to(dev, dtype=torch.float32)
    if x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return TensorData(x=x, y=data.y.to(dev), num_classes=data.num_classes, name=data.name, split=data.split)


def crop_flip(x: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Crop every image of ``x`` (``[n, c, h, w]``) from its zero-padded copy at column offset
    ``dx[i]`` and row offset ``dy[i]`` (0 .. 2 * PADDING), then mirror it horizontally where
    ``flip[i]``; one gather for the whole batch. Keeps ``x``'s memory layout."""
    n, c, h, w = x.shape
    padded = F.pad(x, (PADDING, PADDING, PADDING, PADDING))
    rows = dy.view(n, 1) + torch.arange(h, device=x.device).view(1, h)
    cols = dx.view(n, 1) + torch.arange(w, device=x.device).view(1, w)
    cols = torch.where(flip.view(n, 1), cols.flip(1), cols)
    idx_n = torch.arange(n, device=x.device).view(n, 1, 1)
    out = padded.permute(0, 2, 3, 1)[idx_n, rows.view(n, h, 1), cols.view(n, 1, w)]  # [n, h, w, c]
    out = out.permute(0, 3, 1, 2)  # a channels-last view of [n, c, h, w]
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return out.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random crop and flip (:func:`crop_flip`) with offsets and flips drawn from ``gen``, which
    must live on ``x``'s device (:func:`generator`)."""
    if gen.device.type != x.device.type:
        raise ValueError(f"augment: the generator is on {gen.device}, the batch on {x.device}; "
                         f"make it with gpu_data.generator({str(x.device)!r}, seed)")
    n = x.shape[0]
    dx = torch.randint(0, 2 * PADDING + 1, (n,), generator=gen, device=x.device)
    dy = torch.randint(0, 2 * PADDING + 1, (n,), generator=gen, device=x.device)
    flip = torch.rand(n, generator=gen, device=x.device) < 0.5
    return crop_flip(x, dx, dy, flip)


def compiled(model: nn.Module, enabled: bool) -> nn.Module:
    """``torch.compile(model)`` when ``enabled`` (it shares the parameters), else ``model``."""
    return torch.compile(model) if enabled else model


def train_epoch(model: nn.Module, data: TensorData, opt: torch.optim.Optimizer, batch_size: int,
                gen: torch.Generator, augment_images: bool = True, bf16: bool = True,
                step: Callable[[], None] | None = None) -> dict[str, float]:
    """One epoch of SGD over ``data`` (on the model's device, :func:`to_device`) in an order drawn
    from ``gen``; images augmented on the device (``augment_images``); the forward pass in
    bfloat16 autocast when ``bf16``, the loss in float32. ``step`` (e.g. a scheduler's) runs after
    every optimiser step. Returns ``train_loss`` (mean of the batch losses, weighted by batch
    size), ``train_accuracy`` and ``seconds`` (synchronised with the device)."""
    dev = data.x.device
    model.train()
    n = len(data)
    order = torch.randperm(n, generator=gen, device=dev)
    loss_sum = torch.zeros((), device=dev)
    correct = torch.zeros((), device=dev, dtype=torch.long)
    _sync(dev)
    t0 = time.perf_counter()
    for i in range(0, n, batch_size):
        idx = order[i:i + batch_size]
        x, y = data.x[idx], data.y[idx]
        if augment_images and x.ndim == 4:
            x = augment(x, gen)
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step is not None:
            step()
        loss_sum += loss.detach() * y.shape[0]
        correct += (logits.detach().argmax(1) == y).sum()
    _sync(dev)
    seconds = time.perf_counter() - t0
    out = {"train_loss": float(loss_sum) / n, "train_accuracy": float(correct) / n, "seconds": seconds}
    if not math.isfinite(out["train_loss"]):
        raise FloatingPointError(f"training diverged (loss {out['train_loss']})")
    return out


@torch.no_grad()
def evaluate(model: nn.Module, data: TensorData, batch_size: int = 1024) -> tuple[float, float]:
    """``(mean cross-entropy, accuracy)`` of ``model`` on ``data`` in eval mode, in float32: autocast
    is switched off even inside an autocast region. The model's mode is restored."""
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    total, correct = torch.zeros((), device=dev, dtype=torch.float64), torch.zeros((), device=dev, dtype=torch.long)
    with torch.autocast(device_type=dev.type, enabled=False):
        for i in range(0, len(data), batch_size):
            x = data.x[i:i + batch_size].to(dev, dtype=torch.float32)
            y = data.y[i:i + batch_size].to(dev)
            logits = model(x)
            if logits.dtype != torch.float32:
                raise RuntimeError(f"evaluate: logits came out as {logits.dtype}, not float32")
            total += F.cross_entropy(logits, y, reduction="sum").double()
            correct += (logits.argmax(1) == y).sum()
    model.train(was_training)
    return float(total) / len(data), float(correct) / len(data)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
