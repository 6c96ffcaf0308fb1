"""Training configs: :class:`TrainConfig` (everything that determines a trained model, and its cache key)
and :class:`Trained` (a trained model with its config and history).

The key (:attr:`TrainConfig.key`) hashes the identifying fields and :data:`ZOO_VERSION`, the deliberate
switch for a change of training that the code digest (:func:`lmc_utils.zoo.store.code_digest`) cannot see.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..core import data as data_mod
from ..core import models
from ..core.checkpoint import config_hash


ZOO_VERSION = 1  # bump when training code changes in a way that changes results


OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")


SCHEDULES = ("constant", "step", "cosine")


TRAINERS = ("single", "batched")


INPUT_SHAPES = {"moons": (2,), "mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28),
                "cifar10": (3, 32, 32), "cifar100": (3, 32, 32)}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model.

    Attributes:
        dataset: ``moons | mnist | fashion_mnist | cifar10 | cifar100``.
        arch: ``mlp | vgg | resnet20``; ``model``: that family's keyword arguments
            (input/output sizes are filled in from the dataset).
        epochs, batch_size: training length and mini-batch size.
        optimizer: ``sgd`` (with ``momentum``), ``adam``, ``adamw`` or ``rmsprop``.
        lr, weight_decay: peak learning rate and (L2 / decoupled for AdamW) weight decay.
        schedule: ``constant``, ``step`` (multiply by ``gamma`` at each epoch in ``milestones``)
            or ``cosine`` (to zero at the end); ``warmup_epochs`` of linear warm-up come first.
        seed: initialisation seed; ``data_seed``: data order/augmentation seed (``None``: ``seed``).
        train_subset: train on a fixed random subset of this many examples (``None``: all),
            drawn with ``subset_seed`` so that every model of a study sees the same examples
            (``data.load(..., subset=n, seed=subset_seed)`` gives them, and any smaller subset
            with the same seed is contained in it).
        augment: random crop (padding 4) and horizontal flip, for CIFAR-style training.
        parent: start from this config's trained weights instead of a fresh init (spawning,
            fine-tuning); the parent is trained and cached first.
        swa_epochs: after the ``epochs`` above, continue SGD for this many epochs with
            ``torch.optim.swa_utils`` (``SWALR`` to the constant ``swa_lr``, default ``lr``), keeping
            the weights at the end of each epoch as samples and their running average
            (``AveragedModel``; BN statistics recomputed by ``update_bn``). See :class:`Trained`.
        trainer: ``single`` (:func:`train`, one model at a time) or ``batched`` (:func:`train_many`:
            trained together with the configs that differ from it only in ``seed`` / ``data_seed``;
            MLPs without augmentation). The weights differ from ``single`` by float rounding only,
            but the two are separate cache entries.
    """

    dataset: str
    arch: str
    model: dict[str, Any] = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup_epochs: float = 0.0
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    seed: int = 0
    data_seed: int | None = None
    train_subset: int | None = None
    subset_seed: int = 0
    augment: bool = False
    parent: "TrainConfig | None" = None
    swa_epochs: int = 0
    swa_lr: float | None = None
    trainer: str = "single"

    def __post_init__(self) -> None:
        for name, (kinds, text) in _FIELD_TYPES.items():
            value = getattr(self, name)
            if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
                raise ValueError(f"TrainConfig: {name} must be {text}, got {value!r}")
        if self.dataset not in data_mod.DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; choose one of {', '.join(data_mod.DATASETS)}")
        if self.arch not in models.ARCHITECTURES:
            raise ValueError(f"unknown arch {self.arch!r}; choose one of {', '.join(models.ARCHITECTURES)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if self.trainer not in TRAINERS:
            raise ValueError(f"unknown trainer {self.trainer!r}; choose one of {', '.join(TRAINERS)}")
        if self.trainer == "batched" and _batching_problem(self):
            raise ValueError(f"trainer='batched' cannot train this config: {_batching_problem(self)}")
        if self.epochs < 0 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError(f"need epochs >= 0, batch_size >= 1, lr > 0 (got {self.epochs}, {self.batch_size}, {self.lr})")
        if self.train_subset is not None and self.train_subset < 1:
            raise ValueError(f"TrainConfig: train_subset must be a positive integer or None, got {self.train_subset!r}")
        models.check_arguments(self.arch, dict(self.model))
        object.__setattr__(self, "milestones", tuple(self.milestones))
        if isinstance(self.parent, dict):
            object.__setattr__(self, "parent", TrainConfig.from_dict(self.parent))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        d["parent"] = self.parent.to_dict() if self.parent is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {sorted(unknown)}")
        return cls(**d)

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def identity(self) -> dict[str, Any]:
        """The fields that identify the model: :meth:`to_dict` without the fields added after the
        first release while they hold their defaults (so existing cache entries keep their key)."""
        d = self.to_dict()
        for name, default in _LATER_FIELDS.items():
            if d.get(name) == default:
                d.pop(name)
        if d.get("parent") is not None:
            d["parent"] = self.parent.identity()
        return d

    @property
    def key(self) -> str:
        """Content address: hash of the identifying config (:meth:`identity`) and the zoo version."""
        return config_hash({"zoo_version": ZOO_VERSION, **self.identity()})


_INT, _NUM = (int,), (int, float)


_FIELD_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "dataset": ((str,), "a string"), "arch": ((str,), "a string"), "model": ((dict,), "a mapping"),
    "epochs": (_INT, "an integer"), "batch_size": (_INT, "an integer"), "optimizer": ((str,), "a string"),
    "lr": (_NUM, "a number"), "momentum": (_NUM, "a number"), "weight_decay": (_NUM, "a number"),
    "schedule": ((str,), "a string"), "warmup_epochs": (_NUM, "a number"), "milestones": ((list, tuple), "a list"),
    "gamma": (_NUM, "a number"), "seed": (_INT, "an integer"), "data_seed": ((int, type(None)), "an integer or None"),
    "train_subset": ((int, type(None)), "an integer or None"), "subset_seed": (_INT, "an integer"),
    "augment": ((bool,), "true or false"), "swa_epochs": (_INT, "an integer"),
    "swa_lr": ((int, float, type(None)), "a number or None"), "trainer": ((str,), "a string"),
}


_LATER_FIELDS = {"swa_epochs": 0, "swa_lr": None, "trainer": "single"}


@dataclass
class Trained:
    """A trained model with its config, cache key and training history.

    With ``config.swa_epochs > 0``: ``model`` holds the last SGD iterate, ``samples`` the state
    dicts at the end of each SWA epoch and ``swa_state`` their average (``AveragedModel``).
    """

    model: nn.Module
    config: TrainConfig
    key: str
    history: list[dict[str, float]]
    samples: list[dict[str, torch.Tensor]] = field(default_factory=list)
    swa_state: dict[str, torch.Tensor] | None = None

    @property
    def state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}


def _batching_problem(config: TrainConfig) -> str | None:
    """Why ``config`` cannot be trained by :func:`train_many` (``None``: it can)."""
    norm = config.model.get("norm", "none" if config.arch == "mlp" else "batchnorm")
    if norm == "batchnorm":
        return ("field 'model.norm' is 'batchnorm': BatchNorm's running statistics are buffers that "
                "the batched forward does not keep per model; use trainer='single'")
    if config.arch not in ("mlp", "vgg"):
        return (f"field 'arch' is {config.arch!r}: trainer='batched' trains MLPs and VGGs (LayerNorm or no "
                f"norm) only; use trainer='single'")
    if config.augment:
        return "field 'augment' is True: trainer='batched' does not augment; use trainer='single'"
    return None


def _group_identity(config: TrainConfig) -> dict[str, Any]:
    d = config.identity()
    d.pop("seed", None)
    d.pop("data_seed", None)
    if config.parent is not None:
        d["parent"] = _group_identity(config.parent)
    return d


def group_key(config: TrainConfig) -> str:
    """Configs with equal group keys differ only in ``seed`` / ``data_seed`` (also their parents')
    and can be trained together by :func:`train_many`."""
    return config_hash(_group_identity(config))


def describe(config: TrainConfig) -> str:
    """A short name of a config for progress lines: ``mlp {'width': 512, 'depth': 3} on mnist, seed 3, 5 epochs``."""
    text = f"{config.arch} {config.model} on {config.dataset}, seed {config.seed}, {config.epochs} epochs"
    if config.swa_epochs:
        text += f" + {config.swa_epochs} SWA"
    return text + (" (from a parent)" if config.parent is not None else "")
