"""Evaluating a model on a whole in-memory dataset: mean cross-entropy loss and accuracy."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..core import memo
from ..core.data import TensorData


@memo.memoized("evaluation")
@torch.no_grad()
def evaluate(model: nn.Module, data: TensorData, batch_size: int = 256) -> tuple[float, float]:
    """Return ``(mean cross-entropy loss in nats, accuracy in [0, 1])`` in eval mode.

    Inputs are moved to the model's device batch by batch; the model's train/eval mode is restored.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total_loss, correct = 0.0, 0
    for x, y in data.batches(batch_size):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        logits = model(x)
        total_loss += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
    model.train(was_training)
    n = len(data)
    return total_loss / n, correct / n
