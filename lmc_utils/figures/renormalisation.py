"""The figures of notebook 04 (renormalisation)."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
import pandas as pd

from .layout import legend_below, panels
from .style import method_label, method_style, variant_style, variant_label, BIAS_CURVE_STYLES, RETRAIN_STYLES


def plot_variant_curves(curves: pd.DataFrame, title: str = ""):
    """Test accuracy and loss along lambda per re-normalisation variant (colour, line style and
    marker from :func:`variant_style`), one row per alignment method."""
    methods = list(dict.fromkeys(curves["method"]))
    fig, axes = plt.subplots(len(methods), 2, figsize=(8.4, 3.3 * len(methods)), squeeze=False)
    for row, method in enumerate(methods):
        sub = curves[curves["method"] == method]
        for col, metric in enumerate(("accuracy", "loss")):
            ax = axes[row, col]
            for variant, c in sub.groupby("variant", sort=False):
                ax.plot(c["lam"], c[metric], label=variant_label(variant), **variant_style(variant))
            ax.set_xlabel(r"$\lambda$")
            ax.set_ylabel(f"test {metric}")
            ax.set_title(f"{title}: {method_label(method)}")
            if metric == "loss":
                ax.set_yscale("log")
    fig.tight_layout()
    legend_below(fig, list(axes.flat))
    return fig


def plot_activation_profiles(profiles: pd.DataFrame, title: str = ""):
    """Per hidden layer: mean pre-activation std, post-activation std and share of zero
    post-activations, one line per model (endpoints, midpoints, corrected midpoints, random init).
    Colour and marker: the correction (house style); line style: dashed for the naive midpoint."""
    fig, axes = panels(3, 4.0, 3.2)
    for name, p in profiles.groupby("model", sort=False):
        base, _, fix = name.partition(" + ")
        if base.startswith("endpoint"):
            style = {"color": "#000000", "linestyle": "-", "marker": "o", "alpha": 0.5}
        elif base.startswith("random"):
            style = {"color": "#8c564b", "linestyle": ":", "marker": "x"}
        else:
            style = variant_style(fix or "none")
            style.update(linestyle="--" if base.startswith("naive") else "-", linewidth=1.6, alpha=1.0)
            if base.startswith("naive"):
                style["markerfacecolor"] = "white"
        for ax, col in zip(axes, ("pre_std", "post_std", "zero_share")):
            ax.plot(p["layer"], p[col], label=name, **style)
    for ax, label in zip(axes, ("pre-activation std (mean over channels)", "post-activation std",
                                "share of zero post-activations")):
        ax.set_xlabel("hidden layer")
        ax.set_ylabel(label)
    axes[0].set_yscale("log")
    axes[1].set_yscale("log")
    fig.suptitle(title)
    fig.tight_layout()
    legend_below(fig, axes, ncol=3)
    return fig


def plot_bias_curves(curves: pd.DataFrame, title: str = ""):
    """Test accuracy and loss along lambda (mean over pairs and group orders) for each bias-study curve."""
    m = curves.groupby(["curve", "lam"], sort=False)[["accuracy", "loss"]].mean().reset_index()
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.0))
    for ax, metric in zip(axes, ("accuracy", "loss")):
        for name, c in m.groupby("curve", sort=False):
            ax.plot(c["lam"], c[metric], label=name, **method_style(BIAS_CURVE_STYLES.get(name, name)))
        ax.set_xlabel(r"$\lambda$")
        ax.set_ylabel(f"test {metric}")
    fig.suptitle(title)
    fig.tight_layout()
    legend_below(fig, list(axes))
    return fig


def plot_retraining(history: pd.DataFrame, target: float):
    """Running train accuracy per epoch against optimisation steps, per starting point: the mean
    over pairs (and group orders) as a line, each pair's run as a faint line."""
    fig, ax = plt.subplots(figsize=(5.0, 3.2))
    keys = [c for c in ("pair", "order") if c in history]
    for start, h in history.groupby("start", sort=False):
        style = method_style(RETRAIN_STYLES.get(start, start))
        if keys:
            for _, run in h.groupby(keys):
                ax.plot(run["steps"], run["train_accuracy"], color=style["color"], lw=0.6, alpha=0.3)
        mean = h.groupby("steps", sort=True)["train_accuracy"].mean()
        ax.plot(mean.index, mean.to_numpy(), label=start, **style)
    ax.axhline(target, color="k", lw=0.8, ls=":")
    ax.set_xlabel("optimisation steps")
    ax.set_ylabel("train accuracy (running, per epoch)")
    fig.tight_layout()
    legend_below(fig, [ax])
    return fig


LAYER_MODEL_LABELS = {"endpoint A": "endpoints (mean of the two)", "naive": "naive midpoint",
                      "weight": "WM midpoint", "activation": "AM midpoint"}


def plot_layer_information(info: pd.DataFrame, title: str = ""):
    """Per weight layer (Qu & Horvath Figs. 4 (D), 42, 43): mean parameter magnitude and mean diagonal
    Fisher information of the endpoints (their mean), the naive midpoint and the matched midpoints;
    the mean over pairs (and group orders) as a line with markers, each pair faint."""
    frame = info.assign(model=info["model"].replace({"endpoint B": "endpoint A"}))
    fig, axes = panels(2, 4.2, 3.2)
    for model, g in frame.groupby("model", sort=False):
        style = {"color": "#000000", "linestyle": "-", "marker": "o"} if model == "endpoint A" \
            else method_style(model)
        for ax, col in zip(axes, ("magnitude", "fisher")):
            per_pair = g.groupby(["pair", "layer"])[col].mean().unstack("layer")
            for _, row in per_pair.iterrows():
                ax.plot(row.index + 1, row.to_numpy(), color=style["color"], lw=0.5, alpha=0.25)
            mean = per_pair.mean()
            ax.plot(mean.index + 1, mean.to_numpy(), label=LAYER_MODEL_LABELS.get(model, model), **style)
    axes[0].set_ylabel("mean |weight|")
    axes[1].set_ylabel("Fisher information (diagonal mean)")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("weight layer (1 = input, last = output)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title)
    fig.tight_layout()
    legend_below(fig, axes, ncol=4)
    return fig


def plot_width_sweep(sweep: pd.DataFrame, title: str = ""):
    """Midpoint test accuracy barrier (endpoints' mean minus the midpoint's, no re-normalisation) against
    width per alignment (Qu & Horvath Fig. 2 (B), Figs. 7-8): mean over pairs with a bar of one
    standard deviation (group orders averaged within a pair), width on a log axis."""
    per_pair = sweep.groupby(["method", "width", "pair"], sort=False)["midpoint_barrier"].mean().reset_index()
    fig, ax = plt.subplots(figsize=(5.0, 3.4))
    for method, g in per_pair.groupby("method", sort=False):
        stats = g.groupby("width")["midpoint_barrier"].agg(["mean", "std"])
        ax.errorbar(stats.index, 100 * stats["mean"], yerr=100 * stats["std"].fillna(0), capsize=3,
                    label=method_label(method), **method_style(method))
    ax.set_xscale("log", base=2)
    widths = sorted(set(per_pair["width"]))
    ax.set_xticks(widths)
    ax.set_xticklabels([f"{w:g}" for w in widths])
    ax.set_xlabel("hidden units per layer" if max(widths) >= 16 else "width multiplier (channels)")
    ax.set_ylabel("midpoint accuracy barrier (points)")
    ax.set_title(title)
    fig.tight_layout()
    legend_below(fig, [ax])
    return fig
