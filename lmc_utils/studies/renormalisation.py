"""Notebook 04's protocols (Qu & Horvath 2024, §4 and App. E.5/F): re-normalisation ablations of
matched midpoints, interpolation curves per variant, per-layer activation statistics, bias removal
and homogeneous interpolation, and re-training from midpoints; plus the ``describe_*`` functions
that turn the measured tables into the notebook's verdicts.

Every function takes trained models (from :mod:`lmc_utils.zoo`) and data, and returns tidy
DataFrames; nothing here trains except :func:`retraining`, which goes through :func:`zoo.train`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from .. import data as data_mod
from .. import renorm, zoo
from ..activations import statistics_table
from ..data import TensorData
from ..evaluation import evaluate
from ..interpolation import has_batchnorm, interpolate
from ..rebasin import aligned_states
from ..tables import mean_std, paired_ttest


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
CURVE_VARIANTS = ("none", "REPAIR", "RESCALE", "RESCALE (avg)", "RESHIFT", "SEQ REPAIR", "RESET")


def variants_for(model: nn.Module) -> dict[str, Variant]:
    """BatchNorm models get RESET (and its data-independent form); others REPAIR and its ablations."""
    return BN_VARIANTS if has_batchnorm(model) else PLAIN_VARIANTS


def with_state(template: nn.Module, state: dict) -> nn.Module:
    """A copy of ``template`` holding ``state`` (eval mode)."""
    m = copy.deepcopy(template)
    m.load_state_dict(state)
    return m.eval()


def apply_variant(variant: Variant, model: nn.Module, endpoints: Sequence[nn.Module], weights: Sequence[float],
                  stats_x: torch.Tensor, reset_data: TensorData, third: nn.Module | None = None) -> nn.Module:
    """``model`` re-normalised by ``variant``; goal statistics on ``stats_x`` from the weighted
    ``endpoints`` (or from ``third`` alone)."""
    if variant.mode is None:
        return model
    if variant.mode == "reset":
        return renorm.per_batch(model) if variant.per_batch else renorm.reset(model, reset_data)
    if variant.third:
        if third is None:
            raise ValueError("this variant needs an independent third model")
        goal = renorm.goal_statistics([third], [1.0], stats_x)
    else:
        goal = renorm.goal_statistics(list(endpoints), list(weights), stats_x)
    if variant.per_batch:
        return renorm.per_batch(model, goal, mode=variant.mode, average=variant.average)
    return renorm.correct(model, goal, stats_x, mode=variant.mode, average=variant.average,
                          sequential=variant.sequential)


def midpoint_ablation(pairs: Sequence[tuple[zoo.Trained, zoo.Trained]], eval_data: TensorData, stats_x: torch.Tensor,
                      reset_data: TensorData, methods: Sequence[str] = ("weight", "activation", "naive"),
                      seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """Test loss and accuracy of the midpoint of every pair, aligned by each method, under every
    variant (:func:`variants_for`). The independent third model of pair ``i`` is model A of pair
    ``i + 1`` (cyclically), aligned to A by the same method. Also the endpoints (variant
    ``endpoint A``/``endpoint B``). Columns ``pair, method, variant, loss, accuracy``."""
    if len(pairs) < 2:
        raise ValueError("the ablation needs at least 2 pairs (the third model comes from another pair)")
    rows = []
    jobs = [(i, m) for i in range(len(pairs)) for m in methods]
    for i, method in tqdm(jobs, desc="midpoint ablation", disable=not progress, leave=False):
        a, b = pairs[i]
        c = pairs[(i + 1) % len(pairs)][0]
        state_b = aligned_states(a.model, b.model, [method], stats_x, seed=seed + i)[method]
        state_c = aligned_states(a.model, c.model, [method], stats_x, seed=seed + i)[method]
        b_al, c_al = with_state(a.model, state_b), with_state(a.model, state_c)
        mid = with_state(a.model, interpolate(a.model.state_dict(), state_b, 0.5))
        if method == methods[0]:
            for name, m in (("endpoint A", a.model), ("endpoint B", b.model)):
                loss, acc = evaluate(m, eval_data)
                rows.append({"pair": i, "method": "-", "variant": name, "loss": loss, "accuracy": acc})
        for vname, v in variants_for(a.model).items():
            fixed = apply_variant(v, mid, [a.model, b_al], [0.5, 0.5], stats_x, reset_data, third=c_al)
            loss, acc = evaluate(fixed, eval_data)
            rows.append({"pair": i, "method": method, "variant": vname, "loss": loss, "accuracy": acc})
    return pd.DataFrame(rows)


def ablation_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over pairs of midpoint test accuracy and loss per experiment, method and variant."""
    by = [c for c in ("experiment", "method", "variant") if c in table]
    return mean_std(table, by, ["accuracy", "loss"])


def variant_curves(a: zoo.Trained, b: zoo.Trained, eval_data: TensorData, stats_x: torch.Tensor,
                   reset_data: TensorData, methods: Sequence[str] = ("naive", "weight"), n_points: int = 11,
                   seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """Interpolation curves of one pair, per method and variant (those of :data:`CURVE_VARIANTS`
    that apply to the model): at each lambda the goal is ``(1 - lam) stats_A + lam stats_B``.
    Columns ``method, variant, lam, loss, accuracy``."""
    names = [n for n in CURVE_VARIANTS if n in variants_for(a.model)]
    variants = variants_for(a.model)
    states = aligned_states(a.model, b.model, methods, stats_x, seed=seed)
    rows = []
    jobs = [(m, lam) for m in methods for lam in np.linspace(0, 1, n_points)]
    for method, lam in tqdm(jobs, desc="variant curves", disable=not progress, leave=False):
        b_al = with_state(a.model, states[method])
        model = with_state(a.model, interpolate(a.model.state_dict(), states[method], float(lam)))
        for name in names:
            fixed = apply_variant(variants[name], model, [a.model, b_al], [1 - lam, lam], stats_x, reset_data)
            loss, acc = evaluate(fixed, eval_data)
            rows.append({"method": method, "variant": name, "lam": float(lam), "loss": loss, "accuracy": acc})
    return pd.DataFrame(rows)


def activation_profiles(a: zoo.Trained, b: zoo.Trained, stats_x: torch.Tensor, seed: int = 0,
                        reset_data: TensorData | None = None) -> pd.DataFrame:
    """Per-layer pre-/post-activation scale and share of zeros (:func:`statistics_table` on
    ``stats_x``) for the endpoints, the naive and weight-matched midpoints, each + REPAIR and
    + RESCALE (BatchNorm models: + RESET), and a random initialisation. Column ``model`` says which."""
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
               eval_data: TensorData, stats_x: torch.Tensor, n_points: int = 11, seed: int = 0,
               progress: bool = True) -> pd.DataFrame:
    """Weight-matched interpolation curves (test loss and accuracy) of pairs trained with biases
    (plain linear interpolation, + RESCALE at every lambda, homogeneous interpolation) and of
    pairs trained without biases. Columns ``pair, curve, lam, loss, accuracy``."""
    rows = []
    lams = np.linspace(0, 1, n_points)
    jobs = [("with biases", i, p) for i, p in enumerate(biased)] + [("no biases", i, p) for i, p in enumerate(unbiased)]
    for kind, i, (a, b) in tqdm(jobs, desc="bias study", disable=not progress, leave=False):
        state_b = aligned_states(a.model, b.model, ["weight"], seed=seed + i)["weight"]
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
                rows.append({"pair": i, "curve": name, "lam": lam, "loss": loss, "accuracy": acc})
    return pd.DataFrame(rows)


def curve_barriers(curves: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Loss and accuracy barriers (largest gap to the line between the endpoints) and the
    midpoint accuracy, per group of ``by`` (curves with columns ``lam, loss, accuracy``)."""
    rows = []
    for key, g in curves.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        g = g.sort_values("lam")
        lam = g["lam"].to_numpy()
        line = lambda v: (1 - lam) * v[0] + lam * v[-1]  # noqa: E731
        loss, acc = g["loss"].to_numpy(), g["accuracy"].to_numpy()
        mid = g.iloc[int(np.argmin(np.abs(lam - 0.5)))]
        rows.append({**dict(zip(by, key)), "loss_barrier": float(np.max(loss - line(loss))),
                     "accuracy_barrier": float(np.max(line(acc) - acc)), "midpoint_accuracy": float(mid["accuracy"]),
                     "midpoint_loss": float(mid["loss"])})
    return pd.DataFrame(rows)


def retraining(a: zoo.Trained, b: zoo.Trained, config: zoo.TrainConfig, stats_x: torch.Tensor, seed: int = 0,
               device="auto", progress: bool = True) -> pd.DataFrame:
    """Re-train from the naive, weight-matched and activation-matched midpoints of ``(a, b)`` and
    from a fresh initialisation with ``config`` (through :func:`zoo.train`, not cached).
    Returns the per-epoch history with ``start`` and ``steps`` (optimisation steps so far)."""
    states = aligned_states(a.model, b.model, ["naive", "weight", "activation"], stats_x, seed=seed)
    sa = {k: v.detach().cpu() for k, v in a.model.state_dict().items()}
    starts = {f"{m} midpoint": interpolate(sa, {k: v.cpu() for k, v in s.items()}, 0.5) for m, s in
              (("naive", states["naive"]), ("WM", states["weight"]), ("AM", states["activation"]))}
    starts["fresh init"] = None
    n_train = config.train_subset or len(data_mod.load(config.dataset, "train"))
    steps_per_epoch = int(np.ceil(n_train / config.batch_size))
    frames = []
    for name, state in tqdm(starts.items(), desc="re-training", disable=not progress, leave=False):
        trained = zoo.train(config, device=device, init_state=state, progress=False)
        h = pd.DataFrame(trained.history)
        frames.append(h.assign(start=name, steps=h["epoch"] * steps_per_epoch))
    return pd.concat(frames, ignore_index=True)


def steps_to_accuracy(history: pd.DataFrame, target: float = 0.9) -> pd.DataFrame:
    """Per start: the first step count at which the epoch's running train accuracy reached
    ``target`` (NaN if never)."""
    rows = []
    for start, h in history.groupby("start", sort=False):
        hit = h[h["train_accuracy"] >= target]
        rows.append({"start": start, "steps_to_target": float(hit["steps"].iloc[0]) if len(hit) else float("nan"),
                     "first_epoch_accuracy": float(h["train_accuracy"].iloc[0]),
                     "final_accuracy": float(h["train_accuracy"].iloc[-1])})
    return pd.DataFrame(rows)


# --- verdicts -------------------------------------------------------------------------------

def _acc(summary: pd.DataFrame, exp: str, method: str, variant: str) -> tuple[float, float]:
    r = summary[(summary["experiment"] == exp) & (summary["method"] == method) & (summary["variant"] == variant)]
    if r.empty:
        return float("nan"), float("nan")
    return 100 * float(r["accuracy_mean"].iloc[0]), 100 * float(r["accuracy_std"].iloc[0])


def _fmt(v: tuple[float, float]) -> str:
    return f"{v[0]:.1f} ± {v[1]:.1f}%"


def _paired(raw: pd.DataFrame, exp: str, method: str, a: str, b: str) -> tuple[float, float]:
    """Mean accuracy difference ``a - b`` over pairs (points) and its paired t-test p-value."""
    t = raw[(raw["experiment"] == exp) & (raw["method"] == method)].pivot(index="pair", columns="variant",
                                                                           values="accuracy")
    res = paired_ttest(t.assign(_k=0), ["_k"], a, b).iloc[0]
    return 100 * float(res["diff_mean"]), float(res["p_value"])


def _cmp(raw, exp, method, a, b, alpha: float = 0.05) -> str:
    """``a`` vs ``b``: 'better', 'worse' or 'not significantly different' (paired t-test)."""
    d, p = _paired(raw, exp, method, a, b)
    if p == p and p < alpha:
        word = "better than" if d > 0 else "worse than"
    else:
        word = "not significantly different from"
    return f"{a} is {word} {b} ({d:+.1f} points, p = {p:.2g})"


def describe_ablation(raw: pd.DataFrame, alpha: float = 0.05) -> str:
    """Markdown verdicts on claims 2–4 (and RESET) from the per-pair :func:`midpoint_ablation`
    table with an ``experiment`` column. Comparisons are paired t-tests over pairs at ``alpha``
    (with 3 pairs only large, consistent differences are significant)."""
    summary = ablation_summary(raw)
    lines = []
    for exp, s in summary.groupby("experiment", sort=False):
        ends = [_acc(summary, exp, "-", f"endpoint {k}")[0] for k in "AB"]
        head = f"- **{exp}** (endpoints {ends[0]:.1f}% / {ends[1]:.1f}%):"
        methods = [m for m in s["method"].unique() if m != "-"]
        if "RESET" in set(s["variant"]):
            parts = []
            for m in methods:
                none, reset, ind = (_acc(summary, exp, m, v) for v in ("none", "RESET", "data-indep. RESET"))
                parts.append(f"{m} midpoint {_fmt(none)} → RESET {_fmt(reset)}, data-independent RESET {_fmt(ind)}")
            lines.append(head + " " + "; ".join(parts) + ".")
            continue
        parts = []
        for m in [m for m in ("weight", "activation") if m in methods]:
            v = {k: _acc(summary, exp, m, k) for k in PLAIN_VARIANTS}
            parts.append(
                f"  - {m} matching: none {_fmt(v['none'])}, REPAIR {_fmt(v['REPAIR'])}, RESCALE {_fmt(v['RESCALE'])}, "
                f"RESCALE (avg) {_fmt(v['RESCALE (avg)'])}, RESHIFT {_fmt(v['RESHIFT'])}, SEQ REPAIR "
                f"{_fmt(v['SEQ REPAIR'])}, SEQ RESCALE {_fmt(v['SEQ RESCALE'])}, indep. RESCALE "
                f"{_fmt(v['indep. RESCALE'])}, indep. RESCALE (avg) {_fmt(v['indep. RESCALE (avg)'])}, data-indep. "
                f"REPAIR {_fmt(v['data-indep. REPAIR'])}, data-indep. RESCALE {_fmt(v['data-indep. RESCALE'])}.\n"
                f"    Claim 2: {_cmp(raw, exp, m, 'RESCALE', 'REPAIR', alpha)}; "
                f"{_cmp(raw, exp, m, 'RESCALE (avg)', 'RESCALE', alpha)}; {_cmp(raw, exp, m, 'RESHIFT', 'none', alpha)}. "
                f"Claim 4: {_cmp(raw, exp, m, 'SEQ REPAIR', 'REPAIR', alpha)}; "
                f"{_cmp(raw, exp, m, 'SEQ RESCALE', 'RESCALE', alpha)}; {_cmp(raw, exp, m, 'indep. RESCALE', 'none', alpha)}; "
                f"{_cmp(raw, exp, m, 'data-indep. REPAIR', 'REPAIR', alpha)}.")
        if "naive" in methods:
            n = {k: _acc(summary, exp, "naive", k) for k in ("none", "REPAIR", "RESCALE")}
            text = (f"  - without matching: none {_fmt(n['none'])}, REPAIR {_fmt(n['REPAIR'])}, RESCALE "
                    f"{_fmt(n['RESCALE'])}. Claim 3 (re-normalisation does not help without matching): "
                    f"{_cmp(raw, exp, 'naive', 'REPAIR', 'none', alpha)}; {_cmp(raw, exp, 'naive', 'RESCALE', 'none', alpha)}")
            if "weight" in methods:
                w = _acc(summary, exp, "weight", "REPAIR")
                text += (f"; after weight matching REPAIR reaches {_fmt(w)}, "
                         f"{w[0] - n['REPAIR'][0]:+.1f} points more than without matching")
            parts.append(text + ".")
        lines.append(head + "\n" + "\n".join(parts))
    return "\n".join(lines)


def describe_activations(profiles: pd.DataFrame) -> str:
    """Markdown summary of the per-layer statistics (with an ``experiment`` column): the
    pre-activation std of each model relative to the endpoints' in the first and last hidden
    layer, the share of zero post-activations, and verdicts on variance collapse (claim 1) and on
    dead neurons in the naive midpoint (claim 3)."""
    lines = []
    for exp, p in profiles.groupby("experiment", sort=False):
        last = p["layer"].max()
        ends = p[p["model"].str.startswith("endpoint")]
        ref = ends.groupby("layer")["pre_std"].mean()
        ratio = {name: (p[(p["model"] == name)].set_index("layer")["pre_std"] / ref) for name in p["model"].unique()}
        zeros = p.groupby("model", sort=False)["zero_share"].mean()
        parts = [f"{name}: {r.loc[0]:.2f} → {r.loc[last]:.2f}, zeros {100 * zeros[name]:.0f}%"
                 for name, r in ratio.items() if not name.startswith("endpoint")]
        wm = ratio.get("WM midpoint")
        fixed = [n for n in ratio if n.startswith("WM midpoint +")]
        verdict = ""
        if wm is not None:
            collapse = "held" if wm.loc[last] < wm.loc[0] and wm.loc[last] < 1 else "did not hold"
            verdict += (f" Claim 1 (the WM midpoint's scale shrinks layer by layer and re-normalisation restores it) "
                        f"{collapse}: {wm.loc[0]:.2f} → {wm.loc[last]:.2f} of the endpoints' std, "
                        + ", ".join(f"{n[len('WM midpoint + '):]} {ratio[n].loc[last]:.2f}" for n in fixed)
                        + " in the last layer.")
        if "naive midpoint" in zeros and "WM midpoint" in zeros:
            more = "more" if zeros["naive midpoint"] > zeros["WM midpoint"] else "fewer"
            verdict += (f" Dead neurons (claim 3): the naive midpoint has {more} zero post-activations than the WM "
                        f"midpoint ({100 * zeros['naive midpoint']:.0f}% vs {100 * zeros['WM midpoint']:.0f}%; "
                        f"endpoints {100 * float(ends['zero_share'].mean()):.0f}%, random init "
                        f"{100 * zeros.get('random init', float('nan')):.0f}%).")
        lines.append(f"- **{exp}**: pre-activation std relative to the endpoints, first → last hidden layer — "
                     + "; ".join(parts) + "." + verdict)
    return "\n".join(lines)


def describe_bias(barriers: pd.DataFrame) -> str:
    """Markdown from :func:`curve_barriers` of :func:`bias_study` (mean over pairs per curve)."""
    m = barriers.groupby("curve", sort=False)[["accuracy_barrier", "loss_barrier", "midpoint_accuracy"]].mean()
    base = m.loc["with biases: WM"]
    parts = [f"{c}: accuracy barrier {100 * r['accuracy_barrier']:.1f} points, loss barrier {r['loss_barrier']:.3f} nats"
             for c, r in m.iterrows()]
    verdicts = []
    for c in [c for c in m.index if c != "with biases: WM"]:
        r = m.loc[c]
        acc = "lower" if r["accuracy_barrier"] < base["accuracy_barrier"] else "not lower"
        loss = "lower" if r["loss_barrier"] < base["loss_barrier"] else "not lower"
        verdicts.append(f"{c}: accuracy barrier {acc}, loss barrier {loss} than plain weight matching")
    return "- " + "; ".join(parts) + ".\n- " + "; ".join(verdicts) + "."


def describe_retraining(steps: pd.DataFrame, target: float) -> str:
    """Markdown from :func:`steps_to_accuracy`."""
    s = steps.set_index("start")
    parts = [f"{k}: {'never within the budget' if np.isnan(r['steps_to_target']) else f'{r.steps_to_target:.0f} steps'} "
             f"(first-epoch accuracy {100 * r['first_epoch_accuracy']:.0f}%)" for k, r in s.iterrows()]
    fastest = s["steps_to_target"].fillna(np.inf)
    groups = [(v, [k for k in fastest.index if fastest[k] == v]) for v in sorted(set(fastest))]
    order = " < ".join(" = ".join(ks) + (" (never)" if np.isinf(v) else f" ({v:.0f})") for v, ks in groups)
    held = (fastest.get("WM midpoint", np.inf) < fastest.get("naive midpoint", np.inf)
            and fastest.get("WM midpoint", np.inf) < fastest.get("fresh init", np.inf))
    return (f"- Steps to {100 * target:.0f}% running train accuracy — " + "; ".join(parts) + f".\n- Order: {order}. "
            f"Claim 6 (the matched midpoint re-trains faster than the naive midpoint and a fresh model) "
            f"{'held' if held else 'did not hold'}.")
