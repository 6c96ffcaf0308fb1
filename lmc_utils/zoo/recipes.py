"""Recipes of related configs: spawned children, retrained copies, a width changed, pairs of models."""

from __future__ import annotations

from typing import Sequence

from .config import TrainConfig, Trained
from .store import get_many


def spawn(config: TrainConfig, parent_epochs: int, data_seeds: tuple[int, ...] = (1, 2)) -> list[TrainConfig]:
    """Configs of children spawned from a shared parent (Frankle et al. 2020): the parent is
    ``config`` trained for ``parent_epochs``; each child continues from it for the remaining
    ``config.epochs - parent_epochs`` epochs with its own data order (``data_seeds``). Children
    restart the optimiser state and learning-rate schedule. All are cached like any model."""
    if not 0 < parent_epochs < config.epochs:
        raise ValueError(f"parent_epochs must be between 1 and epochs - 1 = {config.epochs - 1}, got {parent_epochs}")
    parent = config.replace(epochs=parent_epochs)
    return [config.replace(parent=parent, epochs=config.epochs - parent_epochs, data_seed=s) for s in data_seeds]


def retrain_config(config: TrainConfig, phases: Sequence[tuple[float, int]], data_seed: int = 1) -> TrainConfig:
    """The config of a copy of ``config``'s trained model retrained with a piecewise-constant
    learning rate: ``phases`` is ``[(lr, epochs)]`` (one phase, constant) or ``[(large_lr, epochs),
    (small_lr, epochs)]`` (Qu & Horvath 2024, App. E.2: out of the basin at a large rate, back at a
    small one). The copy starts from the cached model of ``config`` (its ``parent``) with a fresh
    optimiser and its own data order (``data_seed``); everything else is ``config``'s. It is trained
    one by one (``trainer="single"``), so that its history records ``l2_from_start`` per epoch: the
    L2 distance (BatchNorm statistics included) to the original."""
    phases = [(float(lr), int(e)) for lr, e in phases]
    if not 1 <= len(phases) <= 2 or any(lr <= 0 or e < 1 for lr, e in phases):
        raise ValueError(f"phases must be one or two (lr > 0, epochs >= 1) pairs, got {phases}")
    (lr, first), *rest = phases
    schedule = dict(schedule="constant", milestones=(), gamma=0.1) if not rest else \
        dict(schedule="step", milestones=(first,), gamma=rest[0][0] / lr)
    return config.replace(parent=config, lr=lr, epochs=first + sum(e for _, e in rest), warmup_epochs=0.0,
                          swa_epochs=0, swa_lr=None, trainer="single", data_seed=data_seed, **schedule)


def with_width(config: TrainConfig, width: float) -> TrainConfig:
    """``config`` with its hidden width set: ``width`` for MLPs, ``width_multiplier`` for conv nets."""
    key = "width" if config.arch == "mlp" else "width_multiplier"
    return config.replace(model={**config.model, key: width})


def independent_pairs(base: TrainConfig, n_pairs: int, seed: int = 0, device="auto") -> list[tuple[Trained, Trained]]:
    """``n_pairs`` pairs of independently trained models: seeds ``(seed + 2i, seed + 2i + 1)``."""
    configs = [base.replace(seed=seed + j) for j in range(2 * n_pairs)]
    models = get_many(configs, device=device)
    return [(models[2 * i], models[2 * i + 1]) for i in range(n_pairs)]


def spawned_pairs(base: TrainConfig, n_pairs: int, parent_epochs: int, seed: int = 0,
                  device="auto") -> list[tuple[Trained, Trained]]:
    """``n_pairs`` pairs of children spawned from their own parent (parent seeds ``seed + 1000 + i``).
    One :func:`get_many` call, so batched parents train together, then batched children."""
    children = [c for i in range(n_pairs) for c in spawn(base.replace(seed=seed + 1000 + i), parent_epochs)]
    models = get_many(children, device=device)
    return [(models[2 * i], models[2 * i + 1]) for i in range(n_pairs)]
