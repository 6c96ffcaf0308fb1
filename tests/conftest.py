"""Shared fixtures: tests run offline, with caches and figures in a temporary folder."""

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
THREADS = int(os.environ.get("OMP_NUM_THREADS") or 0) or max(1, min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Never download; write models and figures under tmp_path; keep LMC_DATA_DIR as given. Torch
    threads: ``OMP_NUM_THREADS`` where set (``make test``: 1 per xdist worker; more would oversubscribe
    the cores, which made small-op tests 10-20x slower), else up to 2."""
    monkeypatch.setenv("LMC_OFFLINE", "1")
    monkeypatch.setenv("LMC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LMC_FIGURES_DIR", str(tmp_path / "figures"))
    torch.set_num_threads(THREADS)


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
