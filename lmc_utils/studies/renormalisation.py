"""Notebook 04's protocol (Qu & Horvath 2024, §4 and App. E.5/F; Jordan et al. 2023): the
re-normalisation ablation of matched midpoints (REPAIR, RESCALE, RESHIFT, RESET and their
variants) over independent pairs and random group orders of weight matching, the variance
collapse of the matched midpoint, interpolation curves per variant, bias removal and
homogeneous interpolation (and biases removed after training), re-training from midpoints, and
the plain-network studies of :mod:`.plain_networks` (width sweep, what the midpoint keeps). The
variants and the midpoint ablation themselves are in :mod:`.midpoint_variants`.

Shape of the tier: :func:`run` trains or loads the models (through :mod:`lmc_utils.zoo`) and
measures everything into a :class:`Result` of tidy DataFrames; :func:`tables` gives the summary
tables the notebook saves; :func:`verdicts` judges the declared criteria
(``params/criteria.yaml``, section ``04_renormalisation``) with :func:`lmc_utils.verdicts.verdict`.
No plots and no prose here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from ..core import data as data_mod
from ..core import memo
from ..core.device import get_device
from ..measure.barrier import barrier_rows
from ..measure import renorm
from .. import zoo
from ..claims import verdicts as V
from ..measure.activations import statistics_table
from ..core.data import TensorData
from ..measure.evaluation import evaluate
from ..measure.interpolation import has_batchnorm, interpolate
from ..matching.rebasin import aligned_states
from . import quality
from .midpoint_variants import ablation_summary, apply_variant, midpoint_ablation, variants_for, with_state
from .plain_networks import (finetuned_without_biases, layer_information, layer_information_ratios,
                             width_summary, width_sweep)

NOTEBOOK = "04_renormalisation"


CURVE_VARIANTS = ("none", "REPAIR", "RESCALE", "RESCALE (avg)", "RESHIFT", "SEQ REPAIR", "RESET")
BIAS_BASE = "with biases: WM"
FINETUNED = "biases removed after training, fine-tuned"  # the bias study's curve kind (": WM" appended)
FINETUNED_ARM = "removed after training and fine-tuned"  # its quality arm and verdict subject


def variant_curves(a: zoo.Trained, b: zoo.Trained, eval_data: TensorData, stats_x: torch.Tensor,
                   reset_data: TensorData, methods: Sequence[str] = ("naive", "weight"), n_points: int = 11,
                   seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """Interpolation curves of one pair, per method and variant (those of :data:`CURVE_VARIANTS`
    that apply to the model): at each lambda the goal is ``(1 - lam) stats_A + lam stats_B``.
    Weight matching uses group order ``seed``. Columns ``method, variant, lam, loss, accuracy``."""
    names = [n for n in CURVE_VARIANTS if n in variants_for(a.model)]
    variants = variants_for(a.model)
    states = aligned_states(a.model, b.model, methods, stats_x, seed=seed)
    rows = []
    jobs = [(m, lam) for m in methods for lam in np.linspace(0, 1, n_points)]
    for method, lam in tqdm(jobs, desc="variant curves", disable=not progress, leave=False):
        b_al = with_state(a.model, states[method])
        model = with_state(a.model, interpolate(a.model.state_dict(), states[method], float(lam)))
        goals: dict = {}
        for name in names:
            fixed = apply_variant(variants[name], model, [a.model, b_al], [1 - lam, lam], stats_x, reset_data,
                                  goals=goals)
            loss, acc = evaluate(fixed, eval_data)
            rows.append({"method": method, "variant": name, "lam": float(lam), "loss": loss, "accuracy": acc})
    return pd.DataFrame(rows)


def activation_profiles(a: zoo.Trained, b: zoo.Trained, stats_x: torch.Tensor, seed: int = 0,
                        reset_data: TensorData | None = None) -> pd.DataFrame:
    """Per-layer pre-/post-activation scale and share of zeros (:func:`statistics_table` on
    ``stats_x``) for the endpoints, the naive and weight-matched (group order ``seed``) midpoints,
    each + REPAIR and + RESCALE (BatchNorm models: + RESET), and a random initialisation.
    Column ``model`` says which."""
    states = aligned_states(a.model, b.model, ["naive", "weight"], stats_x, seed=seed)
    sa = a.model.state_dict()
    candidates: dict[str, nn.Module] = {"endpoint A": a.model, "endpoint B": b.model}
    bn = has_batchnorm(a.model)
    for method, label in (("naive", "naive midpoint"), ("weight", "WM midpoint")):
        mid = with_state(a.model, interpolate(sa, states[method], 0.5))
        b_al = with_state(a.model, states[method])
        candidates[label] = mid
        if bn:
            candidates[f"{label} + RESET"] = renorm.reset(mid, reset_data)
        else:
            goal = renorm.goal_statistics([a.model, b_al], [0.5, 0.5], stats_x)
            candidates[f"{label} + REPAIR"] = renorm.repair(mid, goal, stats_x)
            candidates[f"{label} + RESCALE"] = renorm.rescale(mid, goal, stats_x)
    init = zoo.build_model(a.config.replace(seed=a.config.seed + 10_000)).to(next(a.model.parameters()).device)
    if bn:
        init = renorm.reset(init, reset_data)
    candidates["random init"] = init.eval()
    frames = [statistics_table(m, stats_x).assign(model=name) for name, m in candidates.items()]
    return pd.concat(frames, ignore_index=True)


def homogeneous_interpolate(model: nn.Module, state_a: dict, state_b: dict, lam: float) -> dict[str, torch.Tensor]:
    """Homogeneous interpolation (our two-endpoint reading of Wang et al. 2022, §5): weights are
    interpolated linearly; the bias of the ``l``-th Linear/Conv layer (1-based, forward order,
    output layer included) as ``(1 - lam)**l * b_A + lam**l * b_B``, because in a bias-free
    ReLU network the signal reaching layer ``l`` from one endpoint is ``l``-homogeneous in that
    endpoint's weight coefficient while its bias enters once. Norm-layer parameters are
    interpolated linearly."""
    out = interpolate(state_a, state_b, lam)
    layers = [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d)) and m.bias is not None]
    for depth, name in enumerate(layers, start=1):
        k = f"{name}.bias"
        out[k] = (1 - lam) ** depth * state_a[k] + lam ** depth * state_b[k].to(state_a[k].device)
    return out


def bias_study(biased: Sequence[tuple[zoo.Trained, zoo.Trained]], unbiased: Sequence[tuple[zoo.Trained, zoo.Trained]],
               eval_data: TensorData, stats_x: torch.Tensor, n_points: int = 11, n_orders: int = 1,
               progress: bool = True, finetuned: Sequence[tuple[zoo.Trained, zoo.Trained]] = ()) -> pd.DataFrame:
    """Weight-matched interpolation curves (test loss and accuracy), under ``n_orders`` group
    orders, of pairs trained with biases (plain linear interpolation, + RESCALE at every lambda,
    homogeneous interpolation), of pairs trained without biases and of ``finetuned`` pairs (biases
    removed after training, then fine-tuned; :func:`.plain_networks.finetuned_without_biases`); pair ``i`` of each
    list shares its seeds. Columns ``pair, order, curve, lam, loss, accuracy``."""
    rows = []
    lams = np.linspace(0, 1, n_points)
    jobs = [(kind, i, k, p) for kind, pairs in (("with biases", biased), ("no biases", unbiased),
                                                (FINETUNED, finetuned))
            for i, p in enumerate(pairs) for k in range(max(1, n_orders))]
    for kind, i, k, (a, b) in tqdm(jobs, desc="bias study", disable=not progress, leave=False):
        state_b = aligned_states(a.model, b.model, ["weight"], seed=k)["weight"]
        sa = a.model.state_dict()
        b_al = with_state(a.model, state_b)
        for lam in lams:
            lam = float(lam)
            mid = with_state(a.model, interpolate(sa, state_b, lam))
            curves = {f"{kind}: WM": mid}
            if kind == "with biases":
                goal = renorm.goal_statistics([a.model, b_al], [1 - lam, lam], stats_x)
                curves["with biases: WM + RESCALE"] = renorm.rescale(mid, goal, stats_x)
                curves["with biases: WM, homogeneous"] = with_state(a.model, homogeneous_interpolate(a.model, sa, state_b, lam))
            for name, m in curves.items():
                loss, acc = evaluate(m, eval_data)
                rows.append({"pair": i, "order": k, "curve": name, "lam": lam, "loss": loss, "accuracy": acc})
    return pd.DataFrame(rows)


def retraining(pairs: Sequence[tuple[zoo.Trained, zoo.Trained]], config: zoo.TrainConfig, stats_x: torch.Tensor,
               n_orders: int = 1, device="auto", progress: bool = True) -> pd.DataFrame:
    """Re-train from the naive, weight-matched (each of ``n_orders`` group orders) and
    activation-matched midpoints of every pair and from a fresh initialisation (seed
    ``config.seed + pair``), with ``config`` (through :func:`zoo.train`, not cached).
    Returns the per-epoch history with ``pair, start, order, steps`` (optimisation steps so far)."""
    n_train = config.train_subset or len(data_mod.load(config.dataset, "train"))
    steps_per_epoch = int(np.ceil(n_train / config.batch_size))
    jobs = []
    for i, (a, b) in enumerate(pairs):
        sa = {k: v.detach().cpu() for k, v in a.model.state_dict().items()}
        mid = lambda s: interpolate(sa, {k: v.cpu() for k, v in s.items()}, 0.5)  # noqa: E731
        jobs.append((i, "naive midpoint", 0, mid(b.model.state_dict())))
        for k in range(max(1, n_orders)):
            jobs.append((i, "WM midpoint", k, mid(aligned_states(a.model, b.model, ["weight"], seed=k)["weight"])))
        jobs.append((i, "AM midpoint", 0, mid(aligned_states(a.model, b.model, ["activation"], stats_x)["activation"])))
        jobs.append((i, "fresh init", 0, None))
    configs = [config.replace(seed=config.seed + i) if state is None else config for i, _, _, state in jobs]
    states = [state for *_, state in jobs]

    def histories() -> list[list[dict]]:
        runs = zoo.train_each(configs, states, device=device, progress=progress, desc="re-training")
        return [list(trained.history) for trained in runs]

    # the histories are a function of the configs, the starting states and the training code (in the key)
    key = {"configs": configs, "states": states, "device": str(get_device(device)), "training": zoo.code_digest()}
    frames = []
    for (i, start, k, _), history in zip(jobs, memo.cached("retraining", key, histories)):
        h = pd.DataFrame(history)
        frames.append(h.assign(pair=i, start=start, order=k, steps=h["epoch"] * steps_per_epoch))
    return pd.concat(frames, ignore_index=True)


def steps_to_accuracy(history: pd.DataFrame, target: float = 0.9) -> pd.DataFrame:
    """Per start (and pair and order, where present): the first step count at which the epoch's
    running train accuracy reached ``target`` (NaN if never), the first-epoch and final
    accuracy, and ``budget_steps`` (the last step count trained)."""
    by = [c for c in ("pair", "start", "order") if c in history]
    rows = []
    for key, h in history.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        hit = h[h["train_accuracy"] >= target]
        rows.append({**dict(zip(by, key)),
                     "steps_to_target": float(hit["steps"].iloc[0]) if len(hit) else float("nan"),
                     "first_epoch_accuracy": float(h["train_accuracy"].iloc[0]),
                     "final_accuracy": float(h["train_accuracy"].iloc[-1]),
                     "budget_steps": float(h["steps"].max())})
    return pd.DataFrame(rows)



# --- the protocol ---------------------------------------------------------------------------

@dataclass
class Result:
    """Everything notebook 04 measures (tidy DataFrames; ``experiment`` column where several).

    ``ablation``: midpoint (λ = 0.5) test loss/accuracy per experiment, pair, method, group order
    and variant, plus the endpoints; ``collapse``: per-layer pre-activation std of the plain
    midpoints relative to the endpoints (every pair and order); ``curves``: interpolation curves
    per variant of the first pair; ``activations``: per-layer statistics of the first pair's
    endpoints, midpoints and corrected midpoints; ``bias_curves``: the bias study's curves;
    ``retraining``: per-epoch re-training histories; ``target_accuracy``: the re-training target;
    ``experiments``: name -> ``"plain" | "layernorm" | "batchnorm" | "fixup"``; ``layer_info``: per-layer
    parameter magnitude and Fisher information of endpoints and midpoints
    (:func:`lmc_utils.studies.plain_networks.layer_information`);
    ``widths``: the width sweep of matching alone (:func:`~lmc_utils.studies.plain_networks.width_sweep`);
    both empty where not run.
    """

    ablation: pd.DataFrame
    collapse: pd.DataFrame
    curves: pd.DataFrame
    activations: pd.DataFrame
    bias_curves: pd.DataFrame
    retraining: pd.DataFrame
    target_accuracy: float
    bias_experiment: str
    retrain_experiment: str
    experiments: dict[str, str]
    layer_info: pd.DataFrame = field(default_factory=pd.DataFrame)
    widths: pd.DataFrame = field(default_factory=pd.DataFrame)
    width_experiment: str = ""


def norm_kind(config: zoo.TrainConfig) -> str:
    """``plain``, ``layernorm``, ``batchnorm`` or ``fixup`` (a ResNet20 without norm layers from Fixup's
    initialisation; judged like a plain model): the normalisation of a config's model."""
    return {"none": "plain", None: "plain"}.get(config.model.get("norm"), config.model.get("norm"))


def run(experiments: Mapping[str, zoo.TrainConfig], n_pairs: Mapping[str, int], *, seed: int = 0, device="auto",
        n_orders: int = 1, n_points: int = 11, eval_subset: int | None = None, stats_samples: int | None = None,
        methods: Sequence[str] = ("weight", "activation", "naive"), curve_methods: Sequence[str] = ("naive", "weight"),
        bias_experiment: str, bias_pairs: int, retrain_experiment: str, retrain: Mapping | None = None,
        retrain_pairs: int = 1, target_accuracy: float = 0.9, bias_finetune: Mapping | None = None,
        bias_finetune_pairs: int = 0, info_pairs: int = 0, fisher_batches: int = 32,
        width_experiment: str | None = None, widths: Sequence[float] = (), width_pairs: int = 0,
        progress: bool = True) -> Result:
    """Notebook 04's protocol. ``experiments``: name -> base config; ``n_pairs``: name -> number of
    independent pairs (seeds ``seed + 2i, seed + 2i + 1``); weight matching runs under group
    orders ``0 .. n_orders - 1``. Goal statistics, activation matching and RESET use
    ``stats_samples`` training examples (seed ``seed + 1``); every accuracy and loss is on
    ``eval_subset`` test examples. The bias study compares the first ``bias_pairs`` pairs of
    ``bias_experiment`` with the same seeds trained without biases; the first ``retrain_pairs``
    pairs of ``retrain_experiment`` are re-trained with ``retrain`` (config changes, seed
    ``seed + 20000``) until ``target_accuracy``. The first ``bias_finetune_pairs`` biased pairs also
    join the bias study with their biases removed after training and fine-tuned with ``bias_finetune``
    (config changes; :func:`.plain_networks.finetuned_without_biases`). The first ``info_pairs`` pairs of
    the bias experiment get :func:`.plain_networks.layer_information` (``fisher_batches`` mini-batches of 16); ``width_pairs`` pairs of
    ``width_experiment`` at each of ``widths`` get :func:`.plain_networks.width_sweep` (0 or empty: not run)."""
    dev = device
    pairs = {n: zoo.independent_pairs(base, n_pairs[n], seed=seed, device=dev) for n, base in experiments.items()}
    for n, ps in pairs.items():
        quality.record(n, [m for p in ps for m in p], device=dev)
    stats = {n: data_mod.load(base.dataset, "train", subset=stats_samples, seed=seed + 1, device=dev)
             for n, base in experiments.items()}
    test = {n: data_mod.load(base.dataset, "test", subset=eval_subset, device=dev) for n, base in experiments.items()}
    abl, col, curves, acts = [], [], [], []
    for n in experiments:
        a, c = midpoint_ablation(pairs[n], test[n], stats[n].x, stats[n], methods=methods, n_orders=n_orders,
                                 progress=progress)
        abl.append(a.assign(experiment=n))
        col.append(c.assign(experiment=n))
        first_a, first_b = pairs[n][0]
        curves.append(variant_curves(first_a, first_b, test[n], stats[n].x, stats[n], methods=curve_methods,
                                     n_points=n_points, progress=progress).assign(experiment=n))
        acts.append(activation_profiles(first_a, first_b, stats[n].x, reset_data=stats[n]).assign(experiment=n))
    bias_base = experiments[bias_experiment]
    biased = zoo.independent_pairs(bias_base, bias_pairs, seed=seed, device=dev)
    unbiased = zoo.independent_pairs(bias_base.replace(model={**bias_base.model, "bias": False}), bias_pairs,
                                     seed=seed, device=dev)
    quality.record(bias_experiment, [m for p in biased for m in p], device=dev)
    quality.record(bias_experiment, [m for p in unbiased for m in p], arm="trained without biases", device=dev)
    finetuned = []
    if bias_finetune_pairs > 0:
        fconfig = bias_base.replace(**dict(bias_finetune or {}), model={**bias_base.model, "bias": False})
        finetuned = finetuned_without_biases(biased[:bias_finetune_pairs], fconfig, device=dev, progress=progress)
        quality.record(bias_experiment, [m for p in finetuned for m in p], arm=FINETUNED_ARM, device=dev)
    bias_curves = bias_study(biased, unbiased, test[bias_experiment], stats[bias_experiment].x, n_points=n_points,
                             n_orders=n_orders, progress=progress, finetuned=finetuned)
    info = (layer_information(biased[:info_pairs], stats[bias_experiment], methods=methods, n_orders=n_orders,
                              n_batches=fisher_batches, progress=progress) if info_pairs > 0 else pd.DataFrame())
    sweep = pd.DataFrame()
    if width_pairs > 0 and widths:
        wexp = width_experiment or bias_experiment
        sweep = width_sweep(experiments[wexp], widths, width_pairs, test[wexp], stats[wexp], methods=methods,
                            n_orders=n_orders, seed=seed, device=dev, progress=progress, name=wexp)
    rbase = experiments[retrain_experiment]
    rconfig = rbase.replace(**dict(retrain or {}), seed=seed + 20_000)
    rpairs = zoo.independent_pairs(rbase, retrain_pairs, seed=seed, device=dev)
    history = retraining(rpairs, rconfig, stats[retrain_experiment].x, n_orders=n_orders, device=dev,
                         progress=progress)
    first = lambda frames: pd.concat(frames, ignore_index=True)  # noqa: E731
    return Result(ablation=first(abl), collapse=first(col), curves=first(curves), activations=first(acts),
                  bias_curves=bias_curves, retraining=history, target_accuracy=float(target_accuracy),
                  bias_experiment=bias_experiment, retrain_experiment=retrain_experiment,
                  experiments={n: norm_kind(c) for n, c in experiments.items()}, layer_info=info, widths=sweep,
                  width_experiment=(width_experiment or bias_experiment) if len(sweep) else "")


def collapse_summary(collapse: pd.DataFrame) -> pd.DataFrame:
    """The last hidden layer's midpoint/endpoint pre-activation std ratio per experiment, method
    and pair (group orders averaged), with the first layer's for comparison."""
    rows = []
    for (exp, method, pair), g in collapse.groupby(["experiment", "method", "pair"], sort=False):
        by_layer = g.groupby("layer")["ratio"].mean()
        rows.append({"experiment": exp, "method": method, "pair": pair, "orders": int(g["order"].nunique()),
                     "first_layer_ratio": float(by_layer.iloc[0]), "last_layer_ratio": float(by_layer.iloc[-1]),
                     "layers": int(len(by_layer))})
    return pd.DataFrame(rows)


def tables(result: Result) -> dict[str, pd.DataFrame]:
    """The summary tables the notebook saves, by file name."""
    steps = steps_to_accuracy(result.retraining, result.target_accuracy)
    return {
        "04_ablation_pairs": result.ablation,
        "04_ablation": ablation_summary(result.ablation),
        "04_variance_collapse": collapse_summary(result.collapse),
        "04_curve_barriers": barrier_rows(result.curves, ["experiment", "method", "variant"], midpoint=True),
        "04_activation_stats": result.activations,
        "04_bias_barriers": barrier_rows(result.bias_curves, ["curve", "pair", "order"], midpoint=True),
        "04_retraining": steps,
        "04_layer_information": result.layer_info,
        "04_layer_information_ratios": layer_information_ratios(result.layer_info),
        "04_width_sweep": width_summary(result.widths),
    }


# --- verdicts -------------------------------------------------------------------------------

def _grid(frame: pd.DataFrame, value: str, **where) -> pd.DataFrame:
    """``value`` as a ``pair x order`` table for the rows matching ``where`` (column = value)."""
    sel = frame
    for k, v in where.items():
        sel = sel[sel[k] == v]
    return sel.pivot_table(index="pair", columns="order", values=value, aggfunc="mean").sort_index()


def _diff(a: pd.DataFrame, b: pd.DataFrame) -> np.ndarray:
    """``a - b`` per pair (and order); a table with one order (a method without group orders) is
    broadcast against the other's orders."""
    pairs = a.index.intersection(b.index)
    return a.loc[pairs].to_numpy() - b.loc[pairs].to_numpy()


def verdicts(result: Result, criteria: Mapping[str, V.Criterion]) -> pd.DataFrame:
    """One verdict row per declared claim x subject (see ``params/criteria.yaml``)."""
    rows = []
    abl, kinds = result.ablation, result.experiments

    def add(name: str, subject: str, values) -> None:
        if name in criteria:
            rows.append(V.verdict(NOTEBOOK, criteria[name], subject, values))

    ran = set(abl["variant"])  # a run restricted to some variants (notebook 10) judges only those

    def add_diff(name: str, subject: str, exp: str, m: str, variant: str, other: str) -> None:
        if {variant, other} <= ran:
            add(name, subject, _diff(acc(exp, m, variant), acc(exp, m, other)))

    acc = lambda exp, method, variant: _grid(abl, "accuracy", experiment=exp, method=method, variant=variant)  # noqa: E731
    methods = [m for m in dict.fromkeys(abl["method"]) if m not in ("-", "naive")]
    for exp, kind in kinds.items():
        col = result.collapse[(result.collapse["experiment"] == exp) & (result.collapse["method"] == "weight")]
        if len(col):
            last = col[col["layer"] == col["layer"].max()]
            add("variance_collapse", f"{exp} / weight", _grid(last, "ratio").to_numpy())
        fixes = ["RESET"] if kind == "batchnorm" else ["REPAIR", "RESCALE", "indep. RESCALE"]
        for m in methods:
            for fix in fixes:
                add_diff("renorm_beats_none", f"{exp} / {m} / {fix}", exp, m, fix, "none")
            if kind != "batchnorm":
                add_diff("reshift_hurts", f"{exp} / {m}", exp, m, "RESHIFT", "none")
                add_diff("rescale_beats_repair", f"{exp} / {m}", exp, m, "RESCALE", "REPAIR")
                add_diff("sequential_repair_helps", f"{exp} / {m}", exp, m, "SEQ REPAIR", "REPAIR")
        if "weight" in methods and "naive" in set(abl["method"]):
            fix = "RESET" if kind == "batchnorm" else "REPAIR"
            add("matching_needed", f"{exp} / {fix}", _diff(acc(exp, "weight", fix), acc(exp, "naive", fix)))
    bars = (barrier_rows(result.bias_curves, ["curve", "pair", "order"], midpoint=True) if len(result.bias_curves)
            else pd.DataFrame(columns=["curve"]))  # empty: a run without the bias study (notebook 10)
    exp = result.bias_experiment
    for curve, label in (("with biases: WM, homogeneous", "homogeneous interpolation"),
                         ("no biases: WM", "trained without biases"), (f"{FINETUNED}: WM", FINETUNED_ARM),
                         ("with biases: WM + RESCALE", "RESCALE")):
        if curve not in set(bars["curve"]):
            continue
        base_acc = _grid(bars, "accuracy_barrier", curve=BIAS_BASE)
        base_loss = _grid(bars, "loss_barrier", curve=BIAS_BASE)
        add("bias_removal_lowers_accuracy_barrier", f"{exp} / {label}",
            _diff(base_acc, _grid(bars, "accuracy_barrier", curve=curve)))
        if curve != "with biases: WM + RESCALE":
            loss = _grid(bars, "loss_barrier", curve=curve)
            pairs = loss.index.intersection(base_loss.index)
            add("loss_barrier_remains", f"{exp} / {label}", (loss.loc[pairs] / base_loss.loc[pairs]).to_numpy())
    steps = steps_to_accuracy(result.retraining, result.target_accuracy) if len(result.retraining) else []
    if len(steps):
        per_epoch = float(steps["budget_steps"].max()) / max(1, int(result.retraining["epoch"].max()))
        steps = steps.assign(steps=steps["steps_to_target"].fillna(steps["budget_steps"] + per_epoch))
        wm = _grid(steps, "steps", start="WM midpoint")
        for other in ("naive midpoint", "fresh init"):
            add("retrains_faster", f"{result.retrain_experiment} / WM midpoint vs {other}",
                _diff(_grid(steps, "steps", start=other), wm))
    ratios = layer_information_ratios(result.layer_info)
    if len(ratios):
        naive_mag = _grid(ratios, "magnitude_ratio", model="naive")
        for m in [m for m in dict.fromkeys(ratios["model"]) if m != "naive"]:
            label = {"weight": "WM", "activation": "AM"}.get(m, m)
            add("matching_keeps_magnitude", f"{exp} / {label} vs naive midpoint",
                _diff(_grid(ratios, "magnitude_ratio", model=m), naive_mag))
            add("matching_raises_fisher", f"{exp} / {label} vs naive midpoint",
                _grid(ratios, "log10_fisher_vs_naive", model=m).to_numpy())
    if len(result.widths):
        ws = sorted(set(result.widths["width"]))
        narrow, wide = ws[0], ws[-1]
        for m in [m for m in dict.fromkeys(result.widths["method"]) if m != "naive"]:
            label = {"weight": "WM", "activation": "AM"}.get(m, m)
            at = lambda w: _grid(result.widths, "midpoint_barrier", width=w, method=m)  # noqa: E731
            subject = f"{result.width_experiment} / width {narrow:g} vs width {wide:g} / {label}"
            add("plain_barrier_falls_with_width", subject, _diff(at(narrow), at(wide)))
            add("plain_barrier_falls_slowly", subject, _diff(at(narrow), at(wide)))
    return V.table(rows)
