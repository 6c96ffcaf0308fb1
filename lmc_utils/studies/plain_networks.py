"""Notebook 04's studies beside re-normalisation (Qu & Horvath 2024): matching alone on plain networks
against width (Fig. 2 (B), Figs. 7-8), what the midpoint keeps layer by layer (parameter magnitude,
Fig. 4 (D) and 43; Fisher information, Fig. 42), and biases removed after training then fine-tuned
(Fig. 3 (C), Figs. 17-18). Data only: :func:`lmc_utils.studies.renormalisation.run` calls these and
judges their claims; no plots, no prose."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .. import zoo
from ..core import memo
from ..core.data import TensorData
from ..core.device import get_device
from ..matching.rebasin import aligned_states
from ..measure import pruning
from ..measure.interpolation import interpolate
from . import quality
from .midpoint_variants import midpoint_ablation, orders_for, with_state

def layer_information(pairs: Sequence[tuple[zoo.Trained, zoo.Trained]], stats: TensorData,
                      methods: Sequence[str] = ("weight", "activation"), n_orders: int = 1, n_batches: int = 32,
                      batch_size: int = 16, progress: bool = True) -> pd.DataFrame:
    """Per weight layer of the endpoints and of the midpoints (λ = 0.5; no re-normalisation): the mean
    parameter magnitude ``mean |w|`` (Qu & Horvath 2024, Fig. 4 (D), Fig. 43) and the mean diagonal
    empirical Fisher information ``mean_b g_b^2`` of its weights (Fig. 42; Achille et al. 2018's
    diagonal estimate), on ``n_batches`` mini-batches of ``batch_size`` examples of ``stats`` (training
    data), the same mini-batches for every model of a pair (seed = pair index). The Fisher comes from
    :func:`lmc_utils.measure.pruning.fisher_scores` (its saliency ``w^2 F``, divided by ``w^2`` where
    ``w != 0``: one estimator for pruning and for this table). Models: ``endpoint A``, ``endpoint B``,
    ``naive`` and each matching method of ``methods`` (weight matching under ``n_orders`` group orders).
    Rows: ``pair, model, order, layer, module, magnitude, fisher``."""
    rows = []
    for i, (a, b) in enumerate(tqdm(pairs, desc="layer information", disable=not progress, leave=False)):
        sa = a.model.state_dict()
        models = [("endpoint A", 0, a.model), ("endpoint B", 0, b.model),
                  ("naive", 0, with_state(a.model, interpolate(sa, b.model.state_dict(), 0.5)))]
        for method in methods:
            if method == "naive":
                continue
            for k in orders_for(method, n_orders):
                state_b = aligned_states(a.model, b.model, [method], stats.x, seed=k)[method]
                models.append((method, k, with_state(a.model, interpolate(sa, state_b, 0.5))))
        for name, k, model in models:
            scores = pruning.fisher_scores(model, stats, n_batches=n_batches, batch_size=batch_size, seed=i)
            for layer, (module, m) in enumerate(pruning.prunable(model)):
                w = m.weight.detach().float()
                live = w != 0
                fisher = (scores[module][live] / w[live] ** 2).mean() if bool(live.any()) else torch.tensor(0.0)
                rows.append({"pair": i, "model": name, "order": k, "layer": layer, "module": module,
                             "magnitude": float(w.abs().mean()), "fisher": float(fisher)})
    return pd.DataFrame(rows)


def layer_information_ratios(info: pd.DataFrame) -> pd.DataFrame:
    """Per pair, midpoint and group order: the midpoint's ``mean |w|`` relative to the endpoints' mean
    (``magnitude_ratio``, averaged over layers) and ``log10`` of its mean Fisher relative to the naive
    midpoint's (``log10_fisher_vs_naive``, averaged over layers). Rows: ``pair, model, order,
    magnitude_ratio, log10_fisher_vs_naive``."""
    if info.empty:
        return pd.DataFrame(columns=["pair", "model", "order", "magnitude_ratio", "log10_fisher_vs_naive"])
    ends = info[info["model"].isin(["endpoint A", "endpoint B"])].groupby(["pair", "layer"])["magnitude"].mean()
    naive = info[info["model"] == "naive"].set_index(["pair", "layer"])["fisher"]
    rows = []
    mids = info[~info["model"].isin(["endpoint A", "endpoint B"])]
    for (pair, model, order), g in mids.groupby(["pair", "model", "order"], sort=False):
        idx = list(zip(g["pair"], g["layer"]))
        rows.append({"pair": pair, "model": model, "order": order,
                     "magnitude_ratio": float(np.mean(g["magnitude"].to_numpy() / ends.loc[idx].to_numpy())),
                     "log10_fisher_vs_naive": float(np.mean(np.log10(g["fisher"].to_numpy()
                                                                     / naive.loc[idx].to_numpy())))})
    return pd.DataFrame(rows)


def width_sweep(base: zoo.TrainConfig, widths: Sequence[float], n_pairs: int, eval_data: TensorData,
                stats: TensorData, methods: Sequence[str] = ("weight", "activation", "naive"), n_orders: int = 1,
                seed: int = 0, device="auto", progress: bool = True, name: str = "") -> pd.DataFrame:
    """Matching alone against width (Qu & Horvath 2024, Fig. 2 (B), App. E.3 Figs. 7-8): ``n_pairs``
    independent pairs of ``base`` at each width (:func:`lmc_utils.zoo.with_width`; seeds ``seed + 2i,
    + 1``), the midpoint (λ = 0.5) after each alignment of ``methods`` with no re-normalisation.
    ``midpoint_barrier``: the endpoints' mean test accuracy minus the midpoint's (the paper's test
    accuracy barrier, read at the midpoint). Rows: ``width, pair, method, order, accuracy,
    endpoint_accuracy, midpoint_barrier, loss``; ``name``: the experiment under which each width's
    models are recorded (arm ``width <w>``)."""
    rows = []
    for w in tqdm(list(widths), desc="widths", disable=not progress, leave=False):
        pairs = zoo.independent_pairs(zoo.with_width(base, w), n_pairs, seed=seed, device=device)
        if name:
            quality.record(name, [m for p in pairs for m in p], arm=f"width {w:g}", device=device)
        abl, _ = midpoint_ablation(pairs, eval_data, stats.x, stats, methods=methods, n_orders=n_orders,
                                   progress=False, variants=["none"])
        ends = abl[abl["method"] == "-"].groupby("pair")["accuracy"].mean()
        for r in abl[abl["method"] != "-"].itertuples(index=False):
            rows.append({"width": w, "pair": r.pair, "method": r.method, "order": r.order, "accuracy": r.accuracy,
                         "endpoint_accuracy": float(ends[r.pair]),
                         "midpoint_barrier": float(ends[r.pair]) - r.accuracy, "loss": r.loss})
    return pd.DataFrame(rows)


def width_summary(sweep: pd.DataFrame) -> pd.DataFrame:
    """The width sweep per width and method: mean and std over pairs (group orders averaged within a
    pair) of the midpoint barrier, and the endpoints' mean accuracy."""
    if sweep.empty:
        return pd.DataFrame(columns=["width", "method", "pairs", "midpoint_barrier_mean", "midpoint_barrier_std",
                                     "endpoint_accuracy"])
    per_pair = sweep.groupby(["width", "method", "pair"], sort=False)[["midpoint_barrier", "endpoint_accuracy"]].mean()
    g = per_pair.groupby(level=["width", "method"], sort=False)
    out = pd.DataFrame({"pairs": g.size(), "midpoint_barrier_mean": g["midpoint_barrier"].mean(),
                        "midpoint_barrier_std": g["midpoint_barrier"].std(ddof=1),
                        "endpoint_accuracy": g["endpoint_accuracy"].mean()})
    return out.reset_index()


def biases_removed(trained: zoo.Trained, config: zoo.TrainConfig) -> dict[str, torch.Tensor]:
    """``trained``'s weights as a state of ``config``'s model (the same network without bias terms):
    every entry that model has, taken from ``trained``; the biases are dropped (set to zero for good)."""
    keep = zoo.build_model(config).state_dict()
    state = trained.model.state_dict()
    missing = [k for k in keep if k not in state]
    if missing:
        raise ValueError(f"{config.arch} without biases has entries the trained model lacks: {missing}")
    return {k: state[k].detach().cpu().clone() for k in keep}


def finetuned_without_biases(pairs: Sequence[tuple[zoo.Trained, zoo.Trained]], config: zoo.TrainConfig,
                             device="auto", progress: bool = True) -> list[tuple[zoo.Trained, zoo.Trained]]:
    """Qu & Horvath 2024, §4.2, Fig. 3 (C), App. E.4 Figs. 17-18: every model of ``pairs`` with its
    biases removed after training (:func:`biases_removed`) and fine-tuned with ``config`` (a config
    whose ``model`` has ``bias: False``; seeds as the pair's models, so each run has its own data
    order). Cached by the configs, the starting states and the training code (like :func:`retraining`).
    Returns the fine-tuned pairs (``history``: the fine-tuning's)."""
    if config.model.get("bias", True):
        raise ValueError("the fine-tuning config must build a model without biases (model: {bias: false})")
    configs = [config.replace(seed=t.config.seed) for p in pairs for t in p]
    states = [biases_removed(t, config) for p in pairs for t in p]

    def finetune() -> list[dict]:
        runs = zoo.train_each(configs, states, device=device, progress=progress, desc="fine-tuning")
        return [{"state": {k: v.detach().cpu() for k, v in r.model.state_dict().items()}, "history": r.history}
                for r in runs]

    key = {"configs": configs, "states": states, "device": str(get_device(device)), "training": zoo.code_digest()}
    done = memo.cached("bias_finetune", key, finetune)
    dev = get_device(device)
    out = []
    for c, d in zip(configs, done):
        model = zoo.build_model(c)
        model.load_state_dict(d["state"])
        out.append(zoo.Trained(model=model.to(dev).eval(), config=c, key=c.key, history=list(d["history"])))
    return [(out[2 * i], out[2 * i + 1]) for i in range(len(pairs))]
