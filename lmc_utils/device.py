"""Choosing the compute device: ``"auto"`` picks CUDA when available, else CPU."""

from __future__ import annotations

import torch


def get_device(device: str | torch.device = "auto") -> torch.device:
    """Resolve ``"auto" | "cpu" | "cuda" | "cuda:N" | "mps"`` to a :class:`torch.device`.

    Raises ``ValueError`` for an unknown name and ``RuntimeError`` when CUDA is asked for
    but not available (rather than silently falling back).
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available; use 'auto' or 'cpu'")
    return dev
