"""The trainers: :func:`train` (one model) and :func:`train_many` (several seeds of one config at once).

This module, :mod:`lmc_utils.core.models` and :mod:`lmc_utils.core.data` are the code that determines
trained weights: their code digest (:func:`lmc_utils.zoo.store.code_digest`) is part of every cache
entry's name. Nothing here reads or writes the cache.

Batched training: configs with ``trainer="batched"`` are trained together with the other configs of
their group (equal in everything but ``seed`` / ``data_seed``) by :func:`train_many`, one batched
forward and backward pass over the stacked weights per step
(:meth:`lmc_utils.core.models.MLP.forward_stacked`); each model keeps its own initialisation and data
order, so its weights equal one-by-one :func:`train` up to float rounding (batched matrix products may
round differently), and do not depend on which other models share its batch.

Subnormal floats are flushed to zero while a model trains (:func:`_no_subnormals`): weights that
decay towards zero (notebook 07's largest weight decay) otherwise enter the subnormal range, where
every CPU multiply takes microcode assists and an epoch runs 3-5x slower; flushing them changes a
weight only where it was below 1.2e-38 anyway.

Determinism: the same config gives the same weights on the same CPU, torch build and thread count
(initialisation from ``seed``, data order and augmentation from ``data_seed``, both through private
generators).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import time
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import SWALR, AveragedModel, update_bn
from tqdm.auto import tqdm

from ..core import data as data_mod
from ..core import models
from ..core.device import get_device, place
from .config import INPUT_SHAPES, TrainConfig, Trained, _batching_problem, _group_identity


def _no_subnormals(fn):
    """Run ``fn`` with subnormal floats flushed to zero (``torch.set_flush_denormal``; restored after)."""
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with contextlib.ExitStack() as stack:
            if torch.set_flush_denormal(True):
                stack.callback(torch.set_flush_denormal, False)
            return fn(*args, **kwargs)
    return wrapped


MAX_GROUP = 32  # models per train_many call in get_many (memory: activations and batches scale with it)
# Slots of one batched pass, at most. Every slot is computed whether a model fills it or not, and most
# configs train 16 seeds: at 32 slots their one-hidden-layer MLPs paid for 32 models (16 models of
# width 128 on MNIST: 1.45 s per 12.8k-image epoch at 32 slots, 0.72 s at 16; 32 models take the same
# time either way, 2 threads, 2026-12-07).
MAX_SLOTS = 16


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


@_no_subnormals
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
    if hasattr(template, "hidden"):  # an MLP: its widest layer
        widest = max([template.hidden[0].in_features, *[layer.out_features for layer in template.hidden]])
    else:  # a VGG: its largest feature map
        widest = max(block.conv.out_channels * size ** 2 for block, size in zip(template.features, template.sizes))
    per_model = 4 * max(sum(w.numel() for w in template.parameters()), batch_size * widest)
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


@_no_subnormals
def train_many(configs: Sequence[TrainConfig], device: str | torch.device = "auto",
               init_states: Sequence[dict | None] | None = None, progress: bool = True) -> list[Trained]:
    """Train several configs that differ only in ``seed`` / ``data_seed`` together; nothing is cached.

    Each model is built by :func:`build_model` (so it starts from the same weights as a one-off
    run, or from its entry of ``init_states``) and draws its mini-batches from its own generator
    seeded as :func:`train` seeds it. One optimisation step runs every model's forward and
    backward pass at once (:meth:`lmc_utils.models.MLP.forward_stacked`: one batched matrix product
    per layer over the stacked weights; :meth:`lmc_utils.models.VGG.forward_stacked`: one grouped
    convolution per layer, a group per model), then one optimiser over every model's own parameter
    tensors: the optimisers here are elementwise, so this is each model's own update, bit for bit
    what :func:`train` does with the same gradients. Learning-rate schedule, per-epoch history and SWA (samples and
    ``AveragedModel`` average) are as in :func:`train`; a history row's ``seconds`` is the
    batched epoch's time divided by the number of models.

    Raises ``ValueError`` naming the field when the configs differ in anything but seeds, or
    cannot be batched (BatchNorm, ResNets, augmentation, ``trainer != "batched"``).
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
    slots = min(models_per_pass(template=nets[0], batch_size=cfg.batch_size), MAX_SLOTS)
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
                flat_idx = idx.flatten()  # index_select: the same rows as x[idx], gathered faster
                x = train_data.x.index_select(0, flat_idx).view(*idx.shape, *train_data.x.shape[1:])
                y = train_data.y.index_select(0, flat_idx).view(idx.shape)
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
