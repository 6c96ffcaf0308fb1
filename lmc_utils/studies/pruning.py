"""Notebook 05's protocols: pruning with and without re-normalisation, the number of samples
re-normalisation needs, and the talk's redundancy-removal study; their plots and verdicts.

* :func:`pruning_sweep` (Qu & Horvath 2024, §5 and App. G): one-shot pruning of a trained model
  at many sparsities by several criteria (:mod:`lmc_utils.pruning`), each evaluated as pruned and
  after re-normalisation (:func:`renormalize`: RESET for BatchNorm models, REPAIR towards the
  unpruned model's statistics otherwise), on the same few training examples; the activation
  scale of each layer relative to the unpruned model; and re-normalisation from 64, 128, 256, ...
  examples.
* :func:`redundancy_study` (the talk, "what if we prune the networks?"): merge redundant and
  drop dead hidden units of one-hidden-layer MLPs across widths; accuracy and naive
  interpolation barriers before and after.

Every ``describe_*`` function turns the measured tables into Markdown bullets and verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from .. import pruning, renorm, zoo
from ..activations import layer_statistics
from ..data import TensorData
from ..evaluation import evaluate
from ..interpolation import barrier, has_batchnorm, interpolation_curve
from ..rebasin import aligned_states

# The talk's table "So, what if we prune the networks?" (Moons, one hidden layer; mean over runs):
# width -> (reduced width, full test accuracy, reduced test accuracy).
TALK_MOONS_REDUCTION = {2: (2.0, 0.859, 0.859), 4: (3.72, 0.903, 0.897), 8: (7.18, 0.941, 0.934),
                        16: (13.04, 0.991, 0.979), 32: (23.28, 0.996, 0.986), 64: (39.26, 0.997, 0.985),
                        128: (73.62, 0.998, 0.987), 256: (141.02, 0.999, 0.987), 512: (271.94, 0.998, 0.990)}
RENORM_LABEL = {True: "BatchNorm: RESET", False: "REPAIR"}
METHOD_COLORS = {"global_magnitude": "#1f77b4", "layer_magnitude": "#2ca02c", "fisher": "#d62728"}


def renormalize(dense: nn.Module, pruned: nn.Module, inputs: TensorData, goal: renorm.Goal | None = None) -> nn.Module:
    """The re-normalised copy of ``pruned``: RESET (BatchNorm statistics recomputed on ``inputs``)
    for BatchNorm models; otherwise REPAIR (:func:`lmc_utils.renorm.repair`, sequential) towards the
    per-channel statistics of the unpruned ``dense`` model on the same inputs (``goal``: those
    statistics, if already measured by ``renorm.goal_statistics([dense], [1.0], inputs.x)``)."""
    if has_batchnorm(pruned):
        return renorm.reset(pruned, inputs, batch_size=max(1, min(256, len(inputs))))
    if goal is None:
        goal = renorm.goal_statistics([dense], [1.0], inputs.x)
    return renorm.repair(pruned, goal, inputs.x, sequential=True)


def _scale_rows(dense_stats, model: nn.Module, x: torch.Tensor) -> list[dict]:
    """Per hidden layer: mean over channels of pre-activation std relative to the dense model's."""
    rows = []
    for name, s in layer_statistics(model, x).items():
        d = dense_stats[name]
        alive = d.pre_std > 0
        ratio = float((s.pre_std[alive] / d.pre_std[alive]).mean())
        rows.append({"layer": d.index, "module": name, "std_ratio": ratio,
                     "zero_share": float(s.zero_share.mean())})
    return rows


@dataclass
class PruningResult:
    accuracy: pd.DataFrame  # experiment, norm, model, method, sparsity, achieved, renorm, loss, accuracy
    samples: pd.DataFrame  # experiment, norm, model, method, sparsity, n_samples, accuracy
    scale: pd.DataFrame  # experiment, model, method, sparsity, renorm, layer, module, std_ratio, zero_share
    dense: pd.DataFrame  # experiment, norm, model, loss, accuracy


def pruning_sweep(experiments: dict[str, zoo.TrainConfig], sparsities: list[float], methods: list[str],
                  eval_data: dict[str, TensorData], renorm_data: dict[str, TensorData],
                  fisher_data: dict[str, TensorData], sample_sizes: list[int | None],
                  sample_sparsities: list[float], n_models: int = 1, fisher_batches: int = 32,
                  fisher_batch_size: int = 16, scale_samples: int = 500, seed: int = 0,
                  device="auto") -> PruningResult:
    """Qu & Horvath's post-pruning re-normalisation on each experiment's trained models.

    For ``n_models`` models per experiment (seeds ``seed, seed + 1, ...``), every method and sparsity:
    test loss/accuracy of the pruned model as is (``renorm=False``) and after :func:`renormalize`
    on ``renorm_data[experiment]`` (``renorm=True``). For ``global_magnitude``: the pre-activation
    scale of every layer relative to the unpruned model, before and after (on the first
    ``scale_samples`` examples of ``renorm_data``). For the magnitude
    methods at ``sample_sparsities``: accuracy after re-normalising from only the first
    ``n`` examples of ``renorm_data`` for each ``n`` in ``sample_sizes`` (``None``: all of it).
    The dicts are keyed by experiment name (datasets differ between experiments).
    """
    acc_rows, sample_rows, scale_rows, dense_rows = [], [], [], []
    for name, cfg in experiments.items():
        norm = cfg.model.get("norm", "none")
        trained = zoo.get_many([cfg.replace(seed=seed + k) for k in range(n_models)], device=device)
        ev, rd = eval_data[name], renorm_data[name]
        subsets = {n: rd if n is None else TensorData(rd.x[:n], rd.y[:n], rd.num_classes, rd.name, rd.split)
                   for n in sample_sizes}
        scale_x = rd.x[:scale_samples]
        for k, t in enumerate(trained):
            dense = t.model.eval()
            key = {"experiment": name, "norm": norm, "model": k}
            loss, acc = evaluate(dense, ev, 1000)
            dense_rows.append({**key, "loss": loss, "accuracy": acc})
            dense_stats = layer_statistics(dense, scale_x)
            bn = has_batchnorm(dense)
            goal = None if bn else renorm.goal_statistics([dense], [1.0], rd.x)
            goals = {n: None if (bn or n is None) else renorm.goal_statistics([dense], [1.0], sub.x)
                     for n, sub in subsets.items()}
            scores = (pruning.fisher_scores(dense, fisher_data[name], fisher_batches, fisher_batch_size, seed=seed)
                      if "fisher" in methods else None)
            jobs = [(m, s) for m in methods for s in sparsities]
            for method, sp in tqdm(jobs, desc=f"prune {name} #{k}", leave=False):
                pruned = pruning.prune_model(dense, sp, method, scores=scores)
                fixed = renormalize(dense, pruned, rd, goal=goal)
                achieved = pruning.sparsity(pruned)
                accs = {}
                for flag, model in ((False, pruned), (True, fixed)):
                    loss, accs[flag] = evaluate(model, ev, 1000)
                    acc_rows.append({**key, "method": method, "sparsity": sp, "achieved": achieved,
                                     "renorm": flag, "loss": loss, "accuracy": accs[flag]})
                    if method == "global_magnitude":
                        for r in _scale_rows(dense_stats, model, scale_x):
                            scale_rows.append({"experiment": name, "model": k, "method": method, "sparsity": sp,
                                               "renorm": flag, **r})
                if method in ("global_magnitude", "layer_magnitude") and sp in sample_sparsities:
                    sample_rows.append({**key, "method": method, "sparsity": sp, "n_samples": 0, "label": "none",
                                        "accuracy": accs[False]})
                    for n, sub in subsets.items():
                        a = (accs[True] if n is None else
                             evaluate(renormalize(dense, pruned, sub, goal=goals[n]), ev, 1000)[1])
                        sample_rows.append({**key, "method": method, "sparsity": sp, "n_samples": len(sub),
                                            "label": "all" if n is None else str(n), "accuracy": a})
    return PruningResult(pd.DataFrame(acc_rows), pd.DataFrame(sample_rows), pd.DataFrame(scale_rows),
                         pd.DataFrame(dense_rows))


def pruning_table(result: PruningResult) -> pd.DataFrame:
    """Wide table: one row per experiment, method and sparsity with test accuracy as pruned and
    after re-normalisation (means over models), the gain, and the unpruned accuracy."""
    a = result.accuracy.groupby(["experiment", "method", "sparsity", "renorm"], sort=False)["accuracy"].mean()
    a = a.unstack("renorm").rename(columns={False: "pruned", True: "renormalized"}).reset_index()
    a.columns.name = None
    dense = result.dense.groupby("experiment")["accuracy"].mean()
    a["gain"] = a["renormalized"] - a["pruned"]
    a["dense"] = a["experiment"].map(dense)
    a["renorm"] = [RENORM_LABEL[bool(result.accuracy.loc[result.accuracy["experiment"] == e, "norm"].iloc[0] ==
                                     "batchnorm")] for e in a["experiment"]]
    return a


def describe_pruning(table: pd.DataFrame, samples: pd.DataFrame, scale: pd.DataFrame,
                     min_loss: float = 0.05) -> str:
    """Markdown bullets and verdicts from :func:`pruning_table`, the sample-size table and the
    scale table. Claim 1 is judged at the sparsities where pruning alone costs at least
    ``min_loss`` accuracy: "held" when re-normalisation recovers at least half of the lost
    accuracy on average there. The gap claim compares the mean absolute accuracy difference
    between global magnitude and diagonal-Fisher pruning over all sparsities, before and after.
    Claim 2 holds when re-normalising from the smallest sample size gets at least 90% of the gain
    that all examples give (averaged over the sparsities where that gain is at least ``min_loss``)."""
    lines = []
    verdict1, verdict_gap, verdict2 = [], [], []
    for exp, t in table.groupby("experiment", sort=False):
        kind = t["renorm"].iloc[0]
        dense = t["dense"].iloc[0]
        for method, m in t.groupby("method", sort=False):
            lost = m[dense - m["pruned"] >= min_loss]
            best = m.loc[m["gain"].idxmax()]
            if len(lost):
                share = float(((lost["renormalized"] - lost["pruned"]) / (dense - lost["pruned"])).mean())
                verdict1.append((exp, method, share))
                text = (f"where pruning alone loses >= {100 * min_loss:.0f} points ({len(lost)} sparsities from "
                        f"{100 * lost['sparsity'].min():.0f}%), {kind} recovers {100 * share:.0f}% of the loss on average")
            else:
                text = f"pruning alone never loses {100 * min_loss:.0f} points"
            lines.append(f"- **{exp}**, {pruning.METHOD_LABELS[method]}: unpruned {100 * dense:.1f}%; {text}; the "
                         f"largest gain is {100 * best['gain']:+.1f} points at {100 * best['sparsity']:.0f}% sparsity "
                         f"({100 * best['pruned']:.1f}% -> {100 * best['renormalized']:.1f}%).")
        if {"global_magnitude", "fisher"} <= set(t["method"]):
            g = t[t["method"] == "global_magnitude"].set_index("sparsity")
            f = t[t["method"] == "fisher"].set_index("sparsity")
            before = float((g["pruned"] - f["pruned"]).abs().mean())
            after = float((g["renormalized"] - f["renormalized"]).abs().mean())
            verdict_gap.append((exp, before, after))
    for exp, s in samples.groupby("experiment", sort=False):
        piv = s.groupby(["method", "sparsity", "label"], sort=False)["accuracy"].mean().unstack("label")
        sizes = [c for c in piv.columns if c not in ("none", "all")]
        smallest = min(sizes, key=int)
        full_gain = piv["all"] - piv["none"]
        ok = full_gain >= min_loss
        if ok.any():
            frac = float(((piv[smallest] - piv["none"])[ok] / full_gain[ok]).mean())
            verdict2.append((exp, smallest, frac, int(ok.sum())))
        diff = float((piv["all"] - piv[smallest]).abs().max())
        lines.append(f"- **{exp}**: re-normalising from {smallest} examples instead of all "
                     f"{int(s['n_samples'].max())} changes test accuracy by at most {100 * diff:.1f} points.")
    if len(scale):
        g = scale.groupby(["experiment", "renorm", "sparsity"])["std_ratio"].mean()
        for exp in scale["experiment"].unique():
            hi = max(scale.loc[scale["experiment"] == exp, "sparsity"])
            lines.append(f"- **{exp}** at {100 * hi:.0f}% global magnitude sparsity: hidden pre-activations keep "
                         f"{100 * g[(exp, False, hi)]:.0f}% of the unpruned model's std on average (after "
                         f"re-normalisation {100 * g[(exp, True, hi)]:.0f}%).")
    lines += ["", "**Verdicts at this scale:**"]
    for exp, method, share in verdict1:
        lines.append(f"- Claim 1 (re-normalisation recovers a large part of the pruning loss), {exp}, "
                     f"{pruning.METHOD_LABELS[method]}: {'held' if share >= 0.5 else 'did not hold'} "
                     f"({100 * share:.0f}% recovered on average; paper: about +50 points for ResNet50 on ImageNet "
                     f"at 80%).")
    for exp, before, after in verdict_gap:
        lines.append(f"- Gap between global magnitude and diagonal-Fisher pruning, {exp}: "
                     f"{'shrinks' if after < before else 'does not shrink'} after re-normalisation (mean |difference| "
                     f"{100 * before:.1f} -> {100 * after:.1f} points; the paper compares with WoodFisher).")
    for exp, smallest, frac, n in verdict2:
        lines.append(f"- Claim 2 (one batch suffices), {exp}: {'held' if frac >= 0.9 else 'did not hold'}: "
                     f"{smallest} examples give {100 * frac:.0f}% of the gain of all examples ({n} settings).")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The talk's redundancy study
# ---------------------------------------------------------------------------------------------

@dataclass
class RedundancyResult:
    units: pd.DataFrame  # dataset, width, model, tol, reduced_width, dead, merged, loss/accuracy full and reduced
    barriers: pd.DataFrame  # dataset, width, pair, tol, network (full | reduced), method, loss_barrier, accuracy_barrier


def redundancy_study(configs: dict[str, zoo.TrainConfig], widths: dict[str, list[int]], n_models: dict[str, int] | int,
                     tols: list[float], barrier_tol: float, test: dict[str, TensorData],
                     train_inputs: dict[str, torch.Tensor], n_points: int = 11, seed: int = 0,
                     device="auto") -> RedundancyResult:
    """For each dataset's one-hidden-layer MLP config and width: ``n_models`` (per dataset) runs (seeds
    ``seed, ...``); for every tolerance in ``tols`` the reduced network of
    :func:`lmc_utils.pruning.remove_redundant_units` (dead = never active on ``train_inputs``)
    and its test loss/accuracy; and, for consecutive pairs of runs (0-1, 2-3, ...), the naive and
    weight-matched test loss barriers between the full networks and between the networks reduced
    with ``barrier_tol`` (the smaller one padded with zero units to the larger one's width)."""
    unit_rows, bar_rows = [], []
    for ds, base in configs.items():
        n = n_models[ds] if isinstance(n_models, dict) else n_models
        for width in tqdm(widths[ds], desc=f"widths ({ds})", leave=False):
            cfg = base.replace(model={**base.model, "width": width})
            runs = zoo.get_many([cfg.replace(seed=seed + k) for k in range(n)], device=device)
            reduced_for_barrier = []
            for k, r in enumerate(runs):
                full_loss, full_acc = evaluate(r.model, test[ds], 1000)
                for tol in tols:
                    red, info = pruning.remove_redundant_units(r.model, tol=tol, inputs=train_inputs[ds])
                    loss, acc = evaluate(red, test[ds], 1000)
                    unit_rows.append({"dataset": ds, "width": width, "model": k, "tol": tol,
                                      "reduced_width": info.widths_after[0], "dead": info.dead[0],
                                      "merged": info.merged[0], "full_loss": full_loss, "full_accuracy": full_acc,
                                      "reduced_loss": loss, "reduced_accuracy": acc})
                    if tol == barrier_tol:
                        reduced_for_barrier.append(red)
            for p in range(n // 2):
                a, b = runs[2 * p].model, runs[2 * p + 1].model
                ra, rb = reduced_for_barrier[2 * p], reduced_for_barrier[2 * p + 1]
                w = max(ra.hidden[0].out_features, rb.hidden[0].out_features)
                ra, rb = pruning.pad_hidden(ra, [w]), pruning.pad_hidden(rb, [w])
                for network, (ma, mb) in (("full", (a, b)), ("reduced", (ra, rb))):
                    states = aligned_states(ma, mb, ["naive", "weight"], seed=seed)
                    for method, sb in states.items():
                        bar = barrier(interpolation_curve(ma, ma.state_dict(), sb, test[ds], n_points=n_points)).iloc[0]
                        bar_rows.append({"dataset": ds, "width": width, "pair": p, "tol": barrier_tol,
                                         "network": network, "method": method, "loss_barrier": float(bar["loss"]),
                                         "accuracy_barrier": float(bar["accuracy"])})
    return RedundancyResult(pd.DataFrame(unit_rows), pd.DataFrame(bar_rows))


def _pm(mean: float, std: float, fmt: str = ".3f") -> str:
    std = 0.0 if std != std else std
    return f"{mean:{fmt}} ± {std:{fmt}}"


def reduction_table(units: pd.DataFrame, tol: float) -> pd.DataFrame:
    """The talk's table at tolerance ``tol``: per dataset and width, full vs reduced width, test
    loss and accuracy (mean ± std over runs), with the talk's Moons values next to them."""
    rows = []
    u = units[units["tol"] == tol]
    for (ds, width), g in u.groupby(["dataset", "width"], sort=False):
        talk = TALK_MOONS_REDUCTION.get(width) if ds == "moons" else None
        for config in ("full", "reduced"):
            w = g["reduced_width"] if config == "reduced" else pd.Series([float(width)] * len(g))
            rows.append({"dataset": ds, "configuration": config, "width": _pm(w.mean(), w.std(), ".1f"),
                         "test_loss": _pm(g[f"{config}_loss"].mean(), g[f"{config}_loss"].std()),
                         "test_accuracy": _pm(g[f"{config}_accuracy"].mean(), g[f"{config}_accuracy"].std()),
                         "talk_width": (talk[0] if config == "reduced" else width) if talk else np.nan,
                         "talk_test_accuracy": (talk[2] if config == "reduced" else talk[1]) if talk else np.nan})
    return pd.DataFrame(rows)


def tolerance_table(units: pd.DataFrame) -> pd.DataFrame:
    """Sensitivity to the merge tolerance: mean reduced width (share of the full width) and mean
    change in test accuracy, per dataset, width and tolerance."""
    g = units.assign(share=units["reduced_width"] / units["width"],
                     accuracy_change=units["reduced_accuracy"] - units["full_accuracy"],
                     dead_share=units["dead"] / units["width"])
    return (g.groupby(["dataset", "width", "tol"], sort=False)[["reduced_width", "share", "dead_share",
                                                               "accuracy_change"]].mean().reset_index())


def barrier_summary(barriers: pd.DataFrame) -> pd.DataFrame:
    """Mean test loss barrier per dataset, width, method and network (full | reduced), wide."""
    t = barriers.groupby(["dataset", "width", "method", "network"], sort=False)["loss_barrier"].mean()
    out = t.unstack("network").reset_index()
    out.columns.name = None
    return out


def describe_redundancy(units: pd.DataFrame, barriers: pd.DataFrame, tol: float, max_drop: float = 0.01) -> str:
    """Bullets and verdicts for the talk's claim 3: the reduction "shrinks with little loss" when
    the mean test accuracy drops by at most ``max_drop`` (the talk: 0.998 -> 0.990 at width 512);
    "naive interpolation loses its low barrier" when the mean naive loss barrier between reduced
    networks exceeds that between the full networks."""
    lines = []
    u = units[units["tol"] == tol]
    summary = barrier_summary(barriers)
    for (ds, width), g in u.groupby(["dataset", "width"], sort=False):
        drop = float(g["full_accuracy"].mean() - g["reduced_accuracy"].mean())
        talk = TALK_MOONS_REDUCTION.get(width) if ds == "moons" else None
        talk_text = f" (talk: {talk[0]:.0f}, accuracy {talk[1]:.3f} -> {talk[2]:.3f})" if talk else ""
        b = summary[(summary["dataset"] == ds) & (summary["width"] == width)].set_index("method")
        bar_text = ""
        if "naive" in b.index:
            bar_text = (f"; naive loss barrier {b.loc['naive', 'full']:.3f} (full) vs {b.loc['naive', 'reduced']:.3f} "
                        f"(reduced), after weight matching {b.loc['weight', 'full']:.3f} vs {b.loc['weight', 'reduced']:.3f}")
        lines.append(f"- **{ds}**, width {width}: {g['reduced_width'].mean():.1f} units remain{talk_text}; test "
                     f"accuracy {g['full_accuracy'].mean():.3f} -> {g['reduced_accuracy'].mean():.3f}{bar_text}.")
    lines += ["", f"**Verdicts at this scale** (merge tolerance {tol:g}):"]
    for ds, g in u.groupby("dataset", sort=False):
        per_w = g.groupby("width")[["full_accuracy", "reduced_accuracy", "reduced_width"]].mean()
        drops = per_w["full_accuracy"] - per_w["reduced_accuracy"]
        widest = per_w.index.max()
        shrink = 1 - per_w.loc[widest, "reduced_width"] / widest
        ok = bool((drops <= max_drop).all())
        lines.append(f"- Claim 3a (wide networks carry redundant units that can be removed with little loss), {ds}: "
                     f"{'held' if ok and shrink > 0 else 'did not hold'}: the widest network ({widest}) loses "
                     f"{100 * shrink:.0f}% of its units, and the test accuracy drops by "
                     f"{'at most' if ok else 'more than'} {100 * max_drop:.0f} point(s) at {'every' if ok else 'some'} "
                     f"width (largest drop {100 * drops.max():.2f} points).")
        s = summary[(summary["dataset"] == ds) & (summary["method"] == "naive")]
        removed = per_w.index[per_w["reduced_width"] <= 0.95 * per_w.index.to_series()]  # >= 5% of units gone
        s = s[s["width"].isin(removed)]
        claim = f"- Claim 3b (after removing redundancy naive interpolation loses its low barrier), {ds}: "
        if len(s):
            higher = s["reduced"] > s["full"]
            verdict = "held" if higher.all() else ("held in part" if higher.any() else "did not hold")
            lines.append(claim + f"{verdict}: the naive loss barrier between reduced networks is higher than between "
                         f"the full ones at {int(higher.sum())} of the {len(s)} widths where at least 5% of the units "
                         f"were removed.")
        else:
            lines.append(claim + "not testable here: no width lost 5% of its units.")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------

def plot_pruning(table: pd.DataFrame):
    """Test accuracy against sparsity, one panel per experiment: each method as pruned (dashed)
    and after re-normalisation (solid); the unpruned accuracy as a grey line."""
    exps = list(dict.fromkeys(table["experiment"]))
    fig, axes = plt.subplots(1, len(exps), figsize=(4.0 * len(exps), 3.2), squeeze=False)
    for ax, exp in zip(axes[0], exps):
        t = table[table["experiment"] == exp]
        for method, m in t.groupby("method", sort=False):
            c = METHOD_COLORS.get(method)
            label = pruning.METHOD_LABELS[method]
            ax.plot(m["sparsity"], m["pruned"], "--", marker="o", color=c, alpha=0.7, label=f"{label}")
            ax.plot(m["sparsity"], m["renormalized"], "-", marker="s", color=c, label=f"{label} + {t['renorm'].iloc[0]}")
        ax.axhline(t["dense"].iloc[0], color="grey", lw=1, label="unpruned")
        ax.set_xlabel("sparsity (share of weights removed)")
        ax.set_ylabel("test accuracy")
        ax.set_title(exp)
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    return fig


def plot_samples(samples: pd.DataFrame):
    """Accuracy after re-normalisation from n examples against sparsity, one panel per
    experiment and magnitude method."""
    keys = list(dict.fromkeys(zip(samples["experiment"], samples["method"])))
    fig, axes = plt.subplots(1, len(keys), figsize=(3.3 * len(keys), 3.0), squeeze=False)
    s = samples.groupby(["experiment", "method", "label", "sparsity"], sort=False)["accuracy"].mean().reset_index()
    labels = list(dict.fromkeys(s["label"]))
    cmap = plt.get_cmap("viridis")
    for ax, (exp, method) in zip(axes[0], keys):
        t = s[(s["experiment"] == exp) & (s["method"] == method)]
        for i, lab in enumerate(labels):
            c = t[t["label"] == lab]
            style = dict(color="grey", ls="--") if lab == "none" else dict(color=cmap(i / max(1, len(labels) - 1)))
            ax.plot(c["sparsity"], c["accuracy"], marker="o",
                    label="no re-normalisation" if lab == "none" else f"{lab} examples", **style)
        ax.set_title(f"{exp}\n{pruning.METHOD_LABELS[method]}")
        ax.set_xlabel("sparsity")
        ax.set_ylim(-0.02, 1.02)
    axes[0, 0].set_ylabel("test accuracy")
    axes[0, -1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_scale(scale: pd.DataFrame):
    """Per experiment: pre-activation std of each hidden layer relative to the unpruned model
    against sparsity (global magnitude), as pruned (dashed) and re-normalised (solid)."""
    exps = list(dict.fromkeys(scale["experiment"]))
    fig, axes = plt.subplots(1, len(exps), figsize=(3.8 * len(exps), 3.0), squeeze=False)
    s = scale.groupby(["experiment", "renorm", "layer", "sparsity"])["std_ratio"].mean().reset_index()
    for ax, exp in zip(axes[0], exps):
        t = s[s["experiment"] == exp]
        layers = sorted(t["layer"].unique())
        cmap = plt.get_cmap("plasma")
        for layer in layers:
            c = cmap(layer / max(1, len(layers)))
            for flag, ls in ((False, "--"), (True, "-")):
                m = t[(t["layer"] == layer) & (t["renorm"] == flag)]
                ax.plot(m["sparsity"], m["std_ratio"], ls, color=c,
                        label=f"layer {layer + 1}" if flag else None)
        ax.axhline(1.0, color="grey", lw=1)
        ax.set_yscale("log")
        ax.set_title(f"{exp}\n(dashed: pruned, solid: re-normalised)")
        ax.set_xlabel("global magnitude sparsity")
    axes[0, 0].set_ylabel("pre-activation std / unpruned")
    axes[0, -1].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return fig


def plot_redundancy(units: pd.DataFrame, barriers: pd.DataFrame, tol: float):
    """Left: reduced against full width per dataset (mean ± std), with the talk's Moons values and
    the identity line. Right: naive and weight-matched test loss barriers between full and reduced
    networks against width."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8.4, 3.2))
    u = units[units["tol"] == tol]
    for ds, g in u.groupby("dataset", sort=False):
        m = g.groupby("width")["reduced_width"].agg(["mean", "std"]).reset_index()
        ax1.errorbar(m["width"], m["mean"], yerr=m["std"].fillna(0), marker="o", capsize=2, label=f"{ds} (measured)")
    talk = pd.DataFrame([(w, v[0]) for w, v in TALK_MOONS_REDUCTION.items()], columns=["width", "reduced"])
    ax1.plot(talk["width"], talk["reduced"], "k^:", label="Moons (talk)")
    lim = [1, max(units["width"].max(), 512)]
    ax1.plot(lim, lim, color="grey", lw=0.8, label="no reduction")
    ax1.set_xscale("log", base=2)
    ax1.set_yscale("log", base=2)
    ax1.set_xlabel("hidden width")
    ax1.set_ylabel("units after removing redundancy")
    ax1.set_title(f"merge tolerance {tol:g}")
    ax1.legend(fontsize=7)
    s = barrier_summary(barriers)
    styles = {"naive": "-", "weight": ":"}
    for (ds, method), g in s.groupby(["dataset", "method"], sort=False):
        line, = ax2.plot(g["width"], g["full"], styles[method], marker="o", label=f"{ds}, {method}: full")
        ax2.plot(g["width"], g["reduced"], styles[method], marker="x", color=line.get_color(), alpha=0.6,
                 label=f"{ds}, {method}: reduced")
    ax2.set_xscale("log", base=2)
    ax2.set_yscale("symlog", linthresh=1e-3)
    ax2.set_ylim(bottom=0)
    ax2.set_xlabel("hidden width")
    ax2.set_ylabel("test loss barrier (nats)")
    ax2.legend(fontsize=6)
    fig.tight_layout()
    return fig
