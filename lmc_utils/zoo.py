"""The model zoo: train a model from a config, or fetch it from the on-disk cache.

Training sits behind one function, :func:`train`, driven by a frozen :class:`TrainConfig`
(dataset, architecture, optimiser, schedule, seeds, epochs, ...). :func:`get` returns the
cached model for a config, training it first when the cache has no valid entry. Entries
are content-addressed by the hash of the full config (a child's hash includes its parent's
config) and verified on load (:mod:`lmc_utils.cache`): a corrupt entry is reported and
retrained, never used.

Batched training: configs with ``trainer="batched"`` are trained together with the other
configs of their group (equal in everything but ``seed`` / ``data_seed``) by :func:`train_many`,
one batched forward and backward pass over the stacked weights per step
(:meth:`lmc_utils.models.MLP.forward_stacked`); each model keeps its own initialisation and data
order, so its weights equal one-by-one :func:`train` up to float rounding (batched matrix
products may round differently), and do not depend on which other models share its batch.
``trainer`` is part of the cache key (``single`` keeps the keys of earlier releases).

Determinism and provenance: the same config gives the same weights on the same CPU, torch build
and thread count (initialisation from ``seed``, data order and augmentation from ``data_seed``,
both through private generators). A cache entry is stored under its config key *and* an
environment key (:func:`environment`: torch version, device type, torch thread count and
:func:`code_digest` of the code that determines the weights), so an entry made under another
environment is never reused: it is a miss, reported in the log, and both entries coexist.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import math
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import SWALR, AveragedModel, update_bn
from tqdm.auto import tqdm

from . import data as data_mod
from . import models
from .cache import CorruptCheckpoint, config_hash, load_checkpoint, save_checkpoint
from .device import get_device, place
from .paths import cache_dir
from .progress import note

log = logging.getLogger(__name__)

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


def build_model(config: TrainConfig) -> nn.Module:
    """The (untrained) model of a config, initialised from ``config.seed`` without touching
    the global RNG."""
    shape = INPUT_SHAPES[config.dataset]
    kwargs = dict(config.model)
    kwargs.setdefault("num_classes", data_mod.NUM_CLASSES[config.dataset])
    if config.arch == "mlp":
        kwargs.setdefault("in_features", math.prod(shape))
    else:
        if len(shape) != 3:
            raise ValueError(f"{config.arch} needs image data, {config.dataset} is not")
        kwargs.setdefault("in_channels", shape[0])
        if config.arch == "vgg":
            kwargs.setdefault("image_size", shape[1])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return models.build(config.arch, **kwargs)


def _optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    params = list(params)
    # fused: one kernel per tensor and step for SGD, Adam and AdamW on CPU and CUDA, several times
    # faster than foreach on CPU, where the update is memory-bound; RMSprop has no fused kernel
    fast = {"fused": True} if params and params[0].device.type in ("cpu", "cuda") else {"foreach": True}
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                               **fast)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, **fast)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, **fast)
    return torch.optim.RMSprop(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                               foreach=True)


def lr_factor(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Multiplier of the peak learning rate at optimisation step ``step`` (0-based)."""
    epoch = step / steps_per_epoch
    warmup_steps = config.warmup_epochs * steps_per_epoch
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if config.schedule == "step":
        return config.gamma ** sum(epoch >= m for m in config.milestones)
    if config.schedule == "cosine":
        total = config.epochs * steps_per_epoch
        progress = (step - warmup_steps) / max(1.0, total - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return 1.0


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random crop with 4-pixel zero padding and random horizontal flip, per example."""
    n, _, h, w = x.shape
    padded = F.pad(x, (4, 4, 4, 4))
    dx = torch.randint(0, 9, (n,), generator=gen).to(x.device)
    dy = torch.randint(0, 9, (n,), generator=gen).to(x.device)
    flip = (torch.rand(n, generator=gen) < 0.5).to(x.device)
    rows = (dy.view(n, 1) + torch.arange(h, device=x.device).view(1, h))  # [n, h]
    cols = (dx.view(n, 1) + torch.arange(w, device=x.device).view(1, w))  # [n, w]
    cols = torch.where(flip.view(n, 1), cols.flip(1), cols)
    idx_n = torch.arange(n, device=x.device).view(n, 1, 1)
    out = padded.permute(0, 2, 3, 1)[idx_n, rows.view(n, h, 1), cols.view(n, 1, w)]  # [n, h, w, c]
    return out.permute(0, 3, 1, 2).contiguous()


def train(config: TrainConfig, device: str | torch.device = "auto", init_state: dict | None = None,
          progress: bool = True) -> Trained:
    """Train a model from scratch (or from ``init_state``) as ``config`` says; nothing is cached.

    Returns the model in eval mode with a per-epoch history of train loss, train accuracy
    (running averages over the epoch), learning rate and seconds; with ``config.swa_epochs``
    also the SWA samples and their average (see :class:`Trained`). A config with
    ``trainer="batched"`` is trained by ``train_many([config])``, so that its weights are those
    its cache key stands for.
    """
    if config.trainer == "batched":
        return train_many([config], device=device, init_states=[init_state], progress=progress)[0]
    dev = get_device(device)
    model = build_model(config)
    if init_state is not None:
        model.load_state_dict(init_state)
    place(model, dev)
    start = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    data_seed = config.seed if config.data_seed is None else config.data_seed
    train_data = data_mod.load(config.dataset, "train", subset=config.train_subset,
                               seed=config.subset_seed, device=dev)
    gen = torch.Generator().manual_seed(data_seed)
    opt = _optimizer(config, model.parameters())
    steps_per_epoch = math.ceil(len(train_data) / config.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(config, s, steps_per_epoch))
    history: list[dict[str, float]] = []

    def run_epoch(epoch: int, per_step: bool) -> None:
        t0 = time.perf_counter()
        model.train()
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), device=dev, dtype=torch.long)
        lr = opt.param_groups[0]["lr"]
        for x, y in train_data.batches(config.batch_size, shuffle=True, generator=gen):
            if config.augment and x.ndim == 4:
                x = _augment(x, gen)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if per_step:
                sched.step()
            loss_sum += loss.detach() * y.shape[0]
            correct += (logits.detach().argmax(1) == y).sum()
        n = len(train_data)
        row = {"epoch": epoch + 1, "train_loss": float(loss_sum) / n, "train_accuracy": float(correct) / n,
               "lr": lr, "seconds": time.perf_counter() - t0,
               "l2_from_start": _l2(model.state_dict(), start)}
        if not math.isfinite(row["train_loss"]):
            raise FloatingPointError(f"training diverged at epoch {epoch + 1} (loss {row['train_loss']}); "
                                     f"lower the learning rate of {config.arch} on {config.dataset}")
        history.append(row)
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", acc=f"{row['train_accuracy']:.3f}")

    bar = tqdm(range(config.epochs + config.swa_epochs), desc=f"train {config.arch} on {config.dataset} "
               f"(seed {config.seed})", disable=not progress, leave=False)
    samples: list[dict[str, torch.Tensor]] = []
    swa_state = None
    for epoch in bar:
        if epoch < config.epochs:
            run_epoch(epoch, per_step=True)
            continue
        if epoch == config.epochs:  # start of the SWA phase
            swa_model = AveragedModel(model)
            swa_sched = SWALR(opt, swa_lr=config.swa_lr if config.swa_lr is not None else config.lr,
                              anneal_epochs=1, anneal_strategy="linear")
        run_epoch(epoch, per_step=False)
        swa_sched.step()
        swa_model.update_parameters(model)
        samples.append({k: v.detach().clone() for k, v in model.state_dict().items()})
    if config.swa_epochs:
        update_bn([x for x, _ in train_data.batches(config.batch_size)], swa_model, device=dev)
        swa_state = {k: v.detach().clone() for k, v in swa_model.module.state_dict().items()}
    model.eval()
    return Trained(model=model, config=config, key=config.key, history=history, samples=samples, swa_state=swa_state)


def _l2(state: dict[str, torch.Tensor], start: dict[str, torch.Tensor]) -> float:
    """L2 distance of ``state`` from ``start`` over the floating-point entries of ``start``
    (weights and BatchNorm running statistics)."""
    return math.sqrt(sum(float((state[k].detach().double() - v.double()).pow(2).sum()) for k, v in start.items()))


def _batching_problem(config: TrainConfig) -> str | None:
    """Why ``config`` cannot be trained by :func:`train_many` (``None``: it can)."""
    norm = config.model.get("norm", "none" if config.arch == "mlp" else "batchnorm")
    if norm == "batchnorm":
        return ("field 'model.norm' is 'batchnorm': BatchNorm's running statistics are buffers that "
                "the batched forward does not keep per model; use trainer='single'")
    if config.arch != "mlp":
        return f"field 'arch' is {config.arch!r}: trainer='batched' trains MLPs only; use trainer='single'"
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


def _check_group(configs: Sequence[TrainConfig]) -> None:
    if not configs:
        raise ValueError("train_many needs at least one config")
    first = configs[0]
    for c in configs:
        if c.trainer != "batched":
            raise ValueError(f"train_many trains configs with trainer='batched'; field 'trainer' is {c.trainer!r} "
                             f"(seed {c.seed}); use config.replace(trainer='batched')")
        problem = _batching_problem(c)
        if problem:
            raise ValueError(f"cannot batch-train {c.arch} on {c.dataset} (seed {c.seed}): {problem}")
        for f in dataclasses.fields(TrainConfig):
            if f.name in ("seed", "data_seed", "parent"):
                continue
            a, b = getattr(first, f.name), getattr(c, f.name)
            if a != b:
                raise ValueError(f"train_many trains configs that differ only in seed and data_seed; "
                                 f"field {f.name!r} differs ({a!r} vs {b!r})")
        if (first.parent is None) != (c.parent is None) or \
                (c.parent is not None and _group_identity(first.parent) != _group_identity(c.parent)):
            raise ValueError("train_many trains configs that differ only in seed and data_seed; field 'parent' "
                             "differs in more than its seeds")


PASS_BYTES = 16 * 2**20  # largest tensor of one batched pass in train_many (below glibc's 32 MiB mmap ceiling)


def models_per_pass(template: nn.Module, batch_size: int, budget: int | None = None) -> int:
    """How many models :func:`train_many` puts through one batched forward and backward pass: as
    many as keep the pass's largest float32 tensor (its parameters' rows or gradient, a batch of
    inputs or of one layer's activations) within ``budget`` bytes (default :data:`PASS_BYTES`), at
    least one."""
    budget = PASS_BYTES if budget is None else budget
    widths = [layer.out_features for layer in template.hidden]
    per_model = 4 * max(sum(w.numel() for w in template.parameters()),
                        batch_size * max([template.hidden[0].in_features, *widths]))
    return max(1, budget // per_model)


class _RowsAsStacked(torch.autograd.Function):
    """The stacked parameters (``[models, *shape]`` each) as views of the rows of ``flat``
    (``[models, P]``, a model's parameters one after another). Its backward writes every gradient into
    one ``[models, P]`` tensor, where slicing's backward would add up one such tensor per parameter."""

    @staticmethod
    def forward(ctx, flat: torch.Tensor, layout: tuple[tuple[int, torch.Size], ...]):
        ctx.layout, ctx.flat_shape = layout, flat.shape
        return tuple(flat[:, o:o + math.prod(s)].view(flat.shape[0], *s) for o, s in layout)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor):
        out = grads[0].new_zeros(ctx.flat_shape)
        for (o, s), g in zip(ctx.layout, grads):
            if g is not None:
                out[:, o:o + math.prod(s)] = g.reshape(out.shape[0], -1)
        return out, None


def train_many(configs: Sequence[TrainConfig], device: str | torch.device = "auto",
               init_states: Sequence[dict | None] | None = None, progress: bool = True) -> list[Trained]:
    """Train several configs that differ only in ``seed`` / ``data_seed`` together; nothing is cached.

    Each model is built by :func:`build_model` (so it starts from the same weights as a one-off
    run, or from its entry of ``init_states``) and draws its mini-batches from its own generator
    seeded as :func:`train` seeds it. One optimisation step runs every model's forward and
    backward pass at once (:meth:`lmc_utils.models.MLP.forward_stacked`: one batched matrix product
    per layer over the stacked weights), then one optimiser over every model's own parameter
    tensors: the optimisers here are elementwise, so this is each model's own update, bit for bit
    what :func:`train` does with the same gradients. Learning-rate schedule, per-epoch history and SWA (samples and
    ``AveragedModel`` average) are as in :func:`train`; a history row's ``seconds`` is the
    batched epoch's time divided by the number of models.

    Raises ``ValueError`` naming the field when the configs differ in anything but seeds, or
    cannot be batched (BatchNorm, conv nets, augmentation, ``trainer != "batched"``).
    """
    configs = list(configs)
    _check_group(configs)
    init_states = [None] * len(configs) if init_states is None else list(init_states)
    if len(init_states) != len(configs):
        raise ValueError(f"got {len(init_states)} init_states for {len(configs)} configs")
    dev = get_device(device)
    cfg = configs[0]
    nets = []
    for c, init in zip(configs, init_states):
        net = build_model(c)
        if init is not None:
            net.load_state_dict(init)
        nets.append(place(net, dev))
    if any(True for _ in nets[0].buffers()):
        raise ValueError(f"cannot batch-train {cfg.arch} with buffers ({[n for n, _ in nets[0].named_buffers()]})")
    names = [k for k, _ in nets[0].named_parameters()]
    train_data = data_mod.load(cfg.dataset, "train", subset=cfg.train_subset, seed=cfg.subset_seed, device=dev)
    n, m = len(train_data), len(configs)
    # The models go through the forward and backward passes in passes of a fixed number of slots, a
    # function of the config alone (models_per_pass), which also keeps a pass's tensors small enough for
    # the allocator to reuse their memory (fresh large blocks cost page faults every step). A batched
    # product rounds each matrix by its slot and the number of slots, never by the other matrices'
    # values, so a model always takes slot ``seed % slots`` (of the first pass where that slot is
    # free): its weights are then a function of its config, whichever models share its batch. Free
    # slots are filled with copies of a model of the pass, whose results are discarded.
    slots = min(models_per_pass(template=nets[0], batch_size=cfg.batch_size), MAX_GROUP)
    slots = 1 << (slots.bit_length() - 1)  # a power of two: groups of 8, 16, 24 or 32 seeds fill their passes
    taken: list[dict[int, int]] = []  # per pass: slot -> model
    for j, c in enumerate(configs):
        slot = c.seed % slots
        free = next((p for p in taken if slot not in p), None)
        if free is None:
            taken.append(free := {})
        free[slot] = j
    row_of = [0] * m  # model -> row of flat
    source = []  # row -> the model whose weights and data order it starts from
    for p, pass_ in enumerate(taken):
        for slot, j in pass_.items():
            row_of[j] = p * slots + slot
        source += [pass_.get(slot, next(iter(pass_.values()))) for slot in range(slots)]
    # The trained weights: a row per slot, all its parameters one after another ([rows, P]), padded
    # to a multiple of 16 floats so that every row starts 64-byte aligned, as a model's own tensor does
    # (vectorised kernels treat unaligned heads differently). Each parameter name is a view of the rows
    # ([slots, *shape], _RowsAsStacked); a pass's rows are one leaf.
    shapes = {k: w.shape for k, w in nets[0].named_parameters()}
    size = sum(math.prod(v) for v in shapes.values())
    flat = torch.zeros(len(source), -(-size // 16) * 16, device=dev)
    for r, j in enumerate(source):
        flat[r, :size] = torch.cat([w.detach().flatten() for w in nets[j].parameters()])
    weights = nn.ParameterDict({"flat": nn.Parameter(flat, requires_grad=False)})  # shares flat (for SWA)
    layout = tuple((sum(math.prod(shapes[q]) for q in names[:i]), shapes[k]) for i, k in enumerate(names))

    def as_stacked(rows: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(zip(names, _RowsAsStacked.apply(rows, layout)))

    passes = [(p * slots, (p + 1) * slots) for p in range(len(taken))]
    occupied = [(torch.tensor(list(t.keys()), device=dev), torch.tensor(list(t.values()), device=dev)) for t in taken]
    leaves = [flat[a:b].detach().requires_grad_() for a, b in passes]
    real = torch.tensor(row_of, device=dev)  # rows of the models, in their order
    start = flat[real].clone()  # each model's weights at its start
    gens = [torch.Generator().manual_seed(c.seed if c.data_seed is None else c.data_seed) for c in configs]
    # The optimiser updates each model's own row (a view of flat): a fused kernel's vector/scalar
    # split then falls where it does for that model alone.
    rows = [flat[row_of[j]].detach().requires_grad_() for j in range(m)]
    opt = _optimizer(cfg, rows)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(cfg, s, steps_per_epoch))
    template = nets[0]  # forward_stacked only borrows its structure

    def unstack(held: nn.ParameterDict, j: int) -> dict[str, torch.Tensor]:
        return {k: w[row_of[j]].detach().clone() for k, w in as_stacked(held["flat"]).items()}

    histories: list[list[dict[str, float]]] = [[] for _ in configs]

    def run_epoch(epoch: int, per_step: bool) -> None:
        t0 = time.perf_counter()
        template.train()
        loss_sum = torch.zeros(m, device=dev)
        correct = torch.zeros(m, device=dev, dtype=torch.long)
        lr = opt.param_groups[0]["lr"]
        orders = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(dev)  # as TensorData.batches
        orders = orders[source]  # per row: its model's data order
        for i in range(0, n, cfg.batch_size):
            for p, ((a, b), leaf) in enumerate(zip(passes, leaves)):
                idx = orders[a:b, i:i + cfg.batch_size]  # [slots, batch]
                x, y = train_data.x[idx], train_data.y[idx]
                logits = template.forward_stacked(as_stacked(leaf), x)  # [slots, batch, classes]
                losses = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(y.shape).mean(1)
                leaf.grad = None
                losses.sum().backward()  # a slot's parameters get the gradient of its own mean loss
                for slot, j in taken[p].items():
                    rows[j].grad = leaf.grad[slot]
                slot_t, model_t = occupied[p]
                loss_sum.index_add_(0, model_t, losses.detach()[slot_t] * y.shape[1])
                correct.index_add_(0, model_t, (logits.detach().argmax(-1) == y).sum(1)[slot_t])
            opt.step()
            if per_step:
                sched.step()
        seconds = (time.perf_counter() - t0) / m
        with torch.no_grad():  # as train's l2_from_start (no buffers here): per model, over every weight
            l2 = (flat[real].double() - start.double()).pow(2).sum(1).sqrt()
        for j, (c, hist) in enumerate(zip(configs, histories)):
            row = {"epoch": epoch + 1, "train_loss": float(loss_sum[j]) / n,
                   "train_accuracy": float(correct[j]) / n, "lr": lr, "seconds": seconds,
                   "l2_from_start": float(l2[j])}
            if not math.isfinite(row["train_loss"]):
                raise FloatingPointError(f"training diverged at epoch {epoch + 1} (loss {row['train_loss']}, "
                                         f"seed {c.seed}); lower the learning rate of {c.arch} on {c.dataset}")
            hist.append(row)
        bar.set_postfix(loss=f"{float(loss_sum.mean()) / n:.3f}", acc=f"{float(correct.sum()) / (n * m):.3f}")

    seeds = ", ".join(str(c.seed) for c in configs[:4]) + (", ..." if m > 4 else "")
    bar = tqdm(range(cfg.epochs + cfg.swa_epochs), desc=f"train {m} x {cfg.arch} on {cfg.dataset} (seeds {seeds})",
               disable=not progress, leave=False)
    samples: list[list[dict[str, torch.Tensor]]] = [[] for _ in configs]
    for epoch in bar:
        if epoch < cfg.epochs:
            run_epoch(epoch, per_step=True)
            continue
        if epoch == cfg.epochs:  # start of the SWA phase
            swa_model = AveragedModel(weights)
            swa_sched = SWALR(opt, swa_lr=cfg.swa_lr if cfg.swa_lr is not None else cfg.lr,
                              anneal_epochs=1, anneal_strategy="linear")
        run_epoch(epoch, per_step=False)
        swa_sched.step()
        swa_model.update_parameters(weights)
        for j, kept in enumerate(samples):
            kept.append(unstack(weights, j))
    # No update_bn: batched models have no BatchNorm (checked above), where it does nothing.
    out = []
    for j, (c, net) in enumerate(zip(configs, nets)):
        net.load_state_dict(unstack(weights, j))
        swa_state = unstack(swa_model.module, j) if cfg.swa_epochs else None
        out.append(Trained(model=net.eval(), config=c, key=c.key, history=histories[j], samples=samples[j],
                           swa_state=swa_state))
    return out


MAX_GROUP = 32  # models per train_many call in get_many (memory: activations and batches scale with it)


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """SHA-256 (hex, 16 chars) of the source files that determine trained weights: models.py,
    zoo.py and data.py (read once per process)."""
    h = hashlib.sha256()
    for path in (Path(models.__file__), Path(__file__), Path(data_mod.__file__)):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def environment(device: str | torch.device = "auto") -> dict[str, Any]:
    """What besides the config determines the weights a run produces: torch version, device
    type, torch's intra-op thread count and :func:`code_digest`. Recorded in every cache entry
    and part of its file name."""
    return {"torch": torch.__version__, "device": get_device(device).type, "threads": torch.get_num_threads(),
            "code": code_digest()}


def checkpoint_path(config: TrainConfig, device: str | torch.device = "auto") -> Path:
    """The cache file of ``config`` trained on ``device`` in this environment:
    ``models/<config key>-<environment key>.pt`` (the one place that decides it)."""
    env_key = config_hash(environment(device))[:12]
    return cache_dir() / "models" / f"{config.key}-{env_key}.pt"


def _load(config: TrainConfig, dev: torch.device, quiet: bool = False) -> Trained | None:
    """The cached model of ``config`` in this environment, or ``None`` (absent or corrupt: warned,
    unless ``quiet``, which only asks whether a valid entry is there)."""
    path = checkpoint_path(config, dev)
    if not path.exists():
        if not quiet:
            _log_other_environments(config, dev, path)
        return None
    try:
        expected = json.loads(json.dumps(config.identity()))  # as stored: tuples become lists
        state, meta, extras = load_checkpoint(path, expect_meta={"key": config.key, "config": expected,
                                                                 "env": environment(dev)})
        model = build_model(config)
        model.load_state_dict(state)
        samples = [extras[f"sample.{i}"] for i in range(config.swa_epochs)]
        return Trained(model=place(model, dev).eval(), config=config, key=config.key,
                       history=meta.get("history", []), samples=samples, swa_state=extras.get("swa"))
    except (CorruptCheckpoint, RuntimeError, KeyError) as err:
        if not quiet:
            warnings.warn(f"model cache entry {path} is corrupt ({err}); retraining it", RuntimeWarning, stacklevel=3)
        return None


def _log_other_environments(config: TrainConfig, dev: torch.device, path: Path) -> None:
    """On a miss, say so when the config was cached under another environment (it is not reused)."""
    others = sorted((p for p in path.parent.glob(f"{config.key}*.pt") if p != path),
                    key=lambda p: p.stat().st_mtime)
    if not others:
        return
    try:
        other = load_checkpoint(others[-1])[1].get("env")
    except (CorruptCheckpoint, OSError):
        other = None
    here = environment(dev)
    if other is None:
        why = "made before cache entries recorded their environment"
    else:
        why = ", ".join(f"{k} {other.get(k)!r} -> {v!r}" for k, v in here.items() if other.get(k) != v) or "?"
    log.info("model cache: %s (%s on %s, seed %s) has %d entr%s from another environment (%s); "
             "training a new entry for this one", config.key, config.arch, config.dataset, config.seed,
             len(others), "y" if len(others) == 1 else "ies", why)


def _save(trained: Trained, dev: torch.device) -> None:
    config = trained.config
    extras = {f"sample.{i}": s for i, s in enumerate(trained.samples)}
    if trained.swa_state is not None:
        extras["swa"] = trained.swa_state
    save_checkpoint(checkpoint_path(config, dev), trained.model.state_dict(),
                    {"key": config.key, "config": config.identity(), "env": environment(dev),
                     "history": trained.history}, extras)


def get(config: TrainConfig, device: str | torch.device = "auto", retrain: bool = False,
        progress: bool = True) -> Trained:
    """The trained model of ``config``: loaded from the cache if a valid entry for this
    environment exists (:func:`checkpoint_path`), otherwise trained (parents first; a batched
    config through ``train_many([config])``) and cached atomically. A corrupt entry triggers a
    warning and retraining."""
    dev = get_device(device)
    if not retrain:
        hit = _load(config, dev)
        if hit is not None:
            return hit
    init_state = None
    if config.parent is not None:
        init_state = get(config.parent, device=dev, progress=progress).model.state_dict()
    with entry_lock([checkpoint_path(config, dev)]):  # a second process waits, then reads this entry
        if not retrain:
            hit = _load(config, dev, quiet=True)  # trained by another process while we waited
            if hit is not None:
                return hit
        note(f"training {describe(config)}")
        trained = train(config, device=dev, init_state=init_state, progress=progress)  # batched: train_many([config])
        _save(trained, dev)
    return trained


def describe(config: TrainConfig) -> str:
    """A short name of a config for progress lines: ``mlp {'width': 512, 'depth': 3} on mnist, seed 3, 5 epochs``."""
    text = f"{config.arch} {config.model} on {config.dataset}, seed {config.seed}, {config.epochs} epochs"
    if config.swa_epochs:
        text += f" + {config.swa_epochs} SWA"
    return text + (" (from a parent)" if config.parent is not None else "")


@contextmanager
def entry_lock(paths: list[Path]) -> Iterator[None]:
    """Exclusive locks (``fcntl.flock`` on ``<entry>.lock``) on cache entries, taken in sorted order
    so that two processes never deadlock; concurrent runs on one cache then train each entry once:
    the second waits for the first and reads its checkpoint. No-op where ``fcntl`` is missing."""
    try:
        import fcntl
    except ImportError:  # not POSIX: concurrent runs stay safe (atomic writes), only wasteful
        yield
        return
    handles = []
    try:
        for path in sorted({Path(p) for p in paths}):
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(path.with_name(path.name + ".lock"), "a")
            fcntl.flock(handle, fcntl.LOCK_EX)
            handles.append(handle)
        yield
    finally:
        for handle in reversed(handles):
            handle.close()


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


def get_many(configs: list[TrainConfig], device: str | torch.device = "auto", progress: bool = True) -> list[Trained]:
    """:func:`get` for several configs, with one progress bar over the models.

    Batched configs missing from the cache are trained by :func:`train_many`, grouped by
    :func:`group_key` (at most ``MAX_GROUP`` at a time), parents first, and each is cached as its
    own entry. Each model of a batch has its own slice of every batched product and of every
    optimiser tensor, so its weights do not depend on which other configs happened to be missing
    (bit for bit on CPU: tests/test_zoo_batched.py checks it) and are a function of its config.
    """
    dev = get_device(device)
    done: dict[str, Trained] = {}
    missing: dict[str, list[TrainConfig]] = {}
    for c in {c.key: c for c in configs}.values():
        if c.trainer != "batched":
            continue
        hit = _load(c, dev)
        if hit is None:
            missing.setdefault(group_key(c), []).append(c)
        else:
            done[c.key] = hit
    for group in missing.values():
        parents = [c.parent for c in group if c.parent is not None]
        parent_states = iter([p.model.state_dict() for p in get_many(parents, device=dev, progress=progress)])
        init_states = [next(parent_states) if c.parent is not None else None for c in group]
        for at in range(0, len(group), MAX_GROUP):
            chunk, inits = group[at:at + MAX_GROUP], init_states[at:at + MAX_GROUP]
            with entry_lock([checkpoint_path(c, dev) for c in chunk]):
                todo = []
                for c, init in zip(chunk, inits):  # another process may have trained some meanwhile
                    hit = _load(c, dev, quiet=True)
                    if hit is None:
                        todo.append((c, init))
                    else:
                        done[c.key] = hit
                if not todo:
                    continue
                note(f"training {len(todo)} together: {describe(todo[0][0])} "
                     f"(seeds {', '.join(str(c.seed) for c, _ in todo)})")
                for trained in train_many([c for c, _ in todo], device=dev, init_states=[i for _, i in todo],
                                          progress=progress):
                    _save(trained, dev)
                    done[trained.key] = trained
    out = []
    for c in tqdm(configs, desc="model zoo", disable=not progress or len(configs) < 2, leave=False):
        # a config listed twice gets its own copy, as from two get() calls
        out.append(done.pop(c.key) if c.key in done else get(c, device=dev, progress=progress))
    return out


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


if __name__ == "__main__":  # python -m lmc_utils.zoo plan|train ...: the command line is lmc_utils.zoo_cli
    from lmc_utils.zoo_cli import main as _main

    raise SystemExit(_main())
