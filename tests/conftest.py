"""Shared fixtures: tests run offline, with caches and figures in a temporary folder."""

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Never download; write models and figures under tmp_path; keep LMC_DATA_DIR as given."""
    monkeypatch.setenv("LMC_OFFLINE", "1")
    monkeypatch.setenv("LMC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LMC_FIGURES_DIR", str(tmp_path / "figures"))
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def has_mnist() -> bool:
    root = Path(os.environ.get("LMC_DATA_DIR", REPO / "data"))
    return (root / "MNIST" / "raw").is_dir()


needs_mnist = pytest.mark.skipif(not has_mnist(), reason="MNIST not in LMC_DATA_DIR")


def fit_briefly(model: torch.nn.Module, data, steps: int = 30, lr: float = 0.01) -> torch.nn.Module:
    """A few full-batch Adam steps on ``data`` (a TensorData) so ``model`` is not at its random
    initialisation; returns it in eval mode."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(data.x), data.y).backward()
        opt.step()
    return model.eval()
