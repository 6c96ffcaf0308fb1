"""The midpoint of a matched pair under each re-normalisation variant (Qu & Horvath 2024, §4.1-4.2;
Jordan et al. 2023): the variants (:class:`Variant`; REPAIR, RESCALE, RESHIFT, RESET and their
layer-average, sequential, independent-third-model and data-independent forms), applying one to a
midpoint, and the midpoint ablation over pairs, matching methods and group orders. Used by notebook
04's study (:mod:`lmc_utils.studies.renormalisation`), its plain-network studies
(:mod:`lmc_utils.studies.plain_networks`) and notebook 10's ladder. Data only."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from .. import zoo
from ..core.data import TensorData
from ..matching.rebasin import aligned_states
from ..measure import renorm
from ..measure.activations import pre_activation_table
from ..measure.evaluation import evaluate
from ..measure.interpolation import has_batchnorm, interpolate
from ..claims.tables import mean_std

@dataclass(frozen=True)
class Variant:
    """One re-normalisation variant: ``mode`` of :func:`renorm.correct` (``None``: nothing;
    ``reset``: RESET), layer-average goals, sequential, goal from the endpoints or from an
    independent third model, and data-independent (per-batch statistics at evaluation)."""

    mode: str | None
    average: bool = False
    sequential: bool = False
    third: bool = False
    per_batch: bool = False


PLAIN_VARIANTS = {
    "none": Variant(None),
    "REPAIR": Variant("repair"),
    "RESCALE": Variant("rescale"),
    "RESCALE (avg)": Variant("rescale", average=True),
    "RESHIFT": Variant("reshift"),
    "SEQ REPAIR": Variant("repair", sequential=True),
    "SEQ RESCALE": Variant("rescale", sequential=True),
    "indep. RESCALE": Variant("rescale", third=True),
    "indep. RESCALE (avg)": Variant("rescale", average=True, third=True),
    "data-indep. REPAIR": Variant("repair", per_batch=True),
    "data-indep. RESCALE": Variant("rescale", per_batch=True),
}
BN_VARIANTS = {
    "none": Variant(None),
    "RESET": Variant("reset"),
    "data-indep. RESET": Variant("reset", per_batch=True),
}


def variants_for(model: nn.Module) -> dict[str, Variant]:
    """BatchNorm models get RESET (and its data-independent form); others REPAIR and its ablations."""
    return BN_VARIANTS if has_batchnorm(model) else PLAIN_VARIANTS


def orders_for(method: str, n_orders: int) -> range:
    """Group orders to run for ``method``: ``n_orders`` for weight matching (its result depends
    on the random order of permutation groups, seeded by the order index), one for the others."""
    return range(max(1, n_orders)) if method == "weight" else range(1)


def with_state(template: nn.Module, state: dict) -> nn.Module:
    """A copy of ``template`` holding ``state`` (eval mode)."""
    m = copy.deepcopy(template)
    m.load_state_dict(state)
    return m.eval()


def apply_variant(variant: Variant, model: nn.Module, endpoints: Sequence[nn.Module], weights: Sequence[float],
                  stats_x: torch.Tensor, reset_data: TensorData, third: nn.Module | None = None,
                  goals: dict | None = None) -> nn.Module:
    """``model`` re-normalised by ``variant``; goal statistics on ``stats_x`` from the weighted
    ``endpoints`` (or from ``third`` alone). ``goals``: a dict kept by the caller for one set of
    endpoints, third model and ``stats_x``, so that the variants sharing a goal measure it once."""
    if variant.mode is None:
        return model
    if variant.mode == "reset":
        return renorm.per_batch(model) if variant.per_batch else renorm.reset(model, reset_data)
    if variant.third and third is None:
        raise ValueError("this variant needs an independent third model")
    goals = {} if goals is None else goals
    which = "third" if variant.third else "endpoints"
    if which not in goals:
        goals[which] = (renorm.goal_statistics([third], [1.0], stats_x) if variant.third
                        else renorm.goal_statistics(list(endpoints), list(weights), stats_x))
    goal = goals[which]
    if variant.per_batch:
        return renorm.per_batch(model, goal, mode=variant.mode, average=variant.average)
    return renorm.correct(model, goal, stats_x, mode=variant.mode, average=variant.average,
                          sequential=variant.sequential)


def midpoint_ablation(pairs: Sequence[tuple[zoo.Trained, zoo.Trained]], eval_data: TensorData, stats_x: torch.Tensor,
                      reset_data: TensorData, methods: Sequence[str] = ("weight", "activation", "naive"),
                      n_orders: int = 1, progress: bool = True,
                      variants: Sequence[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Test loss and accuracy of the midpoint of every pair, aligned by each method (weight
    matching under ``n_orders`` random group orders, ``order`` = the matching seed), under every
    variant (:func:`variants_for`; only those named in ``variants`` when given). The independent third model of pair ``i`` is model A of pair
    ``i + 1`` (cyclically), aligned to A by the same method and order.

    Returns ``(ablation, collapse)``: ``ablation`` has columns ``pair, method, order, variant,
    loss, accuracy`` (the endpoints as method ``-``, variants ``endpoint A``/``endpoint B``);
    ``collapse`` has, per pair, method, order and hidden layer, the plain midpoint's
    pre-activation std (channel mean on ``stats_x``), the endpoints' mean of it and their ratio
    (``pair, method, order, layer, module, pre_std, endpoint_pre_std, ratio``).
    """
    if len(pairs) < 2:
        raise ValueError("the ablation needs at least 2 pairs (the third model comes from another pair)")
    chosen = {k: v for k, v in variants_for(pairs[0][0].model).items() if variants is None or k in variants}
    rows, collapse = [], []
    jobs = [(i, m, k) for i in range(len(pairs)) for m in methods for k in orders_for(m, n_orders)]
    ends: dict[int, pd.Series] = {}
    own_goal: dict[int, renorm.Goal] = {}  # model A's statistics: the same for every method and order
    endpoint_goals = any(v.mode not in (None, "reset") and not v.third for v in chosen.values())
    for i, method, k in tqdm(jobs, desc="midpoint ablation", disable=not progress, leave=False):
        a, b = pairs[i]
        c = pairs[(i + 1) % len(pairs)][0]
        if i not in ends:
            for name, m in (("endpoint A", a.model), ("endpoint B", b.model)):
                loss, acc = evaluate(m, eval_data)
                rows.append({"pair": i, "method": "-", "order": 0, "variant": name, "loss": loss, "accuracy": acc})
            ref = [pre_activation_table(m, stats_x).set_index("layer")["pre_std"] for m in (a.model, b.model)]
            ends[i] = (ref[0] + ref[1]) / 2
            if endpoint_goals:
                own_goal[i] = renorm.model_statistics([a.model], stats_x)[0]
        state_b = aligned_states(a.model, b.model, [method], stats_x, seed=k)[method]
        b_al, c_al = with_state(a.model, state_b), None
        if any(v.third for v in chosen.values()):  # only then is the third model needed
            c_al = with_state(a.model, aligned_states(a.model, c.model, [method], stats_x, seed=k)[method])
        mid = with_state(a.model, interpolate(a.model.state_dict(), state_b, 0.5))
        st = pre_activation_table(mid, stats_x)
        for r in st.itertuples(index=False):
            ref = float(ends[i].loc[r.layer])
            collapse.append({"pair": i, "method": method, "order": k, "layer": int(r.layer), "module": r.module,
                             "pre_std": float(r.pre_std), "endpoint_pre_std": ref,
                             "ratio": float(r.pre_std) / ref if ref > 0 else float("nan")})
        goals: dict = {}  # the variants' shared goal statistics for this pair, method and order
        if endpoint_goals:  # as goal_statistics([a, b_al], [0.5, 0.5]), with A measured once per pair
            goals["endpoints"] = renorm.combine_goals([own_goal[i], renorm.model_statistics([b_al], stats_x)[0]],
                                                      [0.5, 0.5])
        for vname, v in chosen.items():
            fixed = apply_variant(v, mid, [a.model, b_al], [0.5, 0.5], stats_x, reset_data, third=c_al, goals=goals)
            loss, acc = evaluate(fixed, eval_data)
            rows.append({"pair": i, "method": method, "order": k, "variant": vname, "loss": loss, "accuracy": acc})
    return pd.DataFrame(rows), pd.DataFrame(collapse)


def ablation_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over pairs of midpoint test accuracy and loss per experiment, method and
    variant; group orders are averaged within each pair first (the pairs are the independent
    units), ``orders`` says how many."""
    by = [c for c in ("experiment", "method", "variant") if c in table]
    per_pair = table.groupby(by + ["pair"], sort=False).agg(accuracy=("accuracy", "mean"), loss=("loss", "mean"),
                                                           orders=("order", "nunique")).reset_index()
    out = mean_std(per_pair, by, ["accuracy", "loss"])
    return out.merge(per_pair.groupby(by, sort=False)["orders"].max().reset_index(), on=by)
